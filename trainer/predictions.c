#include "trainer/predictions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/avamerg.h"
#include "models/errors.h"
#include "trainer/checkpoint.h"

const char *const *tr_class_names(int n_classes)
{
    static const char *names7[7], *names32[32];
    const char **names = n_classes == 7 ? names7 : n_classes == 32 ? names32 : NULL;
    for (int c = 0; names && c < n_classes; c++)
        names[c] = n_classes == 7 ? am_label7_name(c) : am_label32_name(c);
    return names;
}

int tr_predictions_write(const char *path, const tr_eval *e, const ds_strv *ids, char *err, size_t errlen)
{
    const char *const *names = tr_class_names(e->n_classes);
    if (!names)
        return md_fail(err, errlen, "%s: no class names for %d classes", path, e->n_classes);
    if (!ids || ids->n != (size_t)e->n)
        return md_fail(err, errlen, "%s: %lld samples but %zu ids", path, (long long)e->n, ids ? ids->n : 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return md_fail(err, errlen, "%s: out of memory", path);
    fputs("id,label,pred", f);
    for (int c = 0; c < e->n_classes; c++)
        fprintf(f, ",p_%s", names[c]);
    fputc('\n', f);
    for (int64_t i = 0; i < e->n; i++) {
        const float *p = e->probs + (size_t)i * (size_t)e->n_classes;
        fprintf(f, "%s,%lld,%d", ids->v[i], (long long)e->label[i], e->pred[i]);
        for (int c = 0; c < e->n_classes; c++)
            fprintf(f, ",%.9g", (double)p[c]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    fclose(f);
    int rc = bad || !text ? md_fail(err, errlen, "%s: out of memory", path) : tr_write_file_atomic(path, text, len, err, errlen);
    free(text);
    return rc;
}
