/* empd train: the data-parallel training loop of the skeleton text + metadata model.
 * Every rank holds a full replica (weights broadcast from rank 0), trains on its slice of each
 * global batch, and averages gradients with one all-reduce per step; rank 0 logs, evaluates the
 * gathered confusion matrix and writes checkpoints. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "dataset/loader.h"
#include "dataset/manifest.h"
#include "dataset/record.h"
#include "dataset/sampler.h"
#include "models/safetensors.h"
#include "models/text_model.h"
#include "trainer/checkpoint.h"
#include "trainer/commands.h"
#include "trainer/config.h"
#include "trainer/metrics.h"
#include "trainer/optim.h"
#include "trainer/progress.h"

typedef struct {
    tr_config cfg;
    comm_group *g;
    int rank, world;
    const char *out;
    ds_loader *loader;
    tm_model model;
    tr_adamw opt;
    tc_generator *dropout_gen;
    float *flat;        /* packed gradients for the all-reduce */
    size_t flat_n;
    FILE *metrics;      /* rank 0 */
    int quiet, save_all_ranks;
    tr_progress bar;    /* training steps, on rank 0's terminal */
    char err[1024];
} trainer;

static void say(trainer *t, const char *fmt, ...)
{
    if (t->rank != 0 || t->quiet)
        return;
    tr_progress_clear(&t->bar);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: empd train [--config FILE] [--shards DIR] [--out RUNDIR] [--max-steps N]\n"
               "                  [--set section.field=value ...] [--resume auto|CHECKPOINT_DIR]\n"
               "                  [--save-all-ranks] [--quiet]\n"
               "Run under mpirun -np N or srun for N data-parallel ranks.\n\n"
               "options:\n"
               "  --config FILE      JSON configuration (configs/tiny-text.json)\n"
               "  --shards DIR       shard folder (sets data.shards)\n"
               "  --out RUNDIR       run folder: metrics.jsonl, checkpoints/, model.safetensors (default runs/train)\n"
               "  --max-steps N      stop after N optimizer steps (sets train.max_steps)\n"
               "  --set K=V          override a config field, repeatable\n"
               "  --resume auto      continue from RUNDIR's newest complete checkpoint (or start fresh)\n"
               "  --resume DIR       continue from that checkpoint folder\n"
               "  --save-all-ranks   every rank also writes its final weights as model-rank<N>.safetensors\n"
               "  --quiet            no progress lines\n\n"
               "config fields (default, meaning):\n");
    tr_config_print_fields(f);
}

/* Metadata fields the model reads, in record order; the chain-of-empathy ones leak the label and
 * stay out of this skeleton. */
static const char *const meta_vocab[DS_META_FIRST_LEAKING] = {
    "age", "gender", "timbre", NULL, "age", "gender", "timbre", NULL, "topic",
};
#define AVATAR_IDS 100

