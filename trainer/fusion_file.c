/* fusion.json written and read back (format in fusion_file.h). */
#include "trainer/fusion_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/errors.h"
#include "trainer/checkpoint.h"

static cJSON *real(double v)
{
    char num[40];
    snprintf(num, sizeof num, "%.17g", v);
    return cJSON_CreateRaw(isfinite(v) ? num : "null");
}

static cJSON *reals(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, real(v[i]));
    return a;
}

static cJSON *metrics(const tr_metrics *m, double nll, const char *const *names)
{
    char *members = tr_metrics_json(m, names);
    if (!members)
        return NULL;
    size_t len = strlen(members);
    char *doc = malloc(len + 3);
    cJSON *o = NULL;
    if (doc) {
        doc[0] = '{';
        memcpy(doc + 1, members, len);
        doc[len + 1] = '}';
        doc[len + 2] = '\0';
        o = cJSON_Parse(doc);
    }
    free(doc);
    free(members);
    if (o)
        cJSON_AddItemToObject(o, "nll", real(nll));
    return o;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

int tr_fusion_write(const char *path, const tr_fusion *f, const tr_fusion_info *info, char *err, size_t errlen)
{
    const int M = info->n_runs, k = f->k;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return md_fail(err, errlen, "%s: out of memory", path);
    cJSON_AddStringToObject(j, "format", "empd-fusion");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "method", tr_fuse_method_name(info->method));
    cJSON_AddStringToObject(j, "select", info->select);
    cJSON_AddNumberToObject(j, "folds", info->folds);
    cJSON_AddItemToObject(j, "classes", cJSON_CreateStringArray(info->class_names, k));
    cJSON_AddItemToObject(j, "runs", cJSON_CreateStringArray(info->runs, M));
    cJSON_AddItemToObject(j, "temperatures", reals(f->temperature, M));
    cJSON_AddItemToObject(j, "weights", reals(f->weight, M));
    cJSON *st = cJSON_AddObjectToObject(j, "stacking");
    cJSON_AddItemToObject(st, "C", real(f->C));
    cJSON *coef = cJSON_AddArrayToObject(st, "coef");
    for (int c = 0; c < k; c++)
        cJSON_AddItemToArray(coef, reals(f->coef + (size_t)c * f->d, f->d));
    cJSON_AddItemToObject(st, "intercept", reals(f->intercept, k));
    cJSON *n = cJSON_AddObjectToObject(j, "samples");
    cJSON_AddNumberToObject(n, "val", (double)info->n[0]);
    cJSON_AddNumberToObject(n, "test", (double)info->n[1]);
    cJSON *scores = cJSON_AddArrayToObject(j, "scores");
    for (int r = 0; r < M + TR_FUSE_METHODS; r++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddItemToArray(scores, s);
        cJSON_AddStringToObject(s, "name", r < M ? base_name(info->runs[r]) : tr_fuse_method_name(r - M));
        cJSON_AddStringToObject(s, "kind", r < M ? "run" : "fusion");
        for (int sp = 0; sp < 2; sp++)
            cJSON_AddItemToObject(s, sp ? "test" : "val",
                                  r < M ? metrics(&info->run_metrics[r][sp], info->run_nll[r][sp], info->class_names)
                                        : metrics(&info->method_metrics[r - M][sp], info->method_nll[r - M][sp],
                                                  info->class_names));
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text)
        return md_fail(err, errlen, "%s: out of memory", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON_Print leaves room for nothing more; rewrite the terminator as a line end */
    int rc = tr_write_file_atomic(path, text, len + 1, err, errlen);
    free(text);
    return rc;
}

/* ---- Reading ----------------------------------------------------------------------------------------- */

static int read_reals(const cJSON *a, double *v, int n, double min, double max, const char *path, const char *what,
                      char *err, size_t errlen)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return md_fail(err, errlen, "%s: %s must be a list of %d numbers", path, what, n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= min && e->valuedouble <= max))
            return md_fail(err, errlen, "%s: %s[%d] must be a number in [%g, %g]", path, what, i, min, max);
        v[i++] = e->valuedouble;
    }
    return 0;
}

static int read_strings(const cJSON *a, char **v, int max, int *n, const char *path, const char *what, char *err,
                        size_t errlen)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) < 2 || cJSON_GetArraySize(a) > max)
        return md_fail(err, errlen, "%s: %s must be a list of 2 to %d strings", path, what, max);
    *n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            return md_fail(err, errlen, "%s: %s[%d] must be a non-empty string", path, what, *n);
        if (!(v[(*n)++] = strdup(e->valuestring)))
            return md_fail(err, errlen, "%s: out of memory", path);
    }
    return 0;
}

void tr_fusion_loaded_free(tr_fusion_loaded *l)
{
    tr_fuse_free(&l->fit);
    for (int r = 0; r < TR_FUSE_MAX_MODELS; r++)
        free(l->runs[r]);
    for (int c = 0; c < TR_MAX_CLASSES; c++)
        free(l->classes[c]);
    memset(l, 0, sizeof *l);
}

