/* empd train: the data-parallel training loop of the model model.kind names (trainer/model.h).
 * Every rank holds a full replica (weights broadcast from rank 0), trains on its slice of each
 * global batch, and averages gradients with one all-reduce per step; rank 0 logs, and writes
 * checkpoints that hold every rank's state. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataset/prefetch.h"
#include "dataset/record.h"
#include "models/hf_export.h"
#include "models/safetensors.h"
#include "trainer/batch.h"
#include "trainer/commands.h"
#include "trainer/evaluate.h"
#include "trainer/run.h"

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
               "  --out RUNDIR       run folder: config.json, metrics.jsonl, checkpoints/, model.safetensors\n"
               "                     (default runs/train); a fresh run needs a folder without a run in it\n"
               "  --max-steps N      stop after N optimizer steps (sets train.max_steps)\n"
               "  --set K=V          override a config field, repeatable\n"
               "  --resume auto      continue RUNDIR's run from its newest complete checkpoint (or start it)\n"
               "  --resume DIR       continue from that checkpoint folder (RUNDIR/checkpoints/step-N)\n"
               "  --save-all-ranks   every rank also writes its final weights as model-rank<N>.safetensors\n"
               "  --quiet            no log lines or progress bar\n"
               "environment: EMPD_PROGRESS=1 draws the progress bar under mpirun/srun too\n\n"
               "config fields (default, meaning):\n");
    tr_config_print_fields(f);
}

/* A bar only for a person watching: rank 0's terminal. Launchers hand every rank a pty even when
 * their own output goes to a file, so under one the bar is opt-in. */
static int show_progress(const tr_run *r)
{
    if (r->rank != 0 || r->quiet || !tr_progress_tty())
        return 0;
    const char *opt = getenv("EMPD_PROGRESS");
    if (opt)
        return strcmp(opt, "0") != 0;
    return !getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_RANK") && !getenv("PMIX_RANK") && !getenv("SLURM_PROCID");
}

static int build_model(tr_run *r)
{
    const tr_config *c = &r->cfg;
    /* Ranks other than 0 start from other weights on purpose: only the broadcast below makes the
     * replicas equal, and the replica checks would catch it missing. */
    if (tr_model_build(&r->model, c, ds_loader_manifest(r->loader), (uint64_t)c->train.seed + (uint64_t)r->rank, r->err,
                       sizeof r->err))
        return -1;
    mp_params *ps = tr_model_params(&r->model);
    r->flat_n = 0;
    for (int i = 0; i < ps->n; i++)
        if (mp_trainable(&ps->v[i]))
            r->flat_n += (size_t)tc_numel(ps->v[i].t);
    r->flat = malloc((r->flat_n ? r->flat_n : 1) * sizeof *r->flat);
    if (!r->flat || tr_adamw_init(&r->opt, ps) != TC_OK) {
        snprintf(r->err, sizeof r->err, "model: out of memory for %zu trainable parameters", r->flat_n);
        return -1;
    }
    for (int i = 0; i < ps->n; i++)
        if (mp_trainable(&ps->v[i]))
            tc_zero_grad(ps->v[i].t);
    return 0;
}

static int broadcast_weights(tr_run *r)
{
    mp_params *ps = tr_model_params(&r->model);
    for (int i = 0; i < ps->n; i++) {
        tc_tensor *p = ps->v[i].t;
        if (comm_broadcast(r->g, tc_data_ptr(p), (size_t)tc_numel(p) * sizeof(float), 0, r->err, sizeof r->err))
            return -1;
    }
    return 0;
}

/* Averages every trainable parameter's gradient across ranks with one all-reduce of the packed
 * gradients. */
static int allreduce_grads(tr_run *r)
{
    mp_params *ps = tr_model_params(&r->model);
    size_t off = 0;
    for (int i = 0; i < ps->n; i++) {
        if (!mp_trainable(&ps->v[i]))
            continue;
        size_t n = (size_t)tc_numel(ps->v[i].t);
        tc_scope *s = tc_scope_begin();
        memcpy(r->flat + off, tc_data_ptr(tc_grad(ps->v[i].t)), n * sizeof(float));
        tc_scope_end(s);
        off += n;
    }
    if (r->world > 1 && comm_allreduce(r->g, r->flat, r->flat_n, COMM_F32, COMM_AVG, r->err, sizeof r->err))
        return -1;
    off = 0;
    for (int i = 0; i < ps->n; i++) {
        if (!mp_trainable(&ps->v[i]))
            continue;
        size_t n = (size_t)tc_numel(ps->v[i].t);
        tc_scope *s = tc_scope_begin();
        memcpy(tc_data_ptr(tc_grad(ps->v[i].t)), r->flat + off, n * sizeof(float));
        tc_scope_end(s);
        off += n;
    }
    return 0;
}

