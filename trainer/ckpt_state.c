/* state.json of a checkpoint: tr_ckpt_state to canonical JSON and back. Plain C + cJSON, so the parser
 * of this untrusted file is fuzzed on its own (tests/fuzz). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/errors.h"
#include "trainer/checkpoint.h"

const char *const tr_ckpt_tensor_files[2] = {"model.safetensors", "optim.safetensors"};

/* Integers are written as raw digits and doubles with 17 significant digits: cJSON's own printer may
 * drop a double's last bit, and a resumed run must compare against exactly what the uninterrupted one
 * held. */
static void add_int(cJSON *o, const char *key, long long v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    cJSON_AddRawToObject(o, key, num);
}

static void add_real(cJSON *o, const char *key, double v)
{
    char num[40];
    snprintf(num, sizeof num, "%.17g", v);
    cJSON_AddRawToObject(o, key, num);
}

char *tr_ckpt_state_to_json(const tr_ckpt_state *st, const char *config_json)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON_AddNumberToObject(j, "version", TR_CKPT_VERSION);
    add_int(j, "step", st->step);
    cJSON *s = cJSON_AddObjectToObject(j, "sampler");
    add_int(s, "epoch", (long long)st->sampler_epoch);
    add_int(s, "consumed", (long long)st->sampler_consumed);
    cJSON_AddNumberToObject(j, "world_size", st->world_size);
    cJSON_AddNumberToObject(j, "threads", st->threads);
    cJSON_AddStringToObject(j, "model_hash", st->model_hash);
    cJSON_AddStringToObject(j, "config_hash", st->config_hash);
    cJSON *data = cJSON_AddObjectToObject(j, "data");
    add_int(data, "train_samples", st->train_samples);
    cJSON_AddStringToObject(data, "hash", st->data_hash);
    add_int(j, "seed", st->seed);
    cJSON *files = cJSON_AddObjectToObject(j, "files");
    for (int i = 0; i < 2; i++) {
        cJSON *f = cJSON_AddObjectToObject(files, tr_ckpt_tensor_files[i]);
        char crc[16];
        add_int(f, "bytes", st->files[i].bytes);
        snprintf(crc, sizeof crc, "%08x", (unsigned)st->files[i].crc);
        cJSON_AddStringToObject(f, "crc32", crc);
    }
    cJSON *best = cJSON_AddObjectToObject(j, "best");
    cJSON_AddStringToObject(best, "metric", st->best_metric);
    add_real(best, "value", st->best_value);
    add_int(best, "step", st->best_step);
    cJSON *stop = cJSON_AddObjectToObject(j, "early_stopping");
    add_real(stop, "best", st->stop_best);
    add_int(stop, "bad_evals", st->stop_bad);
    add_int(stop, "evals", st->evals);
    cJSON *rng = cJSON_AddArrayToObject(j, "rng");
    for (int i = 0; i < st->n_rng; i++)
        cJSON_AddItemToArray(rng, cJSON_CreateString(st->rng_hex[i]));
    cJSON *cfg = config_json ? cJSON_Parse(config_json) : NULL;
    if (cfg)
        cJSON_AddItemToObject(j, "config", cfg);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}

/* Whole non-negative numbers up to 2^53 (exact in a double). */
static int is_count(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9007199254740992.0 &&
           v->valuedouble == (double)(int64_t)v->valuedouble;
}

/* A metric value: any finite number (1e999 reads as infinity, which could not be written back). */
static int is_finite(const cJSON *v) { return cJSON_IsNumber(v) && isfinite(v->valuedouble); }

static int is_hex(const cJSON *v, size_t len)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) != len)
        return 0;
    return strspn(v->valuestring, "0123456789abcdef") == len;
}