static int build_model(trainer *t)
{
    const tr_config *c = &t->cfg;
    tm_config mc = {
        .bert = {.vocab_size = c->model.vocab_size, .hidden = c->model.hidden, .layers = c->model.layers,
                 .heads = c->model.heads, .intermediate = c->model.intermediate,
                 .max_position = c->model.max_position, .type_vocab = 2, .layer_norm_eps = 1e-12,
                 .dropout = c->model.dropout, .init_std = c->model.init_std},
        .meta_fields = DS_META_FIRST_LEAKING,
        .meta_dim = c->model.meta_dim,
        .num_classes = c->model.num_classes,
        .dropout = c->model.dropout,
    };
    const ds_manifest *m = ds_loader_manifest(t->loader);
    for (int i = 0; i < mc.meta_fields; i++) {
        const ds_manifest_vocab *v = meta_vocab[i] ? ds_manifest_find_vocab(m, meta_vocab[i]) : NULL;
        if (meta_vocab[i] && !v) {
            snprintf(t->err, sizeof t->err, "%s: manifest has no '%s' vocabulary", c->data.shards, meta_vocab[i]);
            return -1;
        }
        mc.meta_sizes[i] = v ? (int64_t)(v->items.n > 0 ? v->items.n : 1) : AVATAR_IDS;
    }
    int rc = tm_model_init(&t->model, &mc, (uint64_t)c->train.seed);
    if (rc != TC_OK) {
        snprintf(t->err, sizeof t->err, "model: cannot build: %s", tc_last_error());
        return -1;
    }
    /* Identical replicas: every rank starts from rank 0's weights. */
    for (int i = 0; i < t->model.params.n; i++) {
        tc_tensor *p = t->model.params.v[i].t;
        if (comm_broadcast(t->g, tc_data_ptr(p), (size_t)tc_numel(p) * sizeof(float), 0, t->err, sizeof t->err))
            return -1;
    }
    t->flat_n = mp_numel(&t->model.params);
    t->flat = malloc(t->flat_n * sizeof *t->flat);
    if (!t->flat || tr_adamw_init(&t->opt, &t->model.params) != TC_OK) {
        snprintf(t->err, sizeof t->err, "model: out of memory for %zu parameters", t->flat_n);
        return -1;
    }
    for (int i = 0; i < t->model.params.n; i++)
        tc_zero_grad(t->model.params.v[i].t);
    return 0;
}

/* Tensors over the batch's host buffers (no copies). */
static tm_inputs batch_inputs(const ds_batch *b)
{
    int64_t bu[] = {b->B, b->U}, bul[] = {b->B, b->U, b->L}, bm[] = {b->B, DS_META_N};
    tm_inputs in = {
        .utt_tokens = tc_from_blob(b->utt_tokens, bul, 3, TC_I64),
        .utt_mask = tc_from_blob(b->utt_mask, bul, 3, TC_F32),
        .utt_valid = tc_from_blob(b->utt_valid, bu, 2, TC_F32),
        .meta = tc_slice(tc_from_blob(b->meta, bm, 2, TC_I64), 1, 0, DS_META_FIRST_LEAKING, 1),
    };
    return in;
}

/* The labels the model is trained on; an unlabeled row (-1) becomes torch's ignore index. */
static int64_t *batch_labels(const trainer *t, const ds_batch *b)
{
    int64_t *y = t->cfg.model.num_classes == 32 ? b->label32 : b->label7;
    for (int i = 0; i < b->B; i++)
        if (y[i] < 0)
            y[i] = -100;
    return y;
}

/* Averages every gradient across ranks with one all-reduce of the packed gradients. */
static int allreduce_grads(trainer *t)
{
    mp_params *ps = &t->model.params;
    size_t off = 0;
    for (int i = 0; i < ps->n; i++) {
        size_t n = (size_t)tc_numel(ps->v[i].t);
        tc_scope *s = tc_scope_begin();
        memcpy(t->flat + off, tc_data_ptr(tc_grad(ps->v[i].t)), n * sizeof(float));
        tc_scope_end(s);
        off += n;
    }
    if (t->world > 1 && comm_allreduce(t->g, t->flat, t->flat_n, COMM_F32, COMM_AVG, t->err, sizeof t->err))
        return -1;
    off = 0;
    for (int i = 0; i < ps->n; i++) {
        size_t n = (size_t)tc_numel(ps->v[i].t);
        tc_scope *s = tc_scope_begin();
        memcpy(tc_data_ptr(tc_grad(ps->v[i].t)), t->flat + off, n * sizeof(float));
        tc_scope_end(s);
        off += n;
    }
    return 0;
}

