/* Training configuration: a JSON file, every field optional with a documented default, each
 * overridable on the command line with --set section.field=value. Unknown fields and values out
 * of range are errors naming the field, so a typo never trains silently with a default.
 * The fields, their defaults and meanings: the table in trainer/config.c, printed by
 * `empd train --help`. */
#ifndef EMPD_TRAINER_CONFIG_H
#define EMPD_TRAINER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* model.kind: the skeleton's text + metadata model, or one of the seed's two fusion models. */
enum tr_model_kind { TR_MODEL_TEXT, TR_MODEL_AUDIO, TR_MODEL_VIDEO };

/* train.loss, train.class_weights, train.best_metric / train.stop_metric, train.device. */
enum tr_loss { TR_LOSS_CE, TR_LOSS_FOCAL };
enum tr_class_weights { TR_WEIGHTS_NONE, TR_WEIGHTS_BALANCED };
enum tr_metric { TR_METRIC_ACCURACY, TR_METRIC_MACRO_F1, TR_METRIC_WEIGHTED_F1, TR_METRIC_LOSS };
enum tr_device { TR_DEVICE_CPU, TR_DEVICE_CUDA };
/* "accuracy", "macro_f1", "weighted_f1", "loss". */
const char *tr_metric_name(int64_t metric);

#define TR_MAX_LIST 6

typedef struct {
    struct {
        char shards[1024];
        int64_t loader_threads, prefetch_depth;
    } data;
    struct {
        int64_t kind;                   /* enum tr_model_kind */
        int64_t vocab_size, hidden, layers, heads, intermediate, max_position;
        int64_t utt_tokens, ctx_tokens, meta_dim, avatar_ids, num_classes;
        double dropout, init_std;
        int64_t text_pool;              /* enum mf_text_pool */
        struct {
            char config[1024], weights[1024];
            int64_t freeze_layers;
        } bert;
        struct {
            char config[1024], weights[1024];
            int64_t frozen, norm, conv_dim, hidden, layers, heads, intermediate, pos_kernel, pos_groups;
            double seconds, dropout;
        } audio;
        struct {
            int64_t patch, dim, heads, layers, ffn, attention;
            double dropout;
        } video;
        struct {
            int64_t lstm_hidden, lstm_layers, heads, role_dim, audio_hidden, audio_out, ctx_out, meta_time;
            int64_t meta_hidden, meta_out;
            int64_t ctx[TR_MAX_LIST], n_ctx, head[TR_MAX_LIST], n_head;
        } fusion;
        struct {
            int64_t use_coe, age_dim, gender_dim, timbre_dim, avatar_dim, topic_dim, coe_dim;
        } meta;
    } model;
    struct {
        int64_t batch_size, max_steps, warmup_steps, decay_steps, log_every, eval_every, checkpoint_every;
        int64_t keep_last, threads, seed, drop_last;
        double lr, weight_decay, beta1, beta2, eps;
        int64_t grad_accum, epochs, eval_each_epoch;
        double clip_norm, encoder_lr_scale;
        int64_t loss, class_weights;            /* enum tr_loss, enum tr_class_weights */
        double focal_gamma;
        int64_t best_metric, stop_metric;       /* enum tr_metric */
        int64_t patience;
        double min_delta;
        int64_t overlap;
        double bucket_mb, first_bucket_mb;
        double comm_timeout, checkpoint_timeout;
        int64_t device, bf16;                   /* enum tr_device */
    } train;
    char *json;        /* the effective configuration, canonical JSON (caller frees via tr_config_free) */
    char model_hash[17]; /* hex FNV-1a of the model section: a checkpoint only resumes into the same model */
    char config_hash[17]; /* hex FNV-1a of the whole effective configuration */
} tr_config;

/* path may be NULL (defaults only). sets: "a.b=value" strings; value parsed as JSON when it is
 * JSON (numbers, true/false), else taken as a string. */
int tr_config_load(const char *path, char *const *sets, int n_sets, tr_config *out, char *err, size_t errlen);
void tr_config_free(tr_config *c);
/* Prints every field with its default and meaning. */
void tr_config_print_fields(void *file);

#endif
