#include "trainer/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/crc32.h"
#include "models/safetensors.h"
#include "models/errors.h"

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int tr_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return md_fail(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return md_fail(err, errlen, "%s: write failed: %s", path, strerror(ok ? errno : saved));
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    if (fsync_path(slash ? dir : ".", O_RDONLY | O_DIRECTORY) != 0)
        return md_fail(err, errlen, "%s: cannot fsync its directory: %s", path, strerror(errno));
    return 0;
}

static st_dtype st_of(tc_dtype d)
{
    switch (d) {
    case TC_BF16: return ST_BF16;
    case TC_F16: return ST_F16;
    case TC_I64: return ST_I64;
    case TC_I32: return ST_I32;
    case TC_I16: return ST_I16;
    case TC_U8: return ST_U8;
    case TC_BOOL: return ST_BOOL;
    default: return ST_F32;
    }
}

/* Describes t for the writer; copies to host only when t is not already contiguous CPU memory. */
static int describe(tc_tensor *t, const char *name, st_tensor *out, void **owned)
{
    *owned = NULL;
    out->name = name;
    out->dtype = st_of(tc_dtype_of(t));
    out->ndim = tc_ndim(t);
    for (int d = 0; d < out->ndim; d++)
        out->shape[d] = tc_size(t, d);
    out->nbytes = (size_t)tc_numel(t) * tc_dtype_size(tc_dtype_of(t));
    out->data = tc_data_ptr(t);
    if (out->data)
        return 0;
    *owned = malloc(out->nbytes ? out->nbytes : 1);
    if (!*owned || tc_copy_to_host(t, *owned, out->nbytes) != TC_OK)
        return -1;
    out->data = *owned;
    return 0;
}

static int write_tensors(const char *path, tc_tensor *const *ts, const char *const *names, int n, char *err,
                         size_t errlen)
{
    st_tensor *v = calloc((size_t)n + 1, sizeof *v);
    void **owned = calloc((size_t)n + 1, sizeof *owned);
    int rc = (!v || !owned) ? md_fail(err, errlen, "%s: out of memory", path) : 0;
    for (int i = 0; rc == 0 && i < n; i++)
        if (describe(ts[i], names[i], &v[i], &owned[i]) != 0)
            rc = md_fail(err, errlen, "%s: cannot read tensor '%s': %s", path, names[i], tc_last_error());
    if (rc == 0)
        rc = st_write(path, v, (size_t)n, NULL, 0, err, errlen);
    for (int i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(v);
    return rc;
}

/* Size and CRC32 of a file's bytes. */
static int crc_file(const char *path, uint32_t *crc, int64_t *bytes, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    static unsigned char buf[1 << 16];
    size_t got;
    *crc = 0;
    *bytes = 0;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        *crc = ds_crc32(*crc, buf, got);
        *bytes += (int64_t)got;
    }
    int bad = ferror(f);
    fclose(f);
    return bad ? md_fail(err, errlen, "%s: read error", path) : 0;
}

/* The tensors of one checkpoint file, by name, in the parameters' order. */
typedef struct {
    int n;
    const char **names;
    char **owned; /* names made here (the moments') */
    tc_tensor **ts;
} tensor_list;

static void list_free(tensor_list *l)
{
    for (int i = 0; l->owned && i < l->n; i++)
        free(l->owned[i]);
    free(l->owned);
    free(l->names);
    free(l->ts);
    memset(l, 0, sizeof *l);
}

static int list_alloc(tensor_list *l, int n)
{
    l->n = n;
    l->names = calloc((size_t)n + 1, sizeof *l->names);
    l->owned = calloc((size_t)n + 1, sizeof *l->owned);
    l->ts = calloc((size_t)n + 1, sizeof *l->ts);
    return l->names && l->owned && l->ts ? 0 : -1;
}

/* model.safetensors: the parameters under their own names. */
static int list_model(tensor_list *l, const mp_params *ps)
{
    if (list_alloc(l, ps->n))
        return -1;
    for (int i = 0; i < ps->n; i++) {
        l->names[i] = ps->v[i].name;
        l->ts[i] = ps->v[i].t;
    }
    return 0;
}

