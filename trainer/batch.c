#include "trainer/batch.h"

tm_inputs tr_batch_inputs(const ds_batch *b)
{
    int64_t bu[] = {b->B, b->U}, bul[] = {b->B, b->U, b->L}, bm[] = {b->B, DS_META_N};
    tm_inputs in = {
        .utt_tokens = tc_from_blob(b->utt_tokens, bul, 3, TC_I64),
        .utt_mask = tc_from_blob(b->utt_mask, bul, 3, TC_F32),
        .utt_valid = tc_from_blob(b->utt_valid, bu, 2, TC_F32),
        .meta = tc_slice(tc_from_blob(b->meta, bm, 2, TC_I64), 1, 0, DS_META_FIRST_LEAKING, 1),
    };
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
