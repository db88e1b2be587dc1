#include "models/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/errors.h"

struct st_file {
    void *map;
    size_t size;
    st_tensor *v;
    size_t n;
    cJSON *header;
};

static const char *dtype_names[] = {"F32", "F64", "BF16", "F16", "I64", "I32", "I16", "U8", "BOOL"};
static const size_t dtype_sizes[] = {4, 8, 2, 2, 8, 4, 2, 1, 1};

size_t st_dtype_size(st_dtype d) { return (unsigned)d < 9 ? dtype_sizes[d] : 0; }
const char *st_dtype_name(st_dtype d) { return (unsigned)d < 9 ? dtype_names[d] : "?"; }

void st_close(st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->size);
    cJSON_Delete(f->header);
    free(f->v);
    free(f);
}

/* A whole number >= 0: a size or an offset (1.5 would silently become 1). */
static int is_size(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9007199254740992.0 &&
           v->valuedouble == (double)(int64_t)v->valuedouble;
}

/* Parses one header entry into t; the data range is checked against the data section. */
static int parse_entry(const cJSON *e, size_t data_size, const char *path, st_tensor *t, char *err,
                       size_t errlen)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    t->name = e->string;
    if (!cJSON_IsString(dt))
        return md_fail(err, errlen, "%s: tensor '%s': missing dtype", path, t->name);
    int d = -1;
    for (int i = 0; i < 9; i++)
        if (!strcmp(dt->valuestring, dtype_names[i]))
            d = i;
    if (d < 0)
        return md_fail(err, errlen, "%s: tensor '%s': unsupported dtype '%s'", path, t->name, dt->valuestring);
    t->dtype = (st_dtype)d;
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ST_MAX_DIMS)
        return md_fail(err, errlen, "%s: tensor '%s': shape must be an array of at most %d sizes", path, t->name,
                       ST_MAX_DIMS);
    t->ndim = cJSON_GetArraySize(shape);
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const cJSON *s = cJSON_GetArrayItem(shape, i);
        if (!is_size(s) || s->valuedouble > 1e15)
            return md_fail(err, errlen, "%s: tensor '%s': bad size in shape", path, t->name);
        t->shape[i] = (int64_t)s->valuedouble;
        if (__builtin_mul_overflow(numel, (size_t)t->shape[i], &numel))
            return md_fail(err, errlen, "%s: tensor '%s': shape too large", path, t->name);
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !is_size(offs->child) || !is_size(offs->child->next))
        return md_fail(err, errlen, "%s: tensor '%s': data_offsets must be [begin, end]", path, t->name);
    double b = offs->child->valuedouble, en = offs->child->next->valuedouble;
    if (b < 0 || en < b || en > (double)data_size)
        return md_fail(err, errlen, "%s: tensor '%s': data_offsets [%.0f, %.0f] outside the %zu data bytes", path,
                       t->name, b, en, data_size);
    t->nbytes = (size_t)en - (size_t)b;
    if (t->nbytes != numel * dtype_sizes[d])
        return md_fail(err, errlen, "%s: tensor '%s': %zu bytes for %zu elements of %s", path, t->name, t->nbytes,
                       numel, dtype_names[d]);
    t->data = (const void *)(uintptr_t)b; /* made absolute by the caller */
    return 0;
}

static int by_offset(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    if (x->data != y->data)
        return (uintptr_t)x->data < (uintptr_t)y->data ? -1 : 1;
    return strcmp(x->name, y->name);
}

