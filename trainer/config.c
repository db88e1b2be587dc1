#include "trainer/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/errors.h"

/* K_STR: text into a char[TR_STR]; K_ENUM: one of def_str's comma-separated names, stored as its index
 * (the first is the default); K_LIST: a JSON array of up to TR_MAX_LIST integers in [lo, hi], stored in
 * an int64_t[TR_MAX_LIST] followed by its count (def_str is the default, e.g. "[512,256]"). */
enum kind { K_INT, K_REAL, K_STR, K_ENUM, K_LIST };

#define TR_STR 1024

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
#define S(k, m, d, h) {k, K_STR, offsetof(tr_config, m), 0, 0, 0, d, h}
#define E(k, m, names, h) {k, K_ENUM, offsetof(tr_config, m), 0, 0, 0, names, h}
#define L(k, m, d, lo, hi, h) {k, K_LIST, offsetof(tr_config, m), 0, lo, hi, d, h}
    S("data.shards", data.shards, "shards", "shard folder (empd shard --out)"),
    I("data.loader_threads", data.loader_threads, 2, 1, 256, "threads per rank filling batches (results do not depend on it)"),
    I("data.prefetch_depth", data.prefetch_depth, 2, 1, 64, "batches prepared ahead per rank (host memory: depth x batch)"),
    E("model.kind", model.kind, "text,audio,video", "text: the skeleton's text + metadata model; audio / video: the seed's fusion models"),
    I("model.vocab_size", model.vocab_size, 30522, 1, 1e7, "token embedding rows (the vocab.txt size)"),
    I("model.hidden", model.hidden, 64, 1, 65536, "text encoder (BERT) width"),
    I("model.layers", model.layers, 2, 1, 24, "text encoder layers"),
    I("model.heads", model.heads, 2, 1, 1024, "text encoder attention heads (divides hidden)"),
    I("model.intermediate", model.intermediate, 128, 1, 1e6, "text encoder feed-forward width"),
    I("model.max_position", model.max_position, 64, 2, 1e5, "position embeddings (>= utt_tokens and ctx_tokens)"),
    I("model.utt_tokens", model.utt_tokens, 32, 2, 1e5, "tokens read per utterance ([CLS] .. [SEP])"),
    I("model.ctx_tokens", model.ctx_tokens, 64, 2, 1e5, "tokens read of the turn's context (audio/video models)"),
    S("model.bert.config", model.bert.config, "", "HF config.json of the text encoder: its sizes and dropouts replace model.vocab_size..max_position and model.dropout for BERT (empty: those fields)"),
    S("model.bert.weights", model.bert.weights, "", "HF model.safetensors to start the text encoder from (empty: random)"),
    I("model.bert.freeze_layers", model.bert.freeze_layers, 0, -1, 24, "0: BERT trains whole; k: its embeddings and first k layers frozen; -1: all of it"),
    E("model.text_pool", model.text_pool, "cls,pooler,mean", "utterance/context vector: [CLS] hidden state, pooler output or token mean"),
    S("model.audio.config", model.audio.config, "", "HF config.json of Wav2Vec2: its sizes and dropouts replace model.audio.conv_dim..dropout (empty: those fields)"),
    S("model.audio.weights", model.audio.weights, "", "HF model.safetensors to start Wav2Vec2 from (empty: random)"),
    I("model.audio.frozen", model.audio.frozen, 1, 0, 1, "1: Wav2Vec2 is a fixed feature extractor (the seed's)"),
    E("model.audio.norm", model.audio.norm, "peak,zero_mean,none", "waveform normalisation: peak (the seed's), zero mean/unit variance (HF's), none"),
    R("model.audio.seconds", model.audio.seconds, 1.0, 0.05, 600, "seconds of audio read per utterance (the seed's 1 s)"),
    I("model.audio.conv_dim", model.audio.conv_dim, 512, 1, 65536, "channels of each of the 7 feature-encoder convolutions"),
    I("model.audio.hidden", model.audio.hidden, 768, 1, 65536, "Wav2Vec2 transformer width"),
    I("model.audio.layers", model.audio.layers, 12, 1, 48, "Wav2Vec2 transformer layers"),
    I("model.audio.heads", model.audio.heads, 12, 1, 1024, "Wav2Vec2 attention heads"),
    I("model.audio.intermediate", model.audio.intermediate, 3072, 1, 1e6, "Wav2Vec2 feed-forward width"),
    I("model.audio.pos_kernel", model.audio.pos_kernel, 128, 2, 1024, "Wav2Vec2 positional convolution kernel"),
    I("model.audio.pos_groups", model.audio.pos_groups, 16, 1, 1024, "Wav2Vec2 positional convolution groups"),
    R("model.audio.dropout", model.audio.dropout, 0.1, 0, 0.99, "Wav2Vec2 dropouts (when trained)"),
    I("model.video.patch", model.video.patch, 32, 1, 4096, "video transformer patch size (divides the frame size)"),
    I("model.video.dim", model.video.dim, 384, 1, 65536, "video transformer width"),
    I("model.video.heads", model.video.heads, 6, 1, 1024, "video transformer heads"),
    I("model.video.layers", model.video.layers, 4, 1, 48, "video transformer layers"),
    I("model.video.ffn", model.video.ffn, 1536, 1, 1e6, "video transformer feed-forward width"),
    R("model.video.dropout", model.video.dropout, 0.3, 0, 0.99, "video transformer dropout"),
    E("model.video.attention", model.video.attention, "joint,divided", "joint space-time attention (the seed's) or divided (TimeSformer's)"),
    I("model.fusion.lstm_hidden", model.fusion.lstm_hidden, 256, 1, 65536, "BiLSTM hidden size per direction"),
    I("model.fusion.lstm_layers", model.fusion.lstm_layers, 2, 1, 8, "BiLSTM layers"),
    I("model.fusion.heads", model.fusion.heads, 8, 1, 1024, "heads of the fusion attentions"),
    I("model.fusion.role_dim", model.fusion.role_dim, 16, 1, 4096, "role embedding width (audio model)"),
    I("model.fusion.audio_hidden", model.fusion.audio_hidden, 512, 1, 65536, "audio MLP hidden width"),
    I("model.fusion.audio_out", model.fusion.audio_out, 256, 1, 65536, "audio MLP output width"),
    I("model.fusion.ctx_out", model.fusion.ctx_out, 256, 1, 65536, "context projection width (audio model)"),
    I("model.fusion.meta_time", model.fusion.meta_time, 256, 1, 65536, "metadata projection broadcast over time (video model)"),
    I("model.fusion.meta_hidden", model.fusion.meta_hidden, 128, 1, 65536, "metadata MLP hidden width"),
    I("model.fusion.meta_out", model.fusion.meta_out, 64, 1, 65536, "metadata MLP output width"),
    L("model.fusion.ctx", model.fusion.ctx, "[512,256,128]", 1, 65536, "context MLP widths (video model)"),
    L("model.fusion.head", model.fusion.head, "[]", 1, 65536, "classifier hidden widths ([]: the seed's, [512,256] audio, [512,256,128] video)"),
    I("model.meta.use_coe", model.meta.use_coe, 0, 0, 1, "1: read the chain-of-empathy fields (they leak the label; the seed did)"),
    I("model.meta.age_dim", model.meta.age_dim, 16, 1, 4096, "age embedding width"),
    I("model.meta.gender_dim", model.meta.gender_dim, 8, 1, 4096, "gender embedding width"),
    I("model.meta.timbre_dim", model.meta.timbre_dim, 8, 1, 4096, "timbre embedding width"),
    I("model.meta.avatar_dim", model.meta.avatar_dim, 32, 1, 4096, "avatar ID embedding width"),
    I("model.meta.topic_dim", model.meta.topic_dim, 32, 1, 4096, "topic embedding width"),
    I("model.meta.coe_dim", model.meta.coe_dim, 32, 1, 4096, "chain-of-empathy embedding width"),
    I("model.meta_dim", model.meta_dim, 8, 1, 4096, "embedding width per metadata field (text model)"),
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
    I("train.grad_accum", train.grad_accum, 1, 1, 1e6, "micro-batches per optimizer step (gradients summed; communication only on the last)"),
    I("train.epochs", train.epochs, 0, 0, 1e9, "stop after this many epochs too (0: train.max_steps alone)"),
    I("train.eval_each_epoch", train.eval_each_epoch, 0, 0, 1, "1: also validate at the end of every epoch (the seed's)"),
    R("train.clip_norm", train.clip_norm, 0, 0, 1e9, "clip the global gradient L2 norm to this (0: no clipping; the seed's 1.0)"),
    R("train.encoder_lr_scale", train.encoder_lr_scale, 1, 0, 1e3, "learning-rate factor of the pretrained encoders (bert.*, wav2vec2.*; the seed's 0.1)"),
    E("train.loss", train.loss, "ce,focal", "cross-entropy, or focal loss (the seed's)"),
    R("train.focal_gamma", train.focal_gamma, 2, 0, 100, "focal loss gamma"),
    E("train.class_weights", train.class_weights, "none,balanced", "per-class loss weights: none, or n / (classes x count) from the training split"),
    E("train.best_metric", train.best_metric, "accuracy,macro_f1,weighted_f1,loss", "validation metric that picks the best checkpoint (kept besides the last ones)"),
    E("train.stop_metric", train.stop_metric, "loss,accuracy,macro_f1,weighted_f1", "validation metric early stopping watches"),
    I("train.patience", train.patience, 0, 0, 1e9, "stop after this many validations without improvement (0: never; the seed's 5)"),
    R("train.min_delta", train.min_delta, 0, 0, 1e9, "smallest change of train.stop_metric that counts as an improvement"),
    I("train.overlap", train.overlap, 1, 0, 1, "1: all-reduce gradient buckets while backward runs; 0: after it"),
    R("train.bucket_mb", train.bucket_mb, 25, 0.001, 1e5, "gradient bucket size in MB (the first bucket: train.first_bucket_mb)"),
    R("train.first_bucket_mb", train.first_bucket_mb, 1, 0.001, 1e5, "size of the first gradient bucket (the last layers'), in MB"),
    R("train.comm_timeout", train.comm_timeout, 60, 0, 1e6, "seconds a collective may wait before the job is ended (a dead or hung rank; 0: forever)"),
    E("train.device", train.device, "cpu,cuda", "where each rank trains: cpu, or cuda (the GPU of its local rank; gradients through NCCL)"),
    I("train.bf16", train.bf16, 1, 0, 1, "1: bf16 autocast of the forward on CUDA (ignored on the CPU)"),
    R("train.checkpoint_timeout", train.checkpoint_timeout, 1800, 0, 1e6, "seconds the other ranks wait for rank 0 to write a checkpoint"),
