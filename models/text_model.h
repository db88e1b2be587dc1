/* The walking skeleton's classifier: text + metadata.
 *   each utterance -> BERT-shaped encoder -> mean over its tokens
 *   -> mean over the sample's valid utterances            [B, hidden]
 *   metadata ids -> one embedding per field, concatenated  [B, meta_fields * meta_dim]
 *   -> dropout -> linear -> logits                         [B, num_classes]
 * Parameter names: "bert.*" (HF BertModel names), "meta.<i>.weight", "head.weight/bias". */
#ifndef EMPD_MODELS_TEXT_MODEL_H
#define EMPD_MODELS_TEXT_MODEL_H

#include "models/bert.h"

#define TM_MAX_META 16

typedef struct {
    bert_config bert;
    int meta_fields;                 /* number of metadata ids per sample */
    int64_t meta_sizes[TM_MAX_META]; /* embedding rows per field; id 0 = unknown */
    int64_t meta_dim;
    int64_t num_classes;
    double dropout;
} tm_config;

typedef struct {
    tm_config cfg;
    mp_params params;
    bert_model bert;
    ml_embedding meta[TM_MAX_META];
    ml_linear head;
} tm_model;

/* Inputs, all on the model's device:
 *   utt_tokens i64 [B, U, L], utt_mask f32 [B, U, L], utt_valid f32 [B, U],
 *   meta i64 [B, meta_fields] (ids outside a field's size are read as 0). */
typedef struct {
    tc_tensor *utt_tokens, *utt_mask, *utt_valid, *meta;
} tm_inputs;

int tm_model_init(tm_model *m, const tm_config *cfg, uint64_t seed);
void tm_model_free(tm_model *m);
/* Logits [B, num_classes]; gen drives dropout (NULL: torch's default generator). */
tc_tensor *tm_model_forward(tm_model *m, const tm_inputs *in, int training, tc_generator *gen);

#endif
