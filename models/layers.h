/* Layers on torch_c, the pieces every encoder and fusion model is built from.
 *
 * Each *_init registers its parameters in a mp_params under PyTorch's own state_dict names below
 * "<prefix>" ("<prefix>.weight", "<prefix>.in_proj_weight", "<prefix>.weight_ih_l0_reverse", ...), so a
 * reference built from torch.nn modules loads our tensors by name, and returns TC_OK or the params'
 * first error. Each forward is an op in the cairo sense (NULL in, NULL out; errors land in the scope).
 *
 * Initialisation, seeded by the mp_params' generator:
 *   *_init_default   torch.nn's default for that module (nn.Linear / nn.Conv*: weight and bias
 *                    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); nn.Embedding N(0, 1); nn.LSTM every tensor
 *                    U(-1/sqrt(hidden), 1/sqrt(hidden)); nn.MultiheadAttention xavier-uniform in_proj,
 *                    zero biases; norms weight 1, bias 0, running mean 0, running var 1);
 *   *_init with std  N(0, std) weights and zero biases (BERT's and HF's initialiser).
 * The distributions are torch's; the draws come from our generator, not torch's global stream.
 *
 * Masks are f32 with 1 = valid, 0 = padding, so they come straight from the loader's batch. */
#ifndef EMPD_MODELS_LAYERS_H
#define EMPD_MODELS_LAYERS_H

#include "models/params.h"

/* ---- nn.Linear ---------------------------------------------------------------------------- */
typedef struct {
    tc_tensor *w, *b; /* w [out, in]; b [out] or NULL */
} ml_linear;

int ml_linear_init(ml_linear *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int bias,
                   double std);
int ml_linear_init_default(ml_linear *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int bias);
tc_tensor *ml_linear_forward(const ml_linear *l, tc_tensor *x);

/* ---- nn.Embedding --------------------------------------------------------------------------- */
typedef struct {
    tc_tensor *w; /* [num, dim] */
} ml_embedding;

/* std 1.0 is nn.Embedding's default. */
int ml_embedding_init(ml_embedding *l, mp_params *ps, const char *prefix, int64_t num, int64_t dim, double std);
tc_tensor *ml_embedding_forward(const ml_embedding *l, tc_tensor *ids);

/* ---- nn.LayerNorm (last dimension), nn.GroupNorm, nn.BatchNorm1d ----------------------------- */
typedef struct {
    tc_tensor *w, *b;
    double eps;
} ml_layer_norm;

int ml_layer_norm_init(ml_layer_norm *l, mp_params *ps, const char *prefix, int64_t dim, double eps);
tc_tensor *ml_layer_norm_forward(const ml_layer_norm *l, tc_tensor *x);

typedef struct {
    tc_tensor *w, *b; /* [channels] */
    int groups;
    double eps;
} ml_group_norm;

/* x [N, C, *]; C divisible by groups. */
int ml_group_norm_init(ml_group_norm *l, mp_params *ps, const char *prefix, int groups, int64_t channels,
                       double eps);
tc_tensor *ml_group_norm_forward(const ml_group_norm *l, tc_tensor *x);

typedef struct {
    tc_tensor *w, *b;                        /* parameters [C] */
    tc_tensor *running_mean, *running_var;   /* buffers [C] (mp_buffer): saved, never trained */
    double momentum, eps;
} ml_batch_norm;

/* nn.BatchNorm1d(C, eps, momentum): x [N, C] or [N, C, L]. Training normalises with the batch's
 * statistics and updates the running ones in place; evaluation uses the running ones. */
int ml_batch_norm_init(ml_batch_norm *l, mp_params *ps, const char *prefix, int64_t channels, double eps,
                       double momentum);
tc_tensor *ml_batch_norm_forward(const ml_batch_norm *l, tc_tensor *x, int training);

/* ---- nn.Conv1d, nn.Conv2d (default init) ----------------------------------------------------- */
typedef struct {
    tc_tensor *w, *b; /* w [out, in/groups, k]; b [out] or NULL */
    int64_t stride, padding, dilation, groups;
} ml_conv1d;

int ml_conv1d_init(ml_conv1d *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int64_t kernel,
                   int64_t stride, int64_t padding, int64_t dilation, int64_t groups, int bias);
tc_tensor *ml_conv1d_forward(const ml_conv1d *l, tc_tensor *x);

typedef struct {
    tc_tensor *w, *b; /* w [out, in, kh, kw]; b [out] or NULL */
    int64_t stride[2], padding[2];
} ml_conv2d;

/* A square kernel and stride, no padding: what a patch embedding needs. */
int ml_conv2d_init(ml_conv2d *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int64_t kernel,
                   int64_t stride, int bias);
tc_tensor *ml_conv2d_forward(const ml_conv2d *l, tc_tensor *x);

/* ---- MLP: Linear -> activation -> Dropout, repeated --------------------------------------- */
#define ML_MLP_MAX 8

typedef enum { ML_ACT_NONE, ML_ACT_RELU, ML_ACT_GELU, ML_ACT_GELU_TANH, ML_ACT_TANH } ml_act;

typedef struct {
    int n;                      /* linear layers */
    ml_linear lin[ML_MLP_MAX];  /* "<prefix>.<i>" */
    ml_act act;
    double dropout;
    int act_last;               /* the last layer too gets activation and dropout */
} ml_mlp;

