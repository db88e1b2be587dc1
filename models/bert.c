#include "models/bert.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- config.json ------------------------------------------------------------------------ */

static char *read_whole(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 4096 + 1 > cap) {
            cap = 2 * cap + 4096 + 1;
            char *grown = realloc(text, cap);
            if (!grown) {
                free(text);
                fclose(f);
                fail(err, errlen, "%s: out of memory", path);
                return NULL;
            }
            text = grown;
        }
        got = fread(text + len, 1, 4096, f);
        len += got;
    } while (got > 0);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(text);
        fail(err, errlen, "%s: read error", path);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

static const char *json_kind(const cJSON *v)
{
    return cJSON_IsString(v) ? "a string" : cJSON_IsBool(v) ? "a boolean" : cJSON_IsNull(v) ? "null"
           : cJSON_IsArray(v) ? "an array" : cJSON_IsObject(v) ? "an object" : "a number";
}

/* An integer field in [lo, hi]; absent: *out keeps the default. */
static int json_int(const cJSON *root, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *out,
                    char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v))
        return fail(err, errlen, "%s: field '%s' must be an integer in %lld..%lld, not %s", path, key,
                    (long long)lo, (long long)hi, json_kind(v));
    double d = v->valuedouble;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return fail(err, errlen, "%s: field '%s' is %g; it must be an integer in %lld..%lld", path, key, d,
                    (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return 0;
}

/* A number field in [lo, hi] (lo excluded when open_lo); absent: *out keeps the default. */
static int json_num(const cJSON *root, const char *path, const char *key, double lo, int open_lo, double hi,
                    double *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v)
        return 0;
    char want[64];
    snprintf(want, sizeof want, "%s%g, %g]", open_lo ? "(" : "[", lo, hi);
    if (!cJSON_IsNumber(v))
        return fail(err, errlen, "%s: field '%s' must be a number in %s, not %s", path, key, want, json_kind(v));
    double d = v->valuedouble;
    if (!(open_lo ? d > lo : d >= lo) || !(d <= hi))
        return fail(err, errlen, "%s: field '%s' is %g; it must be in %s", path, key, d, want);
    *out = d;
    return 0;
}

/* A string field that must be one of the NULL-terminated choices; absent: *out keeps the default. */
static int json_choice(const cJSON *root, const char *path, const char *key, const char *const *choices,
                       const char *expected, int *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v)
        return 0;
    if (!cJSON_IsString(v))
        return fail(err, errlen, "%s: field '%s' must be a string (%s), not %s", path, key, expected, json_kind(v));
    for (int i = 0; choices[i]; i++)
        if (!strcmp(v->valuestring, choices[i])) {
            *out = i;
            return 0;
        }
    return fail(err, errlen, "%s: field '%s' is \"%s\"; expected %s", path, key, v->valuestring, expected);
}

static int config_parse(const cJSON *root, const char *path, bert_config *c, char *err, size_t errlen)
{
    static const char *const acts[] = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", NULL};
    static const bert_act act_of[] = {BERT_ACT_GELU, BERT_ACT_GELU_TANH, BERT_ACT_GELU_TANH, BERT_ACT_RELU};
    static const char *const bert_type[] = {"bert", NULL}, *const absolute[] = {"absolute", NULL};
    const int64_t big = INT64_C(1) << 31;
    int act = 0, only_choice;
    if (!cJSON_IsObject(root))
        return fail(err, errlen, "%s: not a JSON object (expected Hugging Face's config.json)", path);
    if (json_choice(root, path, "model_type", bert_type, "\"bert\"", &only_choice, err, errlen) ||
        json_choice(root, path, "position_embedding_type", absolute,
                    "\"absolute\" (the only position embedding this BERT has)", &only_choice, err, errlen) ||
        json_int(root, path, "vocab_size", 1, big, &c->vocab_size, err, errlen) ||
        json_int(root, path, "hidden_size", 1, big, &c->hidden, err, errlen) ||
        json_int(root, path, "num_hidden_layers", 1, BERT_MAX_LAYERS, &c->layers, err, errlen) ||
        json_int(root, path, "num_attention_heads", 1, big, &c->heads, err, errlen) ||
        json_int(root, path, "intermediate_size", 1, big, &c->intermediate, err, errlen) ||
        json_int(root, path, "max_position_embeddings", 1, big, &c->max_position, err, errlen) ||
        json_int(root, path, "type_vocab_size", 1, big, &c->type_vocab, err, errlen) ||
        json_num(root, path, "layer_norm_eps", 0, 1, 1, &c->layer_norm_eps, err, errlen) ||
        json_num(root, path, "hidden_dropout_prob", 0, 0, 1, &c->dropout, err, errlen) ||
        json_num(root, path, "attention_probs_dropout_prob", 0, 0, 1, &c->attention_dropout, err, errlen) ||
        json_num(root, path, "initializer_range", 0, 0, 1e3, &c->init_std, err, errlen) ||
        json_choice(root, path, "hidden_act", acts, "\"gelu\", \"gelu_new\", \"gelu_pytorch_tanh\" or \"relu\"",
                    &act, err, errlen))
        return -1;
    c->hidden_act = act_of[act];
    if (c->hidden % c->heads != 0)
        return fail(err, errlen, "%s: field 'num_attention_heads' is %lld, which does not divide hidden_size %lld",
                    path, (long long)c->heads, (long long)c->hidden);
    return 0;
}

