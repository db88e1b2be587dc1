/* The training loop: optimizer steps of train.grad_accum micro-batches each, gradients averaged across
 * ranks by the reducer while backward runs, clipping, the per-group learning rates, validation with
 * best-checkpoint tracking and early stopping, checkpoints, and stopping on a signal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dataset/prefetch.h"
#include "trainer/batch.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluate.h"
#include "trainer/predictions.h"
#include "trainer/report.h"
#include "trainer/run.h"
#include "trainer/stop.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* What one step leaves for the log. */
typedef struct {
    double loss, grad_norm, seconds;
    comm_reducer_stats comm;
} step_info;

/* Sum of squares of every trained gradient, in double, and the global L2 norm from it: the same on
 * every rank, since the gradients are already averaged. Clipping then scales them all by
 * max / (norm + 1e-6) when that is below 1 (torch.nn.utils.clip_grad_norm_). */
static int clip_gradients(tr_run *r, double max_norm, double *norm)
{
    mp_params *ps = tr_model_params(&r->model);
    tc_scope *s = tc_scope_begin();
    double sq = 0;
    for (int i = 0; i < ps->n; i++)
        if (mp_trainable(&ps->v[i])) {
            tc_tensor *g = tc_grad(ps->v[i].t);
            tc_tensor *n2 = g ? tc_sum_all(tc_mul(g, g)) : NULL;
            sq += n2 ? tc_item(n2) : 0.0;
        }
    *norm = sqrt(sq);
    double coef = max_norm / (*norm + 1e-6);
    int grad_was = tc_grad_enabled_set(0);
    for (int i = 0; max_norm > 0 && coef < 1.0 && i < ps->n; i++)
        if (mp_trainable(&ps->v[i])) {
            tc_tensor *g = tc_grad(ps->v[i].t);
            if (g)
                tc_copy_(g, tc_mul_scalar(g, coef));
        }
    tc_grad_enabled_set(grad_was);
    if (tc_scope_end(s) != TC_OK || !isfinite(*norm)) {
        snprintf(r->err, sizeof r->err, "step %lld: the gradient norm is %g%s", (long long)r->step + 1, *norm,
                 isfinite(*norm) ? tc_last_error() : " (the loss diverged: lower train.lr or set train.clip_norm)");
        return -1;
    }
    return 0;
}

/* One micro-batch: forward, loss, backward of loss / accum (the gradients sum over the micro-batches to
 * the mean's). *loss receives the unscaled loss. */
static int micro_step(tr_run *r, ds_batch *b, double *loss)
{
    tc_scope *s = tc_scope_begin();
    int autocast = r->dev.type == TC_CUDA && r->cfg.train.bf16;
    if (autocast)
        tc_autocast_cuda(1, TC_BF16, NULL);
    tc_tensor *logits = tr_model_forward(&r->model, b, 1, r->dropout_gen);
    tc_tensor *y = tc_from_blob(tr_batch_labels(b, r->cfg.model.num_classes), (int64_t[]){b->B}, 1, TC_I64);
    if (logits)
        y = tc_to_device(y, tc_device_of(logits));
    tc_tensor *l = tr_loss_forward(&r->loss, logits, y);
    if (autocast)
        tc_autocast_cuda(0, TC_BF16, NULL);
    *loss = l ? tc_item(l) : 0.0;
    int rc = l ? tc_backward(tc_mul_scalar(l, 1.0 / (double)r->cfg.train.grad_accum)) : TC_EINVAL;
    int end = tc_scope_end(s);
    if (rc != TC_OK || end != TC_OK) {
        snprintf(r->err, sizeof r->err, "step %lld: forward/backward failed: %s", (long long)r->step + 1,
                 tc_last_error());
        return -1;
    }
    return 0;
}

/* After a micro-batch: the run's sampler moves to the position after it (into the next epoch's order
 * when the prefetcher rolled over), which is what a checkpoint saves. */
