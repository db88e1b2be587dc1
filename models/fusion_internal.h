/* What fusion.c and fusion_forward.c share; private to models/. */
#ifndef EMPD_MODELS_FUSION_INTERNAL_H
#define EMPD_MODELS_FUSION_INTERNAL_H

#include "models/fusion.h"

/* The flat slots (b * U + u) of a [B, U] mask that are 1. */
typedef struct {
    int64_t *index;
    int64_t n, total;
} mf_slot_list;

/* Reads mask (any device) to the host; TC_OK or TC_ENOMEM. */
int mf_slots(tc_tensor *mask, mf_slot_list *out);
void mf_slots_free(mf_slot_list *s);
/* The list as an i64 tensor on dev. */
tc_tensor *mf_slot_index(const mf_slot_list *s, tc_device dev);
/* [total, dim]: feats [n, dim] at the listed slots, fill [dim] (a learned vector) or zeros elsewhere. */
tc_tensor *mf_scatter_slots(const mf_slot_list *s, tc_tensor *idx, tc_tensor *feats, tc_tensor *fill, int64_t dim);
/* e's rows for ids (i64); an id outside the table reads as row 0 (unknown). */
tc_tensor *mf_embed_ids(const ml_embedding *e, tc_tensor *ids);
/* [B, Dm]: the metadata embeddings, concatenated in record order. */
tc_tensor *mf_meta_features(const mf_model *m, tc_tensor *meta);
/* [N, Ht]: the text feature of each of N token rows. */
tc_tensor *mf_text_features(const mf_model *m, tc_tensor *ids, tc_tensor *mask, int training, tc_generator *gen);
/* x [B, T, D] at position lengths[b] - 1 (0 when the length is 0) -> [B, D]. */
tc_tensor *mf_last_valid(tc_tensor *x, const int64_t *lengths);

#endif
