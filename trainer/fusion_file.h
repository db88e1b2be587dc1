/* fusion.json: what empd fuse fit, for empd predict and for people.
 *
 *   {"format": "empd-fusion", "version": 1,
 *    "method": "average" | "weighted" | "stacking"   the one chosen on val, what predict applies
 *    "select": "accuracy", "folds": 5,               how it was chosen (val, out of `folds` folds)
 *    "classes": ["happy", ...],                      K names, the predictions files' order
 *    "runs": ["runs/audio", "runs/video"],           the fused runs, in the order of every list below
 *    "temperatures": [T_1, ...], "weights": [w_1, ...],         the weighted method
 *    "stacking": {"C": C, "coef": [[K*M reals] x K], "intercept": [K reals]},
 *    "samples": {"val": n, "test": n},
 *    "scores": [{"name": ..., "kind": "run" | "fusion", "val": {metrics}, "test": {metrics}}, ...]}
 *   metrics: tr_metrics_json's members plus "nll"; fusion methods' val scores are out-of-fold.
 * Reals are written %.17g. See trainer/fuse.h for what each method computes. */
#ifndef EMPD_TRAINER_FUSION_FILE_H
#define EMPD_TRAINER_FUSION_FILE_H

#include <stddef.h>

#include "trainer/fuse.h"
#include "trainer/metrics.h"

/* What fusion.json says beside the parameters. */
typedef struct {
    tr_fuse_method method;
    const char *select;
    int folds;
    int n_runs;
    const char *runs[TR_FUSE_MAX_MODELS];
    const char *const *class_names;
    size_t n[2]; /* val, test samples */
    tr_metrics run_metrics[TR_FUSE_MAX_MODELS][2], method_metrics[TR_FUSE_METHODS][2];
    double run_nll[TR_FUSE_MAX_MODELS][2], method_nll[TR_FUSE_METHODS][2];
} tr_fusion_info;

/* Writes fusion.json atomically. f: temperatures, weights and stacking (coef, intercept, C). -1 with one
 * line on failure. */
int tr_fusion_write(const char *path, const tr_fusion *f, const tr_fusion_info *info, char *err, size_t errlen);

/* A fusion.json read back: the parameters, the method, and the runs and classes (owned). */
typedef struct {
    tr_fusion fit;
    tr_fuse_method method;
    int n_runs;
    char *runs[TR_FUSE_MAX_MODELS];
    int n_classes;
    char *classes[TR_MAX_CLASSES];
} tr_fusion_loaded;

/* Reads and checks fusion.json (format, version, lengths that agree, finite reals, temperatures > 0,
 * weights >= 0). -1 with one line "PATH: what" on the first fault; *out then holds nothing to free. */
int tr_fusion_read(const char *path, tr_fusion_loaded *out, char *err, size_t errlen);
void tr_fusion_loaded_free(tr_fusion_loaded *l);

#endif
