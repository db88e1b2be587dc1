#include "models/text_model.h"

#include <stdio.h>

int tm_model_init(tm_model *m, const tm_config *cfg, uint64_t seed)
{
    if (cfg->meta_fields < 0 || cfg->meta_fields > TM_MAX_META || cfg->num_classes < 2)
        return TC_EINVAL;
    m->cfg = *cfg;
    int rc = mp_params_init(&m->params, seed);
    if (rc != TC_OK)
        return rc;
    rc = bert_init(&m->bert, &m->params, "bert", &cfg->bert);
    for (int i = 0; rc == TC_OK && i < cfg->meta_fields; i++) {
        char name[64];
        snprintf(name, sizeof name, "meta.%d", i);
        rc = ml_embedding_init(&m->meta[i], &m->params, name, cfg->meta_sizes[i], cfg->meta_dim, cfg->bert.init_std);
    }
    if (rc == TC_OK)
        rc = ml_linear_init(&m->head, &m->params, "head", cfg->bert.hidden + cfg->meta_fields * cfg->meta_dim,
                            cfg->num_classes, 1, cfg->bert.init_std);
    if (rc != TC_OK)
        mp_params_free(&m->params);
    return rc;
}

void tm_model_free(tm_model *m) { mp_params_free(&m->params); }

tc_tensor *tm_model_forward(tm_model *m, const tm_inputs *in, int training, tc_generator *gen)
{
    const tm_config *c = &m->cfg;
    int64_t b = tc_size(in->utt_tokens, 0), u = tc_size(in->utt_tokens, 1), l = tc_size(in->utt_tokens, 2);
    tc_tensor *ids = tc_reshape(in->utt_tokens, (int64_t[]){b * u, l}, 2);
    tc_tensor *mask = tc_reshape(in->utt_mask, (int64_t[]){b * u, l}, 2);
    /* Each utterance is the mean of its tokens' last hidden states: every token reaches the
     * classifier directly, which a small encoder trained from scratch learns from far sooner than
     * from [CLS] alone. */
    tc_tensor *hidden = bert_forward(&m->bert, ids, mask, training, gen);
    tc_tensor *tokens = tc_clamp(tc_sum(mask, 1, 1), 1.0, 1e9);
    tc_tensor *utt = tc_div(tc_sum(tc_mul(hidden, tc_unsqueeze(mask, 2)), 1, 0), tokens);
    tc_tensor *pooled = tc_reshape(utt, (int64_t[]){b, u, c->bert.hidden}, 3);
    /* Mean over valid utterances; a sample with none keeps a zero text vector. */
    tc_tensor *valid = tc_unsqueeze(in->utt_valid, 2);
    tc_tensor *count = tc_clamp(tc_sum(in->utt_valid, 1, 1), 1.0, 1e9);
    tc_tensor *text = tc_div(tc_sum(tc_mul(pooled, valid), 1, 0), count);

    tc_tensor *parts[1 + TM_MAX_META];
    parts[0] = text;
    for (int i = 0; i < c->meta_fields; i++) {
        tc_tensor *ids_i = tc_select(in->meta, 1, i);
        tc_tensor *negative = tc_gt_scalar(tc_neg(ids_i), 0.0);
        tc_tensor *too_big = tc_gt_scalar(ids_i, (double)(c->meta_sizes[i] - 1));
        ids_i = tc_masked_fill(tc_masked_fill(ids_i, negative, 0), too_big, 0);
        parts[1 + i] = ml_embedding_forward(&m->meta[i], ids_i);
    }
    tc_tensor *features = tc_dropout(tc_cat(parts, 1 + c->meta_fields, 1), c->dropout, training, gen);
    return ml_linear_forward(&m->head, features);
}
