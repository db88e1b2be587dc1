#include "trainer/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/error.h"

enum kind { K_INT, K_REAL, K_STR };

static const struct field {
    const char *key;
    enum kind kind;
    size_t off;
    double def, lo, hi;
    const char *def_str;
    const char *help;
} fields[] = {
#define I(k, m, d, lo, hi, h) {k, K_INT, offsetof(tr_config, m), d, lo, hi, NULL, h}
#define R(k, m, d, lo, hi, h) {k, K_REAL, offsetof(tr_config, m), d, lo, hi, NULL, h}
    {"data.shards", K_STR, offsetof(tr_config, data.shards), 0, 0, 0, "shards", "shard folder (empd shard --out)"},
    I("data.loader_threads", data.loader_threads, 2, 1, 256, "threads per rank filling batches (results do not depend on it)"),
    I("data.prefetch_depth", data.prefetch_depth, 2, 1, 64, "batches prepared ahead per rank (host memory: depth x batch)"),
    I("model.vocab_size", model.vocab_size, 30522, 1, 1e7, "token embedding rows (the vocab.txt size)"),
    I("model.hidden", model.hidden, 64, 1, 65536, "encoder width"),
    I("model.layers", model.layers, 2, 1, 24, "encoder layers"),
    I("model.heads", model.heads, 2, 1, 1024, "attention heads (divides hidden)"),
    I("model.intermediate", model.intermediate, 128, 1, 1e6, "feed-forward width"),
    I("model.max_position", model.max_position, 64, 2, 1e5, "position embeddings (>= utt_tokens)"),
    I("model.utt_tokens", model.utt_tokens, 32, 2, 1e5, "tokens read per utterance ([CLS] .. [SEP])"),
    I("model.meta_dim", model.meta_dim, 8, 1, 4096, "embedding width per metadata field"),
    I("model.avatar_ids", model.avatar_ids, 100, 1, 32768, "avatar ID embedding rows (the seed's 100); larger IDs read as unknown"),
    I("model.num_classes", model.num_classes, 0, 0, 32, "7 (the authors' classes), 32 (raw emotions), 0: the shards' labels"),
    R("model.dropout", model.dropout, 0.1, 0, 0.99, "dropout probability"),
    R("model.init_std", model.init_std, 0.02, 0, 10, "std of the normal initialisation"),
    I("train.batch_size", train.batch_size, 8, 1, 1e6, "samples per rank per step"),
    I("train.max_steps", train.max_steps, 300, 1, 1e12, "stop after this many optimizer steps"),
    I("train.warmup_steps", train.warmup_steps, 20, 0, 1e12, "linear warmup of the learning rate"),
    I("train.decay_steps", train.decay_steps, 0, 0, 1e12, "linear decay to 0 at this step (0: constant after warmup)"),
    I("train.log_every", train.log_every, 10, 1, 1e12, "steps between log lines"),
    I("train.eval_every", train.eval_every, 100, 0, 1e12, "steps between validations (0: only at the end)"),
    I("train.checkpoint_every", train.checkpoint_every, 100, 0, 1e12, "steps between checkpoints (0: only at the end)"),
    I("train.keep_last", train.keep_last, 3, 1, 1e6, "checkpoints kept"),
    I("train.threads", train.threads, 0, 0, 4096, "torch threads per rank (0: cores / ranks on this host)"),
    I("train.seed", train.seed, 42, 0, 4294967295.0, "seed of initialisation, sampling and dropout"),
    I("train.drop_last", train.drop_last, 1, 0, 1, "1: drop the epoch's incomplete global batch; 0: pad it"),
    R("train.lr", train.lr, 1e-3, 0, 10, "peak learning rate (AdamW)"),
    R("train.weight_decay", train.weight_decay, 0.01, 0, 10, "AdamW decoupled weight decay"),
    R("train.beta1", train.beta1, 0.9, 0, 0.999999, "AdamW beta1"),
    R("train.beta2", train.beta2, 0.999, 0, 0.999999999, "AdamW beta2"),
    R("train.eps", train.eps, 1e-8, 0, 1, "AdamW epsilon"),
#undef I
#undef R
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

void tr_config_print_fields(void *file)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const struct field *f = &fields[i];
        if (f->kind == K_STR)
            fprintf(file, "  %-24s %-10s %s\n", f->key, f->def_str, f->help);
        else
            fprintf(file, "  %-24s %-10g %s\n", f->key, f->def, f->help);
    }
}