/* The first missing or malformed field of a state.json, NULL when all are well formed. */
static const char *state_problem(const cJSON *j)
{
    const cJSON *sam = cJSON_GetObjectItem(j, "sampler"), *data = cJSON_GetObjectItem(j, "data");
    const cJSON *files = cJSON_GetObjectItem(j, "files"), *rng = cJSON_GetObjectItem(j, "rng");
    const cJSON *ws = cJSON_GetObjectItem(j, "world_size"), *version = cJSON_GetObjectItem(j, "version");
    const cJSON *th = cJSON_GetObjectItem(j, "threads"), *best = cJSON_GetObjectItem(j, "best");
    const cJSON *stop = cJSON_GetObjectItem(j, "early_stopping");
    if (!cJSON_IsNumber(version) || version->valuedouble != TR_CKPT_VERSION)
        return "version (this build reads 2)";
    if (!is_count(cJSON_GetObjectItem(j, "step")))
        return "step";
    if (!is_count(cJSON_GetObjectItem(j, "seed")))
        return "seed";
    if (!is_count(cJSON_GetObjectItem(sam, "epoch")) || !is_count(cJSON_GetObjectItem(sam, "consumed")))
        return "sampler";
    if (!is_count(ws) || ws->valuedouble < 1 || ws->valuedouble > 1e6)
        return "world_size";
    if (!is_count(th) || th->valuedouble > 1e6)
        return "threads";
    if (!is_hex(cJSON_GetObjectItem(j, "model_hash"), 16))
        return "model_hash";
    if (!is_hex(cJSON_GetObjectItem(j, "config_hash"), 16))
        return "config_hash";
    if (!is_count(cJSON_GetObjectItem(data, "train_samples")) || !is_hex(cJSON_GetObjectItem(data, "hash"), 16))
        return "data";
    for (int i = 0; i < 2; i++) {
        const cJSON *f = cJSON_GetObjectItem(files, tr_ckpt_tensor_files[i]);
        if (!is_count(cJSON_GetObjectItem(f, "bytes")) || !is_hex(cJSON_GetObjectItem(f, "crc32"), 8))
            return "files";
    }
    const cJSON *metric = cJSON_GetObjectItem(best, "metric");
    if (!cJSON_IsString(metric) || strlen(metric->valuestring) >= sizeof ((tr_ckpt_state *)0)->best_metric ||
        !is_finite(cJSON_GetObjectItem(best, "value")) || !is_count(cJSON_GetObjectItem(best, "step")))
        return "best";
    if (!is_finite(cJSON_GetObjectItem(stop, "best")) || !is_count(cJSON_GetObjectItem(stop, "bad_evals")) ||
        !is_count(cJSON_GetObjectItem(stop, "evals")))
        return "early_stopping";
    if (!cJSON_IsArray(rng) || cJSON_GetArraySize(rng) != ws->valueint)
        return "rng (one generator state per rank)";
    const cJSON *r;
    cJSON_ArrayForEach(r, rng) if (!cJSON_IsString(r)) return "rng (one generator state per rank)";
    return NULL;
}

int tr_ckpt_state_parse(const char *text, size_t len, const char *what, tr_ckpt_state *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    /* Only white space may follow the object (a second document appended is damage, not data). */
    while (j && end && end < text + len && *end && strchr(" \t\r\n", *end))
        end++;
    if (!cJSON_IsObject(j) || (end && end < text + len)) {
        cJSON_Delete(j);
        return md_fail(err, errlen, "%s: malformed JSON", what);
    }
    const char *bad = state_problem(j);
    if (bad) {
        cJSON_Delete(j);
        return md_fail(err, errlen, "%s: field '%s' is missing or malformed", what, bad);
    }
#define NUM(o, k) (cJSON_GetObjectItem((o), (k))->valuedouble)
    const cJSON *sam = cJSON_GetObjectItem(j, "sampler"), *data = cJSON_GetObjectItem(j, "data");
    const cJSON *best = cJSON_GetObjectItem(j, "best"), *stop = cJSON_GetObjectItem(j, "early_stopping");
    const cJSON *rng = cJSON_GetObjectItem(j, "rng");
    st->step = (int64_t)NUM(j, "step");
    st->sampler_epoch = (uint64_t)NUM(sam, "epoch");
    st->sampler_consumed = (uint64_t)NUM(sam, "consumed");
    st->world_size = (int)NUM(j, "world_size");
    st->threads = (int)NUM(j, "threads");
    st->seed = (int64_t)NUM(j, "seed");
    st->train_samples = (int64_t)NUM(data, "train_samples");
    snprintf(st->model_hash, sizeof st->model_hash, "%s", cJSON_GetObjectItem(j, "model_hash")->valuestring);
    snprintf(st->config_hash, sizeof st->config_hash, "%s", cJSON_GetObjectItem(j, "config_hash")->valuestring);
    snprintf(st->data_hash, sizeof st->data_hash, "%s", cJSON_GetObjectItem(data, "hash")->valuestring);
    for (int i = 0; i < 2; i++) {
        const cJSON *f = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "files"), tr_ckpt_tensor_files[i]);
        st->files[i].bytes = (int64_t)NUM(f, "bytes");
        st->files[i].crc = (uint32_t)strtoul(cJSON_GetObjectItem(f, "crc32")->valuestring, NULL, 16);
    }
    snprintf(st->best_metric, sizeof st->best_metric, "%s", cJSON_GetObjectItem(best, "metric")->valuestring);
    st->best_value = NUM(best, "value");
    st->best_step = (int64_t)NUM(best, "step");
    st->stop_best = NUM(stop, "best");
    st->stop_bad = (int64_t)NUM(stop, "bad_evals");
    st->evals = (int64_t)NUM(stop, "evals");
#undef NUM
    st->n_rng = cJSON_GetArraySize(rng);
    st->rng_hex = calloc((size_t)st->n_rng + 1, sizeof *st->rng_hex);
    int rc = st->rng_hex ? 0 : md_fail(err, errlen, "%s: out of memory", what);
    for (int i = 0; rc == 0 && i < st->n_rng; i++)
        if (!(st->rng_hex[i] = strdup(cJSON_GetArrayItem(rng, i)->valuestring)))
            rc = md_fail(err, errlen, "%s: out of memory", what);
    cJSON_Delete(j);
    if (rc)
        tr_ckpt_state_free(st);
    return rc;
}

void tr_ckpt_state_free(tr_ckpt_state *st)
{
    for (int i = 0; st->rng_hex && i < st->n_rng; i++)
        free(st->rng_hex[i]);
    free(st->rng_hex);
    st->rng_hex = NULL;
    st->n_rng = 0;
}
