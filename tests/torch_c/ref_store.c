/* The python3-torch reference for test_torch_c: ref_torch_c.py writes ref.idx + ref.bin into a
 * temporary directory, this file loads them and compares tensors with them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/torch_c/torch_c_test.h"

typedef struct {
    char key[64];
    tc_dtype dtype;
    size_t offset;
    int ndim;
    int64_t shape[TC_MAX_DIMS];
} ref_entry;

static ref_entry *entries;
static size_t n_entries;
static unsigned char *blob;
static size_t blob_len;

static int parse_dtype(const char *s, tc_dtype *out) {
    static const struct {
        const char *name;
        tc_dtype dtype;
    } names[] = {{"f32", TC_F32}, {"bf16", TC_BF16}, {"f16", TC_F16}, {"i64", TC_I64},
                 {"i32", TC_I32}, {"i16", TC_I16},   {"u8", TC_U8},   {"bool", TC_BOOL}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            *out = names[i].dtype;
            return 0;
        }
    return -1;
}

static int load_index(FILE *f) {
    char line[512];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        if (n_entries == cap) {
            cap = cap ? 2 * cap : 256;
            ref_entry *grown = realloc(entries, cap * sizeof *entries);
            if (!grown) return -1;
            entries = grown;
        }
        ref_entry *e = &entries[n_entries];
        char dtype[16];
        int used = 0;
        if (sscanf(line, "%63s %15s %zu %d%n", e->key, dtype, &e->offset, &e->ndim, &used) != 4 ||
            parse_dtype(dtype, &e->dtype) || e->ndim < 0 || e->ndim > TC_MAX_DIMS) {
            fprintf(stderr, "ref.idx: bad line: %s", line);
            return -1;
        }
        char *p = line + used;
        for (int d = 0; d < e->ndim; d++) e->shape[d] = strtoll(p, &p, 10);
        n_entries++;
    }
    return 0;
}

int ref_open(void) {
    char dir[] = "/tmp/test_torch_c.XXXXXX", cmd[1024], path[256];
    if (!mkdtemp(dir)) return -1;
    snprintf(cmd, sizeof cmd, "%s %s %s", EMPD_PYTHON, TC_REF_SCRIPT, dir);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/ref.idx", dir);
    FILE *idx = rc == 0 ? fopen(path, "r") : NULL;
    if (idx) {
        rc = load_index(idx);
        fclose(idx);
    } else {
        fprintf(stderr, "reference script failed: %s\n", cmd);
        rc = -1;
    }
    unlink(path);
    snprintf(path, sizeof path, "%s/ref.bin", dir);
    FILE *bin = rc == 0 ? fopen(path, "rb") : NULL;
    if (bin) {
        fseek(bin, 0, SEEK_END);
        blob_len = (size_t)ftell(bin);
        fseek(bin, 0, SEEK_SET);
        blob = malloc(blob_len ? blob_len : 1);
        if (!blob || fread(blob, 1, blob_len, bin) != blob_len) rc = -1;
        fclose(bin);
    } else {
        rc = -1;
    }
    unlink(path);
    rmdir(dir);
    return rc;
}

void ref_close(void) {
    free(entries);
    free(blob);
    entries = NULL;
    blob = NULL;
    n_entries = blob_len = 0;
}

static const ref_entry *find(const char *key) {
    for (size_t i = 0; i < n_entries; i++)
        if (!strcmp(entries[i].key, key)) return &entries[i];
    return NULL;
}

size_t ref_count_suffix(const char *suffix) {
    size_t n = 0, ls = strlen(suffix);
    for (size_t i = 0; i < n_entries; i++) {
        size_t lk = strlen(entries[i].key);
        n += lk >= ls && !strcmp(entries[i].key + lk - ls, suffix);
    }
    return n;
}

int ref_has(const char *key) { return find(key) != NULL; }

tc_dtype ref_dtype(const char *key) {
    const ref_entry *e = find(key);
    return e ? e->dtype : TC_F32;
}

tc_tensor *ref_tensor(const char *key) {
    const ref_entry *e = find(key);
    if (!e) return NULL;
    int64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
    if (e->offset + (size_t)numel * tc_dtype_size(e->dtype) > blob_len) return NULL;
    return tc_from_data(blob + e->offset, e->shape, e->ndim, e->dtype);
}

static float *host_f32(tc_tensor *t, int64_t *n) {
    tc_tensor *f = tc_to_dtype(t, TC_F32);
    *n = tc_numel(f);
    float *buf = malloc((size_t)(*n ? *n : 1) * sizeof(float));
    if (buf && tc_copy_to_host(f, buf, (size_t)*n * sizeof(float)) != TC_OK) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

double rel_err(tc_tensor *got, tc_tensor *want) {
    if (!got || !want || tc_ndim(got) != tc_ndim(want)) return INFINITY;
    for (int d = 0; d < tc_ndim(got); d++)
        if (tc_size(got, d) != tc_size(want, d)) return INFINITY;
    int64_t n = 0, m = 0;
    float *a = host_f32(got, &n), *b = host_f32(want, &m);
    double err = INFINITY;
    if (a && b && n == m) {
        double diff = 0, scale = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            if (!(d <= diff)) diff = d;
            if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
        }
        err = diff == 0 ? 0 : diff / (scale > 1e-30 ? scale : 1e-30);
    }
    free(a);
    free(b);
    return err;
}