/* One optimizer step on this rank's slice; *loss receives the mean loss over all ranks. */
static int train_step(trainer *t, ds_batch *b, int64_t step, double *loss)
{
    mp_params *ps = &t->model.params;
    for (int i = 0; i < ps->n; i++)
        tc_zero_grad(ps->v[i].t);
    tc_scope *s = tc_scope_begin();
    tm_inputs in = batch_inputs(b);
    tc_tensor *logits = tm_model_forward(&t->model, &in, 1, t->dropout_gen);
    tc_tensor *y = tc_from_blob(batch_labels(t, b), (int64_t[]){b->B}, 1, TC_I64);
    tc_tensor *l = tc_cross_entropy(logits, y, NULL);
    double local = l ? tc_item(l) : 0.0;
    int rc = l ? tc_backward(l) : TC_EINVAL;
    int end = tc_scope_end(s);
    if (rc != TC_OK || end != TC_OK) {
        snprintf(t->err, sizeof t->err, "step %lld: forward/backward failed: %s", (long long)step + 1, tc_last_error());
        return -1;
    }
    if (allreduce_grads(t))
        return -1;
    if (tr_adamw_step(&t->opt, ps, &t->cfg, tr_lr_at(&t->cfg, step + 1)) != TC_OK) {
        snprintf(t->err, sizeof t->err, "step %lld: optimizer failed: %s", (long long)step + 1, tc_last_error());
        return -1;
    }
    *loss = local;
    return t->world > 1 ? comm_allreduce(t->g, loss, 1, COMM_F64, COMM_AVG, t->err, sizeof t->err) : 0;
}

static int show_progress(const trainer *t) { return t->rank == 0 && !t->quiet && tr_progress_tty(); }

/* Evaluates a split: every rank predicts its slices, the confusion matrix and loss are summed. */
static int evaluate(trainer *t, const char *split, tr_metrics *m, double *mean_loss)
{
    size_t n = ds_loader_count(t->loader, split);
    int nc = (int)t->cfg.model.num_classes;
    int64_t conf[TR_MAX_CLASSES * TR_MAX_CLASSES] = {0};
    double sums[2] = {0, 0}; /* loss sum, samples */
    if (n == 0) {
        memset(m, 0, sizeof *m);
        *mean_loss = 0;
        return 0;
    }
    size_t bs = (size_t)t->cfg.train.batch_size;
    ds_sampler s;
    if (ds_sampler_init(&s, n, t->world, t->rank, bs, 0, 0, t->err, sizeof t->err))
        return -1;
    size_t *idx = malloc(bs * sizeof *idx);
    float *logits = malloc(bs * (size_t)nc * sizeof *logits);
    ds_batch b = {0};
    int rc = (!idx || !logits || ds_batch_alloc(&b, (int)bs, DS_MAX_UTT, (int)t->cfg.model.utt_tokens, 2, t->err, sizeof t->err))
                 ? (snprintf(t->err, sizeof t->err, "evaluate: out of memory"), -1)
                 : 0;
    size_t real, done = 0;
    tr_progress bar;
    tr_progress_clear(&t->bar);
    tr_progress_begin(&bar, show_progress(t), split, "samples", 0, (int64_t)n);
    while (rc == 0 && ds_sampler_next(&s, idx, &real) == DS_SAMPLER_OK) {
        if (ds_loader_fill(t->loader, split, idx, (int)bs, &b, t->err, sizeof t->err)) {
            rc = -1;
            break;
        }
        tc_scope *sc = tc_scope_begin();
        int was = tc_grad_enabled_set(0);
        tm_inputs in = batch_inputs(&b);
        tc_tensor *out = tm_model_forward(&t->model, &in, 0, NULL);
        int cp = out ? tc_copy_to_host(out, logits, bs * (size_t)nc * sizeof *logits) : TC_EINVAL;
        tc_grad_enabled_set(was);
        if (tc_scope_end(sc) != TC_OK || cp != TC_OK) {
            snprintf(t->err, sizeof t->err, "evaluate %s: forward failed: %s", split, tc_last_error());
            rc = -1;
            break;
        }
        const int64_t *y = batch_labels(t, &b);
        for (size_t i = 0; i < real; i++) {
            const float *z = logits + i * (size_t)nc;
            int best = 0;
            double mx = z[0], lse = 0;
            for (int c = 1; c < nc; c++)
                if (z[c] > z[best])
                    best = c;
            mx = z[best];
            for (int c = 0; c < nc; c++)
                lse += exp((double)z[c] - mx);
            if (y[i] < 0 || y[i] >= nc)
                continue;
            conf[y[i] * nc + best]++;
            sums[0] += mx + log(lse) - z[y[i]];
            sums[1] += 1;
        }
        done += real * (size_t)t->world;
        tr_progress_update(&bar, (int64_t)(done < n ? done : n), NULL);
    }
    tr_progress_end(&bar);
    if (rc == 0 && t->world > 1)
        rc = comm_allreduce(t->g, conf, (size_t)nc * (size_t)nc, COMM_I64, COMM_SUM, t->err, sizeof t->err) ||
             comm_allreduce(t->g, sums, 2, COMM_F64, COMM_SUM, t->err, sizeof t->err);
    ds_batch_free(&b);
    ds_sampler_free(&s);
    free(idx);
    free(logits);
    if (rc == 0) {
        tr_metrics_compute(conf, nc, m);
        *mean_loss = sums[1] > 0 ? sums[0] / sums[1] : 0;
    }
    return rc;
}