static int next_batch(tr_run *r, ds_prefetch *pf, ds_prefetch_item *it)
{
    int rc = ds_prefetch_next(pf, it, r->err, sizeof r->err);
    if (rc == DS_PREFETCH_END)
        snprintf(r->err, sizeof r->err, "train: the loader ended at step %lld of %lld", (long long)r->step,
                 (long long)r->max_steps);
    return rc ? -1 : 0;
}

/* One optimizer step on this rank's micro-batches. The loss of the step is the mean over micro-batches
 * and ranks; the same all-reduce tells every rank whether any was asked to stop. */
static int train_step(tr_run *r, ds_prefetch *pf, step_info *info)
{
    const tr_config *c = &r->cfg;
    mp_params *ps = tr_model_params(&r->model);
    double t0 = now_s(), local = 0;
    for (int i = 0; i < ps->n; i++)
        if (mp_trainable(&ps->v[i]))
            tc_zero_grad(ps->v[i].t);
    for (int64_t k = 0; k < c->train.grad_accum; k++) {
        ds_prefetch_item it;
        if (next_batch(r, pf, &it))
            return -1;
        /* Gradients are exchanged only on the last micro-batch: the others just accumulate. */
        if (k + 1 == c->train.grad_accum)
            comm_reducer_begin(r->reducer);
        double l;
        int rc = micro_step(r, it.batch, &l) ||
                 ds_sampler_set_position(&r->sampler, &it.after, r->err, sizeof r->err);
        ds_prefetch_release(pf, &it);
        if (rc)
            return -1;
        local += l / (double)c->train.grad_accum;
    }
    if (comm_reducer_finish(r->reducer, r->err, sizeof r->err))
        return -1;
    comm_reducer_stats_get(r->reducer, &info->comm);
    info->grad_norm = 0;
    if (c->train.clip_norm > 0 && clip_gradients(r, c->train.clip_norm, &info->grad_norm))
        return -1;
    if (tr_adamw_step(&r->opt, ps, c, tr_lr_at(c, r->step + 1)) != TC_OK) {
        snprintf(r->err, sizeof r->err, "step %lld: optimizer failed: %s", (long long)r->step + 1, tc_last_error());
        return -1;
    }
    double agree[2] = {local, tr_stop_requested() ? 1.0 : 0.0};
    if (r->world > 1 && comm_allreduce(r->g, agree, 2, COMM_F64, COMM_SUM, r->err, sizeof r->err))
        return -1;
    info->loss = agree[0] / (double)r->world;
    r->stop_signal = agree[1] > 0;
    info->seconds = now_s() - t0;
    return 0;
}

static double metric_of(const tr_metrics *m, double loss, int64_t which)
{
    switch (which) {
    case TR_METRIC_MACRO_F1: return m->macro_f1;
    case TR_METRIC_WEIGHTED_F1: return m->weighted_f1;
    case TR_METRIC_LOSS: return loss;
    default: return m->accuracy;
    }
}

/* v improves on best by more than delta (lower is better for the loss). */
static int improves(double v, double best, int64_t which, double delta)
{
    return which == TR_METRIC_LOSS ? v < best - delta : v > best + delta;
}

/* One metrics.jsonl record of an evaluation: {"event":EVENT,"step":STEP,"split":SPLIT,"loss":..., metrics}. */
static void record_eval(tr_run *r, const char *event, int64_t step, const char *split, const tr_eval *e)
{
    if (!r->metrics)
        return;
    char *json = tr_metrics_json(&e->metrics, tr_class_names((int)r->cfg.model.num_classes));
    char loss[32];
    /* JSON has no NaN: a diverged model's loss is null. */
    snprintf(loss, sizeof loss, isfinite(e->loss) ? "%.17g" : "null", e->loss);
    if (json)
        fprintf(r->metrics, "{\"event\":\"%s\",\"step\":%lld,\"split\":\"%s\",\"loss\":%s,%s}\n", event,
                (long long)step, split, loss, json);
    free(json);
    fflush(r->metrics);
}

