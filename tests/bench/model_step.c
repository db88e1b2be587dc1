/* model_step: the time of one training step of a fusion model (models/fusion.h), for tests/bench/run.
 *
 *   model_step audio|video tiny|base [--batch B] [--utts U] [--steps N] [--threads T] [--dump FILE]
 *              [--keep-heap 0|1]
 *
 * tiny: the widths of configs/tiny-audio.json / tiny-video.json with the trainer's defaults for what
 * they leave out (B 8, U 10 slots, 32 tokens per utterance, 48 of context, each row filled to between
 * half and all of its budget); base: mf_config_seed (bert-base with 6 layers frozen, the frozen
 * wav2vec2-base / the seed's video transformer) on the seed's token budgets (128 per utterance, 256 of
 * context) holding sentences of a dialogue's length (8 to 48 tokens per utterance, 16 to 64 of context),
 * B 2, U 3. Both read 1 s of audio or 8 frames of 224x224 per slot.
 *
 * A step is what the trainer does: zero the trainable gradients, forward in training mode (dropout),
 * cross-entropy, backward, AdamW on the trainable parameters. One warm-up step, then N timed ones.
 * Before them, one forward with dropout off on the initial weights gives the check logits and loss.
 * --dump writes the parameters, the batch (input.*, input.labels), the check logits and the
 * configuration as safetensors, so model_step_peer.py trains the same model on the same batch.
 *
 * Prints one line: step_s (median), the medians of its parts (fwd_s, bwd_s, free_s, opt_s, zero_s),
 * loss0 (the warm-up step's loss), check_loss, peak_rss_mb: the peak resident set of the steps, the
 * process's resident set when they start (rss0_mb) included (the peak is reset then, so building the
 * model and writing the dump do not count; peak_scope=process when the kernel refuses the reset),
 * the threads and keep_heap. --keep-heap 0 leaves glibc's malloc as it comes (see main). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "models/fusion.h"
#include "models/safetensors.h"
#include "trainer/optim.h"

#define LR 1e-3
#define BETA1 0.9
#define BETA2 0.999
#define EPS 1e-8
#define WEIGHT_DECAY 0.01
#define SEED 42
#define MAX_STEPS 1000

typedef struct {
    mf_kind kind;
    int base;
    int64_t batch, utts, steps, threads;
    const char *dump;
    int keep_heap;
} options;

typedef struct {
    int64_t B, U, L, C, S, F, side;
    int64_t len_lo, len_hi, ctx_lo, ctx_hi; /* real tokens per utterance and of the context */
    int64_t *tokens, *role, *ctx, *meta, *audio_len, *labels;
    float *mask, *valid, *ctx_mask, *audio_valid, *video_valid;
    int16_t *audio;
    uint8_t *frames;
} host_batch;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "model_step: %s: %s\n", what, detail);
    exit(1);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- Configurations ---------------------------------------------------------------------- */

/* configs/tiny-{audio,video}.json through trainer/model.c's fusion_config, with trainer/config.c's
 * defaults for the fields they leave out and the seed's metadata tables. */
static mf_config config_tiny(mf_kind kind)
{
    mf_config c = mf_config_seed(kind);
    double dropout = kind == MF_AUDIO ? 0.2 : 0.3;
    c.dropout = dropout;
    c.bert = (bert_config){.vocab_size = 30522, .hidden = 32, .layers = 2, .heads = 2, .intermediate = 64,
                           .max_position = 64, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = dropout,
                           .attention_dropout = dropout, .init_std = 0.02};
    c.bert_freeze_layers = 0;
    w2v_config *a = &c.audio;
    a->hidden = 32, a->layers = 2, a->heads = 2, a->intermediate = 64, a->pos_conv_kernel = 16, a->pos_conv_groups = 4;
    for (int i = 0; i < a->conv_layers; i++)
        a->conv_dim[i] = 32;
    a->hidden_dropout = a->attention_dropout = a->activation_dropout = a->feat_proj_dropout = 0.0;
    c.audio_frozen = 0;
    c.video = (vv_config){.image = 224, .frames = 8, .patch = 32, .dim = 32, .heads = 2, .layers = 1, .ffn = 64,
                          .dropout = 0.1, .ln_eps = 1e-5, .attention = VV_ATTN_JOINT};
    c.age_dim = 4, c.gender_dim = 4, c.timbre_dim = 4, c.avatar_dim = 8, c.topic_dim = 8;
    c.lstm_hidden = 32, c.heads = 4, c.meta_hidden = 32, c.meta_out = 16;
    c.lstm_layers = kind == MF_AUDIO ? 2 : 1;
    c.role_dim = 8, c.audio_hidden = 64, c.audio_out = 32, c.ctx_out = 32, c.meta_time = 32;
    c.ctx_dims[0] = 64, c.ctx_dims[1] = 32, c.n_ctx = 2;
    c.head_dims[0] = 64, c.head_dims[1] = 32, c.n_head = 2;
    return c;
}

