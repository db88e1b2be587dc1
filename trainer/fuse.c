/* Late fusion: temperature scaling, mixture weights, stacking by logistic regression (see fuse.h). */
#include "trainer/fuse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *tr_fuse_method_name(tr_fuse_method m)
{
    static const char *const names[] = {"average", "weighted", "stacking"};
    return m >= 0 && m < TR_FUSE_METHODS ? names[m] : "?";
}

static double logit_of(double p) { return log(p > TR_FUSE_PMIN ? p : TR_FUSE_PMIN); }

/* out = softmax(scale * z) over k, z = log-probabilities of p; returns log-sum-exp of scale * z. */
static double softmax_scaled(const double *p, int k, double scale, double *out)
{
    double mx = -INFINITY;
    for (int c = 0; c < k; c++) {
        out[c] = scale * logit_of(p[c]);
        mx = out[c] > mx ? out[c] : mx;
    }
    double sum = 0;
    for (int c = 0; c < k; c++)
        sum += out[c] = exp(out[c] - mx);
    for (int c = 0; c < k; c++)
        out[c] /= sum;
    return mx + log(sum);
}

/* Mean over the samples of d/dbeta and d2/dbeta2 of the NLL of softmax(beta * z). */
static void temperature_derivs(const double *probs, const int64_t *y, size_t n, int k, double beta, double *d1,
                               double *d2)
{
    double q[64], s1 = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        const double *p = probs + i * (size_t)k;
        softmax_scaled(p, k, beta, q);
        double mean = 0, sq = 0;
        for (int c = 0; c < k; c++) {
            double z = logit_of(p[c]);
            mean += q[c] * z;
            sq += q[c] * z * z;
        }
        s1 += mean - logit_of(p[y[i]]);
        s2 += sq - mean * mean;
    }
    *d1 = n ? s1 / (double)n : 0;
    *d2 = n ? s2 / (double)n : 0;
}

double tr_fuse_temperature(const double *probs, const int64_t *y, size_t n, int k)
{
    double lo = 1 / TR_FUSE_T_MAX, hi = 1 / TR_FUSE_T_MIN, d1, d2;
    temperature_derivs(probs, y, n, k, lo, &d1, &d2);
    if (d1 >= 0)
        return TR_FUSE_T_MAX;
    temperature_derivs(probs, y, n, k, hi, &d1, &d2);
    if (d1 <= 0)
        return TR_FUSE_T_MIN;
    double beta = 1;
    for (int it = 0; it < 200; it++) {
        temperature_derivs(probs, y, n, k, beta, &d1, &d2);
        if (d1 == 0)
            break;
        if (d1 > 0)
            hi = beta;
        else
            lo = beta;
        double next = d2 > 0 ? beta - d1 / d2 : -1;
        if (!(next > lo && next < hi))
            next = sqrt(lo * hi); /* Newton left the bracket: bisect it (in log scale) */
        if (fabs(next - beta) <= 1e-15 * beta)
            break;
        beta = next;
    }
    return 1 / beta;
}

void tr_fuse_mixture(const double *const *q, int n_models, size_t n, double *w)
{
    for (int m = 0; m < n_models; m++)
        w[m] = 1.0 / n_models;
    if (n == 0 || n_models < 2)
        return;
    double next[TR_FUSE_MAX_MODELS];
    for (int it = 0; it < 100000; it++) {
        memset(next, 0, sizeof next);
        for (size_t i = 0; i < n; i++) {
            double r = 0;
            for (int m = 0; m < n_models; m++)
                r += w[m] * q[m][i];
            for (int m = 0; m < n_models; m++)
                next[m] += w[m] * q[m][i] / r;
        }
        double change = 0, sum = 0;
        for (int m = 0; m < n_models; m++)
            sum += next[m] /= (double)n;
        for (int m = 0; m < n_models; m++) {
            next[m] /= sum;
            change = fmax(change, fabs(next[m] - w[m]));
            w[m] = next[m];
        }
        if (change < 1e-12)
            break;
    }
}

/* ---- Logistic regression ---------------------------------------------------------------------------- */

typedef struct {
    const double *x;
    const int64_t *y;
    size_t n;
    int d, k;
    double C;
    double *s; /* [k] scratch */
} lr_problem;