static int parse(const char *path, const cJSON *j, tr_fusion_loaded *out, char *err, size_t errlen)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "empd-fusion"))
        return md_fail(err, errlen, "%s: not a fusion file (\"format\" is not \"empd-fusion\")", path);
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1)
        return md_fail(err, errlen, "%s: version must be 1 (this empd reads version 1)", path);
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(j, "method");
    out->method = TR_FUSE_METHODS;
    for (int m = 0; m < TR_FUSE_METHODS && cJSON_IsString(method); m++)
        if (!strcmp(method->valuestring, tr_fuse_method_name(m)))
            out->method = m;
    if (out->method == TR_FUSE_METHODS)
        return md_fail(err, errlen, "%s: method must be \"average\", \"weighted\" or \"stacking\"", path);
    if (read_strings(cJSON_GetObjectItemCaseSensitive(j, "classes"), out->classes, TR_MAX_CLASSES, &out->n_classes,
                     path, "classes", err, errlen) ||
        read_strings(cJSON_GetObjectItemCaseSensitive(j, "runs"), out->runs, TR_FUSE_MAX_MODELS, &out->n_runs, path,
                     "runs", err, errlen))
        return -1;
    const int M = out->n_runs, k = out->n_classes, d = M * k;
    tr_fusion *f = &out->fit;
    f->n_models = M;
    f->k = k;
    f->d = d;
    if (read_reals(cJSON_GetObjectItemCaseSensitive(j, "temperatures"), f->temperature, M, TR_FUSE_T_MIN, TR_FUSE_T_MAX,
                   path, "temperatures", err, errlen) ||
        read_reals(cJSON_GetObjectItemCaseSensitive(j, "weights"), f->weight, M, 0, 1, path, "weights", err,
                   errlen))
        return -1;
    double wsum = 0;
    for (int r = 0; r < M; r++)
        wsum += f->weight[r];
    if (fabs(wsum - 1) > 1e-6)
        return md_fail(err, errlen, "%s: weights sum to %.9g, not 1", path, wsum);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stacking");
    const cJSON *C = cJSON_GetObjectItemCaseSensitive(st, "C");
    const cJSON *coef = cJSON_GetObjectItemCaseSensitive(st, "coef");
    if (!cJSON_IsObject(st) || !cJSON_IsNumber(C) || !(C->valuedouble > 0) || !isfinite(C->valuedouble))
        return md_fail(err, errlen, "%s: stacking must hold C > 0, coef and intercept", path);
    f->C = C->valuedouble;
    f->coef = malloc((size_t)k * d * sizeof *f->coef);
    f->intercept = malloc((size_t)k * sizeof *f->intercept);
    if (!f->coef || !f->intercept)
        return md_fail(err, errlen, "%s: out of memory", path);
    if (!cJSON_IsArray(coef) || cJSON_GetArraySize(coef) != k)
        return md_fail(err, errlen, "%s: stacking.coef must be %d rows (one per class)", path, k);
    for (int c = 0; c < k; c++) {
        char what[48];
        snprintf(what, sizeof what, "stacking.coef[%d]", c);
        if (read_reals(cJSON_GetArrayItem(coef, c), f->coef + (size_t)c * d, d, -TR_FUSE_COEF_MAX, TR_FUSE_COEF_MAX, path,
                       what, err, errlen))
            return -1;
    }
    return read_reals(cJSON_GetObjectItemCaseSensitive(st, "intercept"), f->intercept, k, -TR_FUSE_COEF_MAX,
                      TR_FUSE_COEF_MAX, path, "stacking.intercept", err, errlen);
}

int tr_fusion_read(const char *path, tr_fusion_loaded *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return md_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *t = realloc(text, cap = cap ? cap * 2 : 8192);
            if (!t) {
                free(text);
                fclose(fp);
                return md_fail(err, errlen, "%s: out of memory", path);
            }
            text = t;
        }
        size_t got = fread(text + len, 1, cap - len - 1, fp);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(text);
        return md_fail(err, errlen, "%s: read error", path);
    }
    text[len] = '\0';
    if (strlen(text) != len) {
        long at = (long)strlen(text);
        free(text);
        return md_fail(err, errlen, "%s: a NUL byte at byte %ld; not a JSON text", path, at);
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        long at = end ? (long)(end - text) : 0;
        free(text);
        return md_fail(err, errlen, "%s: not valid JSON near byte %ld", path, at);
    }
    free(text);
    int rc = cJSON_IsObject(j) ? parse(path, j, out, err, errlen)
                               : md_fail(err, errlen, "%s: the document must be a JSON object", path);
    cJSON_Delete(j);
    if (rc)
        tr_fusion_loaded_free(out);
    return rc;
}
