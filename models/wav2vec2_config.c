/* wav2vec2.h's configuration half: the base config, HF config.json, and frame counts. */
#include "models/wav2vec2.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const int64_t base_kernel[] = {10, 3, 3, 3, 3, 2, 2};
static const int64_t base_stride[] = {5, 2, 2, 2, 2, 2, 2};

/* Wav2Vec2Config's defaults: what a config.json that leaves a field out means. */
static w2v_config config_hf_defaults(void)
{
    w2v_config c = {
        .conv_layers = 7,
        .conv_bias = 0,
        .extract_norm = W2V_EXTRACT_GROUP,
        .extract_act = ML_ACT_GELU,
        .hidden = 768,
        .layers = 12,
        .heads = 12,
        .intermediate = 3072,
        .hidden_act = ML_ACT_GELU,
        .pos_conv_kernel = 128,
        .pos_conv_groups = 16,
        .stable_layer_norm = 0,
        .layer_norm_eps = 1e-5,
        .hidden_dropout = 0.1,
        .attention_dropout = 0.1,
        .activation_dropout = 0.1,
        .feat_proj_dropout = 0.0,
        .layerdrop = 0.1,
        .init_std = 0.02,
    };
    for (int i = 0; i < 7; i++) {
        c.conv_dim[i] = 512;
        c.conv_kernel[i] = base_kernel[i];
        c.conv_stride[i] = base_stride[i];
    }
    return c;
}

w2v_config w2v_config_base(void)
{
    /* facebook/wav2vec2-base's config.json departs from the class defaults in its dropouts (the
     * fairseq base pretraining recipe's). */
    w2v_config c = config_hf_defaults();
    c.activation_dropout = 0.0;
    c.feat_proj_dropout = 0.1;
    c.layerdrop = 0.05;
    return c;
}

int64_t w2v_frames(const w2v_config *c, int64_t samples)
{
    int64_t len = samples;
    for (int i = 0; i < c->conv_layers; i++)
        len = len < c->conv_kernel[i] ? 0 : (len - c->conv_kernel[i]) / c->conv_stride[i] + 1;
    return len;
}

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} cfg_ctx;

static int cfg_fail(const cfg_ctx *x, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(x->err, x->errlen, "%s: %s", x->path, msg);
    return -1;
}

/* A positive integer field (absent: *v unchanged). */
static int cfg_int(const cfg_ctx *x, const cJSON *j, const char *key, int64_t max, int64_t *v)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!f)
        return 0;
    double d = cJSON_IsNumber(f) ? f->valuedouble : NAN;
    if (!(d >= 1 && d <= (double)max && d == floor(d)))
        return cfg_fail(x, "field '%s' must be an integer in 1..%lld", key, (long long)max);
    *v = (int64_t)d;
    return 0;
}

static int cfg_prob(const cfg_ctx *x, const cJSON *j, const char *key, double *v)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!f)
        return 0;
    if (!cJSON_IsNumber(f) || !(f->valuedouble >= 0 && f->valuedouble <= 1))
        return cfg_fail(x, "field '%s' must be a number in [0, 1]", key);
    *v = f->valuedouble;
    return 0;
}

static int cfg_positive(const cfg_ctx *x, const cJSON *j, const char *key, double *v)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!f)
        return 0;
    if (!cJSON_IsNumber(f) || !(f->valuedouble > 0 && f->valuedouble < 1))
        return cfg_fail(x, "field '%s' must be a number in (0, 1)", key);
    *v = f->valuedouble;
    return 0;
}

static int cfg_bool(const cfg_ctx *x, const cJSON *j, const char *key, int *v)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!f)
        return 0;
    if (!cJSON_IsBool(f))
        return cfg_fail(x, "field '%s' must be true or false", key);
    *v = cJSON_IsTrue(f);
    return 0;
}

/* HF's ACT2FN names that torch_c computes exactly. */
static int cfg_act(const cfg_ctx *x, const cJSON *j, const char *key, ml_act *v)
{
    static const struct {
        const char *name;
        ml_act act;
    } acts[] = {{"gelu", ML_ACT_GELU}, {"gelu_new", ML_ACT_GELU_TANH}, {"gelu_pytorch_tanh", ML_ACT_GELU_TANH},
                {"relu", ML_ACT_RELU}, {"tanh", ML_ACT_TANH}};
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!f)
        return 0;
    for (size_t i = 0; cJSON_IsString(f) && i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(f->valuestring, acts[i].name)) {
            *v = acts[i].act;
            return 0;
        }
    return cfg_fail(x, "field '%s' must be one of \"gelu\", \"gelu_new\", \"gelu_pytorch_tanh\", \"relu\", \"tanh\"",
                    key);
}

