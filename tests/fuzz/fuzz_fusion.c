/* Fuzzes tr_fusion_read (trainer/fusion_file.c), the reader of empd fuse's fusion.json that empd predict
 * trusts. A failed read leaves nothing to free and one line naming the file; a fusion that reads must be
 * usable as it is: every method applied to valid probability rows gives finite probabilities summing to 1. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/check.h"
#include "tests/fuzz/memfile.h"
#include "trainer/checkpoint.h"
#include "trainer/fusion_file.h"

/* The writer half of fusion_file.c is not under test (and would pull the checkpoint code in). */
int tr_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    (void)path, (void)data, (void)len, (void)err, (void)errlen;
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    const char *path = memfile_put(in, n);
    tr_fusion_loaded f;
    char err[512];
    err[0] = 0;
    if (tr_fusion_read(path, &f, err, sizeof err) != 0) {
        CHECK(err[0] != 0 && strstr(err, path) != NULL && f.fit.coef == NULL && f.runs[0] == NULL);
        return 0;
    }
    CHECK(check_whole_json(in, n));
    CHECK(f.n_runs >= 2 && f.n_runs <= TR_FUSE_MAX_MODELS && f.n_classes >= 2 && f.n_classes <= TR_MAX_CLASSES);
    CHECK(f.fit.n_models == f.n_runs && f.fit.k == f.n_classes && f.fit.coef && f.fit.intercept);
    double rows[TR_FUSE_MAX_MODELS][TR_MAX_CLASSES], out[TR_MAX_CLASSES];
    const double *p[TR_FUSE_MAX_MODELS];
    for (int r = 0; r < f.n_runs; r++) {
        for (int c = 0; c < f.n_classes; c++)
            rows[r][c] = (c == r % f.n_classes ? 0.5 : 0.5 / (f.n_classes - 1)) * (c == 0 && r == 1 ? 0 : 1);
        double s = 0;
        for (int c = 0; c < f.n_classes; c++)
            s += rows[r][c];
        for (int c = 0; c < f.n_classes; c++)
            rows[r][c] /= s;
        p[r] = rows[r];
    }
    for (int m = 0; m < TR_FUSE_METHODS; m++) {
        tr_fuse_apply(&f.fit, (tr_fuse_method)m, p, out);
        double s = 0;
        for (int c = 0; c < f.n_classes; c++) {
            CHECK(out[c] >= 0 && out[c] <= 1 + 1e-9);
            s += out[c];
        }
        /* Stacking with huge coefficients may overflow to a NaN row: the reader must have refused them. */
        if (!(fabs(s - 1) < 1e-6)) {
            fprintf(stderr, "method %s gives a row summing to %g\n", tr_fuse_method_name((tr_fuse_method)m), s);
            abort();
        }
    }
    tr_fusion_loaded_free(&f);
    return 0;
}
