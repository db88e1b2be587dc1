/* bench_loader: samples per second the prefetcher delivers from a shards folder with media, filling
 * batches with frames, audio and tokens of the train split (shuffled, as training reads them).
 *   bench_loader --shards DIR --batch B --steps N [--threads T] [--depth D] [--text-only]
 * Prints one line: the rate over N batches after a first one (which pays for opening and page faults).
 * --text-only fills only what the text model reads (tokens, masks, metadata, labels), as empd train does.
 *   bench_loader --shards DIR --from-media DATA_DIR --batch B --steps N [--threads T]
 * The peer: the same samples in the same order with their media decoded on the fly from DATA_DIR's mp4 and
 * wav files (what a loader without shards does), by the same decoders, into batches of the same shape. */
#include "dataset/media.h"
#include "dataset/prefetch.h"
#include "dataset/sampler.h"
#include "dataset/shard.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_loader --shards DIR [--from-media DATA_DIR] --batch B --steps N [--threads T] "
                    "[--depth D] [--text-only]\n");
    return 2;
}

/* ---- the peer: decoding on the fly ---- */

typedef struct {
    const char *data_dir;
    ds_shard_reader *reader;
    const size_t *order;       /* steps * batch sample indices */
    size_t n, next;            /* samples, next to claim */
    int S, H, W;
    pthread_mutex_t mu;
    int failed;
    char err[1024];
} peer;

static void *peer_thread(void *arg)
{
    peer *p = arg;
    size_t frame = (size_t)p->H * p->W * 3;
    uint8_t *frames = malloc((size_t)DS_MAX_UTT * DS_N_FRAMES * frame);
    int16_t *audio = malloc((size_t)DS_MAX_UTT * p->S * sizeof *audio);
    ds_shard_txn *t = NULL;
    char err[1024] = "";
    int rc = !frames || !audio || ds_shard_txn_begin(p->reader, &t, err, sizeof err);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = rc || p->failed ? p->n : p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n)
            break;
        ds_record r;
        if ((rc = ds_shard_txn_get(t, p->order[i], &r, err, sizeof err)))
            break;
        for (int u = 0; u < r.n_utt; u++) {
            char path[4400];
            snprintf(path, sizeof path, "%s/video_v5_0/dia%sutt%u_%d.mp4", p->data_dir, r.conversation_id,
                     r.utt[u].index, r.utt[u].avatar);
            ds_video_read_frames(path, DS_N_FRAMES, p->W, p->H, frames + (size_t)u * DS_N_FRAMES * frame, NULL,
                                 NULL, 0);
            snprintf(path, sizeof path, "%s/audio_v5_0/dia%sutt%u_%d.wav", p->data_dir, r.conversation_id,
                     r.utt[u].index, r.utt[u].avatar);
            int16_t *w = NULL;
            size_t n = 0;
            if (ds_audio_read(path, DS_AUDIO_RATE, (size_t)p->S, &w, &n, NULL, NULL, 0) == DS_MEDIA_OK)
                memcpy(audio + (size_t)u * p->S, w, n * sizeof *w);
            free(w);
        }
    }
    if (rc) {
        pthread_mutex_lock(&p->mu);
        if (!p->failed)
            snprintf(p->err, sizeof p->err, "%s", err[0] ? err : "out of memory");
        p->failed = 1;
        pthread_mutex_unlock(&p->mu);
    }
    ds_shard_txn_end(t);
    free(frames);
    free(audio);
    return NULL;
}

