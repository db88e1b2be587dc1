/* Late fusion of several models' class probabilities (empd fuse, empd predict): the fitting and the
 * application of each method, on plain arrays of doubles. Everything here is deterministic.
 *
 * Inputs are per-sample probability rows p[i * k + c] of k classes; a model's logits are taken as
 * z = log(max(p, TR_FUSE_PMIN)), which is what softmax gives back up to a constant per row.
 *
 * Methods (tr_fuse_method):
 *   average    the plain mean of the models' probabilities (the baseline; nothing fit)
 *   weighted   sum_m w_m softmax(z_m / T_m): each model's temperature T_m fit on the fitting samples by
 *              NLL, then the weights w (w_m >= 0, sum 1) by NLL of the mixture
 *   stacking   multinomial logistic regression over the concatenated z_1..z_M (k*M features), the
 *              objective of scikit-learn's LogisticRegression(C): 0.5*|W|^2 + C * sum_i CE_i, the
 *              intercept unpenalized; C chosen by stratified cross-validation on the fitting samples */
#ifndef EMPD_TRAINER_FUSE_H
#define EMPD_TRAINER_FUSE_H

#include <stddef.h>
#include <stdint.h>

#define TR_FUSE_PMIN 1e-12
#define TR_FUSE_MAX_MODELS 8
/* Bounds of the fitted parameters (the temperature's search range; stacking's coefficients, which a
 * regularized fit on log-probabilities never nears): fusion.json beyond them is refused, and within them
 * every method gives finite probabilities. */
#define TR_FUSE_T_MIN 1e-3
#define TR_FUSE_T_MAX 1e3
#define TR_FUSE_COEF_MAX 1e6

typedef enum { TR_FUSE_AVERAGE, TR_FUSE_WEIGHTED, TR_FUSE_STACKING, TR_FUSE_METHODS } tr_fuse_method;

const char *tr_fuse_method_name(tr_fuse_method m); /* "average", "weighted", "stacking" */

/* A fitted fusion: what fusion.json holds. */
typedef struct {
    int n_models, k;
    double temperature[TR_FUSE_MAX_MODELS];
    double weight[TR_FUSE_MAX_MODELS];
    double C;          /* stacking's regularization */
    int d;             /* stacking's features: k * n_models */
    double *coef;      /* [k * d] row c = class c's weights */
    double *intercept; /* [k] */
} tr_fusion;

/* The samples fusion sees: probs[m] is model m's [n * k] rows, y the labels (0..k-1, all labelled). */
typedef struct {
    int n_models, k;
    size_t n;
    const double *const *probs;
    const int64_t *y;
} tr_fuse_data;

/* The temperature T > 0 minimizing the mean NLL of softmax(z / T) over the samples (z = log p of one
 * model): Newton on 1/T, which the NLL is convex in, kept inside [1e-3, 1e3]. */
double tr_fuse_temperature(const double *probs, const int64_t *y, size_t n, int k);

/* The mixture weights (w >= 0, sum 1) maximizing sum_i log sum_m w_m q[m][i], q[m][i] the probability
 * model m gives sample i's true class (EM's multiplicative update, to a change below 1e-12). */
void tr_fuse_mixture(const double *const *q, int n_models, size_t n, double *w);

/* Fits multinomial logistic regression with scikit-learn's objective (above) by L-BFGS until the
 * gradient's largest element is below gtol times its value at zero (the cross-validation of C uses
 * 1e-6, the final fit 1e-10). x: [n * d], coef [k * d], intercept [k] out. 0, or -1 when out of memory. */
int tr_fuse_logreg(const double *x, const int64_t *y, size_t n, int d, int k, double C, double gtol,
                   double *coef, double *intercept);

/* Stacking's features of sample i: the models' clamped log-probabilities, model after model ([k*M]). */
void tr_fuse_features(const tr_fuse_data *s, size_t i, double *x);

/* Fits method `m` (and everything it needs) on the samples `rows` (NULL: all n) of s, into f (which
 * tr_fuse_free releases). For stacking C comes from `cs` by `folds`-fold stratified cross-validation of
 * the mean NLL (the first C on a tie). 0, or -1 when out of memory. */
int tr_fuse_fit(const tr_fuse_data *s, const size_t *rows, size_t nrows, tr_fuse_method m, const double *cs,
                int ncs, int folds, tr_fusion *f);
void tr_fuse_free(tr_fusion *f);

/* The fused probabilities of one sample, given each model's probability row (p[m] -> k doubles). */
void tr_fuse_apply(const tr_fusion *f, tr_fuse_method m, const double *const *p, double *out);

/* Stratified fold of each sample: the j-th sample of class c (in order) goes to fold (j + c) % folds. */
void tr_fuse_folds(const int64_t *y, size_t n, int k, int folds, int *fold);

#endif