int bert_config_from_hf(bert_config *c, const char *config_json_path, char *err, size_t errlen)
{
    bert_config hf = {.vocab_size = 30522, .hidden = 768, .layers = 12, .heads = 12, .intermediate = 3072,
                      .max_position = 512, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                      .init_std = 0.02, .hidden_act = BERT_ACT_GELU, .attention_dropout = 0.1};
    char *text = read_whole(config_json_path, err, errlen);
    if (!text)
        return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc = root ? config_parse(root, config_json_path, &hf, err, errlen)
                  : fail(err, errlen, "%s: not valid JSON", config_json_path);
    cJSON_Delete(root);
    if (rc == 0)
        *c = hf;
    return rc;
}

char *bert_config_to_hf(const bert_config *c)
{
    static const char *const act_names[] = {"gelu", "gelu_new", "relu"};
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
    cJSON_AddStringToObject(j, "hidden_act", act_names[c->hidden_act <= BERT_ACT_RELU ? c->hidden_act : 0]);
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

/* [N, L, hidden] -> [N, heads, L, head_dim] */
static tc_tensor *split_heads(tc_tensor *x, int64_t heads)
{
    int64_t n = tc_size(x, 0), l = tc_size(x, 1), d = tc_size(x, 2) / heads;
    return tc_permute(tc_reshape(x, (int64_t[]){n, l, heads, d}, 4), (int64_t[]){0, 2, 1, 3}, 4);
}

/* bias: [N, 1, 1, L] added to the scores, or NULL when nothing is padded. */
static tc_tensor *self_attention(const bert_layer *l, const bert_config *c, tc_tensor *x, tc_tensor *bias,
                                 int training, tc_generator *gen)
{
    int64_t n = tc_size(x, 0), len = tc_size(x, 1);
    /* Scaling q ([N, H, L, d]) rather than the scores ([N, H, L, L]) is cheaper when L > d and,
     * for BERT's head_dim 64, exact (a power of two). */
    tc_tensor *q = tc_mul_scalar(split_heads(ml_linear_forward(&l->q, x), c->heads),
                                 1.0 / sqrt((double)(c->hidden / c->heads)));
    tc_tensor *k = split_heads(ml_linear_forward(&l->k, x), c->heads);
    tc_tensor *v = split_heads(ml_linear_forward(&l->v, x), c->heads);
    tc_tensor *scores = tc_matmul(q, tc_transpose(k, -2, -1));
    if (bias)
        scores = tc_add(scores, bias);
    tc_tensor *probs = tc_dropout(tc_softmax(scores, -1), c->attention_dropout, training, gen);
    tc_tensor *ctx = tc_permute(tc_matmul(probs, v), (int64_t[]){0, 2, 1, 3}, 4);
    return tc_reshape(ctx, (int64_t[]){n, len, c->hidden}, 3);
}

static tc_tensor *activation(bert_act act, tc_tensor *x)
{
    switch (act) {
    case BERT_ACT_GELU_TANH:
        return tc_gelu(x, TC_GELU_TANH);
    case BERT_ACT_RELU:
        return tc_relu(x);
    default:
        return tc_gelu(x, TC_GELU_EXACT);
    }
}

tc_tensor *bert_forward(const bert_model *m, tc_tensor *ids, tc_tensor *mask, int training, tc_generator *gen)
{
    const bert_config *c = &m->cfg;
    int64_t n = tc_size(ids, 0), len = tc_size(ids, 1);
    /* Positions 0..L-1 and token type 0 everywhere are rows of their tables: slicing them gives what
     * the embedding lookups of arange(L) and zeros would, on the weights' own device. */
    tc_tensor *x = tc_add(tc_add(ml_embedding_forward(&m->word, ids), tc_narrow(m->position.w, 0, 0, len)),
                          tc_select(m->token_type.w, 0, 0));
    x = tc_dropout(ml_layer_norm_forward(&m->emb_ln, x), c->dropout, training, gen);
    /* Padded keys get a large negative score (as HF's extended attention mask): finite, so a row
     * with no valid key stays a uniform average instead of NaN. */
    tc_tensor *bias = NULL;
    if (mask)
        bias = tc_reshape(tc_mul_scalar(tc_add_scalar(tc_neg(mask), 1.0), -10000.0), (int64_t[]){n, 1, 1, len}, 4);
    for (int i = 0; i < c->layers; i++) {
        const bert_layer *l = &m->layer[i];
        tc_tensor *a = self_attention(l, c, x, bias, training, gen);
        a = tc_dropout(ml_linear_forward(&l->attn_out, a), c->dropout, training, gen);
        x = ml_layer_norm_forward(&l->attn_ln, tc_add(x, a));
        tc_tensor *h = activation(c->hidden_act, ml_linear_forward(&l->inter, x));
        h = tc_dropout(ml_linear_forward(&l->out, h), c->dropout, training, gen);
        x = ml_layer_norm_forward(&l->out_ln, tc_add(x, h));
    }
    return x;
}

tc_tensor *bert_pool(const bert_model *m, tc_tensor *hidden)
{
    return tc_tanh(ml_linear_forward(&m->pooler, tc_select(hidden, 1, 0)));
}