/* Finds or creates the object for "a.b.c"'s parent and returns the leaf name in *leaf. */
static cJSON *parent_of(cJSON *root, const char *key, char *leaf, size_t leaflen)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", key);
    cJSON *o = root;
    char *s = buf, *dot;
    while ((dot = strchr(s, '.'))) {
        *dot = 0;
        cJSON *c = cJSON_GetObjectItemCaseSensitive(o, s);
        if (!c)
            c = cJSON_AddObjectToObject(o, s);
        if (!cJSON_IsObject(c))
            return NULL;
        o = c;
        s = dot + 1;
    }
    snprintf(leaf, leaflen, "%s", s);
    return o;
}

static const struct field *find_field(const char *key)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!strcmp(fields[i].key, key))
            return &fields[i];
    return NULL;
}

static int apply_set(cJSON *root, const char *set, char *err, size_t errlen)
{
    const char *eq = strchr(set, '=');
    if (!eq || eq == set)
        return tr_fail(err, errlen, "--set '%s': expected section.field=value", set);
    char key[256], leaf[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - set), set);
    cJSON *o = parent_of(root, key, leaf, sizeof leaf);
    if (!o)
        return tr_fail(err, errlen, "--set '%s': '%s' is not inside an object", set, key);
    /* A string field takes the text as it is (a folder may be called 2024); any other value must
     * be one whole JSON scalar, so "5x" or "1 2" is reported instead of read as 5 or 1. */
    const struct field *f = find_field(key);
    cJSON *v = f && f->kind == K_STR ? NULL : cJSON_ParseWithOpts(eq + 1, NULL, 1);
    if (!v || cJSON_IsObject(v) || cJSON_IsArray(v)) {
        cJSON_Delete(v);
        v = cJSON_CreateString(eq + 1);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, leaf);
    cJSON_AddItemToObject(o, leaf, v);
    return 0;
}

/* Every leaf of the user's JSON must be a known field. */
static int check_known(const cJSON *o, const char *prefix, const char *src, char *err, size_t errlen)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, o)
    {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", c->string);
        if (cJSON_IsObject(c)) {
            if (check_known(c, key, src, err, errlen))
                return -1;
            continue;
        }
        if (!find_field(key))
            return tr_fail(err, errlen, "%s: unknown field '%s' (empd train --help lists the fields)", src, key);
    }
    return 0;
}

static const cJSON *lookup(const cJSON *root, const char *key)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", key);
    const cJSON *o = root;
    for (char *s = buf, *dot; o; s = dot + 1) {
        dot = strchr(s, '.');
        if (dot)
            *dot = 0;
        o = cJSON_GetObjectItemCaseSensitive(o, s);
        if (!dot)
            return o;
    }
    return NULL;
}

static int read_fields(cJSON *root, tr_config *c, const char *src, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const struct field *f = &fields[i];
        const cJSON *v = lookup(root, f->key);
        char *dst = (char *)c + f->off;
        if (f->kind == K_STR) {
            if (v && !cJSON_IsString(v))
                return tr_fail(err, errlen, "%s: %s must be a string", src, f->key);
            snprintf(dst, sizeof c->data.shards, "%s", v ? v->valuestring : f->def_str);
            if (!v) {
                char leaf[256];
                cJSON_AddStringToObject(parent_of(root, f->key, leaf, sizeof leaf), leaf, f->def_str);
            }
            continue;
        }
        double x = f->def;
        if (v) {
            if (!cJSON_IsNumber(v) && !cJSON_IsBool(v))
                return tr_fail(err, errlen, "%s: %s must be a number, got %s", src, f->key,
                        cJSON_IsString(v) ? v->valuestring : "a non-number");
            x = cJSON_IsBool(v) ? cJSON_IsTrue(v) : v->valuedouble;
        } else {
            char leaf[256];
            cJSON_AddNumberToObject(parent_of(root, f->key, leaf, sizeof leaf), leaf, x);
        }
        if (!(x >= f->lo && x <= f->hi))
            return tr_fail(err, errlen, "%s: %s = %g is outside [%g, %g]", src, f->key, x, f->lo, f->hi);
        if (f->kind == K_INT && x != (double)(int64_t)x)
            return tr_fail(err, errlen, "%s: %s must be an integer, got %g", src, f->key, x);
        if (f->kind == K_INT)
            *(int64_t *)dst = (int64_t)x;
        else
            *(double *)dst = x;
    }
    if (c->model.hidden % c->model.heads)
        return tr_fail(err, errlen, "%s: model.hidden (%lld) must be a multiple of model.heads (%lld)", src,
                    (long long)c->model.hidden, (long long)c->model.heads);
    if (c->model.utt_tokens > c->model.max_position)
        return tr_fail(err, errlen, "%s: model.utt_tokens (%lld) exceeds model.max_position (%lld)", src,
                    (long long)c->model.utt_tokens, (long long)c->model.max_position);
    if (c->train.decay_steps && c->train.decay_steps <= c->train.warmup_steps)
        return tr_fail(err, errlen, "%s: train.decay_steps (%lld) must exceed train.warmup_steps (%lld), or be 0", src,
                    (long long)c->train.decay_steps, (long long)c->train.warmup_steps);
    if (c->model.num_classes != 0 && c->model.num_classes != 7 && c->model.num_classes != 32)
        return tr_fail(err, errlen, "%s: model.num_classes must be 0, 7 or 32", src);
    return 0;
}