/* One optimizer step on this rank's slice; *loss receives the mean loss over all ranks. */
static int train_step(tr_run *r, ds_batch *b, double *loss)
{
    mp_params *ps = tr_model_params(&r->model);
    long long next = (long long)r->step + 1;
    for (int i = 0; i < ps->n; i++)
        if (mp_trainable(&ps->v[i]))
            tc_zero_grad(ps->v[i].t);
    tc_scope *s = tc_scope_begin();
    tc_tensor *logits = tr_model_forward(&r->model, b, 1, r->dropout_gen);
    tc_tensor *y = tc_from_blob(tr_batch_labels(b, r->cfg.model.num_classes), (int64_t[]){b->B}, 1, TC_I64);
    tc_tensor *l = tc_cross_entropy(logits, y, NULL);
    double local = l ? tc_item(l) : 0.0;
    int rc = l ? tc_backward(l) : TC_EINVAL;
    int end = tc_scope_end(s);
    if (rc != TC_OK || end != TC_OK) {
        snprintf(r->err, sizeof r->err, "step %lld: forward/backward failed: %s", next, tc_last_error());
        return -1;
    }
    if (allreduce_grads(r))
        return -1;
    if (tr_adamw_step(&r->opt, ps, &r->cfg, tr_lr_at(&r->cfg, r->step + 1)) != TC_OK) {
        snprintf(r->err, sizeof r->err, "step %lld: optimizer failed: %s", next, tc_last_error());
        return -1;
    }
    *loss = local;
    return r->world > 1 ? comm_allreduce(r->g, loss, 1, COMM_F64, COMM_AVG, r->err, sizeof r->err) : 0;
}

static int validate(tr_run *r)
{
    tr_metrics m;
    double loss;
    tr_progress_clear(&r->bar);
    if (tr_evaluate(r->g, r->loader, &r->model, &r->cfg, "val", show_progress(r), &m, &loss, r->err, sizeof r->err))
        return -1;
    tr_run_say(r, "eval val step %lld: accuracy %.4f  weighted F1 %.4f  macro F1 %.4f  loss %.4f  (%lld samples)",
               (long long)r->step, m.accuracy, m.weighted_f1, m.macro_f1, loss, (long long)m.total);
    if (r->metrics) {
        fprintf(r->metrics,
                "{\"event\":\"eval\",\"step\":%lld,\"split\":\"val\",\"accuracy\":%.17g,\"weighted_f1\":%.17g,"
                "\"macro_f1\":%.17g,\"weighted_precision\":%.17g,\"weighted_recall\":%.17g,\"loss\":%.17g,"
                "\"samples\":%lld}\n",
                (long long)r->step, m.accuracy, m.weighted_f1, m.macro_f1, m.weighted_precision, m.weighted_recall,
                loss, (long long)m.total);
        fflush(r->metrics);
    }
    if (m.accuracy > r->best_acc || r->best_step == 0) {
        r->best_acc = m.accuracy;
        r->best_step = r->step;
    }
    return 0;
}

/* The fusion models' encoders also as Hugging Face model folders (RUNDIR/hf/bert, RUNDIR/hf/wav2vec2) in
 * the layout save_pretrained writes, which model.*.config and model.*.weights load as they are. */