/* An array of positive integers; returns its length or -1. */
static int cfg_int_list(const cfg_ctx *x, const cJSON *j, const char *key, int64_t *v)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!f)
        return 0;
    int n = cJSON_IsArray(f) ? cJSON_GetArraySize(f) : -1;
    if (n < 1 || n > W2V_MAX_CONV)
        return cfg_fail(x, "field '%s' must be an array of 1..%d positive integers", key, W2V_MAX_CONV);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(f, i);
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d >= 1 && d <= 1e6 && d == floor(d)))
            return cfg_fail(x, "field '%s' must be an array of 1..%d positive integers (item %d is not)", key,
                            W2V_MAX_CONV, i);
        v[i] = (int64_t)d;
    }
    return n;
}

static int cfg_parse(const cfg_ctx *x, const cJSON *j, w2v_config *c)
{
    if (!cJSON_IsObject(j))
        return cfg_fail(x, "not a JSON object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "wav2vec2")))
        return cfg_fail(x, "field 'model_type' must be \"wav2vec2\" (other models are not this encoder)");

    int n_dim = cfg_int_list(x, j, "conv_dim", c->conv_dim);
    int n_kernel = n_dim < 0 ? -1 : cfg_int_list(x, j, "conv_kernel", c->conv_kernel);
    int n_stride = n_kernel < 0 ? -1 : cfg_int_list(x, j, "conv_stride", c->conv_stride);
    if (n_dim < 0 || n_kernel < 0 || n_stride < 0)
        return -1;
    /* A list left out keeps the default's 7 entries. */
    int len[3] = {n_dim ? n_dim : 7, n_kernel ? n_kernel : 7, n_stride ? n_stride : 7};
    if (len[0] != len[1] || len[0] != len[2])
        return cfg_fail(x, "fields 'conv_dim', 'conv_kernel', 'conv_stride' must have the same length (%d, %d, %d)",
                        len[0], len[1], len[2]);
    c->conv_layers = len[0];
    int64_t n_feat = c->conv_layers;
    if (cfg_int(x, j, "num_feat_extract_layers", W2V_MAX_CONV, &n_feat))
        return -1;
    if (n_feat != c->conv_layers)
        return cfg_fail(x, "field 'num_feat_extract_layers' is %lld but 'conv_dim' has %d entries", (long long)n_feat,
                        c->conv_layers);

    int64_t layers = c->layers;
    if (cfg_int(x, j, "hidden_size", 1 << 16, &c->hidden) || cfg_int(x, j, "num_hidden_layers", W2V_MAX_LAYERS, &layers) ||
        cfg_int(x, j, "num_attention_heads", 1024, &c->heads) ||
        cfg_int(x, j, "intermediate_size", 1 << 18, &c->intermediate) ||
        cfg_int(x, j, "num_conv_pos_embeddings", 4096, &c->pos_conv_kernel) ||
        cfg_int(x, j, "num_conv_pos_embedding_groups", 1 << 16, &c->pos_conv_groups))
        return -1;
    c->layers = (int)layers;
    if (cfg_bool(x, j, "conv_bias", &c->conv_bias) || cfg_bool(x, j, "do_stable_layer_norm", &c->stable_layer_norm) ||
        cfg_act(x, j, "hidden_act", &c->hidden_act) || cfg_act(x, j, "feat_extract_activation", &c->extract_act))
        return -1;
    if (cfg_prob(x, j, "hidden_dropout", &c->hidden_dropout) ||
        cfg_prob(x, j, "attention_dropout", &c->attention_dropout) ||
        cfg_prob(x, j, "activation_dropout", &c->activation_dropout) ||
        cfg_prob(x, j, "feat_proj_dropout", &c->feat_proj_dropout) || cfg_prob(x, j, "layerdrop", &c->layerdrop) ||
        cfg_positive(x, j, "layer_norm_eps", &c->layer_norm_eps) ||
        cfg_positive(x, j, "initializer_range", &c->init_std))
        return -1;

    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "feat_extract_norm");
    if (norm) {
        if (cJSON_IsString(norm) && !strcmp(norm->valuestring, "group"))
            c->extract_norm = W2V_EXTRACT_GROUP;
        else if (cJSON_IsString(norm) && !strcmp(norm->valuestring, "layer"))
            c->extract_norm = W2V_EXTRACT_LAYER;
        else
            return cfg_fail(x, "field 'feat_extract_norm' must be \"group\" or \"layer\"");
    }
    int adapter = 0;
    if (cfg_bool(x, j, "add_adapter", &adapter))
        return -1;
    if (adapter)
        return cfg_fail(x, "field 'add_adapter' is true: the adapter after the encoder is not supported");
    if (c->hidden % c->heads)
        return cfg_fail(x, "field 'hidden_size' (%lld) must be divisible by 'num_attention_heads' (%lld)",
                        (long long)c->hidden, (long long)c->heads);
    if (c->hidden % c->pos_conv_groups)
        return cfg_fail(x, "field 'hidden_size' (%lld) must be divisible by 'num_conv_pos_embedding_groups' (%lld)",
                        (long long)c->hidden, (long long)c->pos_conv_groups);
    return 0;
}

