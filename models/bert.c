#include "models/bert.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "models/hf_config.h"

/* ---- config.json ------------------------------------------------------------------------ */

/* bert_act in the order of its values, as ml_act. */
static const ml_act act_ml[] = {ML_ACT_GELU, ML_ACT_GELU_TANH, ML_ACT_RELU};

int bert_config_from_hf(bert_config *c, const char *config_json_path, char *err, size_t errlen)
{
    static const char *const bert_type[] = {"bert", NULL}, *const absolute[] = {"absolute", NULL};
    const int64_t big = INT64_C(1) << 31;
    bert_config hf = {.vocab_size = 30522, .hidden = 768, .layers = 12, .heads = 12, .intermediate = 3072,
                      .max_position = 512, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                      .init_std = 0.02, .hidden_act = BERT_ACT_GELU, .attention_dropout = 0.1};
    hf_config *f = hf_config_open(config_json_path, err, errlen);
    if (!f)
        return -1;
    ml_act act = ML_ACT_GELU;
    hf_config_choice(f, "model_type", bert_type, NULL, NULL);
    hf_config_choice(f, "position_embedding_type", absolute, "the only position embedding this BERT has", NULL);
    hf_config_int(f, "vocab_size", 1, big, &hf.vocab_size);
    hf_config_int(f, "hidden_size", 1, big, &hf.hidden);
    hf_config_int(f, "num_hidden_layers", 1, BERT_MAX_LAYERS, &hf.layers);
    hf_config_int(f, "num_attention_heads", 1, big, &hf.heads);
    hf_config_int(f, "intermediate_size", 1, big, &hf.intermediate);
    hf_config_int(f, "max_position_embeddings", 1, big, &hf.max_position);
    hf_config_int(f, "type_vocab_size", 1, big, &hf.type_vocab);
    hf_config_num(f, "layer_norm_eps", 0, 1, HF_OPEN_LO, &hf.layer_norm_eps);
    hf_config_num(f, "hidden_dropout_prob", 0, 1, 0, &hf.dropout);
    hf_config_num(f, "attention_probs_dropout_prob", 0, 1, 0, &hf.attention_dropout);
    hf_config_num(f, "initializer_range", 0, 1e3, 0, &hf.init_std);
    hf_config_act(f, "hidden_act", HF_ACT(ML_ACT_GELU) | HF_ACT(ML_ACT_GELU_TANH) | HF_ACT(ML_ACT_RELU), &act);
    for (size_t i = 0; i < sizeof act_ml / sizeof act_ml[0]; i++)
        if (act_ml[i] == act)
            hf.hidden_act = (bert_act)i;
    if (hf.hidden % hf.heads != 0)
        hf_config_fail(f, "field 'num_attention_heads' is %lld, which does not divide hidden_size %lld",
                       (long long)hf.heads, (long long)hf.hidden);
    if (hf_config_close(f))
        return -1;
    *c = hf;
    return 0;
}

char *bert_config_to_hf(const bert_config *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "architectures", cJSON_CreateStringArray((const char *const[]){"BertModel"}, 1));
    cJSON_AddStringToObject(j, "model_type", "bert");
    cJSON_AddNumberToObject(j, "vocab_size", (double)c->vocab_size);
    cJSON_AddNumberToObject(j, "hidden_size", (double)c->hidden);
    cJSON_AddNumberToObject(j, "num_hidden_layers", (double)c->layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", (double)c->heads);
    cJSON_AddNumberToObject(j, "intermediate_size", (double)c->intermediate);
    cJSON_AddNumberToObject(j, "max_position_embeddings", (double)c->max_position);
    cJSON_AddNumberToObject(j, "type_vocab_size", (double)c->type_vocab);
    cJSON_AddNumberToObject(j, "layer_norm_eps", c->layer_norm_eps);
    bert_act act = (unsigned)c->hidden_act <= BERT_ACT_RELU ? c->hidden_act : BERT_ACT_GELU;
    cJSON_AddStringToObject(j, "hidden_act", hf_config_act_name(act_ml[act]));
    cJSON_AddNumberToObject(j, "hidden_dropout_prob", c->dropout);
    cJSON_AddNumberToObject(j, "attention_probs_dropout_prob", c->attention_dropout);
    cJSON_AddNumberToObject(j, "initializer_range", c->init_std);
    cJSON_AddNumberToObject(j, "pad_token_id", 0);
    cJSON_AddStringToObject(j, "position_embedding_type", "absolute");
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    return s;
}

