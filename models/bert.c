#include "models/bert.h"

#include <math.h>
#include <stdio.h>

int bert_init(bert_model *m, mp_params *ps, const char *prefix, const bert_config *c)
{
    char p[256];
    if (c->layers < 1 || c->layers > BERT_MAX_LAYERS || c->hidden % c->heads != 0)
        return TC_EINVAL;
    m->cfg = *c;
    double std = c->init_std;
    snprintf(p, sizeof p, "%s.embeddings.word_embeddings", prefix);
    ml_embedding_init(&m->word, ps, p, c->vocab_size, c->hidden, std);
    snprintf(p, sizeof p, "%s.embeddings.position_embeddings", prefix);
    ml_embedding_init(&m->position, ps, p, c->max_position, c->hidden, std);
    snprintf(p, sizeof p, "%s.embeddings.token_type_embeddings", prefix);
    ml_embedding_init(&m->token_type, ps, p, c->type_vocab, c->hidden, std);
    snprintf(p, sizeof p, "%s.embeddings.LayerNorm", prefix);
    ml_layer_norm_init(&m->emb_ln, ps, p, c->hidden, c->layer_norm_eps);
    for (int i = 0; i < c->layers; i++) {
        bert_layer *l = &m->layer[i];
        const struct {
            ml_linear *lin;
            const char *leaf;
            int64_t in, out;
        } lins[] = {
            {&l->q, "attention.self.query", c->hidden, c->hidden},
            {&l->k, "attention.self.key", c->hidden, c->hidden},
            {&l->v, "attention.self.value", c->hidden, c->hidden},
            {&l->attn_out, "attention.output.dense", c->hidden, c->hidden},
            {&l->inter, "intermediate.dense", c->hidden, c->intermediate},
            {&l->out, "output.dense", c->intermediate, c->hidden},
        };
        for (size_t j = 0; j < sizeof lins / sizeof lins[0]; j++) {
            snprintf(p, sizeof p, "%s.encoder.layer.%d.%s", prefix, i, lins[j].leaf);
            ml_linear_init(lins[j].lin, ps, p, lins[j].in, lins[j].out, 1, std);
        }
        snprintf(p, sizeof p, "%s.encoder.layer.%d.attention.output.LayerNorm", prefix, i);
        ml_layer_norm_init(&l->attn_ln, ps, p, c->hidden, c->layer_norm_eps);
        snprintf(p, sizeof p, "%s.encoder.layer.%d.output.LayerNorm", prefix, i);
        ml_layer_norm_init(&l->out_ln, ps, p, c->hidden, c->layer_norm_eps);
    }
    snprintf(p, sizeof p, "%s.pooler.dense", prefix);
    return ml_linear_init(&m->pooler, ps, p, c->hidden, c->hidden, 1, std);
}

/* [N, L, hidden] -> [N, heads, L, head_dim] */
static tc_tensor *split_heads(tc_tensor *x, int64_t heads)
{
    int64_t n = tc_size(x, 0), l = tc_size(x, 1), d = tc_size(x, 2) / heads;
    return tc_permute(tc_reshape(x, (int64_t[]){n, l, heads, d}, 4), (int64_t[]){0, 2, 1, 3}, 4);
}

static tc_tensor *self_attention(const bert_layer *l, const bert_config *c, tc_tensor *x, tc_tensor *bias,
                                 int training, tc_generator *gen)
{
    int64_t n = tc_size(x, 0), len = tc_size(x, 1);
    tc_tensor *q = split_heads(ml_linear_forward(&l->q, x), c->heads);
    tc_tensor *k = split_heads(ml_linear_forward(&l->k, x), c->heads);
    tc_tensor *v = split_heads(ml_linear_forward(&l->v, x), c->heads);
    tc_tensor *scores = tc_mul_scalar(tc_matmul(q, tc_transpose(k, -2, -1)), 1.0 / sqrt((double)(c->hidden / c->heads)));
    tc_tensor *probs = tc_dropout(tc_softmax(tc_add(scores, bias), -1), c->dropout, training, gen);
    tc_tensor *ctx = tc_permute(tc_matmul(probs, v), (int64_t[]){0, 2, 1, 3}, 4);
    return tc_reshape(ctx, (int64_t[]){n, len, c->hidden}, 3);
}

tc_tensor *bert_forward(const bert_model *m, tc_tensor *ids, tc_tensor *mask, int training, tc_generator *gen)
{
    const bert_config *c = &m->cfg;
    int64_t n = tc_size(ids, 0), len = tc_size(ids, 1);
    tc_tensor *pos = tc_arange(len, TC_I64, (tc_device){TC_CPU, 0});
    tc_tensor *types = tc_zeros((int64_t[]){n, len}, 2, TC_I64, (tc_device){TC_CPU, 0});
    tc_tensor *x = tc_add(tc_add(ml_embedding_forward(&m->word, ids), ml_embedding_forward(&m->position, pos)),
                          ml_embedding_forward(&m->token_type, types));
    x = tc_dropout(ml_layer_norm_forward(&m->emb_ln, x), c->dropout, training, gen);
    /* Padded keys get a large negative score (as HF's extended attention mask): finite, so a row
     * with no valid key stays a uniform average instead of NaN. */
    tc_tensor *bias = tc_mul_scalar(tc_add_scalar(tc_neg(mask), 1.0), -10000.0);
    bias = tc_reshape(bias, (int64_t[]){n, 1, 1, len}, 4);
    for (int i = 0; i < c->layers; i++) {
        const bert_layer *l = &m->layer[i];
        tc_tensor *a = self_attention(l, c, x, bias, training, gen);
        a = tc_dropout(ml_linear_forward(&l->attn_out, a), c->dropout, training, gen);
        x = ml_layer_norm_forward(&l->attn_ln, tc_add(x, a));
        tc_tensor *h = tc_gelu(ml_linear_forward(&l->inter, x), TC_GELU_EXACT);
        h = tc_dropout(ml_linear_forward(&l->out, h), c->dropout, training, gen);
        x = ml_layer_norm_forward(&l->out_ln, tc_add(x, h));
    }
    return x;
}

tc_tensor *bert_pool(const bert_model *m, tc_tensor *hidden)
{
    return tc_tanh(ml_linear_forward(&m->pooler, tc_select(hidden, 1, 0)));
}