/* Samples/s of decoding steps * batch samples of the train split on the fly, or -1. */
static double run_peer(const char *shards, const char *data_dir, int batch, int steps, int threads)
{
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/%s", shards, DS_MANIFEST_FILE);
    ds_manifest m = {0};
    ds_sampler s = {0};
    peer p = {.data_dir = data_dir, .n = (size_t)steps * batch};
    pthread_mutex_init(&p.mu, NULL);
    size_t *order = malloc(p.n * sizeof *order);
    const ds_manifest_split *sp = NULL;
    int rc = !order || ds_manifest_read(path, &m, err, sizeof err);
    if (!rc && !(sp = ds_manifest_find_split(&m, "train")))
        rc = 1;
    if (!rc)
        rc = ds_shard_reader_open(shards, "train", sp->shards.v, sp->shards.n, &p.reader, err, sizeof err);
    if (!rc)
        rc = ds_sampler_init(&s, sp->count, 1, 0, (size_t)batch, 1, DS_SAMPLER_SHUFFLE, err, sizeof err);
    for (size_t k = 0; !rc && k < p.n; k += (size_t)batch)
        if (ds_sampler_next(&s, order + k, NULL) == DS_SAMPLER_EPOCH_END) {
            ds_sampler_set_epoch(&s, s.epoch + 1);
            k -= (size_t)batch;
        }
    p.order = order;
    p.S = (int)(m.media.audio_max_seconds * m.media.audio_rate);
    p.H = m.media.frame_h;
    p.W = m.media.frame_w;
    double rate = -1;
    if (!rc) {
        pthread_t tid[64];
        int nt = threads < 64 ? threads : 64;
        double t0 = now_s();
        for (int t = 0; t < nt; t++)
            pthread_create(&tid[t], NULL, peer_thread, &p);
        for (int t = 0; t < nt; t++)
            pthread_join(tid[t], NULL);
        if (!p.failed)
            rate = (double)p.n / (now_s() - t0);
        else
            fprintf(stderr, "bench_loader: %s\n", p.err);
    } else {
        fprintf(stderr, "bench_loader: %s\n", err);
    }
    ds_shard_reader_close(p.reader);
    ds_sampler_free(&s);
    ds_manifest_free(&m);
    free(order);
    return rate;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"shards", required_argument, 0, 's'}, {"batch", required_argument, 0, 'b'},
        {"steps", required_argument, 0, 'n'},  {"threads", required_argument, 0, 't'},
        {"depth", required_argument, 0, 'd'},  {"from-media", required_argument, 0, 'm'},
        {"text-only", no_argument, 0, 'x'},     {0, 0, 0, 0},
    };
    const char *shards = NULL, *media = NULL;
    int batch = 8, steps = 20, threads = 2, depth = 2, text_only = 0, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': shards = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 'n': steps = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'd': depth = atoi(optarg); break;
        case 'm': media = optarg; break;
        case 'x': text_only = 1; break;
        default: return usage();
        }
    }
    if (!shards || batch < 1 || steps < 1 || threads < 1)
        return usage();
    if (media) {
        double rate = run_peer(shards, media, batch, steps, threads);
        if (rate < 0)
            return 1;
        printf("bench_loader: %.1f samples/s decoding on the fly (%d batches x %d, %d threads)\n", rate, steps, batch,
               threads);
        return 0;
    }
    char err[1024];
    ds_loader *l;
    if (ds_loader_open(shards, &l, err, sizeof err)) {
        fprintf(stderr, "bench_loader: %s\n", err);
        return 1;
    }
    const ds_manifest *m = ds_loader_manifest(l);
    const ds_manifest_media *md = &m->media;
    ds_batch_shape shape = {.B = batch, .U = DS_MAX_UTT, .L = m->utt_max_tokens, .C = m->ctx_max_tokens,
                            .mods = DS_MOD_TEXT};
    if (md->audio && !text_only) {
        shape.mods |= DS_MOD_AUDIO;
        shape.S = (int)(md->audio_max_seconds * md->audio_rate);
    }
    if (md->video && !text_only) {
        shape.mods |= DS_MOD_VIDEO;
        shape.H = md->frame_h;
        shape.W = md->frame_w;
    }
    ds_sampler s;
    ds_prefetch *p = NULL;
    int rc = ds_sampler_init(&s, ds_loader_count(l, "train"), 1, 0, (size_t)batch, 1, DS_SAMPLER_SHUFFLE, err,
                             sizeof err);
    ds_prefetch_opts po = {.threads = threads, .depth = depth, .shape = shape, .roll_epochs = 1,
                           .max_batches = (uint64_t)steps + 1};
    if (!rc)
        rc = ds_prefetch_open(l, "train", &s, &po, &p, err, sizeof err);
    double t0 = 0;
    int64_t frames = 0, waves = 0;
    for (int i = 0; !rc && i <= steps; i++) {
        ds_prefetch_item it;
        if ((rc = ds_prefetch_next(p, &it, err, sizeof err)))
            break;
        if (i == 0)
            t0 = now_s();
        for (int k = 0; i > 0 && k < batch * DS_MAX_UTT; k++) {
            frames += it.batch->video_valid && it.batch->video_valid[k] > 0 ? DS_N_FRAMES : 0;
            waves += it.batch->audio_valid && it.batch->audio_valid[k] > 0;
        }
        ds_prefetch_release(p, &it);
    }
    double dt = now_s() - t0;
    if (rc)
        fprintf(stderr, "bench_loader: %s\n", rc > 0 ? "the loader ended early" : err);
    else
        printf("bench_loader: %.1f samples/s (%d batches x %d, %d threads, depth %d; per batch %.1f frames %dx%d %s, "
               "%.1f waveforms of %d samples, %.1f MB)\n", steps * batch / dt, steps, batch, threads, depth,
               (double)frames / steps, shape.W, shape.H, md->frame_format == DS_FRAME_JPEG ? "jpeg" : "raw",
               (double)waves / steps, shape.S, ds_batch_bytes(&shape) / 1e6);
    ds_prefetch_close(p);
    ds_sampler_free(&s);
    ds_loader_close(l);
    return rc ? 1 : 0;
}
