/* Evaluation of a split across the ranks, and the per-sample probabilities late fusion reads.
 *
 * tr_evaluate: the sampler gives each rank its slices of the split in order (no shuffling); the last global
 * batch is padded by wrapping around, and the padding rows are never scored. Each rank scores its samples
 * into a tr_eval_acc; tr_eval_acc_finish sums the confusion matrices and loss sums of all ranks and, when
 * asked, gathers every sample's probabilities, placed by the sample's index in the split (the loader's
 * sample_index, which the shard reader checked against the record), so each sample appears exactly once
 * whatever the world size, and every rank returns the same tr_eval. */
#ifndef EMPD_TRAINER_EVALUATE_H
#define EMPD_TRAINER_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "dataset/loader.h"
#include "trainer/config.h"
#include "trainer/metrics.h"
#include "trainer/model.h"

typedef struct {
    tr_metrics metrics;  /* over the labelled samples */
    double loss;         /* mean cross-entropy over them: the sum over samples / their count (0 if none) */
    /* With samples asked for: every sample of the split once, in the split's order, on every rank. */
    int64_t n;
    int n_classes;
    int64_t *label;      /* [n] the true class, -1 when unlabelled */
    int *pred;           /* [n] the predicted class (the largest logit, the first on a tie) */
    double *probs;       /* [n * n_classes] softmax probabilities, computed in double from the logits */
} tr_eval;

/* COLLECTIVE: every rank calls it with the same split and arguments. show_progress draws a bar (rank 0,
 * tty). samples: also return every sample's label, prediction and probabilities. On failure every rank
 * returns -1 (a rank whose own step failed says why in err; the others name "another rank") and *out
 * holds nothing to free. */
int tr_evaluate(comm_group *g, ds_loader *l, tr_model *m, const tr_config *cfg, const char *split,
                int show_progress, int samples, tr_eval *out, char *err, size_t errlen);
void tr_eval_free(tr_eval *e);

/* The parts of tr_evaluate, for logits computed by any means (and for the tests). */
typedef struct {
    int n_classes;
    int64_t confusion[TR_MAX_CLASSES * TR_MAX_CLASSES];
    double loss_sum;     /* cross-entropy summed over the labelled samples */
    double labelled;     /* their count (a double: it is all-reduced beside loss_sum) */
    double *rows;        /* with samples kept: per sample (index, label, pred, p_0 .. p_K-1) */
    size_t cap, used;    /* rows allocated and filled */
} tr_eval_acc;

/* keep: rows to allocate for per-sample results (0: metrics only). -1 with one line when out of memory
 * or n_classes is outside 2..TR_MAX_CLASSES; *a is then safe to free. */
int tr_eval_acc_init(tr_eval_acc *a, int n_classes, size_t keep, char *err, size_t errlen);
void tr_eval_acc_free(tr_eval_acc *a);
/* Scores `rows` samples: logits [rows, n_classes] (row-major), labels (negative: unlabelled, counted
 * nowhere but in the rows kept, as -1), index: each sample's position in the split. -1 with one line
 * for a label >= n_classes or more rows than were allocated. */
int tr_eval_acc_add(tr_eval_acc *a, const float *logits, const int64_t *labels, const int64_t *index, size_t rows,
                    char *err, size_t errlen);
/* COLLECTIVE. Sums every rank's a into out->metrics and out->loss; with rows kept (a->cap > 0 on every
 * rank, or on none), gathers them into out's per-sample arrays for a split of n samples, failing when a
 * sample is missing, outside 0..n-1 or given twice. failed: this rank's own step failed (err already says
 * why); the ranks still meet here so that none waits alone, and all of them return -1. */
int tr_eval_acc_finish(comm_group *g, tr_eval_acc *a, int failed, size_t n, tr_eval *out, char *err,
                       size_t errlen);

#endif
