#include "trainer/batch.h"

static void *pinned_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    return tc_host_alloc(bytes, 1);
}

static void pinned_free(void *ctx, void *p)
{
    (void)ctx;
    tc_host_free(p);
}

const ds_allocator *tr_batch_allocator(tc_device dev)
{
    static const ds_allocator pinned = {pinned_alloc, pinned_free, NULL};
    return dev.type == TC_CUDA ? &pinned : NULL;
}

/* torch 1.13 has no uint16: the ids' bits are read as int16, where ids >= 32768 come out 65536 too low. */
static tc_tensor *token_ids(uint16_t *tokens, const int64_t *shape, int ndim)
{
    tc_tensor *x = tc_to_dtype(tc_from_blob(tokens, shape, ndim, TC_I16), TC_I64);
    tc_tensor *wrap = tc_full(NULL, 0, 65536, TC_I64, (tc_device){TC_CPU, 0});
    return tc_where(tc_gt_scalar(tc_neg(x), 0), tc_add(x, wrap), x);
}

tm_inputs tr_batch_inputs(const ds_batch *b)
{
    int64_t bu[] = {b->B, b->U}, bul[] = {b->B, b->U, b->L}, bm[] = {b->B, DS_META_N};
    tm_inputs in = {
        .utt_tokens = token_ids(b->utt_tokens, bul, 3),
        .utt_mask = tc_from_blob(b->utt_mask, bul, 3, TC_F32),
        .utt_valid = tc_from_blob(b->utt_valid, bu, 2, TC_F32),
        .meta = tc_slice(tc_from_blob(b->meta, bm, 2, TC_I64), 1, 0, DS_META_FIRST_LEAKING, 1),
    };
    return in;
}

/* The fusion models read the record's metadata slots as they are. */
_Static_assert(DS_META_N == MF_META_FIELDS, "the fusion models' metadata fields are the records' slots");

mf_inputs tr_batch_fusion_inputs(const ds_batch *b)
{
    int64_t bu[] = {b->B, b->U}, bul[] = {b->B, b->U, b->L}, bc[] = {b->B, b->C}, bm[] = {b->B, DS_META_N};
    mf_inputs in = {
        .utt_tokens = token_ids(b->utt_tokens, bul, 3),
        .utt_mask = tc_from_blob(b->utt_mask, bul, 3, TC_F32),
        .utt_valid = tc_from_blob(b->utt_valid, bu, 2, TC_F32),
        .utt_role = tc_from_blob(b->utt_role, bu, 2, TC_I64),
        .ctx_tokens = token_ids(b->ctx_tokens, bc, 2),
        .ctx_mask = tc_from_blob(b->ctx_mask, bc, 2, TC_F32),
        .meta = tc_from_blob(b->meta, bm, 2, TC_I64),
    };
    if (b->audio) {
        in.audio = tc_from_blob(b->audio, (int64_t[]){b->B, b->U, b->S}, 3, TC_I16);
        in.audio_len = tc_from_blob(b->audio_len, bu, 2, TC_I64);
        in.audio_valid = tc_from_blob(b->audio_valid, bu, 2, TC_F32);
    }
    if (b->frames) {
        in.frames = tc_from_blob(b->frames, (int64_t[]){b->B, b->U, DS_N_FRAMES, b->H, b->W, 3}, 6, TC_U8);
        in.video_valid = tc_from_blob(b->video_valid, bu, 2, TC_F32);
    }
    return in;
}

int64_t *tr_batch_labels(ds_batch *b, int64_t num_classes)
{
    int64_t *y = num_classes == 32 ? b->label32 : b->label7;
    for (int i = 0; i < b->B; i++)
        if (y[i] < 0)
            y[i] = -100;
    return y;
}