/* Validates; returns 1 when this is the best validation so far (by train.best_metric), 0 if not, -1 on
 * failure. Updates early stopping. */
static int validate(tr_run *r, int progress)
{
    const tr_config *c = &r->cfg;
    tr_eval e;
    tr_progress_clear(&r->bar);
    if (tr_evaluate(r->g, r->loader, &r->model, c, "val", progress, 0, &e, r->err, sizeof r->err))
        return -1;
    const tr_metrics m = e.metrics;
    double loss = e.loss;
    tr_run_say(r, "eval val step %lld: accuracy %.4f  weighted F1 %.4f  macro F1 %.4f  loss %.4f  (%lld samples)",
               (long long)r->step, m.accuracy, m.weighted_f1, m.macro_f1, loss, (long long)m.total);
    record_eval(r, "eval", r->step, "val", &e);
    double best = metric_of(&m, loss, c->train.best_metric), watch = metric_of(&m, loss, c->train.stop_metric);
    /* A diverged model (a NaN or infinite loss) is never the best, nor an improvement. */
    int is_best = isfinite(best) && (r->best_step == 0 || improves(best, r->best_value, c->train.best_metric, 0));
    if (is_best) {
        r->best_value = best;
        r->best_step = r->step;
    }
    /* Every validation so far was "bad" (none, or none finite): this one sets the mark. */
    int unset = r->stop_bad == r->evals;
    if (isfinite(watch) && (unset || improves(watch, r->stop_best, c->train.stop_metric, c->train.min_delta))) {
        r->stop_best = watch;
        r->stop_bad = 0;
    } else {
        r->stop_bad++;
    }
    r->evals++;
    if (c->train.patience > 0 && r->stop_bad >= c->train.patience) {
        r->early_stopped = 1;
        tr_run_say(r, "train: early stop at step %lld: val %s has not improved for %lld validations (best %.4f)",
                   (long long)r->step, tr_metric_name(c->train.stop_metric), (long long)r->stop_bad, r->stop_best);
    }
    return is_best;
}

static void log_step(tr_run *r, const step_info *s, double *loss_sum, int64_t *logged_at, double *t0)
{
    const tr_config *c = &r->cfg;
    *loss_sum += s->loss;
    if (r->metrics) {
        /* JSON has no NaN: a diverged loss or gradient norm is null. */
        char loss[32], norm[32];
        snprintf(loss, sizeof loss, isfinite(s->loss) ? "%.17g" : "null", s->loss);
        snprintf(norm, sizeof norm, isfinite(s->grad_norm) ? "%.9g" : "null", s->grad_norm);
        fprintf(r->metrics,
                "{\"event\":\"train\",\"step\":%lld,\"epoch\":%llu,\"loss\":%s,\"lr\":%.17g,\"grad_norm\":%s,"
                "\"step_s\":%.6f,\"comm_s\":%.6f,\"comm_wait_s\":%.6f}\n",
                (long long)r->step, (unsigned long long)r->sampler.epoch, loss, tr_lr_at(c, r->step), norm, s->seconds,
                s->comm.comm_s, s->comm.wait_s);
        fflush(r->metrics);
    }
    char status[64];
    snprintf(status, sizeof status, "epoch %llu  loss %.4f", (unsigned long long)r->sampler.epoch, s->loss);
    tr_progress_update(&r->bar, r->step, status);
    if (r->step % c->train.log_every && r->step != r->max_steps)
        return;
    double dt = now_s() - *t0, steps = (double)(r->step - *logged_at);
    tr_run_say(r, "step %lld/%lld  epoch %llu  loss %.4f  lr %.2e  %.1f samples/s", (long long)r->step,
               (long long)r->max_steps, (unsigned long long)r->sampler.epoch, *loss_sum / steps, tr_lr_at(c, r->step),
               steps * (double)(c->train.batch_size * c->train.grad_accum * r->world) / (dt > 0 ? dt : 1));
    *t0 = now_s();
    *loss_sum = 0;
    *logged_at = r->step;
}