static int export_encoders(tr_run *r)
{
    if (r->model.kind == TR_MODEL_TEXT)
        return 0;
    mf_model *m = &r->model.fusion;
    char dir[4200];
    char *json = bert_config_to_hf(&m->cfg.bert);
    snprintf(dir, sizeof dir, "%s/hf/bert", r->out);
    int rc = json ? hf_export(&m->params, "bert", dir, json, r->err, sizeof r->err) : -1;
    free(json);
    if (rc == 0 && m->cfg.kind == MF_AUDIO) {
        json = w2v_config_to_hf(&m->cfg.audio);
        snprintf(dir, sizeof dir, "%s/hf/wav2vec2", r->out);
        rc = json ? hf_export(&m->params, "wav2vec2", dir, json, r->err, sizeof r->err) : -1;
        free(json);
    }
    if (rc && !r->err[0])
        snprintf(r->err, sizeof r->err, "export: out of memory");
    return rc;
}

static int export_final(tr_run *r)
{
    const mp_params *ps = tr_model_params(&r->model);
    st_tensor *v = calloc((size_t)ps->n, sizeof *v);
    if (!v) {
        snprintf(r->err, sizeof r->err, "export: out of memory");
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
    snprintf(path, sizeof path, "%s/model.safetensors", r->out);
    int rc = r->rank == 0 ? st_write(path, v, (size_t)ps->n, NULL, 0, r->err, sizeof r->err) : 0;
    if (rc == 0 && r->save_all_ranks) {
        snprintf(path, sizeof path, "%s/model-rank%d.safetensors", r->out, r->rank);
        rc = st_write(path, v, (size_t)ps->n, NULL, 0, r->err, sizeof r->err);
    }
    free(v);
    if (rc == 0 && r->rank == 0)
        rc = export_encoders(r);
    return rc;
}

static void log_step(tr_run *r, double loss, double *loss_sum, int64_t *logged_at, double *t0)
{
    const tr_config *c = &r->cfg;
    *loss_sum += loss;
    if (r->metrics) {
        fprintf(r->metrics, "{\"event\":\"train\",\"step\":%lld,\"epoch\":%llu,\"loss\":%.17g,\"lr\":%.17g}\n",
                (long long)r->step, (unsigned long long)r->sampler.epoch, loss, tr_lr_at(c, r->step));
        fflush(r->metrics);
    }
    char status[64];
    snprintf(status, sizeof status, "epoch %llu  loss %.4f", (unsigned long long)r->sampler.epoch, loss);
    tr_progress_update(&r->bar, r->step, status);
    if (r->step % c->train.log_every && r->step != c->train.max_steps)
        return;
    double dt = now_s() - *t0, steps = (double)(r->step - *logged_at);
    tr_run_say(r, "step %lld/%lld  epoch %llu  loss %.4f  lr %.2e  %.1f samples/s", (long long)r->step,
               (long long)c->train.max_steps, (unsigned long long)r->sampler.epoch, *loss_sum / steps,
               tr_lr_at(c, r->step), steps * (double)(c->train.batch_size * r->world) / (dt > 0 ? dt : 1));
    *t0 = now_s();
    *loss_sum = 0;
    *logged_at = r->step;
}

/* The prefetcher of the training split, from the sampler's position (the last consumed batch's), for
 * the steps left. */
static int open_prefetch(tr_run *r, ds_prefetch **pf)
{
    const tr_config *c = &r->cfg;
    ds_prefetch_opts po = {.threads = (int)c->data.loader_threads,
                           .depth = (int)c->data.prefetch_depth,
                           .shape = tr_model_batch_shape(c, ds_loader_manifest(r->loader)),
                           .roll_epochs = 1, .max_batches = (uint64_t)(c->train.max_steps - r->step),
                           .allocator = tr_batch_allocator(tc_device_of(tr_model_params(&r->model)->v[0].t))};
    return ds_prefetch_open(r->loader, "train", &r->sampler, &po, pf, r->err, sizeof r->err);
}

/* After a step: the run's sampler moves to the position after the batch just consumed (into the next
 * epoch's order when the prefetcher rolled over), which is what a checkpoint saves. */
static int advance_sampler(tr_run *r, const ds_prefetch_item *it)
{
    return ds_sampler_set_position(&r->sampler, &it->after, r->err, sizeof r->err) ? -1 : 0;
}

static int train_loop(tr_run *r)
{
    const tr_config *c = &r->cfg;
    if (r->step > c->train.max_steps) {
        snprintf(r->err, sizeof r->err, "the checkpoint is at step %lld, past train.max_steps (%lld)",
                 (long long)r->step, (long long)c->train.max_steps);
        return tr_run_agree(r, -1);
    }
    const tr_model *m = &r->model;
    if (m->bert_import.loaded)
        tr_run_say(r, "model: text encoder from %s: %d tensors (%d pretraining tensors ignored)", c->model.bert.weights,
                   m->bert_import.loaded, m->bert_import.ignored);
    if (m->audio_import.loaded)
        tr_run_say(r, "model: audio encoder from %s: %d tensors (%d pretraining tensors ignored)", c->model.audio.weights,
                   m->audio_import.loaded, m->audio_import.ignored);
    if (r->step == c->train.max_steps)
        tr_run_say(r, "train: the run is at train.max_steps (%lld) already: nothing to train", (long long)r->step);
    else
        tr_run_say(r, "train: %zu samples, %d rank%s x batch %lld, %zu steps per epoch, %zu parameters (%zu trained), %d thread%s per rank",
                   ds_loader_count(r->loader, "train"), r->world, r->world > 1 ? "s" : "", (long long)c->train.batch_size,
                   ds_sampler_steps_per_epoch(&r->sampler), mp_numel(tr_model_params(&r->model)), r->flat_n, r->threads, r->threads > 1 ? "s" : "");
    ds_prefetch *pf = NULL;
    if (r->step < c->train.max_steps && open_prefetch(r, &pf))
        return -1;
    double t0 = now_s(), loss_sum = 0, loss;
    int64_t logged_at = r->step;
    int rc = 0;
    tr_progress_begin(&r->bar, show_progress(r), "train", "steps", r->step, c->train.max_steps);
    while (rc == 0 && r->step < c->train.max_steps) {
        ds_prefetch_item it;
        rc = ds_prefetch_next(pf, &it, r->err, sizeof r->err);
        if (rc == DS_PREFETCH_END)
            snprintf(r->err, sizeof r->err, "train: the loader ended at step %lld of %lld", (long long)r->step,
                     (long long)c->train.max_steps);
        if (rc)
            break;
        rc = train_step(r, it.batch, &loss) || advance_sampler(r, &it);
        ds_prefetch_release(pf, &it);
        if (rc)
            break;
        r->step++;
        log_step(r, loss, &loss_sum, &logged_at, &t0);
        int last = r->step == c->train.max_steps;
        if ((c->train.eval_every && r->step % c->train.eval_every == 0) || last)
            rc = validate(r);
        if (rc == 0 && ((c->train.checkpoint_every && r->step % c->train.checkpoint_every == 0) || last))
            rc = tr_run_check_replicas(r) || tr_run_save(r);
    }
    tr_progress_end(&r->bar);
    ds_prefetch_close(pf);
    if (rc == 0)
        rc = tr_run_agree(r, export_final(r));
    if (rc == 0)
        tr_run_say(r, "train: done at step %lld; best val accuracy %.4f at step %lld", (long long)r->step, r->best_acc,
                   (long long)r->best_step);
    return rc ? -1 : 0;
}

static int default_threads(const tr_run *r)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = comm_local_size(r->g);
    long n = (cores > 0 ? cores : 1) / (local > 0 ? local : 1);
    return n > 0 ? (int)n : 1;
}