#undef I
#undef R
#undef S
#undef E
#undef L
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

const char *tr_metric_name(int64_t metric)
{
    static const char *const names[] = {"accuracy", "macro_f1", "weighted_f1", "loss"};
    return metric >= 0 && metric < 4 ? names[metric] : "?";
}

void tr_config_print_fields(void *file)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const struct field *f = &fields[i];
        if (f->kind == K_ENUM)
            fprintf(file, "  %-26s %-12.*s %s (one of %s)\n", f->key, (int)strcspn(f->def_str, ","), f->def_str, f->help,
                    f->def_str);
        else if (f->kind == K_STR || f->kind == K_LIST)
            fprintf(file, "  %-26s %-12s %s\n", f->key, *f->def_str ? f->def_str : "\"\"", f->help);
        else
            fprintf(file, "  %-26s %-12g %s\n", f->key, f->def, f->help);
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
        return md_fail(err, errlen, "--set '%s': expected section.field=value", set);
    char key[256], leaf[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - set), set);
    size_t kl = strlen(key);
    if (key[0] == '.' || key[kl - 1] == '.' || strstr(key, ".."))
        return md_fail(err, errlen, "--set '%s': '%s' has an empty part (section.field=value)", set, key);
    cJSON *o = parent_of(root, key, leaf, sizeof leaf);
    if (!o)
        return md_fail(err, errlen, "--set '%s': '%s' is not inside an object", set, key);
    /* A string field takes the text as it is (a folder may be called 2024); any other value must
     * be one whole JSON scalar, so "5x" or "1 2" is reported instead of read as 5 or 1. */
    const struct field *f = find_field(key);
    cJSON *v = f && (f->kind == K_STR || f->kind == K_ENUM) ? NULL : cJSON_ParseWithOpts(eq + 1, NULL, 1);
    if (!v || cJSON_IsObject(v) || (cJSON_IsArray(v) && !(f && f->kind == K_LIST))) {
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
        if (!c->string[0])
            return md_fail(err, errlen, "%s: an empty key in '%s'", src, *prefix ? prefix : "the top level");
        /* "train.lr" as one key would name a field the reader never finds: the value would be ignored. */
        if (strchr(c->string, '.'))
            return md_fail(err, errlen, "%s: key '%s' has a dot: nest it ({\"%.*s\": {\"%s\": ...}})", src, key,
                           (int)strcspn(c->string, "."), c->string, strchr(c->string, '.') + 1);
        for (const cJSON *d = c->next; d; d = d->next)
            if (!strcmp(d->string, c->string))
                return md_fail(err, errlen, "%s: field '%s' appears twice", src, key);
        if (cJSON_IsObject(c)) {
            /* A section no field lives in ("trian": {}) is a typo even when empty. */
            size_t kl = strlen(key);
            int section = 0;
            for (size_t i = 0; !section && i < N_FIELDS; i++)
                section = !strncmp(fields[i].key, key, kl) && fields[i].key[kl] == '.';
            if (!section)
                return md_fail(err, errlen, "%s: unknown field '%s' (empd train --help lists the fields)", src, key);
            if (check_known(c, key, src, err, errlen))
                return -1;
            continue;
        }
        if (!find_field(key))
            return md_fail(err, errlen, "%s: unknown field '%s' (empd train --help lists the fields)", src, key);
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

static int read_enum(cJSON *root, const struct field *f, const cJSON *v, int64_t *dst, const char *src, char *err,
                     size_t errlen)
{
    char def[64];
    snprintf(def, sizeof def, "%.*s", (int)strcspn(f->def_str, ","), f->def_str);
    const char *want = v && cJSON_IsString(v) ? v->valuestring : def;
    if (v && !cJSON_IsString(v))
        return md_fail(err, errlen, "%s: %s must be one of %s", src, f->key, f->def_str);
    int64_t i = 0;
    for (const char *s = f->def_str; *s; i++) {
        size_t n = strcspn(s, ",");
        if (strlen(want) == n && !strncmp(s, want, n)) {
            *dst = i;
            if (!v) {
                char leaf[256];
                cJSON_AddStringToObject(parent_of(root, f->key, leaf, sizeof leaf), leaf, def);
            }
            return 0;
        }
        s += n + (s[n] == ',');
    }
    return md_fail(err, errlen, "%s: %s = '%s' is not one of %s", src, f->key, want, f->def_str);
}

static int read_list(cJSON *root, const struct field *f, const cJSON *v, int64_t *dst, const char *src, char *err,
                     size_t errlen)
{
    cJSON *def = v ? NULL : cJSON_Parse(f->def_str);
    const cJSON *a = v ? v : def;
    int rc = 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > TR_MAX_LIST) {
        rc = md_fail(err, errlen, "%s: %s must be an array of at most %d integers", src, f->key, TR_MAX_LIST);
    } else {
        int n = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, a)
        {
            /* The range first: a cast of a double beyond int64_t is undefined. */
            if (!cJSON_IsNumber(x) || x->valuedouble < f->lo || x->valuedouble > f->hi ||
                x->valuedouble != (double)(int64_t)x->valuedouble) {
                rc = md_fail(err, errlen, "%s: %s[%d] must be an integer in [%g, %g]", src, f->key, n, f->lo, f->hi);
                break;
            }
            dst[n++] = (int64_t)x->valuedouble;
        }
        dst[TR_MAX_LIST] = n;
    }
    if (rc == 0 && def) {
        char leaf[256];
        cJSON_AddItemToObject(parent_of(root, f->key, leaf, sizeof leaf), leaf, def);
        def = NULL;
    }
    cJSON_Delete(def);
    return rc;
}

