/* wav2vec2.h's configuration half: the base config, HF config.json, and frame counts. */
#include "models/wav2vec2.h"

#include <cjson/cJSON.h>

#include "models/hf_config.h"

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

int w2v_config_from_hf(w2v_config *c, const char *path, char *err, size_t errlen)
{
    /* norms in w2v_extract_norm's order. */
    static const char *const w2v_type[] = {"wav2vec2", NULL}, *const norms[] = {"group", "layer", NULL};
    hf_config *f = hf_config_open(path, err, errlen);
    if (!f)
        return -1;
    w2v_config hf = config_hf_defaults();
    hf_config_choice(f, "model_type", w2v_type, "other models are not this encoder", NULL);

    int n_dim = hf_config_int_list(f, "conv_dim", W2V_MAX_CONV, 1, 1000000, hf.conv_dim);
    int n_kernel = hf_config_int_list(f, "conv_kernel", W2V_MAX_CONV, 1, 1000000, hf.conv_kernel);
    int n_stride = hf_config_int_list(f, "conv_stride", W2V_MAX_CONV, 1, 1000000, hf.conv_stride);
    /* A list left out keeps the default's 7 entries. */
    int len[3] = {n_dim ? n_dim : 7, n_kernel ? n_kernel : 7, n_stride ? n_stride : 7};
    if (len[0] != len[1] || len[0] != len[2])
        hf_config_fail(f, "field 'conv_dim' has %d entries, 'conv_kernel' %d and 'conv_stride' %d; all three must "
                       "be equally long", len[0], len[1], len[2]);
    hf.conv_layers = len[0];
    int64_t n_feat = hf.conv_layers, layers = hf.layers;
    hf_config_int(f, "num_feat_extract_layers", 1, W2V_MAX_CONV, &n_feat);
    if (n_feat != hf.conv_layers)
        hf_config_fail(f, "field 'num_feat_extract_layers' is %lld but 'conv_dim' has %d entries", (long long)n_feat,
                       hf.conv_layers);

    hf_config_int(f, "hidden_size", 1, 1 << 16, &hf.hidden);
    hf_config_int(f, "num_hidden_layers", 1, W2V_MAX_LAYERS, &layers);
    hf.layers = (int)layers;
    hf_config_int(f, "num_attention_heads", 1, 1024, &hf.heads);
    hf_config_int(f, "intermediate_size", 1, 1 << 18, &hf.intermediate);
    hf_config_int(f, "num_conv_pos_embeddings", 1, 4096, &hf.pos_conv_kernel);
    hf_config_int(f, "num_conv_pos_embedding_groups", 1, 1 << 16, &hf.pos_conv_groups);
    hf_config_bool(f, "conv_bias", &hf.conv_bias);
    hf_config_bool(f, "do_stable_layer_norm", &hf.stable_layer_norm);
    hf_config_act(f, "hidden_act", 0, &hf.hidden_act);
    hf_config_act(f, "feat_extract_activation", 0, &hf.extract_act);
    hf_config_num(f, "hidden_dropout", 0, 1, 0, &hf.hidden_dropout);
    hf_config_num(f, "attention_dropout", 0, 1, 0, &hf.attention_dropout);
    hf_config_num(f, "activation_dropout", 0, 1, 0, &hf.activation_dropout);
    hf_config_num(f, "feat_proj_dropout", 0, 1, 0, &hf.feat_proj_dropout);
    hf_config_num(f, "layerdrop", 0, 1, 0, &hf.layerdrop);
    hf_config_num(f, "layer_norm_eps", 0, 1, HF_OPEN_LO | HF_OPEN_HI, &hf.layer_norm_eps);
    hf_config_num(f, "initializer_range", 0, 1, HF_OPEN_LO | HF_OPEN_HI, &hf.init_std);
    int norm = (int)hf.extract_norm, adapter = 0;
    hf_config_choice(f, "feat_extract_norm", norms, NULL, &norm);
    hf.extract_norm = (w2v_extract_norm)norm;
    hf_config_bool(f, "add_adapter", &adapter);
    if (adapter)
        hf_config_fail(f, "field 'add_adapter' is true: the adapter after the encoder is not supported");
    if (hf.hidden % hf.heads)
        hf_config_fail(f, "field 'num_attention_heads' is %lld, which does not divide hidden_size %lld",
                       (long long)hf.heads, (long long)hf.hidden);
    if (hf.hidden % hf.pos_conv_groups)
        hf_config_fail(f, "field 'num_conv_pos_embedding_groups' is %lld, which does not divide hidden_size %lld",
                       (long long)hf.pos_conv_groups, (long long)hf.hidden);
    if (hf_config_close(f))
        return -1;
    *c = hf;
    return 0;
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
    cJSON_AddStringToObject(j, "feat_extract_activation", hf_config_act_name(c->extract_act));
    cJSON_AddNumberToObject(j, "hidden_size", (double)c->hidden);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", (double)c->heads);
    cJSON_AddNumberToObject(j, "intermediate_size", (double)c->intermediate);
    cJSON_AddStringToObject(j, "hidden_act", hf_config_act_name(c->hidden_act));
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