int w2v_config_from_hf(w2v_config *c, const char *path, char *err, size_t errlen)
{
    cfg_ctx x = {path, err, errlen};
    FILE *f = fopen(path, "rb");
    if (!f)
        return cfg_fail(&x, "cannot open the config (%s)", strerror(errno));
    char *text = NULL;
    size_t len = 0;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size >= 0 && size < (1L << 24) && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)size + 1)))
        len = fread(text, 1, (size_t)size, f);
    fclose(f);
    if (!text || (long)len != size) {
        free(text);
        return cfg_fail(&x, "cannot read the config (at most 16 MiB)");
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j)
        return cfg_fail(&x, "not valid JSON");
    w2v_config parsed = config_hf_defaults();
    int rc = cfg_parse(&x, j, &parsed);
    cJSON_Delete(j);
    if (rc == 0)
        *c = parsed;
    return rc;
}

static const char *act_name(ml_act a)
{
    switch (a) {
    case ML_ACT_GELU_TANH: return "gelu_new";
    case ML_ACT_RELU: return "relu";
    case ML_ACT_TANH: return "tanh";
    default: return "gelu";
    }
}

char *w2v_config_to_hf(const w2v_config *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "architectures", cJSON_CreateStringArray((const char *const[]){"Wav2Vec2Model"}, 1));
    cJSON_AddStringToObject(j, "model_type", "wav2vec2");
    const int64_t *lists[3] = {c->conv_dim, c->conv_kernel, c->conv_stride};
    static const char *const list_names[3] = {"conv_dim", "conv_kernel", "conv_stride"};
    for (int l = 0; l < 3; l++) {
        cJSON *a = cJSON_AddArrayToObject(j, list_names[l]);
        for (int i = 0; i < c->conv_layers; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber((double)lists[l][i]));
    }
    cJSON_AddNumberToObject(j, "num_feat_extract_layers", c->conv_layers);
    cJSON_AddBoolToObject(j, "conv_bias", c->conv_bias);
    cJSON_AddStringToObject(j, "feat_extract_norm", c->extract_norm == W2V_EXTRACT_LAYER ? "layer" : "group");
    cJSON_AddStringToObject(j, "feat_extract_activation", act_name(c->extract_act));
    cJSON_AddNumberToObject(j, "hidden_size", (double)c->hidden);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", (double)c->heads);
    cJSON_AddNumberToObject(j, "intermediate_size", (double)c->intermediate);
    cJSON_AddStringToObject(j, "hidden_act", act_name(c->hidden_act));
    cJSON_AddNumberToObject(j, "num_conv_pos_embeddings", (double)c->pos_conv_kernel);
    cJSON_AddNumberToObject(j, "num_conv_pos_embedding_groups", (double)c->pos_conv_groups);
    cJSON_AddBoolToObject(j, "do_stable_layer_norm", c->stable_layer_norm);
    cJSON_AddNumberToObject(j, "layer_norm_eps", c->layer_norm_eps);
    cJSON_AddNumberToObject(j, "hidden_dropout", c->hidden_dropout);
    cJSON_AddNumberToObject(j, "attention_dropout", c->attention_dropout);
    cJSON_AddNumberToObject(j, "activation_dropout", c->activation_dropout);
    cJSON_AddNumberToObject(j, "feat_proj_dropout", c->feat_proj_dropout);
    cJSON_AddNumberToObject(j, "layerdrop", c->layerdrop);
    cJSON_AddNumberToObject(j, "initializer_range", c->init_std);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    return s;
}
