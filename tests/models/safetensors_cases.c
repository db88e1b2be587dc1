/* models/safetensors.h: round trips, files read and written by an independent numpy
 * implementation of the public format (ref_models.py), and malformed files. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "models/safetensors.h"
#include "tests/models/models_test.h"

/* The description format of ref_models.py: "M KEY VALUE" lines, then "T NAME DTYPE NDIM DIM... HEX". */
static char *describe(const char *const *meta, size_t n_meta, const st_tensor *const *ts, size_t n) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (size_t i = 0; i < n_meta; i++) fprintf(f, "M %s %s\n", meta[2 * i], meta[2 * i + 1]);
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = ts[i];
        fprintf(f, "T %s %s %d", t->name, st_dtype_name(t->dtype), t->ndim);
        for (int d = 0; d < t->ndim; d++) fprintf(f, " %lld", (long long)t->shape[d]);
        fputc(' ', f);
        for (size_t b = 0; b < t->nbytes; b++) fprintf(f, "%02x", ((const unsigned char *)t->data)[b]);
        if (!t->nbytes) fputc('-', f);
        fputc('\n', f);
    }
    fclose(f);
    return text;
}

static char *describe_file(const st_file *f, const char *const *meta, size_t n_meta) {
    size_t n = st_count(f);
    const st_tensor **ts = calloc(n + 1, sizeof *ts);
    for (size_t i = 0; i < n; i++) ts[i] = st_at(f, i);
    const char **kv = calloc(2 * n_meta + 1, sizeof *kv);
    for (size_t i = 0; i < n_meta; i++) {
        kv[2 * i] = meta[i];
        kv[2 * i + 1] = st_metadata(f, meta[i]);
        assert_non_null(kv[2 * i + 1]);
    }
    char *text = describe(kv, n_meta, ts, n);
    free(kv);
    free(ts);
    return text;
}

/* A tensor of every dtype, a 0-element tensor and a 0-dim one. */
static const float f32[6] = {1.5f, -2.25f, 0, 3e-38f, -1e30f, 7};
static const double f64[3] = {3.141592653589793, -2.718281828459045, 1e-300};
static const uint16_t bf16[6] = {0x3f80, 0xc000, 0x0000, 0x7f80, 0xff80, 0x0001};
static const uint16_t f16[3] = {0x3e00, 0xb400, 0x7bff};
static const int64_t i64[4] = {-1099511627776, 4611686018427387904, 0, -1};
static const int32_t i32[3] = {7, -8, 2147483647};
static const int16_t i16[2] = {-32768, 32767};
static const uint8_t u8[5] = {0, 1, 128, 254, 255};
static const uint8_t bools[3] = {1, 0, 1};
static const float scalar = 2.75f;

static const st_tensor sample[] = {
    {"layer.0.weight", ST_F32, 2, {2, 3}, f32, sizeof f32},
    {"f64", ST_F64, 1, {3}, f64, sizeof f64},
    {"bf16", ST_BF16, 3, {3, 1, 2}, bf16, sizeof bf16},
    {"f16", ST_F16, 1, {3}, f16, sizeof f16},
    {"i64", ST_I64, 2, {2, 2}, i64, sizeof i64},
    {"i32", ST_I32, 1, {3}, i32, sizeof i32},
    {"i16", ST_I16, 1, {2}, i16, sizeof i16},
    {"u8", ST_U8, 1, {5}, u8, sizeof u8},
    {"bool", ST_BOOL, 1, {3}, bools, sizeof bools},
    {"empty", ST_F32, 2, {0, 5}, f32, 0},
    {"scalar", ST_F32, 0, {0}, &scalar, sizeof scalar},
};
#define N_SAMPLE (sizeof sample / sizeof sample[0])
static const char *const sample_meta[] = {"format", "pt", "note", "written-by-empd"};