/* The configuration as ref_fusion.py reads it (mf_config's fields, HF's names for the encoders). */
static char *config_json(const mf_config *c)
{
    static const char *const pools[] = {"cls", "pooler", "mean"}, *const norms[] = {"none", "zero_mean", "peak"};
    cJSON *j = cJSON_CreateObject();
    char *hf = bert_config_to_hf(&c->bert);
    cJSON_AddItemToObject(j, "bert", cJSON_Parse(hf));
    free(hf);
    cJSON_AddStringToObject(j, "kind", c->kind == MF_AUDIO ? "audio" : "video");
    cJSON_AddNumberToObject(j, "classes", (double)c->classes);
    cJSON_AddNumberToObject(j, "dropout", c->dropout);
    cJSON_AddNumberToObject(j, "bert_freeze_layers", c->bert_freeze_layers);
    cJSON_AddStringToObject(j, "text_pool", pools[c->text_pool]);
    if (c->kind == MF_AUDIO) {
        hf = w2v_config_to_hf(&c->audio);
        cJSON_AddItemToObject(j, "audio", cJSON_Parse(hf));
        free(hf);
        cJSON_AddNumberToObject(j, "audio_frozen", c->audio_frozen);
        cJSON_AddStringToObject(j, "audio_norm", norms[c->audio_norm]);
        cJSON_AddNumberToObject(j, "audio_hidden", (double)c->audio_hidden);
        cJSON_AddNumberToObject(j, "audio_out", (double)c->audio_out);
        cJSON_AddNumberToObject(j, "ctx_out", (double)c->ctx_out);
    } else {
        const vv_config *v = &c->video;
        cJSON *w = cJSON_AddObjectToObject(j, "video");
        cJSON_AddNumberToObject(w, "image", (double)v->image);
        cJSON_AddNumberToObject(w, "frames", (double)v->frames);
        cJSON_AddNumberToObject(w, "patch", (double)v->patch);
        cJSON_AddNumberToObject(w, "dim", (double)v->dim);
        cJSON_AddNumberToObject(w, "heads", (double)v->heads);
        cJSON_AddNumberToObject(w, "layers", (double)v->layers);
        cJSON_AddNumberToObject(w, "ffn", (double)v->ffn);
        cJSON_AddNumberToObject(w, "dropout", v->dropout);
        cJSON_AddNumberToObject(w, "ln_eps", v->ln_eps);
        cJSON_AddStringToObject(w, "attention", v->attention == VV_ATTN_DIVIDED ? "divided" : "joint");
        cJSON_AddNumberToObject(j, "meta_time", (double)c->meta_time);
        cJSON *dims = cJSON_AddArrayToObject(j, "ctx_dims");
        for (int i = 0; i < c->n_ctx; i++)
            cJSON_AddItemToArray(dims, cJSON_CreateNumber((double)c->ctx_dims[i]));
    }
    cJSON_AddBoolToObject(j, "use_coe", c->use_coe);
    const char *const rows[] = {"rows_age", "rows_gender", "rows_timbre", "rows_avatar",
                                "rows_topic", "rows_event", "rows_cause", "rows_goal"};
    const int64_t row_v[] = {c->rows_age, c->rows_gender, c->rows_timbre, c->rows_avatar,
                             c->rows_topic, c->rows_event, c->rows_cause, c->rows_goal};
    const char *const widths[] = {"age_dim", "gender_dim", "timbre_dim", "avatar_dim", "topic_dim",
                                  "coe_dim", "meta_hidden", "meta_out", "lstm_hidden", "heads", "role_dim"};
    const int64_t width_v[] = {c->age_dim,     c->gender_dim, c->timbre_dim,   c->avatar_dim,
                               c->topic_dim,   c->coe_dim,    c->meta_hidden,  c->meta_out,
                               c->lstm_hidden, c->heads,      c->role_dim};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cJSON_AddNumberToObject(j, rows[i], (double)row_v[i]);
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        cJSON_AddNumberToObject(j, widths[i], (double)width_v[i]);
    cJSON_AddNumberToObject(j, "lstm_layers", c->lstm_layers);
    cJSON *head = cJSON_AddArrayToObject(j, "head_dims");
    for (int i = 0; i < c->n_head; i++)
        cJSON_AddItemToArray(head, cJSON_CreateNumber((double)c->head_dims[i]));
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!out)
        die("config", "out of memory");
    return out;
}