/* ---- parameters ------------------------------------------------------------------------- */

int bert_init(bert_model *m, mp_params *ps, const char *prefix, const bert_config *c)
{
    char p[BERT_MAX_PREFIX + 64];
    if (c->layers < 1 || c->layers > BERT_MAX_LAYERS || c->heads < 1 || c->hidden % c->heads != 0 ||
        (unsigned)c->hidden_act > BERT_ACT_RELU || !(c->dropout >= 0 && c->dropout <= 1) ||
        !(c->attention_dropout >= 0 && c->attention_dropout <= 1) || strlen(prefix) >= BERT_MAX_PREFIX)
        return TC_EINVAL;
    m->cfg = *c;
    strcpy(m->prefix, prefix);
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

int bert_load_hf(bert_model *m, mp_params *ps, const char *safetensors_path, hf_import_report *rep, char *err,
                 size_t errlen)
{
    /* position_ids: the arange buffer transformers < 4.31 saved with the weights; nothing to load. */
    const hf_import_rules rules = {
        .prefix = m->prefix,
        .file_prefix = "bert.",
        .ignore = {"cls.", "embeddings.position_ids", NULL},
    };
    return hf_import(ps, safetensors_path, &rules, rep, err, errlen);
}

int bert_freeze(bert_model *m, mp_params *ps, int k)
{
    char p[BERT_MAX_PREFIX + 64];
    if (k > m->cfg.layers)
        return TC_EINVAL;
    snprintf(p, sizeof p, "%s.", m->prefix);
    mp_set_trainable(ps, p, k < 0 ? 0 : 1);
    if (k < 0)
        return TC_OK;
    snprintf(p, sizeof p, "%s.embeddings.", m->prefix);
    mp_set_trainable(ps, p, 0);
    for (int i = 0; i < k; i++) {
        /* The trailing dot keeps layer 1 from matching layer 10. */
        snprintf(p, sizeof p, "%s.encoder.layer.%d.", m->prefix, i);
        mp_set_trainable(ps, p, 0);
    }
    return TC_OK;
}

/* ---- forward ---------------------------------------------------------------------------- */

tc_tensor *bert_forward(const bert_model *m, tc_tensor *ids, tc_tensor *mask, int training, tc_generator *gen)
{
    const bert_config *c = &m->cfg;
    int64_t len = tc_size(ids, 1);
    /* Positions 0..L-1 and token type 0 everywhere are rows of their tables: slicing them gives what
     * the embedding lookups of arange(L) and zeros would, on the weights' own device. */
    tc_tensor *x = tc_add(tc_add(ml_embedding_forward(&m->word, ids), tc_narrow(m->position.w, 0, 0, len)),
                          tc_select(m->token_type.w, 0, 0));
    x = tc_dropout(ml_layer_norm_forward(&m->emb_ln, x), c->dropout, training, gen);
    /* A padded key's weight comes out exactly 0, as under HF's additive -10000 mask. */
    for (int i = 0; i < c->layers; i++) {
        const bert_layer *l = &m->layer[i];
        tc_scope *s = tc_scope_begin();
        tc_tensor *q = ml_linear_forward(&l->q, x), *k = ml_linear_forward(&l->k, x), *v = ml_linear_forward(&l->v, x);
        tc_tensor *a = ml_scaled_dot_product_attention(q, k, v, c->heads, mask, c->attention_dropout, training, gen);
        a = tc_dropout(ml_linear_forward(&l->attn_out, a), c->dropout, training, gen);
        x = ml_layer_norm_forward(&l->attn_ln, tc_add(x, a));
        tc_tensor *h = ml_act_forward(act_ml[c->hidden_act], ml_linear_forward(&l->inter, x));
        h = tc_dropout(ml_linear_forward(&l->out, h), c->dropout, training, gen);
        x = ml_scope_end_keep(s, ml_layer_norm_forward(&l->out_ln, tc_add(x, h)));
    }
    return x;
}

tc_tensor *bert_pool(const bert_model *m, tc_tensor *hidden)
{
    return tc_tanh(ml_linear_forward(&m->pooler, tc_select(hidden, 1, 0)));
}
