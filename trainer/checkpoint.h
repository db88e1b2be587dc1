/* Checkpoints: RUNDIR/checkpoints/step-NNNNNNNN/ holding
 *   model.safetensors   parameters by name (HF names for the encoder)
 *   optim.safetensors   AdamW moments ("exp_avg.<name>", "exp_avg_sq.<name>")
 *   state.json          everything else a run needs to continue exactly (tr_ckpt_state below): step,
 *                       sampler position, world size, model / config / data identity, every rank's
 *                       dropout generator, the best validation so far, early-stopping state, the
 *                       configuration, and the size and CRC32 of both tensor files
 *   COMPLETE            the marker: a checkpoint counts only once it exists
 * The learning-rate schedule is a function of the step, so the step is its whole state.
 * tr_ckpt_write writes the folder as step-NNNNNNNN.tmp, every file fsync'd, renames it into place and
 * fsyncs the parent; the caller then agrees with every rank that the save worked and calls
 * tr_ckpt_mark_complete, which writes the marker the same way and prunes old checkpoints. A crash at
 * any point leaves either a complete checkpoint or one without marker, which resume ignores and the
 * next save removes. Loading checks each tensor file's size and CRC32 first, so a damaged checkpoint
 * is refused by name. */
#ifndef EMPD_TRAINER_CHECKPOINT_H
#define EMPD_TRAINER_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "models/params.h"
#include "trainer/optim.h"

#define TR_CKPT_VERSION 2

/* The two tensor files of a checkpoint, in state.json's "files" order. */
extern const char *const tr_ckpt_tensor_files[2];

typedef struct {
    int64_t step;                 /* optimizer steps done */
    uint64_t sampler_epoch, sampler_consumed;
    int world_size;
    int threads;                  /* torch threads per rank: bit-exact resume needs the same */
    char model_hash[17];
    char config_hash[17];         /* of the whole configuration (a resume may change train.*: logged) */
    int64_t seed;                 /* train.seed: the sampler's order follows it */
    int64_t train_samples;        /* the data trained on: a resume on other shards is refused */
    char data_hash[17];           /* the training split's ids in order, tokenizer and token limits */
    int n_rng;                    /* one dropout generator state per rank, hex */
    char **rng_hex;
    char best_metric[16];         /* train.best_metric's name */
    double best_value;            /* its best validation value so far (valid when best_step > 0) */
    int64_t best_step;            /* the step of that validation (0: none yet) */
    double stop_best;             /* early stopping: the best value of train.stop_metric so far */
    int64_t stop_bad;             /* validations since it last improved */
    int64_t evals;                /* validations done */
    struct {
        uint32_t crc;
        int64_t bytes;
    } files[2];                   /* filled by tr_ckpt_write and tr_ckpt_load */
} tr_ckpt_state;

/* Rank 0 only. Writes the checkpoint folder of st->step (without its marker); st->files receives
 * the tensor files' sums. */
int tr_ckpt_write(const char *run_dir, tr_ckpt_state *st, const mp_params *ps, const tr_adamw *o,
                  const char *config_json, char *err, size_t errlen);
/* Rank 0 only, after every rank agreed the write worked. Writes step's COMPLETE marker, then
 * removes complete checkpoints beyond the newest keep_last, except the one of keep_step (the best;
 * 0: none), and any incomplete one. */
int tr_ckpt_mark_complete(const char *run_dir, int64_t step, int keep_last, int64_t keep_step, char *err,
                          size_t errlen);
/* The newest complete checkpoint folder of run_dir into out: 1 found, 0 none, -1 error. */
int tr_ckpt_find_latest(const char *run_dir, char *out, size_t outlen, char *err, size_t errlen);
/* The complete checkpoint folder of `step` in run_dir into out: 1 found, 0 none. */
int tr_ckpt_find_step(const char *run_dir, int64_t step, char *out, size_t outlen);
/* Loads dir into the parameters, the moments (o may be NULL: parameters only) and st (every rank may
 * call it). A checkpoint of another model (model_hash differs; NULL skips the check), a state.json that
 * disagrees with its folder's step, a damaged file, a missing, extra or misshapen tensor is an error
 * naming it; nothing is loaded past the first error. */
int tr_ckpt_load(const char *dir, const char *model_hash, tr_ckpt_state *st, mp_params *ps, tr_adamw *o, char *err,
                 size_t errlen);

/* state.json (trainer/ckpt_state.c). to_json: canonical JSON text (caller frees), config_json embedded
 * when not NULL; NULL when out of memory. parse: 0, or -1 with one line naming `what` (the file) and
 * the first missing or malformed field; st then needs no free. */
char *tr_ckpt_state_to_json(const tr_ckpt_state *st, const char *config_json);
int tr_ckpt_state_parse(const char *text, size_t len, const char *what, tr_ckpt_state *st, char *err, size_t errlen);
void tr_ckpt_state_free(tr_ckpt_state *st);

/* Writes data to path atomically (temp, fsync, rename, directory fsync). */
int tr_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

#endif
