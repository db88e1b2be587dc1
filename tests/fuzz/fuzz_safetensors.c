/* Fuzzes st_open (models/safetensors.c) on arbitrary files. Beyond "no crash, no leak, no UB": a file that
 * opens must describe its tensors consistently (sizes match shape and dtype, file order, names unique and
 * found, integral shapes and offsets), and every tensor's bytes must be the file's bytes at the offsets its
 * header names, inside the data section, all tensors measured from one common base (the mapping). The header
 * is re-read here with cJSON to know those offsets independently of the reader. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/safetensors.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/memfile.h"

static uint64_t header_len(const uint8_t *in)
{
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--)
        h = h << 8 | in[i];
    return h;
}

/* Whether the entry e of the header describes t's bytes, given the data section's start in the file; on a
 * match *base is where that section starts in memory according to t. */
static int entry_matches(const cJSON *e, const st_tensor *t, const uint8_t *in, size_t data_off, size_t data_size,
                         uintptr_t *base)
{
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (strcmp(e->string, t->name) != 0 || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !cJSON_IsNumber(offs->child))
        return 0;
    double b = offs->child->valuedouble;
    if (!(b >= 0 && b <= (double)data_size))
        return 0;
    size_t begin = (size_t)b;
    if (begin + t->nbytes > data_size || memcmp(t->data, in + data_off + begin, t->nbytes) != 0)
        return 0;
    *base = (uintptr_t)t->data - begin;
    return 1;
}

/* Whether every tensor is the bytes of a header entry of its name, measured from base. */
static int all_match(const st_file *f, const cJSON *h, const uint8_t *in, size_t data_off, size_t data_size,
                     uintptr_t base)
{
    for (size_t i = 0; i < st_count(f); i++) {
        int matched = 0;
        uintptr_t b;
        for (const cJSON *e = h->child; e && !matched; e = e->next)
            matched = entry_matches(e, st_at(f, i), in, data_off, data_size, &b) && b == base;
        if (!matched)
            return 0;
    }
    return 1;
}

/* Tensors named twice can match more than one entry: some candidate base from the first tensor must fit all. */
static int tensors_in_file(const st_file *f, const cJSON *h, const uint8_t *in, size_t data_off, size_t data_size)
{
    if (st_count(f) == 0)
        return 1;
    uintptr_t b;
    for (const cJSON *e = h->child; e; e = e->next)
        if (entry_matches(e, st_at(f, 0), in, data_off, data_size, &b) && all_match(f, h, in, data_off, data_size, b))
            return 1;
    return 0;
}

/* The header's sizes and offsets are integers: a fraction silently cut to one is a misread file. */
static int header_integral(const cJSON *h)
{
    for (const cJSON *e = h->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__"))
            continue;
        const cJSON *lists[2] = {cJSON_GetObjectItemCaseSensitive(e, "shape"),
                                 cJSON_GetObjectItemCaseSensitive(e, "data_offsets")};
        for (int k = 0; k < 2; k++)
            for (const cJSON *v = lists[k] ? lists[k]->child : NULL; v; v = v->next)
                if (cJSON_IsNumber(v) && v->valuedouble != (double)(int64_t)v->valuedouble)
                    return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    st_file *f = NULL;
    char err[512];
    err[0] = 0;
    int rc = st_open(memfile_put(in, n), &f, err, sizeof err);
    if (rc != 0) {
        CHECK(rc == -1 && f == NULL && err[0] != 0);
        return 0;
    }
    CHECK(f != NULL && n >= 8);
    uint64_t hlen = header_len(in);
    CHECK(hlen <= n - 8);
    size_t data_off = 8 + (size_t)hlen, data_size = n - data_off;
    CHECK(check_whole_json(in + 8, (size_t)hlen));
    cJSON *h = cJSON_ParseWithLength((const char *)in + 8, (size_t)hlen);
    CHECK(cJSON_IsObject(h));

    size_t count = st_count(f);
    CHECK((int)count <= cJSON_GetArraySize(h));
    CHECK(st_at(f, count) == NULL);
    for (size_t i = 0; i < count; i++) {
        const st_tensor *t = st_at(f, i);
        CHECK(t && t->name && strcmp(t->name, "__metadata__") != 0);
        CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] >= 0);
            CHECK(!__builtin_mul_overflow(numel, (size_t)t->shape[d], &numel));
        }
        CHECK(st_dtype_size(t->dtype) != 0 && t->nbytes == numel * st_dtype_size(t->dtype));
        if (i > 0)
            CHECK((uintptr_t)st_at(f, i - 1)->data <= (uintptr_t)t->data);
        CHECK(st_find(f, t->name) == t);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(st_at(f, j)->name, t->name) != 0);
    }
    CHECK(tensors_in_file(f, h, in, data_off, data_size));
    CHECK(header_integral(h));
    st_metadata(f, "format");
    cJSON_Delete(h);
    st_close(f);
    return 0;
}
