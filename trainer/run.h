/* One training run's state, shared by the loop (train.c) and its checkpoint glue (run_state.c).
 * Private to trainer/. */
#ifndef EMPD_TRAINER_RUN_H
#define EMPD_TRAINER_RUN_H

#include <stdio.h>

#include "comm/comm.h"
#include "dataset/loader.h"
#include "dataset/sampler.h"
#include "trainer/config.h"
#include "trainer/model.h"
#include "trainer/optim.h"
#include "trainer/progress.h"

typedef struct {
    tr_config cfg;
    comm_group *g;
    int rank, world, threads;
    const char *out;
    ds_loader *loader;
    tr_model model;
    tr_adamw opt;
    ds_sampler sampler;          /* the training split's */
    tc_generator *dropout_gen;   /* this rank's */
    float *flat;                 /* packed gradients for the all-reduce */
    size_t flat_n;
    int64_t step, best_step;     /* optimizer steps done; the best validation so far */
    double best_acc;
    FILE *metrics;               /* rank 0 */
    int quiet, save_all_ranks;
    int agreed;                  /* every rank knows the run failed: exit without MPI_Abort */
    int all_failed;              /* ... and every rank failed (the message is not one rank's) */
    tr_progress bar;             /* training steps, on rank 0's terminal */
    char err[1024];
} tr_run;

/* COLLECTIVE. 0 when local_rc is 0 on every rank. Otherwise -1 on every rank, with r->agreed
 * set; r->err keeps a message only where it should be printed: on the ranks that failed, or
 * on rank 0 alone when all did (then they most likely share the cause). */
int tr_run_agree(tr_run *r, int local_rc);
/* One log line on rank 0 (erasing the progress bar first); nothing under --quiet. */
void tr_run_say(tr_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A new dropout stream for this rank (seed, rank and the step it starts at). */
tc_generator *tr_run_dropout_gen(const tr_run *r, int64_t step);
/* COLLECTIVE. Fails, naming the rank, when any replica's weights differ from rank 0's. */
int tr_run_check_replicas(tr_run *r);
/* COLLECTIVE. Rank 0 writes the checkpoint of r->step; every rank learns whether it worked. */
int tr_run_save(tr_run *r);
/* COLLECTIVE. how: NULL (a fresh run), "auto" or a checkpoint folder. Rank 0 picks the folder,
 * every rank loads it; then rank 0 opens the run folder (tr_rundir_open). */
int tr_run_start(tr_run *r, const char *how);

#endif