/* dims[0] -> dims[1] -> ... -> dims[n]: n = n_dims - 1 linear layers (default init), each followed by
 * act and dropout except, unless act_last, the last one. As nn.Sequential(Linear, act, Dropout, ...,
 * Linear) with the Linear layers named "<prefix>.0", "<prefix>.1", ... */
int ml_mlp_init(ml_mlp *m, mp_params *ps, const char *prefix, const int64_t *dims, int n_dims, ml_act act,
                double dropout, int act_last);
tc_tensor *ml_mlp_forward(const ml_mlp *m, tc_tensor *x, int training, tc_generator *gen);
tc_tensor *ml_act_forward(ml_act act, tc_tensor *x);

/* ---- Scaled dot-product attention over projected inputs --------------------------------------- */
/* q [B, Lq, E], k and v [B, Lk, E], already projected; E divisible by heads. Split into heads,
 * softmax(q k^T / sqrt(E / heads)) with padded keys masked, dropout p on the weights (training only,
 * drawn from gen), times v, heads merged -> [B, Lq, E], before any output projection: the core of
 * nn.MultiheadAttention, HF's BertSelfAttention and Wav2Vec2Attention. key_valid f32 [B, Lk] (1
 * attend, 0 padding) or NULL. A padded key's weight is exactly 0 in any row with a valid key, as
 * under torch's -inf mask and HF's additive ones; a row whose keys are all padding averages them
 * uniformly (as HF's float-min mask does) instead of torch's NaN. */
tc_tensor *ml_scaled_dot_product_attention(tc_tensor *q, tc_tensor *k, tc_tensor *v, int64_t heads,
                                           tc_tensor *key_valid, double p, int training, tc_generator *gen);

/* ---- nn.MultiheadAttention(embed, heads, dropout, batch_first=True) ---------------------------- */
typedef struct {
    tc_tensor *in_w, *in_b;   /* "<prefix>.in_proj_weight" [3E, E], "<prefix>.in_proj_bias" [3E] */
    ml_linear out;            /* "<prefix>.out_proj" */
    int64_t embed, heads;
    double dropout;           /* on the attention weights, training only */
} ml_mha;

int ml_mha_init(ml_mha *a, mp_params *ps, const char *prefix, int64_t embed, int64_t heads, double dropout);
/* q [B, Lq, E], k and v [B, Lk, E]; key_valid f32 [B, Lk] (1 attend, 0 padding) or NULL. Result
 * [B, Lq, E], what nn.MultiheadAttention returns first with key_padding_mask = (key_valid == 0).
 * A row whose keys are all padding gets a uniform average instead of torch's NaN. */
tc_tensor *ml_mha_forward(const ml_mha *a, tc_tensor *q, tc_tensor *k, tc_tensor *v, tc_tensor *key_valid,
                          int training, tc_generator *gen);

/* ---- nn.LSTM(in, hidden, layers, batch_first=True, bidirectional) over padded batches ------- */
#define ML_LSTM_MAX_LAYERS 8

typedef struct {
    tc_tensor *p[ML_LSTM_MAX_LAYERS * 2 * 4]; /* PyTorch's flat order (see tc_lstm) */
    int layers, bidirectional;
    int64_t input, hidden;
    double dropout;                            /* between layers, training only */
} ml_lstm;

/* Names "<prefix>.weight_ih_l<k>[_reverse]", weight_hh, bias_ih, bias_hh, in torch's order. */
int ml_lstm_init(ml_lstm *l, mp_params *ps, const char *prefix, int64_t input, int64_t hidden, int layers,
                 int bidirectional, double dropout);
/* x [B, T, in]; lengths: B host lengths, each clamped into 1..T (a sample with nothing valid reads
 * one padding step rather than failing). Result [B, T, dirs * hidden]; positions past a length
 * are zero and nothing past a length changes any output (pack_padded_sequence semantics). The
 * dropout between layers (training only) draws from gen (NULL: torch's default generator). */
tc_tensor *ml_lstm_forward(const ml_lstm *l, tc_tensor *x, const int64_t *lengths, int training, tc_generator *gen);

/* ---- Attention pooling: softmax(score(x)) over valid positions, weighted sum ------------------ */
typedef struct {
    ml_linear score; /* "<prefix>.score": E -> 1 */
} ml_attn_pool;

int ml_attn_pool_init(ml_attn_pool *p, mp_params *ps, const char *prefix, int64_t embed);
/* x [B, T, E], valid f32 [B, T] -> [B, E]. A row with no valid position pools to zeros. */
tc_tensor *ml_attn_pool_forward(const ml_attn_pool *p, tc_tensor *x, tc_tensor *valid);

/* ---- Scopes per layer ----------------------------------------------------------------------- */
/* Ends s, a scope the caller began around one layer, keeping y in the scope below; the layer's other
 * temporaries die at once (autograd keeps what backward needs), so a deep model's forward holds one
 * layer's scratch at a time. An error of s moves to the scope below. Returns y, or NULL on error. */
tc_tensor *ml_scope_end_keep(tc_scope *s, tc_tensor *y);

/* ---- Helpers on masks ----------------------------------------------------------------------- */
/* Mean of x [B, T, E] over the positions where valid [B, T] is 1 -> [B, E] (zeros for none). */
tc_tensor *ml_masked_mean(tc_tensor *x, tc_tensor *valid);
/* The lengths of the valid prefixes of valid [B, T] (1s then 0s) into host lengths[B]; returns
 * TC_OK or TC_EINVAL. valid must be a CPU tensor or a device tensor (copied). */
int ml_valid_lengths(const tc_tensor *valid, int64_t *lengths, int64_t batch);

#endif
