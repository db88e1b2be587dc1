/* The run's checkpoints: saving every rank's state through rank 0, and resuming from it. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/checkpoint.h"
#include "trainer/run.h"
#include "trainer/rundir.h"

void tr_run_say(tr_run *r, const char *fmt, ...)
{
    if (r->rank != 0 || r->quiet)
        return;
    tr_progress_clear(&r->bar);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

int tr_run_agree(tr_run *r, int local_rc)
{
    int64_t failed = local_rc != 0;
    if (r->world > 1 && comm_allreduce(r->g, &failed, 1, COMM_I64, COMM_SUM, local_rc ? NULL : r->err,
                                       local_rc ? 0 : sizeof r->err))
        return -1;
    if (failed == 0)
        return 0;
    r->agreed = 1;
    r->all_failed = failed == r->world;
    if (!local_rc || (r->all_failed && r->rank != 0))
        r->err[0] = 0;
    return -1;
}

tc_generator *tr_run_dropout_gen(const tr_run *r, int64_t step)
{
    uint64_t seed = (uint64_t)r->cfg.train.seed * 1000003u + (uint64_t)step * 7919u + (uint64_t)r->rank + 1;
    return tc_generator_new(seed, r->dev);
}

const void *tr_run_host_bytes(tc_tensor *t, tr_host_buf *buf)
{
    const void *p = tc_data_ptr(t);
    size_t n = (size_t)tc_numel(t) * tc_dtype_size(tc_dtype_of(t));
    if (p)
        return p;
    if (n > buf->cap) {
        void *grown = realloc(buf->data, n);
        if (!grown)
            return NULL;
        buf->data = grown;
        buf->cap = n;
    }
    return tc_copy_to_host(t, buf->data, n) == TC_OK ? buf->data : NULL;
}

/* FNV-1a over every parameter's bytes: equal on all ranks while replicas are identical (0 when a
 * parameter cannot be read, which the comparison then reports). */
static uint64_t params_hash(const mp_params *ps)
{
    uint64_t h = 1469598103934665603ull;
    tr_host_buf buf = {0};
    for (int i = 0; i < ps->n; i++) {
        const unsigned char *p = tr_run_host_bytes(ps->v[i].t, &buf);
        size_t n = (size_t)tc_numel(ps->v[i].t) * sizeof(float);
        if (!p) {
            h = 0;
            break;
        }
        for (size_t k = 0; k < n; k++)
            h = (h ^ p[k]) * 1099511628211ull;
    }
    free(buf.data);
    return h;
}

int tr_run_check_replicas(tr_run *r)
{
    if (r->world == 1)
        return 0;
    uint64_t mine = params_hash(tr_model_params(&r->model)), *all = calloc((size_t)r->world, sizeof *all);
    if (!all) {
        snprintf(r->err, sizeof r->err, "replica check: out of memory");
        return -1;
    }
    if (comm_allgather(r->g, &mine, all, sizeof mine, r->err, sizeof r->err)) {
        free(all);
        return -1;
    }
    int k = 1;
    while (k < r->world && all[k] == all[0])
        k++;
    if (k < r->world) {
        /* Every rank saw the same gather: all fail together, rank 0 says it. */
        snprintf(r->err, sizeof r->err, "replicas diverged at step %lld: rank %d holds weights %016llx, rank 0 %016llx",
                 (long long)r->step, k, (unsigned long long)all[k], (unsigned long long)all[0]);
        r->agreed = r->all_failed = 1;
        if (r->rank != 0)
            r->err[0] = 0;
    } else {
        tr_run_say(r, "replicas identical on %d ranks (weights %016llx)", r->world, (unsigned long long)all[0]);
    }
    free(all);
    return k < r->world ? -1 : 0;
}

