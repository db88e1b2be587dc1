/* Checkpoints: RUNDIR/checkpoints/step-NNNNNNNN/ holding
 *   model.safetensors   parameters by name (HF names for the encoder)
 *   optim.safetensors   AdamW moments ("exp_avg.<name>", "exp_avg_sq.<name>")
 *   state.json          step, sampler position, world size, model hash, data identity, per-rank RNG
 *                       states, config, and the size and CRC32 of both tensor files
 *   COMPLETE            the marker: a checkpoint counts only once it exists
 * The folder is written as step-NNNNNNNN.tmp, every file fsync'd, renamed into place, the parent
 * fsync'd, then the marker is written the same way. A crash at any point leaves either a complete
 * checkpoint or one without marker, which resume ignores and the next save removes. Loading
 * checks each tensor file's size and CRC32 first, so a damaged checkpoint is refused by name. */
#ifndef EMPD_TRAINER_CHECKPOINT_H
#define EMPD_TRAINER_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "models/params.h"
#include "trainer/optim.h"

typedef struct {
    int64_t step;                 /* optimizer steps done */
    uint64_t sampler_epoch, sampler_consumed;
    int world_size;
    int threads;                  /* torch threads per rank: bit-exact resume needs the same */
    char model_hash[17];
    int64_t seed;                 /* train.seed: the sampler's order follows it */
    int64_t train_samples;        /* the data trained on: a resume on other shards is refused */
    char data_hash[17];           /* the training split's ids in order, tokenizer and token limits */
    int n_rng;                    /* one dropout generator state per rank */
    char **rng_hex;
    double best_val_acc;
    int64_t best_step;
} tr_ckpt_state;

/* Rank 0 only. Writes the checkpoint of st->step and keeps the newest keep_last complete ones. */
int tr_ckpt_save(const char *run_dir, const tr_ckpt_state *st, const mp_params *ps, const tr_adamw *o,
                 const char *config_json, int keep_last, char *err, size_t errlen);
/* The newest complete checkpoint folder of run_dir into out: 1 found, 0 none, -1 error. */
int tr_ckpt_find_latest(const char *run_dir, char *out, size_t outlen, char *err, size_t errlen);
/* Loads dir into the parameters, the moments and st (every rank may call it). A checkpoint of
 * another model (model_hash differs; NULL skips the check), a state.json that disagrees with its
 * folder's step, a damaged file, a missing, extra or misshapen tensor is an error naming it;
 * nothing is loaded past the first error. */
int tr_ckpt_load(const char *dir, const char *model_hash, tr_ckpt_state *st, mp_params *ps, tr_adamw *o, char *err,
                 size_t errlen);
void tr_ckpt_state_free(tr_ckpt_state *st);

/* Writes data to path atomically (temp, fsync, rename, directory fsync). */
int tr_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

#endif
