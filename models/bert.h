/* A BERT-shaped text encoder with Hugging Face BertModel's structure and parameter names
 * (embeddings word/position/token_type + LayerNorm, post-LN self-attention layers, GELU
 * feed-forward, tanh pooler over [CLS]). The models issue grows it into the full HF-compatible
 * encoder with weight import; the shape of the API stays. */
#ifndef EMPD_MODELS_BERT_H
#define EMPD_MODELS_BERT_H

#include "models/layers.h"

#define BERT_MAX_LAYERS 24

typedef struct {
    int64_t vocab_size, hidden, layers, heads, intermediate, max_position, type_vocab;
    double layer_norm_eps, dropout, init_std;
} bert_config;

typedef struct {
    ml_linear q, k, v, attn_out, inter, out;
    ml_layer_norm attn_ln, out_ln;
} bert_layer;

typedef struct {
    bert_config cfg;
    ml_embedding word, position, token_type;
    ml_layer_norm emb_ln;
    bert_layer layer[BERT_MAX_LAYERS];
    ml_linear pooler;
} bert_model;

/* Registers every parameter under "<prefix>.embeddings...", "<prefix>.encoder.layer.N...",
 * "<prefix>.pooler.dense...". */
int bert_init(bert_model *m, mp_params *ps, const char *prefix, const bert_config *cfg);
/* ids i64 [N, L] (L <= max_position), mask f32 [N, L] (1 keep, 0 pad) -> last hidden states [N, L, hidden]. */
tc_tensor *bert_forward(const bert_model *m, tc_tensor *ids, tc_tensor *mask, int training, tc_generator *gen);
/* HF's pooler: tanh(dense(hidden[:, 0])) -> [N, hidden]. */
tc_tensor *bert_pool(const bert_model *m, tc_tensor *hidden);

#endif
