/* A BERT text encoder with Hugging Face BertModel's structure and parameter names (embeddings
 * word/position/token_type + LayerNorm, post-LN self-attention layers, feed-forward with HF's
 * hidden_act, tanh pooler over [CLS]), configured from HF's config.json and loaded from HF's
 * model.safetensors, so a pretrained bert-base-uncased runs here and our trained encoder runs there.
 *
 * Calls that can fail return TC_OK or a negative TC_E* code, or (the file readers) 0 or -1 with one
 * line in err naming the file and the field or tensor. Forward functions are ops in the torch_c sense:
 * NULL in, NULL out, errors recorded in the current scope. */
#ifndef EMPD_MODELS_BERT_H
#define EMPD_MODELS_BERT_H

#include <stddef.h>

#include "models/hf_import.h"
#include "models/layers.h"

#define BERT_MAX_LAYERS 24
#define BERT_MAX_PREFIX 128

/* HF's hidden_act. The zero value is "gelu" (HF's default). */
typedef enum {
    BERT_ACT_GELU = 0,   /* "gelu": exact, erf-based */
    BERT_ACT_GELU_TANH,  /* "gelu_new", "gelu_pytorch_tanh": the tanh approximation */
    BERT_ACT_RELU,       /* "relu" */
} bert_act;

/* HF's BertConfig, field by field:
 *   vocab_size, hidden (hidden_size), layers (num_hidden_layers, 1..BERT_MAX_LAYERS), heads
 *   (num_attention_heads, dividing hidden), intermediate (intermediate_size), max_position
 *   (max_position_embeddings), type_vocab (type_vocab_size), layer_norm_eps, hidden_act,
 *   dropout (hidden_dropout_prob: embeddings and every sublayer's output), attention_dropout
 *   (attention_probs_dropout_prob: the attention weights), init_std (initializer_range: N(0, std)
 *   weights, zero biases, LayerNorm 1/0).
 * Callers fill it with designated initialisers, so a field left out is 0 and every 0 is a real
 * value: hidden_act 0 is exact GELU, attention_dropout 0 is no dropout on the attention weights
 * (set it to dropout for HF's behaviour), init_std 0 starts from zero weights. */
typedef struct {
    int64_t vocab_size, hidden, layers, heads, intermediate, max_position, type_vocab;
    double layer_norm_eps, dropout, init_std;
    bert_act hidden_act;
    double attention_dropout;
} bert_config;

typedef struct {
    ml_linear q, k, v, attn_out, inter, out;
    ml_layer_norm attn_ln, out_ln;
} bert_layer;

typedef struct {
    bert_config cfg;
    char prefix[BERT_MAX_PREFIX]; /* the names' prefix given to bert_init, e.g. "bert" */
    ml_embedding word, position, token_type;
    ml_layer_norm emb_ln;
    bert_layer layer[BERT_MAX_LAYERS];
    ml_linear pooler;
} bert_model;

/* c from HF's config.json at path. Fields the file leaves out take BertConfig's defaults
 * (bert-base: 30522, 768, 12 layers, 12 heads, 3072, 512, 2, 1e-12, "gelu", dropouts 0.1, 0.02);
 * fields BERT does not use are ignored. A field of the wrong type or value, a model_type other than
 * "bert", or a position_embedding_type other than "absolute" is one line naming the file and field:
 *   "x/config.json: field 'hidden_act' is "swish"; expected "gelu", "gelu_new", "gelu_pytorch_tanh"
 *    or "relu"". Returns 0, or -1 with c untouched. */
int bert_config_from_hf(bert_config *c, const char *config_json_path, char *err, size_t errlen);
/* c as HF's config.json text (BertModel, model_type "bert"), which bert_config_from_hf reads back to c;
 * malloc'd, NULL when out of memory. */
char *bert_config_to_hf(const bert_config *c);

/* Registers every parameter under "<prefix>.embeddings...", "<prefix>.encoder.layer.N...",
 * "<prefix>.pooler.dense..." (HF BertModel's names below prefix; at most BERT_MAX_PREFIX - 1
 * characters). TC_EINVAL for a config outside the ranges above. */
int bert_init(bert_model *m, mp_params *ps, const char *prefix, const bert_config *cfg);

/* HF weights into m's parameters (see hf_import.h): the file's names with or without the "bert."
 * prefix, LayerNorm gamma/beta or weight/bias; BertForPreTraining's heads ("cls.*") and the
 * position_ids buffer older exports carry are skipped and counted in rep->ignored; any other
 * tensor, a missing one, or a shape unlike the model's is an error naming it, and leaves m as it
 * was. Returns 0, or -1 with one line in err. */
int bert_load_hf(bert_model *m, mp_params *ps, const char *safetensors_path, hf_import_report *rep, char *err,
                 size_t errlen);

/* Leaves exactly the embeddings and the first k layers frozen (no gradients, no updates) and the
 * rest of m trainable; k = 0 freezes the embeddings only, k = layers every layer but not the pooler,
 * k < 0 all of m, pooler included. TC_EINVAL when k > layers. */
int bert_freeze(bert_model *m, mp_params *ps, int k);

/* ids i64 [N, L] (L <= max_position), mask f32 [N, L] (1 keep, 0 pad; NULL: nothing padded), both on
 * the parameters' device -> last hidden states [N, L, hidden]. Token types are all 0, as HF's
 * default. A row whose keys are all padding averages them uniformly instead of turning NaN. */
tc_tensor *bert_forward(const bert_model *m, tc_tensor *ids, tc_tensor *mask, int training, tc_generator *gen);
/* HF's pooler: tanh(dense(hidden[:, 0])) -> [N, hidden]. */
tc_tensor *bert_pool(const bert_model *m, tc_tensor *hidden);

#endif