static char *hex_of(const unsigned char *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    for (size_t i = 0; s && i < n; i++)
        snprintf(s + 2 * i, 3, "%02x", p[i]);
    return s;
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

/* FNV-1a of what makes the training data what it is: the tokenizer, the token limits, the label
 * space and the training split's conversations in order. Equal counts are not equal data. */
static void data_hash(const ds_manifest *m, char out[17])
{
    uint64_t h = 1469598103934665603ull;
    char head[128];
    snprintf(head, sizeof head, "%s %d %d %d %d", m->vocab_md5, m->vocab_size, m->utt_max_tokens, m->ctx_max_tokens,
             m->labels);
    const ds_manifest_split *train = ds_manifest_find_split(m, "train");
    for (size_t i = 0; i <= (train ? train->conversation_ids.n : 0); i++) {
        const char *p = i == 0 ? head : train->conversation_ids.v[i - 1];
        for (; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ '\n') * 1099511628211ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* Rank 0's half of a save: the state of every rank (RNG states gathered in all) to disk. */
static int write_checkpoint(tr_run *r, const unsigned char *all, size_t len)
{
    ds_sampler_position pos = ds_sampler_get_position(&r->sampler);
    /* A finished epoch is saved as the start of the next, the one position every world size
     * can continue from; the order of epoch e + 1 is what the uninterrupted run draws next. */
    size_t global = (size_t)r->world * (size_t)r->cfg.train.batch_size;
    if (pos.consumed >= ds_sampler_steps_per_epoch(&r->sampler) * global)
        pos = (ds_sampler_position){pos.epoch + 1, 0};
    tr_ckpt_state st = {.step = r->step, .sampler_epoch = pos.epoch, .sampler_consumed = pos.consumed,
                        .world_size = r->world, .threads = r->threads, .seed = r->cfg.train.seed,
                        .train_samples = (int64_t)ds_loader_count(r->loader, "train"), .n_rng = r->world,
                        .best_value = r->best_value, .best_step = r->best_step, .stop_best = r->stop_best,
                        .stop_bad = r->stop_bad, .evals = r->evals};
    snprintf(st.best_metric, sizeof st.best_metric, "%s", tr_metric_name(r->cfg.train.best_metric));
    memcpy(st.model_hash, r->cfg.model_hash, sizeof st.model_hash);
    memcpy(st.config_hash, r->cfg.config_hash, sizeof st.config_hash);
    data_hash(ds_loader_manifest(r->loader), st.data_hash);
    st.rng_hex = calloc((size_t)r->world, sizeof *st.rng_hex);
    int rc = st.rng_hex ? 0 : -1;
    for (int k = 0; rc == 0 && k < r->world; k++)
        rc = (st.rng_hex[k] = hex_of(all + (size_t)k * len, len)) ? 0 : -1;
    if (rc)
        snprintf(r->err, sizeof r->err, "checkpoint: out of memory");
    else
        rc = tr_ckpt_write(r->out, &st, tr_model_params(&r->model), &r->opt, r->cfg.json, r->err, sizeof r->err);
    tr_ckpt_state_free(&st);
    return rc;
}

int tr_run_save(tr_run *r)
{
    size_t len = 0;
    tc_generator_get_state(r->dropout_gen, NULL, &len);
    unsigned char *mine = calloc(len ? len : 1, 1), *all = calloc(len ? len * (size_t)r->world : 1, 1);
    if (!mine || !all) {
        /* Without the buffers this rank cannot join the gather the others are entering. */
        fprintf(stderr, "empd train: rank %d: checkpoint: out of memory for %zu bytes of generator states\n", r->rank,
                len * (size_t)r->world);
        comm_abort(r->g, 1);
    }
    int rc = 0;
    if (!len || tc_generator_get_state(r->dropout_gen, mine, &len) != TC_OK) {
        snprintf(r->err, sizeof r->err, "checkpoint: cannot read the dropout generator of rank %d", r->rank);
        rc = -1;
    }
    /* Every rank takes part in the gather even after a local failure, so none waits on a
     * collective the others skipped; the outcome is agreed on below. */
    if (comm_allgather(r->g, mine, all, len, rc ? NULL : r->err, rc ? 0 : sizeof r->err))
        rc = -1;
    /* The other ranks wait here while rank 0 writes: a slow disk is not a dead rank. */
    comm_set_timeout(r->g, r->cfg.train.checkpoint_timeout);
    if (rc == 0 && r->rank == 0)
        rc = write_checkpoint(r, all, len);
    free(mine);
    free(all);
    /* The marker only once every rank knows the folder is whole. */
    if (tr_run_agree(r, rc) == 0) {
        rc = r->rank == 0 ? tr_ckpt_mark_complete(r->out, r->step, (int)r->cfg.train.keep_last, r->best_step, r->err,
                                                  sizeof r->err)
                          : 0;
        rc = tr_run_agree(r, rc);
    } else {
        rc = -1;
    }
    comm_set_timeout(r->g, r->cfg.train.comm_timeout);
    if (rc)
        return -1;
    tr_run_say(r, "checkpoint: step %lld saved to %s/checkpoints", (long long)r->step, r->out);
    return 0;
}

/* Rank 0 decides which checkpoint folder to resume from ("" for none). */
static int pick_checkpoint(tr_run *r, const char *how, char *dir, size_t n)
{
    dir[0] = 0;
    if (!strcmp(how, "auto"))
        return tr_ckpt_find_latest(r->out, dir, n, r->err, sizeof r->err) < 0 ? -1 : 0;
    struct stat sb;
    char marker[4200];
    snprintf(marker, sizeof marker, "%s/COMPLETE", how);
    if (stat(how, &sb) != 0) {
        snprintf(r->err, sizeof r->err, "resume: %s: %s", how, strerror(errno));
        return -1;
    }
    if (stat(marker, &sb) != 0) {
        snprintf(r->err, sizeof r->err, "resume: %s is not a complete checkpoint folder (no COMPLETE marker; "
                 "--resume auto picks a run's newest)", how);
        return -1;
    }
    snprintf(dir, n, "%s", how);
    return 0;
}

/* Every rank: the checkpoint into the model, optimizer, sampler and dropout stream. */
static int load_checkpoint(tr_run *r, const char *dir)
{
    tr_ckpt_state st;
    if (tr_ckpt_load(dir, r->cfg.model_hash, &st, tr_model_params(&r->model), &r->opt, r->err, sizeof r->err))
        return -1;
    char hash[17];
    data_hash(ds_loader_manifest(r->loader), hash);
    int64_t n_train = (int64_t)ds_loader_count(r->loader, "train");
    ds_sampler_position pos = {st.sampler_epoch, st.sampler_consumed};
    int rc = -1;
    if (st.train_samples != n_train || strcmp(st.data_hash, hash))
        snprintf(r->err, sizeof r->err, "resume: %s was trained on other shards (%lld training samples, data %s; "
                 "%s has %lld, data %s)", dir, (long long)st.train_samples, st.data_hash, r->cfg.data.shards,
                 (long long)n_train, hash);
    else if (st.seed != r->cfg.train.seed)
        snprintf(r->err, sizeof r->err, "resume: %s was trained with train.seed %lld, the configuration has %lld "
                 "(the sampling order follows the seed)", dir, (long long)st.seed, (long long)r->cfg.train.seed);
    else if (ds_sampler_set_position(&r->sampler, &pos, r->err, sizeof r->err) == 0)
        rc = 0;
    else
        snprintf(r->err + strlen(r->err), sizeof r->err - strlen(r->err), " (checkpoint %s: %d ranks)", dir,
                 st.world_size);
    if (rc == 0 && st.world_size == r->world) {
        size_t len = 0;
        tc_generator_get_state(r->dropout_gen, NULL, &len);
        unsigned char *buf = malloc(len ? len : 1);
        if (!buf || unhex(st.rng_hex[r->rank], buf, len) || tc_generator_set_state(r->dropout_gen, buf, len) != TC_OK) {
            snprintf(r->err, sizeof r->err, "resume: %s/state.json: rng[%d] is not a generator state", dir, r->rank);
            rc = -1;
        }
        free(buf);
    } else if (rc == 0) {
        /* Another world size: per-rank dropout streams cannot carry over. */
        tc_generator_free(r->dropout_gen);
        r->dropout_gen = tr_run_dropout_gen(r, st.step);
        tr_run_say(r, "resume: world size %d -> %d: dropout streams reseeded (not bit-identical to an uninterrupted run)",
                   st.world_size, r->world);
    }
    if (rc == 0 && st.threads != r->threads)
        tr_run_say(r, "resume: %d threads per rank where the checkpoint had %d: results may differ in the last bits",
                   r->threads, st.threads);
    if (rc == 0 && st.config_hash[0] && strcmp(st.config_hash, r->cfg.config_hash))
        tr_run_say(r, "resume: the configuration differs from the checkpoint's (config hash %s, now %s): "
                   "see %s/state.json's \"config\"", st.config_hash, r->cfg.config_hash, dir);
    if (rc == 0) {
        r->step = st.step;
        r->stop_best = st.stop_best;
        r->stop_bad = st.stop_bad;
        r->evals = st.evals;
        if (!strcmp(st.best_metric, tr_metric_name(r->cfg.train.best_metric))) {
            r->best_value = st.best_value;
            r->best_step = st.best_step;
        } else {
            tr_run_say(r, "resume: the best checkpoint was chosen by val %s, now by %s: the best starts over",
                       st.best_metric, tr_metric_name(r->cfg.train.best_metric));
        }
    }
    tr_ckpt_state_free(&st);
    return rc;
}

int tr_run_start(tr_run *r, const char *how)
{
    char dir[4096] = "";
    int rc = how && r->rank == 0 ? pick_checkpoint(r, how, dir, sizeof dir) : 0;
    /* One decision for all ranks: each rank listing the folder itself could see another
     * "newest" on a shared file system that is still settling. */
    if (tr_run_agree(r, rc) || comm_broadcast(r->g, dir, sizeof dir, 0, r->err, sizeof r->err))
        return -1;
    if (how && !dir[0])
        tr_run_say(r, "resume: no complete checkpoint in %s/checkpoints, starting fresh", r->out);
    rc = dir[0] ? load_checkpoint(r, dir) : 0;
    if (rc == 0 && r->rank == 0)
        rc = tr_rundir_open(r->out, how ? r->step : -1, dir[0] ? dir : NULL, r->cfg.json, &r->metrics, r->err,
                            sizeof r->err);
    if (tr_run_agree(r, rc))
        return -1;
    if (dir[0])
        tr_run_say(r, "resume: continuing from %s (step %lld, epoch %llu)", dir, (long long)r->step,
                   (unsigned long long)r->sampler.epoch);
    return dir[0] ? tr_run_check_replicas(r) : 0;
}
