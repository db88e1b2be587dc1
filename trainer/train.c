/* empd train: the data-parallel training loop of the model model.kind names (trainer/model.h).
 * Every rank holds a full replica (weights broadcast from rank 0), trains on its slice of each
 * global batch, and averages gradients with one all-reduce per step; rank 0 logs, and writes
 * checkpoints that hold every rank's state. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/commands.h"
#include "trainer/cpus.h"
#include "trainer/run.h"
#include "trainer/stop.h"

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
int tr_run_show_progress(const tr_run *r)
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
    for (int i = 0; r->dev.type != TC_CPU && i < ps->n; i++)
        if (tc_param_to_device(ps->v[i].t, r->dev) != TC_OK) {
            snprintf(r->err, sizeof r->err, "model: cannot move '%s' to CUDA device %d: %s", ps->v[i].name, r->dev.index,
                     tc_last_error());
            return -1;
        }
    r->trained = 0;
    for (int i = 0; i < ps->n; i++)
        if (mp_trainable(&ps->v[i])) {
            r->trained += (size_t)tc_numel(ps->v[i].t);
            tc_zero_grad(ps->v[i].t);
        }
    if (tr_adamw_init(&r->opt, ps) != TC_OK ||
        (c->train.encoder_lr_scale != 1.0 && tr_adamw_set_group(&r->opt, ps, "bert.,wav2vec2.", c->train.encoder_lr_scale) != TC_OK)) {
        snprintf(r->err, sizeof r->err, "model: out of memory for the optimizer of %zu parameters", r->trained);
        return -1;
    }
    return tr_loss_init(&r->loss, c, ds_loader_manifest(r->loader), r->err, sizeof r->err);
}

struct tr_grad_slot {
    tr_run *run;
    int index; /* among the trained parameters: the reducer's numbering */
};

static void on_grad_ready(void *user, tc_tensor *param)
{
    (void)param;
    struct tr_grad_slot *slot = user;
    comm_reducer_ready(slot->run->reducer, slot->index);
}

/* COLLECTIVE. The reducer over the trained parameters' gradient buffers (their addresses stay put:
 * tc_zero_grad allocated them), fed by a gradient-ready hook on each. */
static int make_reducer(tr_run *r)
{
    const tr_config *c = &r->cfg;
    mp_params *ps = tr_model_params(&r->model);
    float **grads = calloc((size_t)ps->n + 1, sizeof *grads);
    size_t *counts = calloc((size_t)ps->n + 1, sizeof *counts);
    r->slots = calloc((size_t)ps->n + 1, sizeof *r->slots);
    int n = 0, rc = grads && counts && r->slots ? 0 : -1;
    for (int i = 0; rc == 0 && i < ps->n; i++) {
        if (!mp_trainable(&ps->v[i]))
            continue;
        tc_scope *s = tc_scope_begin();
        grads[n] = tc_device_ptr(tc_grad(ps->v[i].t));
        tc_scope_end(s);
        counts[n] = (size_t)tc_numel(ps->v[i].t);
        r->slots[n] = (struct tr_grad_slot){r, n};
        if (tc_grad_ready_hook(ps->v[i].t, on_grad_ready, &r->slots[n]) != TC_OK)
            rc = -1;
        n++;
    }
    if (rc)
        snprintf(r->err, sizeof r->err, "reducer: %s", tc_last_error()[0] ? tc_last_error() : "out of memory");
    comm_reducer_opts o = {.bucket_bytes = (size_t)(c->train.bucket_mb * 1048576.0),
                           .first_bucket_bytes = (size_t)(c->train.first_bucket_mb * 1048576.0),
                           .overlap = (int)c->train.overlap,
                           .wire = COMM_F32,
                           .nccl = r->nccl};
    /* Every rank enters the collective creation, even after a local failure (agreed on below). */
    if (comm_reducer_new(r->g, grads, counts, rc ? 0 : n, &o, &r->reducer, rc ? NULL : r->err, rc ? 0 : sizeof r->err))
        rc = -1;
    free(grads);
    free(counts);
    return rc;
}