static int read_fields(cJSON *root, tr_config *c, const char *src, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const struct field *f = &fields[i];
        const cJSON *v = lookup(root, f->key);
        char *dst = (char *)c + f->off;
        if (f->kind == K_STR) {
            if (v && !cJSON_IsString(v))
                return md_fail(err, errlen, "%s: %s must be a string", src, f->key);
            snprintf(dst, TR_STR, "%s", v ? v->valuestring : f->def_str);
            if (!v) {
                char leaf[256];
                cJSON_AddStringToObject(parent_of(root, f->key, leaf, sizeof leaf), leaf, f->def_str);
            }
            continue;
        }
        if (f->kind == K_ENUM) {
            if (read_enum(root, f, v, (int64_t *)dst, src, err, errlen))
                return -1;
            continue;
        }
        if (f->kind == K_LIST) {
            if (read_list(root, f, v, (int64_t *)dst, src, err, errlen))
                return -1;
            continue;
        }
        double x = f->def;
        if (v) {
            if (!cJSON_IsNumber(v) && !cJSON_IsBool(v))
                return md_fail(err, errlen, "%s: %s must be a number, got %s", src, f->key,
                        cJSON_IsString(v) ? v->valuestring : "a non-number");
            x = cJSON_IsBool(v) ? cJSON_IsTrue(v) : v->valuedouble;
        } else {
            char leaf[256];
            cJSON_AddNumberToObject(parent_of(root, f->key, leaf, sizeof leaf), leaf, x);
        }
        if (!(x >= f->lo && x <= f->hi))
            return md_fail(err, errlen, "%s: %s = %g is outside [%g, %g]", src, f->key, x, f->lo, f->hi);
        if (f->kind == K_INT && x != (double)(int64_t)x)
            return md_fail(err, errlen, "%s: %s must be an integer, got %g", src, f->key, x);
        if (f->kind == K_INT)
            *(int64_t *)dst = (int64_t)x;
        else
            *(double *)dst = x;
    }
    if (c->model.hidden % c->model.heads)
        return md_fail(err, errlen, "%s: model.hidden (%lld) must be a multiple of model.heads (%lld)", src,
                    (long long)c->model.hidden, (long long)c->model.heads);
    if (c->model.utt_tokens > c->model.max_position)
        return md_fail(err, errlen, "%s: model.utt_tokens (%lld) exceeds model.max_position (%lld)", src,
                    (long long)c->model.utt_tokens, (long long)c->model.max_position);
    if (c->model.kind != TR_MODEL_TEXT && c->model.ctx_tokens > c->model.max_position)
        return md_fail(err, errlen, "%s: model.ctx_tokens (%lld) exceeds model.max_position (%lld)", src,
                    (long long)c->model.ctx_tokens, (long long)c->model.max_position);
    if (c->train.decay_steps && c->train.decay_steps <= c->train.warmup_steps)
        return md_fail(err, errlen, "%s: train.decay_steps (%lld) must exceed train.warmup_steps (%lld), or be 0", src,
                    (long long)c->train.decay_steps, (long long)c->train.warmup_steps);
    if (c->model.num_classes != 0 && c->model.num_classes != 7 && c->model.num_classes != 32)
        return md_fail(err, errlen, "%s: model.num_classes must be 0, 7 or 32", src);
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

static void hash_text(const char *s, char out[17])
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = s; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static void hash_model(const cJSON *root, char out[17])
{
    char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(root, "model"));
    hash_text(s, out);
    free(s);
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
            return md_fail(err, errlen, "config %s: cannot open: %s", path, strerror(errno));
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *text = malloc((size_t)n + 1);
        size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
        fclose(f);
        if (!text || got != (size_t)n) {
            free(text);
            return md_fail(err, errlen, "config %s: cannot read", path);
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
            return md_fail(err, errlen, "config %s: malformed JSON near line %zu", path, line);
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
        hash_text(out->json, out->config_hash);
    }
    cJSON_Delete(root);
    return rc;
}

void tr_config_free(tr_config *c)
{
    free(c->json);
    c->json = NULL;
}