/* optim.safetensors: each trained parameter's AdamW moments, "exp_avg.<name>" and "exp_avg_sq.<name>"
 * (frozen parameters and buffers have none). */
static int list_moments(tensor_list *l, const mp_params *ps, const tr_adamw *o)
{
    int n = 0;
    for (int i = 0; i < ps->n; i++)
        n += o->exp_avg[i] != NULL;
    if (list_alloc(l, 2 * n))
        return -1;
    for (int i = 0, j = 0; i < ps->n; i++) {
        if (!o->exp_avg[i])
            continue;
        for (int k = 0; k < 2; k++, j++) {
            size_t len = strlen(ps->v[i].name) + 16;
            char *name = l->owned[j] = malloc(len);
            if (!name)
                return -1;
            snprintf(name, len, "%s.%s", k ? "exp_avg_sq" : "exp_avg", ps->v[i].name);
            l->names[j] = name;
            l->ts[j] = k ? o->exp_avg_sq[i] : o->exp_avg[i];
        }
    }
    return 0;
}

/* Removes a checkpoint folder: its marker first, made durable, so a crash halfway leaves an incomplete
 * folder (swept by the next save) and never a "complete" one with files missing. */
static void remove_dir(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/COMPLETE", dir);
    if (unlink(p) == 0)
        fsync_path(dir, O_RDONLY | O_DIRECTORY);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static int is_complete(const char *ckdir, const char *name)
{
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s/COMPLETE", ckdir, name);
    return stat(p, &sb) == 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Complete checkpoint folder names of ckdir, sorted oldest first; incomplete ones are removed when
 * sweep is set (an interrupted save). */
static int list_checkpoints(const char *ckdir, char ***names, int sweep)
{
    *names = NULL;
    DIR *d = opendir(ckdir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "step-", 5))
            continue;
        if (!strstr(e->d_name, ".tmp") && is_complete(ckdir, e->d_name)) {
            if (n == cap) {
                char **grown = realloc(*names, (size_t)(cap = cap ? 2 * cap : 16) * sizeof **names);
                if (!grown)
                    goto out_of_memory;
                *names = grown;
            }
            if (!((*names)[n] = strdup(e->d_name)))
                goto out_of_memory;
            n++;
        } else if (sweep) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", ckdir, e->d_name);
            remove_dir(p);
        }
    }
    closedir(d);
    if (n)
        qsort(*names, (size_t)n, sizeof **names, cmp_names);
    return n;
out_of_memory:
    closedir(d);
    free_names(*names, n);
    *names = NULL;
    errno = ENOMEM;
    return -1;
}

int tr_ckpt_write(const char *run_dir, tr_ckpt_state *st, const mp_params *ps, const tr_adamw *o,
                  const char *config_json, char *err, size_t errlen)
{
    char ckdir[4096], final[4200], tmp[4210], p[4300];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
    if (mkdir(ckdir, 0755) != 0 && errno != EEXIST)
        return md_fail(err, errlen, "%s: cannot create: %s", ckdir, strerror(errno));
    char **old;
    int n_old = list_checkpoints(ckdir, &old, 1);
    free_names(old, n_old > 0 ? n_old : 0);

    snprintf(final, sizeof final, "%s/step-%08lld", ckdir, (long long)st->step);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    remove_dir(tmp);
    if (mkdir(tmp, 0755) != 0)
        return md_fail(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));

    tensor_list model = {0}, moments = {0};
    int rc = list_model(&model, ps) || list_moments(&moments, ps, o) ? md_fail(err, errlen, "checkpoint: out of memory") : 0;
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    if (rc == 0)
        rc = write_tensors(p, model.ts, model.names, model.n, err, errlen);
    snprintf(p, sizeof p, "%s/optim.safetensors", tmp);
    if (rc == 0)
        rc = write_tensors(p, moments.ts, moments.names, moments.n, err, errlen);
    list_free(&model);
    list_free(&moments);

    for (int i = 0; rc == 0 && i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp, tr_ckpt_tensor_files[i]);
        rc = crc_file(p, &st->files[i].crc, &st->files[i].bytes, err, errlen);
    }
    if (rc == 0) {
        char *text = tr_ckpt_state_to_json(st, config_json);
        snprintf(p, sizeof p, "%s/state.json", tmp);
        rc = text ? tr_write_file_atomic(p, text, strlen(text), err, errlen)
                  : md_fail(err, errlen, "checkpoint: out of memory");
        free(text);
    }
    if (rc == 0) {
        remove_dir(final);
        if (rename(tmp, final) != 0 || fsync_path(ckdir, O_RDONLY | O_DIRECTORY) != 0)
            rc = md_fail(err, errlen, "%s: cannot publish: %s", final, strerror(errno));
    }
    if (rc != 0)
        remove_dir(tmp);
    return rc;
}

