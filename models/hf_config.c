#include "models/hf_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/errors.h"

/* Real config.json files are a few kB: the cap turns a wrong path (a weights file) into an error
 * instead of a large read. */
#define MAX_BYTES (16u << 20)

struct hf_config {
    cJSON *root;
    const char *path;
    char *err;
    size_t errlen;
    int failed;
};

static char *read_text(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        md_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t n = 0, cap = 0;
    const char *why = NULL;
    while (!why) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            char *grown = realloc(text, cap + 1);
            if (!grown) {
                why = "out of memory";
                break;
            }
            text = grown;
        }
        size_t got = fread(text + n, 1, cap - n, fp);
        if (got == 0)
            break;
        n += got;
        if (n > MAX_BYTES)
            why = "larger than 16 MiB, so not a config.json";
    }
    if (!why && ferror(fp))
        why = strerror(errno); /* a directory opens, and fails here */
    fclose(fp);
    if (why) {
        free(text);
        md_fail(err, errlen, "%s: cannot read: %s", path, why);
        return NULL;
    }
    text[n] = '\0';
    *len = n;
    return text;
}

hf_config *hf_config_open(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = read_text(path, &len, err, errlen);
    if (!text)
        return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    hf_config *f = NULL;
    if (!root)
        md_fail(err, errlen, "%s: not valid JSON", path);
    else if (!cJSON_IsObject(root))
        md_fail(err, errlen, "%s: not a JSON object (expected Hugging Face's config.json)", path);
    else if (!(f = malloc(sizeof *f)))
        md_fail(err, errlen, "%s: out of memory", path);
    else
        *f = (hf_config){.root = root, .path = path, .err = err, .errlen = errlen};
    if (!f)
        cJSON_Delete(root);
    return f;
}

int hf_config_close(hf_config *f)
{
    int rc = f->failed ? -1 : 0;
    cJSON_Delete(f->root);
    free(f);
    return rc;
}

int hf_config_fail(hf_config *f, const char *fmt, ...)
{
    if (f->failed)
        return -1;
    f->failed = 1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return md_fail(f->err, f->errlen, "%s: %s", f->path, msg);
}

/* key's value; NULL when it is absent (*rc 0) or an earlier reader failed (*rc -1). */
static const cJSON *field(const hf_config *f, const char *key, int *rc)
{
    *rc = f->failed ? -1 : 0;
    return f->failed ? NULL : cJSON_GetObjectItemCaseSensitive(f->root, key);
}

static const char *kind(const cJSON *v)
{
    return cJSON_IsString(v) ? "a string" : cJSON_IsBool(v) ? "a boolean" : cJSON_IsNull(v) ? "null"
           : cJSON_IsArray(v) ? "an array" : cJSON_IsObject(v) ? "an object" : "a number";
}

int hf_config_int(hf_config *f, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    int rc;
    const cJSON *v = field(f, key, &rc);
    if (!v)
        return rc;
    if (!cJSON_IsNumber(v))
        return hf_config_fail(f, "field '%s' must be an integer in %lld..%lld, not %s", key, (long long)lo,
                              (long long)hi, kind(v));
    double d = v->valuedouble;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return hf_config_fail(f, "field '%s' is %g; it must be an integer in %lld..%lld", key, d, (long long)lo,
                              (long long)hi);
    *out = (int64_t)d;
    return 0;
}

int hf_config_num(hf_config *f, const char *key, double lo, double hi, unsigned open, double *out)
{
    int rc;
    const cJSON *v = field(f, key, &rc);
    if (!v)
        return rc;
    char range[64];
    snprintf(range, sizeof range, "%c%g, %g%c", open & HF_OPEN_LO ? '(' : '[', lo, hi, open & HF_OPEN_HI ? ')' : ']');
    if (!cJSON_IsNumber(v))
        return hf_config_fail(f, "field '%s' must be a number in %s, not %s", key, range, kind(v));
    double d = v->valuedouble;
    if (!(open & HF_OPEN_LO ? d > lo : d >= lo) || !(open & HF_OPEN_HI ? d < hi : d <= hi))
        return hf_config_fail(f, "field '%s' is %g; it must be in %s", key, d, range);
    *out = d;
    return 0;
}

