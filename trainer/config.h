/* Training configuration: a JSON file, every field optional with a documented default, each
 * overridable on the command line with --set section.field=value. Unknown fields and values out
 * of range are errors naming the field, so a typo never trains silently with a default.
 * The fields, their defaults and meanings: the table in trainer/config.c, printed by
 * `empd train --help`. */
#ifndef EMPD_TRAINER_CONFIG_H
#define EMPD_TRAINER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    struct {
        char shards[1024];
        int64_t loader_threads, prefetch_depth;
    } data;
    struct {
        int64_t vocab_size, hidden, layers, heads, intermediate, max_position;
        int64_t utt_tokens, meta_dim, avatar_ids, num_classes;
        double dropout, init_std;
    } model;
    struct {
        int64_t batch_size, max_steps, warmup_steps, decay_steps, log_every, eval_every, checkpoint_every;
        int64_t keep_last, threads, seed, drop_last;
        double lr, weight_decay, beta1, beta2, eps;
    } train;
    char *json;        /* the effective configuration, canonical JSON (caller frees via tr_config_free) */
    char model_hash[17]; /* hex FNV-1a of the model section: a checkpoint only resumes into the same model */
} tr_config;

/* path may be NULL (defaults only). sets: "a.b=value" strings; value parsed as JSON when it is
 * JSON (numbers, true/false), else taken as a string. */
int tr_config_load(const char *path, char *const *sets, int n_sets, tr_config *out, char *err, size_t errlen);
void tr_config_free(tr_config *c);
/* Prints every field with its default and meaning. */
void tr_config_print_fields(void *file);

#endif