int tr_ckpt_mark_complete(const char *run_dir, int64_t step, int keep_last, int64_t keep_step, char *err,
                          size_t errlen)
{
    char ckdir[4096], p[4300], keep[64];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
    snprintf(p, sizeof p, "%s/step-%08lld/COMPLETE", ckdir, (long long)step);
    char marker[64];
    int ml = snprintf(marker, sizeof marker, "step %lld\n", (long long)step);
    if (tr_write_file_atomic(p, marker, (size_t)ml, err, errlen) != 0)
        return -1;
    snprintf(keep, sizeof keep, "step-%08lld", (long long)keep_step);
    char **old;
    int n = list_checkpoints(ckdir, &old, 0);
    for (int i = 0; i + keep_last < n; i++) {
        if (keep_step > 0 && !strcmp(old[i], keep))
            continue;
        snprintf(p, sizeof p, "%s/%s", ckdir, old[i]);
        remove_dir(p);
    }
    free_names(old, n > 0 ? n : 0);
    return 0;
}

int tr_ckpt_find_step(const char *run_dir, int64_t step, char *out, size_t outlen)
{
    char ckdir[4096], name[64];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
    snprintf(name, sizeof name, "step-%08lld", (long long)step);
    if (!is_complete(ckdir, name))
        return 0;
    snprintf(out, outlen, "%s/%s", ckdir, name);
    return 1;
}

int tr_ckpt_find_latest(const char *run_dir, char *out, size_t outlen, char *err, size_t errlen)
{
    char ckdir[4096];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
    char **names;
    int n = list_checkpoints(ckdir, &names, 0);
    if (n < 0)
        return md_fail(err, errlen, "%s: cannot list: %s", ckdir, strerror(errno));
    if (n > 0)
        snprintf(out, outlen, "%s/%s", ckdir, names[n - 1]);
    free_names(names, n);
    return n > 0;
}

static int load_tensor(const st_file *f, const char *path, const char *name, tc_tensor *dst, char *err,
                       size_t errlen)
{
    const st_tensor *t = st_find(f, name);
    if (!t)
        return md_fail(err, errlen, "%s: tensor '%s' is missing", path, name);
    int ok = t->dtype == st_of(tc_dtype_of(dst)) && t->ndim == tc_ndim(dst);
    for (int d = 0; ok && d < t->ndim; d++)
        ok = t->shape[d] == tc_size(dst, d);
    if (!ok)
        return md_fail(err, errlen, "%s: tensor '%s' has another shape or dtype than the model's", path, name);
    tc_scope *s = tc_scope_begin();
    tc_tensor *src = tc_from_blob((void *)(uintptr_t)t->data, t->shape, t->ndim, tc_dtype_of(dst));
    int grad_was = tc_grad_enabled_set(0);
    int rc = src ? tc_copy_(dst, src) : TC_EINVAL;
    tc_grad_enabled_set(grad_was);
    int end = tc_scope_end(s);
    if (rc != TC_OK || end != TC_OK)
        return md_fail(err, errlen, "%s: cannot load tensor '%s': %s", path, name, tc_last_error());
    return 0;
}