/* COLLECTIVE. GPU ranks exchange gradients through NCCL (its id bootstrapped over the group). */
static int join_nccl(tr_run *r)
{
    if (r->dev.type == TC_CPU || r->world == 1)
        return 0;
    return comm_nccl_init(r->g, &r->nccl, r->err, sizeof r->err) ? -1 : 0;
}

/* train.max_steps, or fewer when train.epochs ends the run first. */
static int64_t last_step(const tr_run *r)
{
    const tr_config *c = &r->cfg;
    if (!c->train.epochs)
        return c->train.max_steps;
    int64_t steps = (int64_t)ds_sampler_steps_per_epoch(&r->sampler) * c->train.epochs / c->train.grad_accum;
    return steps < c->train.max_steps ? steps : c->train.max_steps;
}

/* Rank 0's weights to every rank, through host memory (parameters on a GPU go by a copy). */
static int broadcast_weights(tr_run *r)
{
    mp_params *ps = tr_model_params(&r->model);
    tr_host_buf buf = {0};
    int rc = 0;
    for (int i = 0; rc == 0 && i < ps->n; i++) {
        tc_tensor *p = ps->v[i].t;
        size_t bytes = (size_t)tc_numel(p) * sizeof(float);
        void *host = (void *)tr_run_host_bytes(p, &buf);
        if (!host) {
            fprintf(stderr, "empd train: rank %d: cannot read '%s' for the weight broadcast: %s\n", r->rank,
                    ps->v[i].name, tc_last_error());
            comm_abort(r->g, 1);
        }
        rc = comm_broadcast(r->g, host, bytes, 0, r->err, sizeof r->err);
        if (rc == 0 && host == buf.data) {
            tc_scope *s = tc_scope_begin();
            tc_copy_(p, tc_from_blob(host, (int64_t[]){tc_numel(p)}, 1, TC_F32));
            rc = tc_scope_end(s) == TC_OK ? 0 : -1;
            if (rc)
                snprintf(r->err, sizeof r->err, "cannot load the broadcast '%s': %s", ps->v[i].name, tc_last_error());
        }
    }
    free(buf.data);
    return rc ? -1 : 0;
}

static int default_threads(const tr_run *r) { return tr_default_threads(comm_local_size(r->g)); }

/* What each rank does alone: configuration, threads, shards, the sampler. No collectives. */
static int setup_local(tr_run *r, const char *config, char **sets, int n_sets)
{
    if (tr_config_load(config, sets, n_sets, &r->cfg, r->err, sizeof r->err))
        return -1;
    r->dev = (tc_device){TC_CPU, 0};
    if (r->cfg.train.device == TR_DEVICE_CUDA) {
        int n = tc_cuda_device_count();
        if (n < 1) {
            snprintf(r->err, sizeof r->err, "train.device=cuda: libtorch sees no CUDA device (a CPU-only libtorch, or "
                     "no GPU on %s)", comm_hostname(r->g));
            return -1;
        }
        r->dev = (tc_device){TC_CUDA, comm_local_rank(r->g) % n};
    }
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
    r->max_steps = last_step(r);
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
    comm_reducer_free(r->reducer);
    comm_nccl_destroy(r->nccl, NULL, 0);
    free(r->slots);
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
    tr_stop_install();
    if (comm_init(NULL, NULL, &r.g, r.err, sizeof r.err)) {
        fprintf(stderr, "empd train: %s\n", r.err);
        free_args(sets, owned, n_owned);
        return 1;
    }
    r.rank = comm_rank(r.g);
    r.world = comm_size(r.g);
    int rc = tr_run_agree(&r, setup_local(&r, config, sets, n_sets));
    if (rc == 0)
        comm_set_timeout(r.g, r.cfg.train.comm_timeout);
    if (rc == 0)
        rc = tr_run_agree(&r, join_nccl(&r)) || tr_run_agree(&r, make_reducer(&r)) || broadcast_weights(&r) ||
             tr_run_start(&r, resume_how) || tr_run_train(&r);
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
