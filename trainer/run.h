/* One training run's state, shared by the loop (train.c) and its checkpoint glue (run_state.c).
 * Private to trainer/. */
#ifndef EMPD_TRAINER_RUN_H
#define EMPD_TRAINER_RUN_H

#include <stdio.h>

#include "comm/comm.h"
#include "comm/comm_nccl.h"
#include "comm/reducer.h"
#include "dataset/loader.h"
#include "dataset/sampler.h"
#include "trainer/config.h"
#include "trainer/loss.h"
#include "trainer/model.h"
#include "trainer/optim.h"
#include "trainer/progress.h"

typedef struct {
    tr_config cfg;
    comm_group *g;
    int rank, world, threads;
    tc_device dev;               /* where this rank trains (train.device) */
    comm_nccl *nccl;             /* train.device=cuda on several ranks: the gradients' communicator */
    const char *out;
    ds_loader *loader;
    tr_model model;
    tr_adamw opt;
    ds_sampler sampler;          /* the training split's */
    tc_generator *dropout_gen;   /* this rank's */
    tr_loss loss;
    comm_reducer *reducer;       /* averages the trained parameters' gradients across ranks */
    struct tr_grad_slot *slots;  /* what each parameter's gradient hook tells the reducer */
    size_t trained;              /* elements of the trained parameters */
    int64_t step, max_steps;     /* optimizer steps done; train.max_steps capped by train.epochs */
    /* Validation history (checkpointed): the best of train.best_metric, early stopping's state. */
    double best_value, stop_best;
    int64_t best_step, stop_bad, evals;
    int stop_signal;             /* a rank received SIGTERM/SIGUSR1: every rank saves and ends */
    int early_stopped;
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
/* A growing host buffer for tr_run_host_bytes. */
typedef struct {
    void *data;
    size_t cap;
} tr_host_buf;
/* t's bytes in host memory: t's own for a contiguous CPU tensor, else a copy in buf (NULL when it
 * cannot be made). */
const void *tr_run_host_bytes(tc_tensor *t, tr_host_buf *buf);
/* COLLECTIVE. Fails, naming the rank, when any replica's weights differ from rank 0's. */
int tr_run_check_replicas(tr_run *r);
/* COLLECTIVE. Rank 0 writes the checkpoint of r->step; every rank learns whether it worked. */
int tr_run_save(tr_run *r);
/* COLLECTIVE. how: NULL (a fresh run), "auto" or a checkpoint folder. Rank 0 picks the folder,
 * every rank loads it; then rank 0 opens the run folder (tr_rundir_open). */
int tr_run_start(tr_run *r, const char *how);
/* COLLECTIVE. The training loop (trainer/loop.c), from r->step to r->max_steps, an early stop or a
 * stop signal; validations, checkpoints, and at the end the exports. */
int tr_run_train(tr_run *r);
/* Rank 0's final weights (RUNDIR/model.safetensors, the encoders as HF folders in RUNDIR/hf/); every
 * rank's too with --save-all-ranks (trainer/export.c). */
int tr_run_export(tr_run *r);
/* One line on rank 0 naming what is being trained (trainer/loop.c). */
void tr_run_describe(tr_run *r);
/* Whether rank 0 draws a progress bar: a person watching its terminal (trainer/train.c). */
int tr_run_show_progress(const tr_run *r);

#endif