/* What each rank does alone: configuration, threads, shards, the sampler. No collectives. */
static int setup_local(tr_run *r, const char *config, char **sets, int n_sets)
{
    if (tr_config_load(config, sets, n_sets, &r->cfg, r->err, sizeof r->err))
        return -1;
    r->threads = r->cfg.train.threads ? (int)r->cfg.train.threads : default_threads(r);
    tc_set_num_threads(r->threads);
    if (ds_loader_open(r->cfg.data.shards, &r->loader, r->err, sizeof r->err))
        return -1;
    const ds_manifest *m = ds_loader_manifest(r->loader);
    if (r->cfg.model.num_classes == 0) {
        /* Resolved into the configuration itself, so config.json and the model hash hold the
         * label space that trains; sets has room for this one more entry. */
        char labels[64];
        snprintf(labels, sizeof labels, "model.num_classes=%d", m->labels);
        sets[n_sets++] = labels;
        tr_config_free(&r->cfg);
        if (tr_config_load(config, sets, n_sets, &r->cfg, r->err, sizeof r->err))
            return -1;
    }
    if (r->cfg.model.vocab_size < m->vocab_size) {
        snprintf(r->err, sizeof r->err, "model.vocab_size (%lld) is below the shards' tokenizer vocabulary (%d tokens, %s)",
                 (long long)r->cfg.model.vocab_size, m->vocab_size, r->cfg.data.shards);
        return -1;
    }
    size_t n_train = ds_loader_count(r->loader, "train");
    if (n_train == 0) {
        snprintf(r->err, sizeof r->err, "%s: the train split is empty", r->cfg.data.shards);
        return -1;
    }
    unsigned flags = DS_SAMPLER_SHUFFLE | (r->cfg.train.drop_last ? DS_SAMPLER_DROP_LAST : 0);
    if (ds_sampler_init(&r->sampler, n_train, r->world, r->rank, (size_t)r->cfg.train.batch_size,
                        (uint64_t)r->cfg.train.seed, flags, r->err, sizeof r->err))
        return -1;
    r->dropout_gen = tr_run_dropout_gen(r, 0);
    return build_model(r);
}