/* theta = [coef k*d, intercept k]; returns the objective, g its gradient. */
static double lr_eval(const lr_problem *P, const double *theta, double *g)
{
    const int d = P->d, k = P->k;
    const size_t np = (size_t)k * (size_t)(d + 1);
    const double *W = theta, *b = theta + (size_t)k * d;
    double f = 0;
    for (size_t j = 0; j < (size_t)k * d; j++) {
        f += 0.5 * W[j] * W[j];
        g[j] = W[j];
    }
    for (size_t j = (size_t)k * d; j < np; j++)
        g[j] = 0;
    double *gb = g + (size_t)k * d;
    for (size_t i = 0; i < P->n; i++) {
        const double *x = P->x + i * (size_t)d;
        double mx = -INFINITY;
        for (int c = 0; c < k; c++) {
            double s = b[c];
            for (int j = 0; j < d; j++)
                s += W[(size_t)c * d + j] * x[j];
            P->s[c] = s;
            mx = s > mx ? s : mx;
        }
        double sum = 0;
        for (int c = 0; c < k; c++)
            sum += exp(P->s[c] - mx);
        const double lse = mx + log(sum);
        f += P->C * (lse - P->s[P->y[i]]);
        for (int c = 0; c < k; c++) {
            double r = P->C * (exp(P->s[c] - lse) - (c == P->y[i]));
            for (int j = 0; j < d; j++)
                g[(size_t)c * d + j] += r * x[j];
            gb[c] += r;
        }
    }
    return f;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double norm_inf(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

#define LBFGS_M 10

static int lbfgs_logreg(const double *x, const int64_t *y, size_t n, int d, int k, double C, double gtol_rel,
                        double *coef, double *intercept)
{
    const size_t np = (size_t)k * (size_t)(d + 1);
    double *mem = calloc(np * (5 + 2 * LBFGS_M) + (size_t)k, sizeof *mem);
    if (!mem)
        return -1;
    double *theta = mem, *g = theta + np, *dir = g + np, *t2 = dir + np, *g2 = t2 + np;
    double *S = g2 + np, *Y = S + np * LBFGS_M, *scratch = Y + np * LBFGS_M;
    double rho[LBFGS_M], alpha[LBFGS_M];
    lr_problem P = {x, y, n, d, k, C, scratch};
    double f = lr_eval(&P, theta, g);
    const double gtol = gtol_rel * fmax(1.0, norm_inf(g, np));
    int stored = 0, head = 0;
    for (int it = 0; it < 5000 && norm_inf(g, np) > gtol; it++) {
        /* Two-loop recursion: dir = -H g. */
        for (size_t j = 0; j < np; j++)
            dir[j] = -g[j];
        for (int m = 0; m < stored; m++) {
            int s = (head - 1 - m + LBFGS_M) % LBFGS_M;
            alpha[s] = rho[s] * dot(S + s * np, dir, np);
            for (size_t j = 0; j < np; j++)
                dir[j] -= alpha[s] * Y[s * np + j];
        }
        double gamma = 1;
        if (stored) {
            int s = (head - 1 + LBFGS_M) % LBFGS_M;
            gamma = dot(S + s * np, Y + s * np, np) / dot(Y + s * np, Y + s * np, np);
        } else {
            gamma = 1 / fmax(1.0, norm_inf(g, np));
        }
        for (size_t j = 0; j < np; j++)
            dir[j] *= gamma;
        for (int m = stored - 1; m >= 0; m--) {
            int s = (head - 1 - m + LBFGS_M) % LBFGS_M;
            double beta = rho[s] * dot(Y + s * np, dir, np);
            for (size_t j = 0; j < np; j++)
                dir[j] += (alpha[s] - beta) * S[s * np + j];
        }
        double slope = dot(g, dir, np);
        if (slope >= 0) { /* not a descent direction: restart from the gradient */
            stored = 0;
            for (size_t j = 0; j < np; j++)
                dir[j] = -g[j] / fmax(1.0, norm_inf(g, np));
            slope = dot(g, dir, np);
        }
        /* Backtracking (Armijo). */
        double step = 1, f2 = f;
        int moved = 0;
        for (int ls = 0; ls < 60; ls++, step *= 0.5) {
            for (size_t j = 0; j < np; j++)
                t2[j] = theta[j] + step * dir[j];
            f2 = lr_eval(&P, t2, g2);
            if (f2 <= f + 1e-4 * step * slope) {
                moved = 1;
                break;
            }
        }
        if (!moved)
            break; /* no decrease left at double precision */
        double *s = S + head * np, *yv = Y + head * np;
        for (size_t j = 0; j < np; j++) {
            s[j] = t2[j] - theta[j];
            yv[j] = g2[j] - g[j];
        }
        double sy = dot(s, yv, np);
        if (sy > 1e-300) {
            rho[head] = 1 / sy;
            head = (head + 1) % LBFGS_M;
            stored = stored < LBFGS_M ? stored + 1 : LBFGS_M;
        }
        memcpy(theta, t2, np * sizeof *theta);
        memcpy(g, g2, np * sizeof *g);
        double df = f - f2;
        f = f2;
        if (df <= 1e-16 * fmax(1.0, fabs(f)) && norm_inf(g, np) <= 1e3 * gtol)
            break;
    }
    memcpy(coef, theta, (size_t)k * d * sizeof *coef);
    memcpy(intercept, theta + (size_t)k * d, (size_t)k * sizeof *intercept);
    free(mem);
    return 0;
}

/* The features centered: only the (unpenalized) intercept changes, by -coef . mean, so the optimum is
 * the same, and the problem far better conditioned (log-probabilities sit around -2 to -27, which an
 * intercept would otherwise have to fight through every coefficient; measured: 4x fewer iterations). */
int tr_fuse_logreg(const double *x, const int64_t *y, size_t n, int d, int k, double C, double gtol_rel,
                   double *coef, double *intercept)
{
    double *xc = malloc((n * (size_t)d + 1) * sizeof *xc), *mean = calloc((size_t)d + 1, sizeof *mean);
    int rc = xc && mean ? 0 : -1;
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                mean[j] += x[i * d + j] / (double)n;
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                xc[i * d + j] = x[i * d + j] - mean[j];
        rc = lbfgs_logreg(xc, y, n, d, k, C, gtol_rel, coef, intercept);
    }
    for (int c = 0; c < k && !rc; c++)
        for (int j = 0; j < d; j++)
            intercept[c] -= coef[(size_t)c * d + j] * mean[j];
    free(xc);
    free(mean);
    return rc;
}

/* ---- Methods ------------------------------------------------------------------------------------- */

void tr_fuse_features(const tr_fuse_data *s, size_t i, double *x)
{
    for (int m = 0; m < s->n_models; m++)
        for (int c = 0; c < s->k; c++)
            x[m * s->k + c] = logit_of(s->probs[m][i * (size_t)s->k + c]);
}

void tr_fuse_folds(const int64_t *y, size_t n, int k, int folds, int *fold)
{
    size_t seen[64] = {0};
    for (size_t i = 0; i < n; i++) {
        int c = (int)y[i];
        fold[i] = (int)((seen[c]++ + (size_t)c) % (size_t)folds);
    }
    (void)k;
}

static void softmax_rows(const double *coef, const double *intercept, const double *x, int d, int k, double *out)
{
    double mx = -INFINITY;
    for (int c = 0; c < k; c++) {
        double s = intercept[c];
        for (int j = 0; j < d; j++)
            s += coef[(size_t)c * d + j] * x[j];
        out[c] = s;
        mx = s > mx ? s : mx;
    }
    double sum = 0;
    for (int c = 0; c < k; c++)
        sum += out[c] = exp(out[c] - mx);
    for (int c = 0; c < k; c++)
        out[c] /= sum;
}

/* Mean held-out NLL of stacking with regularization C, over `folds` stratified folds of the rows. */
static int stacking_cv(const double *x, const int64_t *y, size_t n, int d, int k, double C, int folds,
                       const int *fold, double *nll)
{
    double *xt = malloc(n * (size_t)d * sizeof *xt);
    int64_t *yt = malloc(n * sizeof *yt);
    double *coef = malloc((size_t)k * d * sizeof *coef), *b = malloc((size_t)k * sizeof *b);
    double p[64];
    int rc = xt && yt && coef && b ? 0 : -1;
    double sum = 0;
    for (int f = 0; f < folds && !rc; f++) {
        size_t nt = 0;
        for (size_t i = 0; i < n; i++)
            if (fold[i] != f) {
                memcpy(xt + nt * d, x + i * d, (size_t)d * sizeof *xt);
                yt[nt++] = y[i];
            }
        if (nt == n) /* an empty fold: nothing to hold out */
            continue;
        rc = tr_fuse_logreg(xt, yt, nt, d, k, C, 1e-6, coef, b);
        for (size_t i = 0; i < n && !rc; i++)
            if (fold[i] == f) {
                softmax_rows(coef, b, x + i * d, d, k, p);
                sum -= log(fmax(p[y[i]], 1e-300));
            }
    }
    *nll = n ? sum / (double)n : 0;
    free(xt);
    free(yt);
    free(coef);
    free(b);
    return rc;
}

int tr_fuse_fit(const tr_fuse_data *s, const size_t *rows, size_t nrows, tr_fuse_method m, const double *cs,
                int ncs, int folds, tr_fusion *f)
{
    const int k = s->k, M = s->n_models;
    memset(f, 0, sizeof *f);
    f->n_models = M;
    f->k = k;
    f->d = k * M;
    for (int j = 0; j < M; j++) {
        f->temperature[j] = 1;
        f->weight[j] = 1.0 / M;
    }
    if (!rows)
        nrows = s->n;
    if (m == TR_FUSE_AVERAGE)
        return 0;
    int rc = 0;
    const int d = f->d;
    double *x = malloc(nrows * (size_t)(m == TR_FUSE_STACKING ? d : k * M) * sizeof *x);
    int64_t *y = malloc(nrows * sizeof *y);
    int *fold = malloc(nrows * sizeof *fold);
    if (!x || !y || !fold) {
        rc = -1;
        goto out;
    }
    for (size_t r = 0; r < nrows; r++)
        y[r] = s->y[rows ? rows[r] : r];
    if (m == TR_FUSE_WEIGHTED) {
        /* x: model j's rows, then the calibrated true-class probabilities q[j]. */
        double *q[TR_FUSE_MAX_MODELS], tmp[64];
        for (int j = 0; j < M; j++) {
            double *pj = x + (size_t)j * nrows * (size_t)k;
            for (size_t r = 0; r < nrows; r++)
                memcpy(pj + r * k, s->probs[j] + (rows ? rows[r] : r) * (size_t)k, (size_t)k * sizeof *pj);
            f->temperature[j] = tr_fuse_temperature(pj, y, nrows, k);
        }
        double *qbuf = malloc((size_t)M * nrows * sizeof *qbuf);
        if (!qbuf) {
            rc = -1;
            goto out;
        }
        for (int j = 0; j < M; j++) {
            q[j] = qbuf + (size_t)j * nrows;
            const double *pj = x + (size_t)j * nrows * (size_t)k;
            for (size_t r = 0; r < nrows; r++) {
                softmax_scaled(pj + r * k, k, 1 / f->temperature[j], tmp);
                q[j][r] = fmax(tmp[y[r]], 1e-300);
            }
        }
        tr_fuse_mixture((const double *const *)q, M, nrows, f->weight);
        free(qbuf);
        goto out;
    }
    /* Stacking. */
    for (size_t r = 0; r < nrows; r++)
        tr_fuse_features(s, rows ? rows[r] : r, x + r * d);
    f->coef = calloc((size_t)k * d, sizeof *f->coef);
    f->intercept = calloc((size_t)k, sizeof *f->intercept);
    if (!f->coef || !f->intercept) {
        rc = -1;
        goto out;
    }
    tr_fuse_folds(y, nrows, k, folds, fold);
    double best = INFINITY;
    f->C = cs[0];
    for (int c = 0; c < ncs && !rc; c++) {
        double nll;
        rc = stacking_cv(x, y, nrows, d, k, cs[c], folds, fold, &nll);
        if (!rc && nll < best) {
            best = nll;
            f->C = cs[c];
        }
    }
    if (!rc)
        rc = tr_fuse_logreg(x, y, nrows, d, k, f->C, 1e-10, f->coef, f->intercept);
out:
    free(x);
    free(y);
    free(fold);
    if (rc)
        tr_fuse_free(f);
    return rc;
}

void tr_fuse_free(tr_fusion *f)
{
    free(f->coef);
    free(f->intercept);
    f->coef = f->intercept = NULL;
}

void tr_fuse_apply(const tr_fusion *f, tr_fuse_method m, const double *const *p, double *out)
{
    const int k = f->k;
    double tmp[64], x[64 * TR_FUSE_MAX_MODELS];
    switch (m) {
    case TR_FUSE_STACKING:
        for (int j = 0; j < f->n_models; j++)
            for (int c = 0; c < k; c++)
                x[j * k + c] = logit_of(p[j][c]);
        softmax_rows(f->coef, f->intercept, x, f->d, k, out);
        return;
    case TR_FUSE_WEIGHTED:
    case TR_FUSE_AVERAGE:
    default:
        for (int c = 0; c < k; c++)
            out[c] = 0;
        for (int j = 0; j < f->n_models; j++) {
            if (m == TR_FUSE_WEIGHTED)
                softmax_scaled(p[j], k, 1 / f->temperature[j], tmp);
            else
                memcpy(tmp, p[j], (size_t)k * sizeof *tmp);
            double w = m == TR_FUSE_WEIGHTED ? f->weight[j] : 1.0 / f->n_models;
            for (int c = 0; c < k; c++)
                out[c] += w * tmp[c];
        }
        return;
    }
}