int st_open(const char *path, st_file **out, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return md_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return md_fail(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    }
    st_file *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return md_fail(err, errlen, "%s: out of memory", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        close(fd);
        st_close(f);
        return md_fail(err, errlen, "%s: not a safetensors file (%zu bytes)", path, (size_t)sb.st_size);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        st_close(f);
        return md_fail(err, errlen, "%s: cannot map: %s", path, strerror(errno));
    }
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > f->size - 8) {
        st_close(f);
        return md_fail(err, errlen, "%s: header length %llu exceeds the file", path, (unsigned long long)hlen);
    }
    const char *text = (const char *)p + 8, *end = NULL;
    f->header = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    /* The format pads the header with spaces; anything else after the object is damage. */
    while (f->header && end && end < text + hlen && *end && strchr(" \t\r\n", *end))
        end++;
    if (!cJSON_IsObject(f->header) || (end && end < text + hlen)) {
        st_close(f);
        return md_fail(err, errlen, "%s: header is not a JSON object", path);
    }
    size_t data_off = 8 + (size_t)hlen, data_size = f->size - data_off;
    int n = cJSON_GetArraySize(f->header);
    f->v = calloc((size_t)n + 1, sizeof *f->v);
    if (!f->v) {
        st_close(f);
        return md_fail(err, errlen, "%s: out of memory", path);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, f->header)
    {
        if (!strcmp(e->string, "__metadata__"))
            continue;
        if (!cJSON_IsObject(e)) {
            md_fail(err, errlen, "%s: entry '%s' is not an object", path, e->string);
            st_close(f);
            return -1;
        }
        for (const cJSON *d = e->next; d; d = d->next)
            if (!strcmp(d->string, e->string)) {
                md_fail(err, errlen, "%s: tensor '%s' appears twice in the header", path, e->string);
                st_close(f);
                return -1;
            }
        st_tensor *t = &f->v[f->n];
        if (parse_entry(e, data_size, path, t, err, errlen) != 0) {
            st_close(f);
            return -1;
        }
        t->data = p + data_off + (uintptr_t)t->data;
        f->n++;
    }
    /* The header is a JSON object, whose order need not be the data's: keep the file's order. */
    qsort(f->v, f->n, sizeof *f->v, by_offset);
    *out = f;
    return 0;
}

size_t st_count(const st_file *f) { return f->n; }
const st_tensor *st_at(const st_file *f, size_t i) { return i < f->n ? &f->v[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->v[i].name, name))
            return &f->v[i];
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(f->header, "__metadata__");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes the parts in order to "<path>.tmp", fsyncs it, renames it over path and fsyncs the folder. */
static int publish(const char *path, const void *const *parts, const size_t *sizes, size_t n, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return md_fail(err, errlen, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return md_fail(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = write_all(fd, parts[i], sizes[i]);
    if (rc == 0)
        rc = fsync(fd);
    int saved = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        unlink(tmp);
        return md_fail(err, errlen, "%s: write failed: %s", tmp, strerror(saved));
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        unlink(tmp);
        return md_fail(err, errlen, "%s: cannot rename into place: %s", path, strerror(saved));
    }
    if (fsync_dir_of(path) != 0)
        return md_fail(err, errlen, "%s: cannot fsync its directory: %s", path, strerror(errno));
    return 0;
}

static char *build_header(const st_tensor *ts, size_t n, const char *const *meta, size_t n_meta)
{
    cJSON *h = cJSON_CreateObject();
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(h, "__metadata__");
        for (size_t i = 0; i < n_meta; i++)
            cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(h, ts[i].name);
        cJSON_AddStringToObject(e, "dtype", dtype_names[ts[i].dtype]);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < ts[i].ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts[i].shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + ts[i].nbytes)));
        off += ts[i].nbytes;
    }
    char *s = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    return s;
}

int st_write(const char *path, const st_tensor *ts, size_t n, const char *const *meta, size_t n_meta,
             char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < ts[i].ndim; d++)
            numel *= (size_t)ts[i].shape[d];
        if ((unsigned)ts[i].dtype >= 9 || numel * dtype_sizes[ts[i].dtype] != ts[i].nbytes)
            return md_fail(err, errlen, "%s: tensor '%s': size does not match its shape and dtype", path, ts[i].name);
    }
    char *json = build_header(ts, n, meta, n_meta);
    if (!json)
        return md_fail(err, errlen, "%s: out of memory", path);
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));

    static const char spaces[8] = "        ";
    size_t np = 3 + n;
    const void **parts = malloc(np * sizeof *parts);
    size_t *sizes = malloc(np * sizeof *sizes);
    int rc = -1;
    if (parts && sizes) {
        parts[0] = len8, sizes[0] = 8;
        parts[1] = json, sizes[1] = jl;
        parts[2] = spaces, sizes[2] = padded - jl;
        for (size_t i = 0; i < n; i++)
            parts[3 + i] = ts[i].data, sizes[3 + i] = ts[i].nbytes;
        rc = publish(path, parts, sizes, np, err, errlen);
    } else {
        md_fail(err, errlen, "%s: out of memory", path);
    }
    free(parts);
    free(sizes);
    free(json);
    return rc;
}

int st_write_bytes(const char *path, const void *data, size_t n, char *err, size_t errlen)
{
    return publish(path, &data, &n, 1, err, errlen);
}