static void free_args(char **sets, char **owned, int n_owned)
{
    for (int i = 0; owned && i < n_owned; i++)
        free(owned[i]);
    free(owned);
    free(sets);
}

static void run_free(tr_run *r)
{
    if (r->metrics)
        fclose(r->metrics);
    tr_adamw_free(&r->opt);
    tr_model_free(&r->model);
    free(r->flat);
    ds_sampler_free(&r->sampler);
    if (r->dropout_gen)
        tc_generator_free(r->dropout_gen);
    if (r->loader)
        ds_loader_close(r->loader);
    tr_config_free(&r->cfg);
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
    tr_run r = {.out = "runs/train"};
    const char *config = NULL, *resume_how = NULL;
    /* --shards and --max-steps become --set entries (a later one wins, as with --set); one slot
     * more for the label space resolved from the shards. */
    char **sets = calloc((size_t)argc + 2, sizeof *sets), **owned = calloc((size_t)argc + 1, sizeof *owned);
    int n_sets = 0, n_owned = 0, o;
    optind = 1;
    opterr = 0;
    while (sets && owned && (o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'o': r.out = optarg; break;
        case 's': sets[n_sets++] = optarg; break;
        case 'r': resume_how = optarg; break;
        case 'q': r.quiet = 1; break;
        case 'a': r.save_all_ranks = 1; break;
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
        default:
            fprintf(stderr, "empd train: %s '%s' (empd train --help lists the options)\n",
                    o == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
            free_args(sets, owned, n_owned);
            return 2;
        }
    }
    if (!sets || !owned || optind < argc) {
        fprintf(stderr, "empd train: unexpected argument '%s' (empd train --help)\n", optind < argc ? argv[optind] : "");
        free_args(sets, owned, n_owned);
        return 2;
    }
    /* Freed tensors stay in the heap for the next step's: glibc otherwise maps every block above its mmap
     * threshold afresh and unmaps it on free, and the kernel zeroes each page again on first touch (half
     * the step of the tiny video model; tests/bench/model_step measures it). */
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, -1);
    if (comm_init(NULL, NULL, &r.g, r.err, sizeof r.err)) {
        fprintf(stderr, "empd train: %s\n", r.err);
        free_args(sets, owned, n_owned);
        return 1;
    }
    r.rank = comm_rank(r.g);
    r.world = comm_size(r.g);
    int rc = tr_run_agree(&r, setup_local(&r, config, sets, n_sets));
    if (rc == 0)
        rc = broadcast_weights(&r) || tr_run_start(&r, resume_how) || train_loop(&r);
    if (rc && r.err[0]) {
        if (r.world > 1 && !r.all_failed)
            fprintf(stderr, "empd train: rank %d: %s\n", r.rank, r.err);
        else
            fprintf(stderr, "empd train: %s\n", r.err);
        fflush(stderr);
    }
    /* A failure only this rank knows of may leave the others inside a collective. */
    if (rc && !r.agreed && r.world > 1)
        comm_abort(r.g, 1);
    run_free(&r);
    free_args(sets, owned, n_owned);
    comm_finalize(r.g, NULL, 0);
    return rc ? 1 : 0;
}