/* FNV-1a over every parameter's bytes: equal on all ranks while replicas are identical. */
static uint64_t params_hash(const mp_params *ps)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < ps->n; i++) {
        const unsigned char *p = tc_data_ptr(ps->v[i].t);
        size_t n = (size_t)tc_numel(ps->v[i].t) * sizeof(float);
        for (size_t k = 0; k < n; k++)
            h = (h ^ p[k]) * 1099511628211ull;
    }
    return h;
}

static int check_replicas(trainer *t)
{
    uint64_t mine = params_hash(&t->model.params), *all = calloc((size_t)t->world, sizeof *all);
    if (!all || comm_allgather(t->g, &mine, all, sizeof mine, t->err, sizeof t->err)) {
        free(all);
        return -1;
    }
    for (int r = 1; r < t->world; r++)
        if (all[r] != all[0]) {
            snprintf(t->err, sizeof t->err, "replicas diverged: rank %d holds weights %016llx, rank 0 %016llx", r,
                     (unsigned long long)all[r], (unsigned long long)all[0]);
            free(all);
            return -1;
        }
    say(t, "replicas identical on %d rank%s (weights %016llx)", t->world, t->world > 1 ? "s" : "",
        (unsigned long long)all[0]);
    free(all);
    return 0;
}

static char *hex_of(const unsigned char *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    for (size_t i = 0; s && i < n; i++)
        snprintf(s + 2 * i, 3, "%02x", p[i]);
    return s;
}

