/* The run folder (--out): config.json, metrics.jsonl, checkpoints/, model.safetensors.
 * A fresh run refuses a folder that already holds a run, so two runs never mix their logs and
 * checkpoints. A resumed run continues the folder as the uninterrupted run would have: events
 * of metrics.jsonl past the checkpoint's step (written after it, then lost to the stop) are
 * dropped, and a checkpoint newer than the one resumed from is refused rather than overwritten. */
#ifndef EMPD_TRAINER_RUNDIR_H
#define EMPD_TRAINER_RUNDIR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Rank 0 only. resume_step < 0: a fresh run; else the run continues from the checkpoint folder
 * resumed_from (NULL: none was found, the run starts over). A checkpoint of another run folder
 * starts a new run here, so this folder must not hold one. Creates dir (and parents), writes
 * config_json to dir/config.json, and returns metrics.jsonl open for appending in *metrics. */
int tr_rundir_open(const char *dir, int64_t resume_step, const char *resumed_from, const char *config_json,
                   FILE **metrics, char *err, size_t errlen);

#endif