/* The prefetcher of the training split, from the sampler's position, for the micro-batches left. */
static int open_prefetch(tr_run *r, ds_prefetch **pf)
{
    const tr_config *c = &r->cfg;
    ds_prefetch_opts po = {.threads = (int)c->data.loader_threads,
                           .depth = (int)c->data.prefetch_depth,
                           .shape = tr_model_batch_shape(c, ds_loader_manifest(r->loader)),
                           .roll_epochs = 1,
                           .max_batches = (uint64_t)((r->max_steps - r->step) * c->train.grad_accum),
                           .allocator = tr_batch_allocator(tc_device_of(tr_model_params(&r->model)->v[0].t))};
    return ds_prefetch_open(r->loader, "train", &r->sampler, &po, pf, r->err, sizeof r->err);
}

/* COLLECTIVE. Every rank loads the weights of the checkpoint of step (its model only). */
static int load_weights(tr_run *r, int64_t step)
{
    char dir[4200];
    tr_ckpt_state st;
    if (!tr_ckpt_find_step(r->out, step, dir, sizeof dir)) {
        snprintf(r->err, sizeof r->err, "%s/checkpoints: the checkpoint of step %lld is gone", r->out, (long long)step);
        return tr_run_agree(r, -1);
    }
    int rc = tr_ckpt_load(dir, r->cfg.model_hash, &st, tr_model_params(&r->model), NULL, r->err, sizeof r->err);
    if (rc == 0)
        tr_ckpt_state_free(&st);
    return tr_run_agree(r, rc);
}

/* The best checkpoint's predictions of val and test: RUNDIR/predictions/<split>.csv and a "final" record
 * per split in metrics.jsonl (the test split's report on the log). The last step's weights come back
 * after, for the export. */
static int predict_splits(tr_run *r, int progress)
{
    int64_t best = r->best_step ? r->best_step : r->step;
    if (best != r->step && load_weights(r, best))
        return -1;
    static const char *const splits[] = {"val", "test"};
    int rc = 0;
    for (int i = 0; rc == 0 && i < 2; i++) {
        const ds_manifest_split *ms = ds_manifest_find_split(ds_loader_manifest(r->loader), splits[i]);
        if (!ms || ms->count == 0)
            continue;
        tr_eval e;
        if (tr_evaluate(r->g, r->loader, &r->model, &r->cfg, splits[i], progress, 1, &e, r->err, sizeof r->err))
            return -1;
        record_eval(r, "final", best, splits[i], &e);
        int local = 0;
        if (r->rank == 0) {
            char path[4200];
            snprintf(path, sizeof path, "%s/predictions", r->out);
            mkdir(path, 0755);
            snprintf(path, sizeof path, "%s/predictions/%s.csv", r->out, splits[i]);
            local = tr_predictions_write(path, &e, &ms->conversation_ids, r->err, sizeof r->err);
            if (local == 0 && !r->quiet) {
                tr_run_say(r, "%s (step %lld, %lld samples; %s):", splits[i], (long long)best, (long long)e.n, path);
                tr_metrics_report(stdout, &e.metrics, tr_class_names((int)r->cfg.model.num_classes));
            }
        }
        tr_eval_free(&e);
        rc = tr_run_agree(r, local);
    }
    return rc == 0 && best != r->step ? load_weights(r, r->step) : rc;
}

/* Rank 0: the run's report (report.html, report.md, report.json); a failure is said, not fatal. */
static void write_report(tr_run *r)
{
    char err[1024];
    if (r->rank != 0)
        return;
    if (tr_report_run(r->out, err, sizeof err))
        fprintf(stderr, "empd train: report: %s\n", err);
    else
        tr_run_say(r, "train: report in %s/report.html", r->out);
}