static void write_sample(const char *path) {
    char err[512] = "";
    int rc = st_write(path, sample, N_SAMPLE, sample_meta, 2, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
}

static void test_st_round_trip(void **state) {
    (void)state;
    char dir[64], path[128], err[512] = "";
    assert_int_equal(tf_make_temp_dir(dir, "test_models"), 0);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    write_sample(path);
    /* Overwriting goes through the temporary name as well. */
    write_sample(path);
    assert_int_equal(tf_count_entries(dir, ""), 1);
    assert_int_equal(tf_count_entries(dir, ".tmp"), 0);

    st_file *f;
    assert_int_equal(st_open(path, &f, err, sizeof err), 0);
    assert_int_equal(st_count(f), N_SAMPLE);
    for (size_t i = 0; i < N_SAMPLE; i++) {
        const st_tensor *t = st_at(f, i), *w = &sample[i];
        assert_string_equal(t->name, w->name);
        assert_ptr_equal(st_find(f, w->name), t);
        assert_int_equal(t->dtype, w->dtype);
        assert_int_equal(t->ndim, w->ndim);
        for (int d = 0; d < w->ndim; d++) assert_int_equal(t->shape[d], w->shape[d]);
        assert_int_equal(t->nbytes, w->nbytes);
        if (w->nbytes) assert_memory_equal(t->data, w->data, w->nbytes);
        /* Data starts on an 8-byte boundary of the file (the header is padded), so the first
         * tensor can be used in place. */
        if (i == 0) assert_int_equal((uintptr_t)t->data % 8, 0);
    }
    assert_null(st_at(f, N_SAMPLE));
    assert_null(st_find(f, "nope"));
    assert_string_equal(st_metadata(f, "format"), "pt");
    assert_string_equal(st_metadata(f, "note"), "written-by-empd");
    assert_null(st_metadata(f, "absent"));
    st_close(f);

    /* No metadata and no tensors at all is a valid file too. */
    assert_int_equal(st_write(path, NULL, 0, NULL, 0, err, sizeof err), 0);
    assert_int_equal(st_open(path, &f, err, sizeof err), 0);
    assert_int_equal(st_count(f), 0);
    assert_null(st_metadata(f, "format"));
    st_close(f);
    tf_remove_tree(dir);
}

static void test_st_python_reads_ours(void **state) {
    (void)state;
    char dir[64], path[128], args[256];
    assert_int_equal(tf_make_temp_dir(dir, "test_models"), 0);
    snprintf(path, sizeof path, "%s/ours.safetensors", dir);
    write_sample(path);
    snprintf(args, sizeof args, "st-read %s", path);
    char *got = tm_run_reference(args);
    assert_non_null(got);
    const st_tensor *ts[N_SAMPLE];
    for (size_t i = 0; i < N_SAMPLE; i++) ts[i] = &sample[i];
    /* Metadata lines sorted by key, as the script prints them. */
    const char *meta[] = {"format", "pt", "note", "written-by-empd"};
    char *want = describe(meta, 2, ts, N_SAMPLE);
    assert_string_equal(got, want);
    free(got);
    free(want);
    tf_remove_tree(dir);
}

static int cmp_lines(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* text's lines sorted, joined again by newlines. */
static char *sorted_lines(const char *text) {
    char *copy = strdup(text), **lines = calloc(strlen(text) + 1, sizeof *lines);
    size_t n = 0;
    for (char *s = strtok(copy, "\n"); s; s = strtok(NULL, "\n")) lines[n++] = s;
    qsort(lines, n, sizeof *lines, cmp_lines);
    char *out = calloc(strlen(text) + 2, 1);
    for (size_t i = 0; i < n; i++) {
        strcat(out, lines[i]);
        strcat(out, "\n");
    }
    free(lines);
    free(copy);
    return out;
}

static char *python_file(char *dir, char *path, size_t pathlen) {
    char args[256];
    assert_int_equal(tf_make_temp_dir(dir, "test_models"), 0);
    snprintf(path, pathlen, "%s/py.safetensors", dir);
    snprintf(args, sizeof args, "st-write %s", path);
    char *want = tm_run_reference(args);
    assert_non_null(want);
    return want;
}

static void test_st_reads_python(void **state) {
    (void)state;
    char dir[64], path[128], err[512] = "";
    char *want = python_file(dir, path, sizeof path);
    st_file *f;
    int rc = st_open(path, &f, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    const char *meta[] = {"format", "producer"};
    char *got = describe_file(f, meta, 2);
    char *a = sorted_lines(got), *b = sorted_lines(want);
    assert_string_equal(a, b);
    assert_non_null(st_find(f, "w.scalar"));
    assert_int_equal(st_find(f, "w.scalar")->ndim, 0);
    assert_true(*(const float *)st_find(f, "w.scalar")->data == 2.75f);
    assert_true(((const double *)st_find(f, "w.f64")->data)[1] == -2.718281828459045);
    free(a);
    free(b);
    free(got);
    free(want);
    st_close(f);
    tf_remove_tree(dir);
}

/* safetensors.h: "Tensors in file order (the order of their data)". The python file's header lists
 * them in the reverse of their data order. */
static void test_st_file_order(void **state) {
    (void)state;
    char dir[64], path[128], err[512] = "";
    char *want = python_file(dir, path, sizeof path);
    free(want);
    st_file *f;
    assert_int_equal(st_open(path, &f, err, sizeof err), 0);
    for (size_t i = 1; i < st_count(f); i++) {
        const st_tensor *a = st_at(f, i - 1), *b = st_at(f, i);
        if ((const char *)a->data > (const char *)b->data) {
            fprintf(stderr, "st_at(%zu) = '%s' lies after st_at(%zu) = '%s' in the file\n", i - 1, a->name, i,
                    b->name);
            st_close(f);
            tf_remove_tree(dir);
            fail();
        }
    }
    st_close(f);
    tf_remove_tree(dir);
}

/* A file of an 8-byte length prefix claiming hlen, header text, then data_len zero bytes. */
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t data_len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc(0, f);
    fclose(f);
}

static void test_st_malformed(void **state) {
    (void)state;
    static const struct {
        const char *header;
        int64_t hlen; /* -1: strlen(header) */
        size_t data_len;
        const char *tensor, *what; /* tensor: NULL when the error is about the file */
    } cases[] = {
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 1000, 8, NULL, "exceeds"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 30, 8, NULL, "JSON"},
        {"this is not json", -1, 8, NULL, "JSON"},
        {"[1, 2]", -1, 0, NULL, "JSON"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 8, "t", "outside"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", -1, 8, "t", "outside"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", -1, 8, "t", "data_offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4.5]}}", -1, 8, "t", "data_offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", -1, 8, "t", "shape"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}  x", -1, 8, NULL, "JSON"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8, "t", "twice"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", -1, 8, "t", "outside"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", -1, 12, "t", "bytes"},
        {"{\"ok\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"bad.weight\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[1,9]}}",
         -1, 9, "bad.weight", "bytes"},
        {"{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", -1, 2, "t", "dtype"},
        {"{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8, "t", "dtype"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", -1, 8, "t", "shape"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", -1, 8, "t", "shape"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", -1, 8, "t", "data_offsets"},
    };
    char dir[64], path[128], err[512];
    assert_int_equal(tf_make_temp_dir(dir, "test_models"), 0);
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);

    /* Shorter than its own length prefix. */
    FILE *fp = fopen(path, "wb");
    fwrite("\x10\0\0\0\0", 1, 5, fp);
    fclose(fp);
    st_file *f = (st_file *)1;
    assert_int_equal(st_open(path, &f, err, sizeof err), -1);
    printf("truncated: %s\n", err);
    assert_null(f);
    assert_non_null(strstr(err, path));
    assert_null(strchr(err, '\n'));

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t hlen = cases[i].hlen < 0 ? strlen(cases[i].header) : (uint64_t)cases[i].hlen;
        write_raw(path, hlen, cases[i].header, cases[i].data_len);
        err[0] = 0;
        f = (st_file *)1;
        int rc = st_open(path, &f, err, sizeof err);
        printf("case %zu: %s\n", i, err);
        assert_int_equal(rc, -1);
        assert_null(f);
        assert_null(strchr(err, '\n'));
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, cases[i].what));
        if (cases[i].tensor) {
            char quoted[64];
            snprintf(quoted, sizeof quoted, "'%s'", cases[i].tensor);
            assert_non_null(strstr(err, quoted));
        }
    }
    assert_int_equal(st_open("/nonexistent/x.safetensors", &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x.safetensors"));
    tf_remove_tree(dir);
}

/* A header entry that is not an object: one line naming the file and the entry. */
static void test_st_entry_not_object(void **state) {
    (void)state;
    char dir[64], path[128], err[512] = "";
    assert_int_equal(tf_make_temp_dir(dir, "test_models"), 0);
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    write_raw(path, 22, "{\"some.tensor.name\":5}", 0);
    st_file *f;
    assert_int_equal(st_open(path, &f, err, sizeof err), -1);
    printf("%s\n", err);
    tf_remove_tree(dir);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "'some.tensor.name'"));
}

static void test_st_write_rejects(void **state) {
    (void)state;
    char dir[64], path[128], err[512] = "";
    assert_int_equal(tf_make_temp_dir(dir, "test_models"), 0);
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    st_tensor bad = {"short.weight", ST_F32, 2, {2, 3}, f32, 20};
    assert_int_equal(st_write(path, &bad, 1, NULL, 0, err, sizeof err), -1);
    printf("%s\n", err);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "'short.weight'"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(tf_count_entries(dir, ""), 0);

    snprintf(path, sizeof path, "%s/missing/w.safetensors", dir);
    assert_int_equal(st_write(path, sample, 1, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(tf_count_entries(dir, ""), 0);
    tf_remove_tree(dir);
}

int tm_safetensors_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_st_round_trip),
        cmocka_unit_test(test_st_python_reads_ours),
        cmocka_unit_test(test_st_reads_python),
        cmocka_unit_test(test_st_file_order),
        cmocka_unit_test(test_st_malformed),
        cmocka_unit_test(test_st_entry_not_object),
        cmocka_unit_test(test_st_write_rejects),
    };
    return cmocka_run_group_tests_name("safetensors", tests, NULL, NULL);
}
