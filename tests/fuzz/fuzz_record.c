/* Fuzzes ds_record_decode (dataset/record.c) on arbitrary LMDB values. The first input byte is a mode:
 * bit 0 set means "repair the frame" (payload length and CRC-32 recomputed over the rest), so mutations
 * reach the section table and the field checks instead of dying at the checksum. The rest is copied into a
 * buffer of exactly its size, so any read past the value is caught.
 * A record that decodes must: point only into the value, hold fields within their documented ranges, and
 * survive encode -> decode unchanged (the encoder accepts everything the decoder accepts). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/crc32.h"
#include "dataset/record.h"
#include "tests/fuzz/check.h"

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* [p, p + n) lies inside [lo, lo + len). */
static int inside(const void *p, size_t n, const unsigned char *lo, size_t len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)lo;
    return a >= b && a - b <= len && n <= len - (a - b);
}

static void check_pointers(const ds_record *r, const unsigned char *v, size_t len)
{
    CHECK(inside(r->ctx, 2 * (size_t)r->n_ctx, v, len));
    for (int i = 0; i < r->n_utt; i++) {
        const ds_utt *u = &r->utt[i];
        CHECK(!u->n_tokens || inside(u->tokens, 2 * (size_t)u->n_tokens, v, len));
        CHECK(!u->n_samples || inside(u->wave, 2 * (size_t)u->n_samples, v, len));
        for (int k = 0; k < DS_N_FRAMES; k++)
            CHECK(!u->frame_len[k] || inside(u->frame[k], u->frame_len[k], v, len));
    }
}

static void check_ranges(const ds_record *r)
{
    size_t id = strnlen(r->conversation_id, sizeof r->conversation_id);
    CHECK(id >= 1 && id <= DS_CONV_ID_MAX);
    CHECK(r->label7 >= -1 && r->label7 <= 6 && r->label32 >= -1 && r->label32 <= 31);
    for (int i = 0; i < DS_META_N; i++)
        CHECK(r->meta[i] >= 0);
    CHECK(r->n_utt >= 0 && r->n_utt <= DS_MAX_UTT);
    CHECK(r->has_audio <= 1 && r->has_video <= 1);
    for (int i = 0; i < r->n_utt; i++) {
        const ds_utt *u = &r->utt[i];
        CHECK(u->role <= DS_ROLE_LISTENER_RESPONSE && u->avatar >= -1 && !(u->presence & ~DS_PRESENT_ALL_BITS));
        CHECK(!(u->presence & DS_PRESENT_AUDIO) == !u->n_samples);
        CHECK(r->has_audio || !(u->presence & (DS_PRESENT_AUDIO | DS_PRESENT_AUDIO_BAD)));
        CHECK(r->has_video || !(u->presence & (DS_PRESENT_VIDEO | DS_PRESENT_VIDEO_BAD)));
    }
}

static int same_u16(const uint16_t *a, const uint16_t *b, size_t n) { return !n || memcmp(a, b, 2 * n) == 0; }

static void check_equal(const ds_record *a, const ds_record *b)
{
    CHECK(b->version == DS_RECORD_VERSION && b->flags == 0);
    CHECK(a->sample_index == b->sample_index && strcmp(a->conversation_id, b->conversation_id) == 0);
    CHECK(a->label7 == b->label7 && a->label32 == b->label32 && memcmp(a->meta, b->meta, sizeof a->meta) == 0);
    CHECK(a->n_ctx == b->n_ctx && same_u16(a->ctx, b->ctx, a->n_ctx));
    CHECK(a->n_utt == b->n_utt && a->has_audio == b->has_audio && a->has_video == b->has_video);
    if (a->has_video)
        CHECK(a->frame_format == b->frame_format && a->frame_w == b->frame_w && a->frame_h == b->frame_h);
    for (int i = 0; i < a->n_utt; i++) {
        const ds_utt *x = &a->utt[i], *y = &b->utt[i];
        CHECK(x->role == y->role && x->presence == y->presence && x->index == y->index && x->avatar == y->avatar);
        CHECK(x->n_tokens == y->n_tokens && same_u16(x->tokens, y->tokens, x->n_tokens));
        CHECK(x->n_samples == y->n_samples && (!x->n_samples || !memcmp(x->wave, y->wave, 2 * (size_t)x->n_samples)));
        for (int k = 0; k < DS_N_FRAMES; k++)
            CHECK(x->frame_len[k] == y->frame_len[k] &&
                  (!x->frame_len[k] || !memcmp(x->frame[k], y->frame[k], x->frame_len[k])));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    if (n == 0)
        return 0;
    const int repair = in[0] & 1;
    size_t len = n - 1;
    unsigned char *v = malloc(len ? len : 1);
    CHECK(v != NULL);
    if (len)
        memcpy(v, in + 1, len);
    if (repair && len >= DS_RECORD_OVERHEAD) {
        put32(v + 8, (uint32_t)(len - DS_RECORD_OVERHEAD));
        put32(v + len - 4, ds_crc32(0, v, len - 4));
    }
    ds_record r;
    char err[256];
    err[0] = 0;
    int rc = ds_record_decode(v, len, &r, err, sizeof err);
    if (rc != DS_SHARD_OK) {
        CHECK((rc == DS_SHARD_ECORRUPT || rc == DS_SHARD_EINVAL) && err[0] != 0);
        free(v);
        return 0;
    }
    check_pointers(&r, v, len);
    check_ranges(&r);

    ds_buf out = {0};
    rc = ds_record_encode(&r, &out, err, sizeof err);
    if (rc != DS_SHARD_OK) {
        fprintf(stderr, "a decoded record does not encode: %s\n", err);
        abort();
    }
    ds_record back;
    rc = ds_record_decode(out.data, out.len, &back, err, sizeof err);
    if (rc != DS_SHARD_OK) {
        fprintf(stderr, "an encoded record does not decode: %s\n", err);
        abort();
    }
    check_equal(&r, &back);
    ds_buf_free(&out);
    free(v);
    return 0;
}