void tr_run_describe(tr_run *r)
{
    const tr_config *c = &r->cfg;
    const tr_model *m = &r->model;
    if (m->bert_import.loaded)
        tr_run_say(r, "model: text encoder from %s: %d tensors (%d pretraining tensors ignored)", c->model.bert.weights,
                   m->bert_import.loaded, m->bert_import.ignored);
    if (m->audio_import.loaded)
        tr_run_say(r, "model: audio encoder from %s: %d tensors (%d pretraining tensors ignored)", c->model.audio.weights,
                   m->audio_import.loaded, m->audio_import.ignored);
    if (r->step >= r->max_steps) {
        tr_run_say(r, "train: the run is at step %lld of %lld already: nothing to train", (long long)r->step,
                   (long long)r->max_steps);
        return;
    }
    tr_run_say(r, "train: %zu samples, %d rank%s x batch %lld x %lld micro-batch%s, %zu micro-batches per epoch, "
               "%zu parameters (%zu trained), %d thread%s per rank",
               ds_loader_count(r->loader, "train"), r->world, r->world > 1 ? "s" : "", (long long)c->train.batch_size,
               (long long)c->train.grad_accum, c->train.grad_accum > 1 ? "es" : "", ds_sampler_steps_per_epoch(&r->sampler),
               mp_numel(tr_model_params(&r->model)), r->trained, r->threads, r->threads > 1 ? "s" : "");
    if (r->world > 1)
        tr_run_say(r, "train: gradients in %d bucket%s, all-reduced %s backward", comm_reducer_buckets(r->reducer),
                   comm_reducer_buckets(r->reducer) > 1 ? "s" : "",
                   comm_reducer_overlap(r->reducer) ? "while" : "after");
}

int tr_run_train(tr_run *r)
{
    const tr_config *c = &r->cfg;
    if (r->step > r->max_steps) {
        snprintf(r->err, sizeof r->err, "the checkpoint is at step %lld, past the run's last step (%lld)",
                 (long long)r->step, (long long)r->max_steps);
        return tr_run_agree(r, -1);
    }
    tr_run_describe(r);
    ds_prefetch *pf = NULL;
    if (r->step < r->max_steps && open_prefetch(r, &pf))
        return -1;
    double t0 = now_s(), loss_sum = 0;
    int64_t logged_at = r->step;
    int rc = 0, progress = tr_run_show_progress(r);
    tr_progress_begin(&r->bar, progress, "train", "steps", r->step, r->max_steps);
    while (rc == 0 && r->step < r->max_steps && !r->early_stopped && !r->stop_signal) {
        uint64_t epoch = r->sampler.epoch;
        step_info info;
        if ((rc = train_step(r, pf, &info)))
            break;
        r->step++;
        log_step(r, &info, &loss_sum, &logged_at, &t0);
        int last = r->step == r->max_steps;
        int epoch_end = r->sampler.epoch != epoch || r->sampler.consumed >= ds_sampler_steps_per_epoch(&r->sampler) *
                                                                              (size_t)r->world * (size_t)c->train.batch_size;
        int is_best = 0;
        if ((c->train.eval_every && r->step % c->train.eval_every == 0) || last ||
            (c->train.eval_each_epoch && epoch_end))
            if ((is_best = validate(r, progress)) < 0)
                rc = -1;
        if (rc == 0 && ((c->train.checkpoint_every && r->step % c->train.checkpoint_every == 0) || last || is_best ||
                        r->early_stopped || r->stop_signal))
            rc = tr_run_check_replicas(r) || tr_run_save(r);
    }
    tr_progress_end(&r->bar);
    ds_prefetch_close(pf);
    if (rc)
        return -1;
    if (r->stop_signal) {
        tr_run_say(r, "train: stopped at step %lld on a signal; continue with --resume auto", (long long)r->step);
        write_report(r);
        return 0;
    }
    if (predict_splits(r, progress) || tr_run_agree(r, tr_run_export(r)))
        return -1;
    tr_run_say(r, "train: done at step %lld; best val %s %.4f at step %lld", (long long)r->step,
               tr_metric_name(c->train.best_metric), r->best_value, (long long)r->best_step);
    write_report(r);
    return 0;
}