/* ---- The batch ------------------------------------------------------------------------------ */

static uint32_t draw(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*x >> 33);
}

static void *alloc(int64_t n, size_t size)
{
    void *p = calloc((size_t)(n > 0 ? n : 1), size);
    if (!p)
        die("batch", "out of memory");
    return p;
}

/* Sample b has U - (draw % (U/2 + 1)) valid slots (sample 0 all of them), each utterance len_lo..len_hi
 * real tokens, the context ctx_lo..ctx_hi; a quarter of the valid slots have no audio or video.
 * Waveforms run at least half of S samples; some metadata ids lie outside their tables. */
static void batch_fill(host_batch *h, const mf_config *c, uint64_t seed)
{
    int64_t B = h->B, U = h->U, L = h->L, C = h->C, S = h->S, clip = h->F * h->side * h->side * 3;
    uint64_t x = seed;
    h->tokens = alloc(B * U * L, sizeof(int64_t)), h->mask = alloc(B * U * L, sizeof(float));
    h->valid = alloc(B * U, sizeof(float)), h->role = alloc(B * U, sizeof(int64_t));
    h->ctx = alloc(B * C, sizeof(int64_t)), h->ctx_mask = alloc(B * C, sizeof(float));
    h->meta = alloc(B * MF_META_FIELDS, sizeof(int64_t)), h->labels = alloc(B, sizeof(int64_t));
    h->audio_valid = alloc(B * U, sizeof(float)), h->video_valid = alloc(B * U, sizeof(float));
    if (c->kind == MF_AUDIO) {
        h->audio = alloc(B * U * S, sizeof(int16_t)), h->audio_len = alloc(B * U, sizeof(int64_t));
    } else {
        h->frames = alloc(B * U * clip, 1);
    }
    int64_t vocab = c->bert.vocab_size;
    for (int64_t b = 0; b < B; b++) {
        int64_t k = b ? U - (int64_t)(draw(&x) % (uint32_t)(U / 2 + 1)) : U;
        for (int64_t u = 0; u < U; u++) {
            int64_t i = b * U + u, len = h->len_lo + (int64_t)(draw(&x) % (uint32_t)(h->len_hi - h->len_lo + 1));
            int valid = u < k, medium = valid && (u == 0 || draw(&x) % 4 != 0);
            h->valid[i] = (float)valid;
            h->role[i] = valid ? (u == k - 1 ? 2 : u % 2) : 0;
            h->audio_valid[i] = h->video_valid[i] = (float)medium;
            for (int64_t t = 0; t < L; t++) {
                h->tokens[i * L + t] = 1 + (int64_t)(draw(&x) % (uint32_t)(vocab - 1));
                h->mask[i * L + t] = (float)(valid && t < len);
            }
            if (c->kind == MF_AUDIO) {
                h->audio_len[i] = S / 2 + (int64_t)(draw(&x) % (uint32_t)(S - S / 2 + 1));
                for (int64_t s = 0; s < S; s++)
                    h->audio[i * S + s] = (int16_t)((int)(draw(&x) % 40001) - 20000);
            } else {
                for (int64_t p = 0; p < clip; p++)
                    h->frames[i * clip + p] = (uint8_t)(draw(&x) >> 8);
            }
        }
        int64_t ctx_len = h->ctx_lo + (int64_t)(draw(&x) % (uint32_t)(h->ctx_hi - h->ctx_lo + 1));
        for (int64_t t = 0; t < C; t++) {
            h->ctx[b * C + t] = 1 + (int64_t)(draw(&x) % (uint32_t)(vocab - 1));
            h->ctx_mask[b * C + t] = (float)(t < ctx_len);
        }
        for (int f = 0; f < MF_META_FIELDS; f++)
            h->meta[b * MF_META_FIELDS + f] = (int64_t)(draw(&x) % 5) - (f == 1 && b == 1);
        h->labels[b] = (int64_t)(draw(&x) % (uint32_t)c->classes);
    }
}