int hf_config_bool(hf_config *f, const char *key, int *out)
{
    int rc;
    const cJSON *v = field(f, key, &rc);
    if (!v)
        return rc;
    if (!cJSON_IsBool(v))
        return hf_config_fail(f, "field '%s' must be true or false, not %s", key, kind(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

int hf_config_choice(hf_config *f, const char *key, const char *const *choices, const char *note, int *out)
{
    int rc;
    const cJSON *v = field(f, key, &rc);
    if (!v)
        return rc;
    for (int i = 0; cJSON_IsString(v) && choices[i]; i++)
        if (!strcmp(v->valuestring, choices[i])) {
            if (out)
                *out = i;
            return 0;
        }
    /* "a", "b" or "c" (note) */
    char expected[256];
    size_t at = 0;
    for (int i = 0; choices[i] && at < sizeof expected; i++)
        at += (size_t)snprintf(expected + at, sizeof expected - at, "%s\"%s\"",
                               i == 0 ? "" : choices[i + 1] ? ", " : " or ", choices[i]);
    if (note && at < sizeof expected)
        snprintf(expected + at, sizeof expected - at, " (%s)", note);
    if (!cJSON_IsString(v))
        return hf_config_fail(f, "field '%s' must be a string (%s), not %s", key, expected, kind(v));
    return hf_config_fail(f, "field '%s' is \"%s\"; expected %s", key, v->valuestring, expected);
}

int hf_config_int_list(hf_config *f, const char *key, int max_n, int64_t lo, int64_t hi, int64_t *out)
{
    int rc;
    const cJSON *v = field(f, key, &rc);
    if (!v)
        return rc;
    if (!cJSON_IsArray(v))
        return hf_config_fail(f, "field '%s' must be an array of 1..%d integers in %lld..%lld, not %s", key, max_n,
                              (long long)lo, (long long)hi, kind(v));
    int n = cJSON_GetArraySize(v);
    if (n < 1 || n > max_n)
        return hf_config_fail(f, "field '%s' has %d items; it must have 1..%d", key, n, max_n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e))
            return hf_config_fail(f, "field '%s' item %d must be an integer in %lld..%lld, not %s", key, i,
                                  (long long)lo, (long long)hi, kind(e));
        double d = e->valuedouble;
        if (d != floor(d) || d < (double)lo || d > (double)hi)
            return hf_config_fail(f, "field '%s' item %d is %g; it must be an integer in %lld..%lld", key, i, d,
                                  (long long)lo, (long long)hi);
    }
    for (int i = 0; i < n; i++)
        out[i] = (int64_t)cJSON_GetArrayItem(v, i)->valuedouble;
    return n;
}

int hf_config_act(hf_config *f, const char *key, unsigned accepted, ml_act *out)
{
    static const struct {
        const char *name;
        ml_act act;
    } acts[] = {{"gelu", ML_ACT_GELU}, {"gelu_new", ML_ACT_GELU_TANH}, {"gelu_pytorch_tanh", ML_ACT_GELU_TANH},
                {"relu", ML_ACT_RELU}, {"tanh", ML_ACT_TANH}};
    const size_t all = sizeof acts / sizeof acts[0];
    const char *names[sizeof acts / sizeof acts[0] + 1];
    ml_act of[sizeof acts / sizeof acts[0]];
    int n = 0, pick = -1;
    for (size_t i = 0; i < all; i++)
        if (!accepted || accepted & HF_ACT(acts[i].act)) {
            names[n] = acts[i].name;
            of[n++] = acts[i].act;
        }
    names[n] = NULL;
    if (hf_config_choice(f, key, names, NULL, &pick))
        return -1;
    if (pick >= 0)
        *out = of[pick];
    return 0;
}

const char *hf_config_act_name(ml_act a)
{
    switch (a) {
    case ML_ACT_GELU_TANH: return "gelu_new";
    case ML_ACT_RELU: return "relu";
    case ML_ACT_TANH: return "tanh";
    default: return "gelu";
    }
}