static int load_file(const char *path, int n, const char *const *names, tc_tensor *const *dst, char *err,
                     size_t errlen)
{
    st_file *f;
    if (st_open(path, &f, err, errlen) != 0)
        return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = load_tensor(f, path, names[i], dst[i], err, errlen);
    /* Every model tensor was found, so a count above the model's means an unexpected one: name it. */
    for (size_t k = 0; rc == 0 && st_count(f) > (size_t)n && k < st_count(f); k++) {
        int known = 0;
        for (int i = 0; !known && i < n; i++)
            known = !strcmp(st_at(f, k)->name, names[i]);
        if (!known)
            rc = md_fail(err, errlen, "%s: tensor '%s' is not part of the model", path, st_at(f, k)->name);
    }
    st_close(f);
    return rc;
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t cap = 0, got;
    char buf[65536];
    *len = 0;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        if (*len + got + 1 > cap) {
            char *grown = realloc(text, cap = (*len + got + 1) * 2);
            if (!grown) {
                free(text);
                fclose(f);
                return NULL;
            }
            text = grown;
        }
        memcpy(text + *len, buf, got);
        *len += got;
    }
    fclose(f);
    return text ? text : calloc(1, 1);
}

static int parse_state(const char *path, tr_ckpt_state *st, char *err, size_t errlen)
{
    size_t len;
    char *text = read_text(path, &len);
    if (!text)
        return md_fail(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    int rc = tr_ckpt_state_parse(text, len, path, st, err, errlen);
    free(text);
    return rc;
}

/* A damaged tensor file is refused before any of it is loaded. */
static int verify_files(const char *dir, const tr_ckpt_state *st, char *err, size_t errlen)
{
    char p[4200];
    for (int i = 0; i < 2; i++) {
        uint32_t crc;
        int64_t bytes;
        snprintf(p, sizeof p, "%s/%s", dir, tr_ckpt_tensor_files[i]);
        if (crc_file(p, &crc, &bytes, err, errlen))
            return -1;
        if (bytes != st->files[i].bytes || crc != st->files[i].crc)
            return md_fail(err, errlen, "%s: damaged (%lld bytes, crc32 %08x; state.json says %lld bytes, crc32 %08x); "
                        "remove its checkpoint folder to resume from an older one", p, (long long)bytes,
                        (unsigned)crc, (long long)st->files[i].bytes, (unsigned)st->files[i].crc);
    }
    return 0;
}

int tr_ckpt_load(const char *dir, const char *model_hash, tr_ckpt_state *st, mp_params *ps, tr_adamw *o, char *err,
                 size_t errlen)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/state.json", dir);
    if (parse_state(p, st, err, errlen) != 0)
        return -1;
    int rc = 0;
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    long long named = -1;
    if (sscanf(base, "step-%lld", &named) == 1 && named != st->step)
        rc = md_fail(err, errlen, "%s: step %lld disagrees with its folder %s", p, (long long)st->step, base);
    if (rc == 0 && model_hash && strcmp(model_hash, st->model_hash))
        rc = md_fail(err, errlen, "%s was trained with another model configuration (model hash %s, this config's %s)", dir,
                  st->model_hash, model_hash);
    if (rc == 0)
        rc = verify_files(dir, st, err, errlen);
    tensor_list model = {0}, moments = {0};
    if (rc == 0 && (list_model(&model, ps) || (o && list_moments(&moments, ps, o))))
        rc = md_fail(err, errlen, "checkpoint: out of memory");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (rc == 0)
        rc = load_file(p, model.n, model.names, model.ts, err, errlen);
    snprintf(p, sizeof p, "%s/optim.safetensors", dir);
    if (rc == 0 && o)
        rc = load_file(p, moments.n, moments.names, moments.ts, err, errlen);
    if (rc == 0 && o)
        o->step = st->step;
    list_free(&model);
    list_free(&moments);
    if (rc != 0)
        tr_ckpt_state_free(st);
    return rc;
}