static void batch_free(host_batch *h)
{
    void *v[] = {h->tokens, h->role, h->ctx, h->meta, h->audio_len, h->labels, h->mask, h->valid,
                 h->ctx_mask, h->audio_valid, h->video_valid, h->audio, h->frames};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        free(v[i]);
}

#define N_INPUTS 11

/* The batch as tensors over its host memory (no copies), in the current scope, named as
 * ref_fusion.py's INPUTS with "input." before them; the labels come last. */
typedef struct {
    mf_inputs in;
    tc_tensor *labels;
    const char *names[N_INPUTS];
    tc_tensor *t[N_INPUTS];
    int n;
} batch_tensors;

static tc_tensor *wrap(batch_tensors *bt, const char *name, void *data, const int64_t *shape, int ndim,
                       tc_dtype dtype)
{
    tc_tensor *t = tc_from_blob(data, shape, ndim, dtype);
    bt->names[bt->n] = name;
    bt->t[bt->n++] = t;
    return t;
}

static void batch_tensors_of(batch_tensors *bt, host_batch *h, mf_kind kind)
{
    memset(bt, 0, sizeof *bt);
    const int64_t bul[] = {h->B, h->U, h->L}, bu[] = {h->B, h->U}, bc[] = {h->B, h->C},
                  bm[] = {h->B, MF_META_FIELDS}, bus[] = {h->B, h->U, h->S},
                  frames[] = {h->B, h->U, h->F, h->side, h->side, 3};
    mf_inputs *in = &bt->in;
    in->utt_tokens = wrap(bt, "input.utt_tokens", h->tokens, bul, 3, TC_I64);
    in->utt_mask = wrap(bt, "input.utt_mask", h->mask, bul, 3, TC_F32);
    in->utt_valid = wrap(bt, "input.utt_valid", h->valid, bu, 2, TC_F32);
    in->utt_role = wrap(bt, "input.utt_role", h->role, bu, 2, TC_I64);
    in->ctx_tokens = wrap(bt, "input.ctx_tokens", h->ctx, bc, 2, TC_I64);
    in->ctx_mask = wrap(bt, "input.ctx_mask", h->ctx_mask, bc, 2, TC_F32);
    in->meta = wrap(bt, "input.meta", h->meta, bm, 2, TC_I64);
    if (kind == MF_AUDIO) {
        in->audio = wrap(bt, "input.audio", h->audio, bus, 3, TC_I16);
        in->audio_len = wrap(bt, "input.audio_len", h->audio_len, bu, 2, TC_I64);
        in->audio_valid = wrap(bt, "input.audio_valid", h->audio_valid, bu, 2, TC_F32);
    } else {
        in->frames = wrap(bt, "input.frames", h->frames, frames, 6, TC_U8);
        in->video_valid = wrap(bt, "input.video_valid", h->video_valid, bu, 2, TC_F32);
    }
    bt->labels = wrap(bt, "input.labels", h->labels, (const int64_t[]){h->B}, 1, TC_I64);
}

/* ---- The dump ------------------------------------------------------------------------------- */

static st_tensor st_of(const char *name, tc_tensor *t)
{
    static const struct {
        tc_dtype tc;
        st_dtype st;
    } map[] = {{TC_F32, ST_F32}, {TC_I64, ST_I64}, {TC_I16, ST_I16}, {TC_U8, ST_U8}};
    st_tensor s = {.name = name, .ndim = tc_ndim(t), .data = tc_data_ptr(t)};
    size_t i = 0;
    while (i < sizeof map / sizeof map[0] && map[i].tc != tc_dtype_of(t))
        i++;
    if (i == sizeof map / sizeof map[0] || !s.data)
        die(name, "not a contiguous f32, i64, i16 or u8 tensor");
    s.dtype = map[i].st;
    s.nbytes = (size_t)tc_numel(t) * tc_dtype_size(tc_dtype_of(t));
    for (int d = 0; d < s.ndim; d++)
        s.shape[d] = tc_size(t, d);
    return s;
}