static int save_checkpoint(trainer *t, int64_t step, const ds_sampler *s, double best_acc, int64_t best_step)
{
    size_t len = 0;
    tc_generator_get_state(t->dropout_gen, NULL, &len);
    unsigned char *mine = malloc(len), *all = malloc(len * (size_t)t->world);
    int rc = (!mine || !all || tc_generator_get_state(t->dropout_gen, mine, &len) != TC_OK)
                 ? (snprintf(t->err, sizeof t->err, "checkpoint: cannot read the dropout generator"), -1)
                 : comm_allgather(t->g, mine, all, len, t->err, sizeof t->err);
    if (rc == 0 && t->rank == 0) {
        ds_sampler_position pos = ds_sampler_get_position(s);
        tr_ckpt_state st = {.step = step, .sampler_epoch = pos.epoch, .sampler_consumed = pos.consumed,
                            .world_size = t->world, .n_rng = t->world, .best_val_acc = best_acc,
                            .best_step = best_step};
        memcpy(st.model_hash, t->cfg.model_hash, sizeof st.model_hash);
        st.rng_hex = calloc((size_t)t->world, sizeof *st.rng_hex);
        for (int r = 0; st.rng_hex && r < t->world; r++)
            st.rng_hex[r] = hex_of(all + (size_t)r * len, len);
        rc = tr_ckpt_save(t->out, &st, &t->model.params, &t->opt, t->cfg.json, (int)t->cfg.train.keep_last, t->err,
                          sizeof t->err);
        tr_ckpt_state_free(&st);
        if (rc == 0)
            say(t, "checkpoint: step %lld saved to %s/checkpoints", (long long)step, t->out);
    }
    free(mine);
    free(all);
    /* Every rank learns whether rank 0's save worked, so none trains on past a failed one. */
    int64_t ok = rc == 0;
    if (comm_allreduce(t->g, &ok, 1, COMM_I64, COMM_MIN, rc ? NULL : t->err, rc ? 0 : sizeof t->err))
        return -1;
    if (!ok && rc == 0)
        snprintf(t->err, sizeof t->err, "checkpoint at step %lld failed on rank 0", (long long)step);
    return ok ? 0 : -1;
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* Restores a checkpoint into the model, the optimizer, the sampler and the dropout generator. */
static int resume(trainer *t, const char *how, ds_sampler *s, int64_t *step, double *best_acc, int64_t *best_step)
{
    char dir[4096];
    if (!strcmp(how, "auto")) {
        int found = tr_ckpt_find_latest(t->out, dir, sizeof dir, t->err, sizeof t->err);
        if (found < 0)
            return -1;
        if (!found) {
            say(t, "resume: no complete checkpoint in %s/checkpoints, starting fresh", t->out);
            return 0;
        }
    } else {
        snprintf(dir, sizeof dir, "%s", how);
        struct stat sb;
        char marker[4200];
        snprintf(marker, sizeof marker, "%s/COMPLETE", dir);
        if (stat(marker, &sb) != 0) {
            snprintf(t->err, sizeof t->err, "resume: %s is not a complete checkpoint (no COMPLETE marker)", dir);
            return -1;
        }
    }
    tr_ckpt_state st;
    if (tr_ckpt_load(dir, t->cfg.model_hash, &st, &t->model.params, &t->opt, t->err, sizeof t->err))
        return -1;
    int rc = 0;
    ds_sampler_position pos = {st.sampler_epoch, st.sampler_consumed};
    if (rc == 0 && st.sampler_epoch != s->epoch)
        ds_sampler_set_epoch(s, st.sampler_epoch);
    if (rc == 0)
        rc = ds_sampler_set_position(s, &pos, t->err, sizeof t->err);
    if (rc == 0 && st.world_size == t->world && st.n_rng == t->world) {
        size_t len = 0;
        tc_generator_get_state(t->dropout_gen, NULL, &len);
        unsigned char *buf = malloc(len);
        if (!buf || unhex(st.rng_hex[t->rank], buf, len) ||
            tc_generator_set_state(t->dropout_gen, buf, len) != TC_OK) {
            snprintf(t->err, sizeof t->err, "resume: %s/state.json: rng[%d] is not a generator state", dir, t->rank);
            rc = -1;
        }
        free(buf);
    } else if (rc == 0) {
        /* Another world size: per-rank dropout streams cannot carry over; derive fresh ones. */
        tc_generator_free(t->dropout_gen);
        t->dropout_gen = tc_generator_new((uint64_t)t->cfg.train.seed * 1000003u + (uint64_t)st.step * 7919u +
                                              (uint64_t)t->rank + 1,
                                          (tc_device){TC_CPU, 0});
        say(t, "resume: world size %d -> %d: dropout streams reseeded", st.world_size, t->world);
    }
    if (rc == 0) {
        *step = st.step;
        *best_acc = st.best_val_acc;
        *best_step = st.best_step;
        say(t, "resume: continuing from %s (step %lld, epoch %llu)", dir, (long long)st.step,
            (unsigned long long)st.sampler_epoch);
    }
    tr_ckpt_state_free(&st);
    return rc;
}

static void log_eval(trainer *t, int64_t step, const char *split, const tr_metrics *m, double loss)
{
    say(t, "eval %s step %lld: accuracy %.4f  weighted F1 %.4f  macro F1 %.4f  loss %.4f  (%lld samples)", split,
        (long long)step, m->accuracy, m->weighted_f1, m->macro_f1, loss, (long long)m->total);
    if (t->metrics) {
        fprintf(t->metrics,
                "{\"event\":\"eval\",\"step\":%lld,\"split\":\"%s\",\"accuracy\":%.17g,\"weighted_f1\":%.17g,"
                "\"macro_f1\":%.17g,\"weighted_precision\":%.17g,\"weighted_recall\":%.17g,\"loss\":%.17g,"
                "\"samples\":%lld}\n",
                (long long)step, split, m->accuracy, m->weighted_f1, m->macro_f1, m->weighted_precision,
                m->weighted_recall, loss, (long long)m->total);
        fflush(t->metrics);
    }
}

static int export_final(trainer *t)
{
    const mp_params *ps = &t->model.params;
    st_tensor *v = calloc((size_t)ps->n, sizeof *v);
    if (!v) {
        snprintf(t->err, sizeof t->err, "export: out of memory");
        return -1;
    }
    for (int i = 0; i < ps->n; i++) {
        v[i] = (st_tensor){.name = ps->v[i].name, .dtype = ST_F32, .ndim = tc_ndim(ps->v[i].t),
                           .data = tc_data_ptr(ps->v[i].t),
                           .nbytes = (size_t)tc_numel(ps->v[i].t) * sizeof(float)};
        for (int d = 0; d < v[i].ndim; d++)
            v[i].shape[d] = tc_size(ps->v[i].t, d);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", t->out);
    int rc = t->rank == 0 ? st_write(path, v, (size_t)ps->n, NULL, 0, t->err, sizeof t->err) : 0;
    if (rc == 0 && t->save_all_ranks) {
        snprintf(path, sizeof path, "%s/model-rank%d.safetensors", t->out, t->rank);
        rc = st_write(path, v, (size_t)ps->n, NULL, 0, t->err, sizeof t->err);
    }
    free(v);
    return rc;
}

static int train_loop(trainer *t, const char *resume_how)
{
    const tr_config *c = &t->cfg;
    size_t n_train = ds_loader_count(t->loader, "train");
    size_t bs = (size_t)c->train.batch_size;
    ds_sampler s;
    unsigned flags = DS_SAMPLER_SHUFFLE | (c->train.drop_last ? DS_SAMPLER_DROP_LAST : 0);
    if (ds_sampler_init(&s, n_train, t->world, t->rank, bs, (uint64_t)c->train.seed, flags, t->err, sizeof t->err))
        return -1;
    int64_t step = 0, best_step = 0;
    double best_acc = 0;
    int rc = resume_how ? resume(t, resume_how, &s, &step, &best_acc, &best_step) : 0;
    if (rc == 0 && step == 0)
        say(t, "train: %zu samples, %d rank%s x batch %zu, %zu steps per epoch, %zu parameters", n_train, t->world,
            t->world > 1 ? "s" : "", bs, ds_sampler_steps_per_epoch(&s), t->flat_n);
    size_t *idx = malloc(bs * sizeof *idx);
    ds_batch b = {0};
    if (rc == 0 && (!idx || ds_batch_alloc(&b, (int)bs, DS_MAX_UTT, (int)c->model.utt_tokens, 2, t->err, sizeof t->err))) {
        snprintf(t->err, sizeof t->err, "train: out of memory for a batch of %zu", bs);
        free(idx);
        ds_sampler_free(&s);
        return -1;
    }
    double t0 = now_s(), loss_sum = 0;
    int64_t logged_at = step;
    tr_progress_begin(&t->bar, show_progress(t), "train", "steps", step, c->train.max_steps);
    while (rc == 0 && step < c->train.max_steps) {
        if (ds_sampler_next(&s, idx, NULL) == DS_SAMPLER_EPOCH_END) {
            ds_sampler_set_epoch(&s, s.epoch + 1);
            continue;
        }
        double loss;
        rc = ds_loader_fill(t->loader, "train", idx, (int)bs, &b, t->err, sizeof t->err);
        if (rc == 0)
            rc = train_step(t, &b, step, &loss);
        if (rc)
            break;
        step++;
        loss_sum += loss;
        char status[64];
        snprintf(status, sizeof status, "epoch %llu  loss %.4f", (unsigned long long)s.epoch, loss);
        tr_progress_update(&t->bar, step, status);
        if (t->metrics) {
            fprintf(t->metrics, "{\"event\":\"train\",\"step\":%lld,\"epoch\":%llu,\"loss\":%.17g,\"lr\":%.17g}\n",
                    (long long)step, (unsigned long long)s.epoch, loss, tr_lr_at(c, step));
            fflush(t->metrics);
        }
        if (step % c->train.log_every == 0 || step == c->train.max_steps) {
            double dt = now_s() - t0;
            say(t, "step %lld/%lld  epoch %llu  loss %.4f  lr %.2e  %.1f samples/s", (long long)step,
                (long long)c->train.max_steps, (unsigned long long)s.epoch, loss_sum / (double)(step - logged_at),
                tr_lr_at(c, step), (double)(step - logged_at) * (double)(bs * (size_t)t->world) / (dt > 0 ? dt : 1));
            t0 = now_s();
            loss_sum = 0;
            logged_at = step;
        }
        int last = step == c->train.max_steps;
        if ((c->train.eval_every && step % c->train.eval_every == 0) || last) {
            tr_metrics m;
            double vloss;
            if ((rc = evaluate(t, "val", &m, &vloss)))
                break;
            log_eval(t, step, "val", &m, vloss);
            if (m.accuracy > best_acc || best_step == 0) {
                best_acc = m.accuracy;
                best_step = step;
            }
        }
        if ((c->train.checkpoint_every && step % c->train.checkpoint_every == 0) || last)
            rc = check_replicas(t) || save_checkpoint(t, step, &s, best_acc, best_step);
    }
    tr_progress_end(&t->bar);
    if (rc == 0 && step >= c->train.max_steps)
        rc = export_final(t);
    if (rc == 0)
        say(t, "train: done at step %lld; best val accuracy %.4f at step %lld", (long long)step, best_acc,
            (long long)best_step);
    ds_batch_free(&b);
    ds_sampler_free(&s);
    free(idx);
    return rc;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int default_threads(const trainer *t)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = comm_local_size(t->g);
    long n = (cores > 0 ? cores : 1) / (local > 0 ? local : 1);
    return n > 0 ? (int)n : 1;
}

static int setup(trainer *t, const char *config, char **sets, int n_sets)
{
    if (tr_config_load(config, sets, n_sets, &t->cfg, t->err, sizeof t->err))
        return -1;
    tc_set_num_threads(t->cfg.train.threads ? (int)t->cfg.train.threads : default_threads(t));
    if (ds_loader_open(t->cfg.data.shards, &t->loader, t->err, sizeof t->err))
        return -1;
    if (t->cfg.model.num_classes == 0) {
        /* Resolved into the configuration itself, so config.json and the model hash hold the
         * label space that trains; sets has room for this one more entry. */
        char labels[64];
        snprintf(labels, sizeof labels, "model.num_classes=%d", ds_loader_manifest(t->loader)->labels);
        sets[n_sets++] = labels;
        tr_config_free(&t->cfg);
        if (tr_config_load(config, sets, n_sets, &t->cfg, t->err, sizeof t->err))
            return -1;
    }
    if (ds_loader_count(t->loader, "train") == 0) {
        snprintf(t->err, sizeof t->err, "%s: the train split is empty", t->cfg.data.shards);
        return -1;
    }
    int64_t ok = 1;
    if (t->rank == 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", t->out);
        if (mkdir_p(t->out) != 0 || !(t->metrics = fopen(path, "a"))) {
            snprintf(t->err, sizeof t->err, "%s: cannot create the run folder: %s", t->out, strerror(errno));
            ok = 0;
        }
        snprintf(path, sizeof path, "%s/config.json", t->out);
        if (ok && tr_write_file_atomic(path, t->cfg.json, strlen(t->cfg.json), t->err, sizeof t->err))
            ok = 0;
    }
    if (comm_allreduce(t->g, &ok, 1, COMM_I64, COMM_MIN, NULL, 0) || !ok) {
        if (t->rank != 0)
            snprintf(t->err, sizeof t->err, "rank 0 could not prepare the run folder %s", t->out);
        return -1;
    }
    t->dropout_gen = tc_generator_new((uint64_t)t->cfg.train.seed * 1000003u + (uint64_t)t->rank + 1,
                                      (tc_device){TC_CPU, 0});
    tc_manual_seed((uint64_t)t->cfg.train.seed);
    return build_model(t);
}

static void free_args(char **sets, char **owned, int n_owned)
{
    for (int i = 0; owned && i < n_owned; i++)
        free(owned[i]);
    free(owned);
    free(sets);
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"shards", required_argument, 0, 'd'},
        {"out", required_argument, 0, 'o'},    {"max-steps", required_argument, 0, 'm'},
        {"set", required_argument, 0, 's'},    {"resume", required_argument, 0, 'r'},
        {"quiet", no_argument, 0, 'q'},        {"save-all-ranks", no_argument, 0, 'a'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    trainer t = {.out = "runs/train"};
    const char *config = NULL, *resume_how = NULL;
    /* --shards and --max-steps become --set entries; a later one wins, as with --set. */
    char **sets = calloc((size_t)argc + 2, sizeof *sets), **owned = calloc((size_t)argc + 1, sizeof *owned);
    int n_sets = 0, n_owned = 0, o;
    optind = 1;
    while (sets && owned && (o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'o': t.out = optarg; break;
        case 's': sets[n_sets++] = optarg; break;
        case 'r': resume_how = optarg; break;
        case 'q': t.quiet = 1; break;
        case 'a': t.save_all_ranks = 1; break;
        case 'd':
        case 'm': {
            const char *key = o == 'd' ? "data.shards" : "train.max_steps";
            size_t l = strlen(key) + strlen(optarg) + 2;
            char *kv = malloc(l);
            if (kv)
                snprintf(kv, l, "%s=%s", key, optarg);
            owned[n_owned++] = kv;
            sets[n_sets++] = kv ? kv : "=";
            break;
        }
        case 'h': usage(stdout); free_args(sets, owned, n_owned); return 0;
        default: usage(stderr); free_args(sets, owned, n_owned); return 2;
        }
    }
    if (!sets || !owned || optind < argc) {
        fprintf(stderr, "empd train: unexpected argument '%s' (empd train --help)\n", optind < argc ? argv[optind] : "");
        free_args(sets, owned, n_owned);
        return 2;
    }
    if (comm_init(NULL, NULL, &t.g, t.err, sizeof t.err)) {
        fprintf(stderr, "empd train: %s\n", t.err);
        free_args(sets, owned, n_owned);
        return 1;
    }
    t.rank = comm_rank(t.g);
    t.world = comm_size(t.g);
    int rc = setup(&t, config, sets, n_sets);
    if (rc == 0)
        rc = train_loop(&t, resume_how);
    if (rc) {
        fprintf(stderr, "empd train: rank %d: %s\n", t.rank, t.err);
        fflush(stderr);
        if (t.world > 1)
            comm_abort(t.g, 1);
    }
    if (t.metrics)
        fclose(t.metrics);
    tr_adamw_free(&t.opt);
    tm_model_free(&t.model);
    free(t.flat);
    if (t.dropout_gen)
        tc_generator_free(t.dropout_gen);
    if (t.loader)
        ds_loader_close(t.loader);
    tr_config_free(&t.cfg);
    free_args(sets, owned, n_owned);
    comm_finalize(t.g, NULL, 0);
    return rc ? 1 : 0;
}