/* Numbers in full: cJSON's printer may drop a double's last bit, and the saved configuration must
 * reload to the values that trained. */
static void exact_numbers(cJSON *o)
{
    for (cJSON *c = o->child, *next; c; c = next) {
        next = c->next;
        if (cJSON_IsObject(c)) {
            exact_numbers(c);
        } else if (cJSON_IsNumber(c)) {
            /* The shortest text that reads back as the same double. */
            char num[64];
            for (int digits = 15; digits <= 17; digits++) {
                snprintf(num, sizeof num, "%.*g", digits, c->valuedouble);
                if (strtod(num, NULL) == c->valuedouble)
                    break;
            }
            cJSON_ReplaceItemInObjectCaseSensitive(o, c->string, cJSON_CreateRaw(num));
        }
    }
}

static void hash_model(const cJSON *root, char out[17])
{
    char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(root, "model"));
    uint64_t h = 1469598103934665603ull;
    for (const char *p = s; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    free(s);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Sorts every object's members so the canonical text (and the hash) ignores key order. */
static void sort_keys(cJSON *o)
{
    int n = cJSON_IsObject(o) ? cJSON_GetArraySize(o) : 0;
    cJSON **v = n ? malloc((size_t)n * sizeof *v) : NULL;
    if (!v)
        return;
    int i = 0;
    for (cJSON *c = o->child; c; c = c->next) {
        sort_keys(c);
        v[i++] = c;
    }
    qsort(v, (size_t)n, sizeof *v, by_name);
    /* cJSON's list: the head's prev points at the tail. */
    o->child = v[0];
    for (i = 0; i < n; i++) {
        v[i]->prev = i ? v[i - 1] : v[n - 1];
        v[i]->next = i + 1 < n ? v[i + 1] : NULL;
    }
    free(v);
}

int tr_config_load(const char *path, char *const *sets, int n_sets, tr_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    const char *src = path ? path : "config";
    if (path) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return tr_fail(err, errlen, "config %s: cannot open: %s", path, strerror(errno));
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *text = malloc((size_t)n + 1);
        size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
        fclose(f);
        if (!text || got != (size_t)n) {
            free(text);
            return tr_fail(err, errlen, "config %s: cannot read", path);
        }
        text[n] = 0;
        const char *end = NULL;
        root = cJSON_ParseWithOpts(text, &end, 1);
        if (!cJSON_IsObject(root)) {
            size_t at = end ? (size_t)(end - text) : 0, line = 1;
            for (size_t i = 0; i < at && i < (size_t)n; i++)
                line += text[i] == '\n';
            free(text);
            cJSON_Delete(root);
            return tr_fail(err, errlen, "config %s: malformed JSON near line %zu", path, line);
        }
        free(text);
    } else {
        root = cJSON_CreateObject();
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < n_sets; i++)
        rc = apply_set(root, sets[i], err, errlen);
    if (rc == 0)
        rc = check_known(root, "", src, err, errlen);
    if (rc == 0)
        rc = read_fields(root, out, src, err, errlen);
    if (rc == 0) {
        sort_keys(root);
        exact_numbers(root);
        hash_model(root, out->model_hash);
        out->json = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(root);
    return rc;
}

void tr_config_free(tr_config *c)
{
    free(c->json);
    c->json = NULL;
}