static void dump_write(const char *path, mf_model *m, const batch_tensors *bt, tc_tensor *check_logits,
                       const options *o)
{
    char *config = config_json(&m->cfg), train[256], err[512];
    snprintf(train, sizeof train,
             "{\"lr\": %.17g, \"beta1\": %.17g, \"beta2\": %.17g, \"eps\": %.17g, \"weight_decay\": %.17g, "
             "\"seed\": %d, \"size\": \"%s\"}",
             LR, BETA1, BETA2, EPS, WEIGHT_DECAY, SEED, o->base ? "base" : "tiny");
    const char *const meta[] = {"config", config, "train", train};
    size_t n = (size_t)m->params.n + (size_t)bt->n + 1;
    st_tensor *ts = alloc((int64_t)n, sizeof *ts);
    tc_scope *s = tc_scope_begin();
    for (int i = 0; i < m->params.n; i++)
        ts[i] = st_of(m->params.v[i].name, tc_contiguous(m->params.v[i].t));
    for (int i = 0; i < bt->n; i++)
        ts[m->params.n + i] = st_of(bt->names[i], bt->t[i]);
    ts[n - 1] = st_of("check.logits", tc_contiguous(check_logits));
    if (st_write(path, ts, n, meta, 2, err, sizeof err))
        die(path, err);
    tc_scope_end(s);
    free(ts);
    free(config);
}

/* ---- Steps ---------------------------------------------------------------------------------- */

enum { PART_ZERO, PART_FWD, PART_BWD, PART_FREE, PART_OPT, PART_STEP, N_PARTS };

/* One step; t receives the seconds of its parts: zeroing the gradients, forward with the loss,
 * backward, ending the step's scope (the forward's tensors are freed there) and AdamW. */
static double train_step(mf_model *m, tr_adamw *o, const tr_config *cfg, const batch_tensors *bt, tc_generator *gen,
                         double *t)
{
    mp_params *ps = &m->params;
    double t0 = now();
    for (int i = 0; i < ps->n; i++)
        if (mp_trainable(&ps->v[i]) && tc_zero_grad(ps->v[i].t) != TC_OK)
            die("zero_grad", tc_last_error());
    double t1 = now();
    tc_scope *s = tc_scope_begin();
    tc_tensor *loss = tc_cross_entropy(mf_model_forward(m, &bt->in, 1, gen), bt->labels, NULL);
    double value = tc_item(loss);
    double t2 = now();
    if (tc_scope_status(s) != TC_OK || tc_backward(loss) != TC_OK)
        die("forward/backward", tc_last_error());
    double t3 = now();
    if (tc_scope_end(s) != TC_OK)
        die("forward", tc_last_error());
    double t4 = now();
    if (tr_adamw_step(o, ps, cfg, LR) != TC_OK)
        die("adamw", tc_last_error());
    double t5 = now();
    t[PART_ZERO] = t1 - t0, t[PART_FWD] = t2 - t1, t[PART_BWD] = t3 - t2, t[PART_FREE] = t4 - t3;
    t[PART_OPT] = t5 - t4, t[PART_STEP] = t5 - t0;
    return value;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The current resident set in MB (proc(5), statm), 0 when unknown. */
static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, resident = 0;
    int ok = f && fscanf(f, "%lld %lld", &size, &resident) == 2;
    if (f)
        fclose(f);
    return ok ? (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0) : 0.0;
}

/* The kernel's "peak resident set" restarts from the current one (proc(5), clear_refs 5). */
static int peak_rss_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int rc = fputs("5", f) < 0;
    return fclose(f) || rc ? -1 : 0;
}

/* ---- Main ----------------------------------------------------------------------------------- */

static int64_t number(const char *flag, const char *v, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || *end || n < lo || n > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "expects a whole number in %lld..%lld", (long long)lo, (long long)hi);
        die(flag, msg);
    }
    return n;
}

static options parse(int argc, char **argv)
{
    options o = {.steps = 5, .threads = 2, .keep_heap = 1};
    if (argc < 3 || (strcmp(argv[1], "audio") && strcmp(argv[1], "video")) ||
        (strcmp(argv[2], "tiny") && strcmp(argv[2], "base")))
        die("usage", "model_step audio|video tiny|base [--batch B] [--utts U] [--steps N] [--threads T] [--dump FILE] "
                     "[--keep-heap 0|1]");
    o.kind = strcmp(argv[1], "audio") ? MF_VIDEO : MF_AUDIO;
    o.base = !strcmp(argv[2], "base");
    o.batch = o.base ? 2 : 8;
    o.utts = o.base ? 3 : 10;
    for (int i = 3; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--batch"))
            o.batch = number(argv[i], v, 1, 4096);
        else if (!strcmp(argv[i], "--utts"))
            o.utts = number(argv[i], v, 1, 64);
        else if (!strcmp(argv[i], "--steps"))
            o.steps = number(argv[i], v, 1, MAX_STEPS);
        else if (!strcmp(argv[i], "--threads"))
            o.threads = number(argv[i], v, 1, 1024);
        else if (!strcmp(argv[i], "--dump") && v)
            o.dump = v;
        else if (!strcmp(argv[i], "--keep-heap"))
            o.keep_heap = (int)number(argv[i], v, 0, 1);
        else
            die(argv[i], "unknown option, or its value is missing");
        i++;
    }
    return o;
}

int main(int argc, char **argv)
{
    options o = parse(argc, argv);
    /* Freed tensors stay in the heap for the next step's: glibc otherwise maps every block above its
     * mmap threshold afresh and unmaps it on free, and the kernel zeroes each page again on first
     * touch (half the step of the tiny video model). empd train does the same. */
    if (o.keep_heap && (!mallopt(M_MMAP_MAX, 0) || !mallopt(M_TRIM_THRESHOLD, -1)))
        die("mallopt", "refused");
    if (tc_set_num_threads((int)o.threads) != TC_OK)
        die("threads", tc_last_error());
    mf_config cfg = o.base ? mf_config_seed(o.kind) : config_tiny(o.kind);
    mf_model m;
    if (mf_model_init(&m, &cfg, SEED) != TC_OK)
        die("model", tc_last_error());
    host_batch h = {.B = o.batch, .U = o.utts, .L = o.base ? 128 : 32, .C = o.base ? 256 : 48, .S = 16000,
                    .F = cfg.video.frames, .side = cfg.video.image};
    h.len_lo = o.base ? 8 : h.L / 2, h.len_hi = o.base ? 48 : h.L;
    h.ctx_lo = o.base ? 16 : h.C / 2, h.ctx_hi = o.base ? 64 : h.C;
    batch_fill(&h, &cfg, SEED + 1);

    tc_scope *s = tc_scope_begin();
    batch_tensors bt;
    batch_tensors_of(&bt, &h, o.kind);
    /* In a scope of its own, so that its tensors are gone before the steps start. */
    tc_scope *cs = tc_scope_begin();
    int was = tc_grad_enabled_set(0);
    tc_tensor *check = tc_keep(mf_model_forward(&m, &bt.in, 0, NULL));
    double check_loss = tc_item(tc_cross_entropy(check, bt.labels, NULL));
    tc_grad_enabled_set(was);
    if (tc_scope_end(cs) != TC_OK)
        die("check forward", tc_last_error());
    if (o.dump)
        dump_write(o.dump, &m, &bt, check, &o);

    double rss0 = rss_mb();
    int peak_reset = peak_rss_reset() == 0;
    /* The trainer's optimizer: moments for the trainable parameters only. */
    tr_adamw opt;
    tr_config ocfg = {.train = {.beta1 = BETA1, .beta2 = BETA2, .eps = EPS, .weight_decay = WEIGHT_DECAY}};
    if (tr_adamw_init(&opt, &m.params) != TC_OK)
        die("optimizer", tc_last_error());
    tc_generator *gen = tc_generator_new(SEED, (tc_device){TC_CPU, 0});
    tc_manual_seed(SEED);
    double parts[N_PARTS], *times[N_PARTS];
    for (int p = 0; p < N_PARTS; p++)
        times[p] = alloc(o.steps, sizeof(double));
    double loss0 = train_step(&m, &opt, &ocfg, &bt, gen, parts);
    for (int64_t i = 0; i < o.steps; i++) {
        train_step(&m, &opt, &ocfg, &bt, gen, parts);
        for (int p = 0; p < N_PARTS; p++)
            times[p][i] = parts[p];
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("step_s=%.4f fwd_s=%.4f bwd_s=%.4f free_s=%.4f opt_s=%.4f zero_s=%.4f loss0=%.6f check_loss=%.9g "
           "peak_rss_mb=%.1f peak_scope=%s rss0_mb=%.1f threads=%d keep_heap=%d\n",
           median(times[PART_STEP], o.steps), median(times[PART_FWD], o.steps), median(times[PART_BWD], o.steps),
           median(times[PART_FREE], o.steps), median(times[PART_OPT], o.steps), median(times[PART_ZERO], o.steps),
           loss0, check_loss, (double)ru.ru_maxrss / 1024.0, peak_reset ? "steps" : "process", rss0,
           tc_get_num_threads(), o.keep_heap);
    for (int p = 0; p < N_PARTS; p++)
        free(times[p]);
    tc_generator_free(gen);
    tc_scope_end(s);
    tr_adamw_free(&opt);
    mf_model_free(&m);
    batch_free(&h);
    return isfinite(loss0) ? 0 : 1;
}
