#include "dataset/media.h"

#include "dataset/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <sndfile.h>

#define BLOCK_FRAMES 4096

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
    int16_t *out;
    size_t len, cap;
} pcm;

static int pcm_reserve(pcm *p, size_t extra)
{
    if (p->len + extra <= p->cap)
        return DS_MEDIA_OK;
    size_t cap = p->cap ? p->cap : 16384;
    while (cap < p->len + extra)
        cap *= 2;
    int16_t *o = realloc(p->out, cap * sizeof *o);
    if (!o)
        return ds_fail(p->err, p->errlen, DS_MEDIA_ENOMEM, "%s: out of memory", p->path);
    p->out = o;
    p->cap = cap;
    return DS_MEDIA_OK;
}

static SwrContext *resampler(int in_rate, int out_rate)
{
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    SwrContext *swr = NULL;
    if (swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_S16, out_rate, &mono, AV_SAMPLE_FMT_FLT, in_rate, 0, NULL) < 0)
        return NULL;
    /* The settings are spelled out so that a change of libswresample's defaults cannot change the corpus. */
    if (av_opt_set_int(swr, "resampler", SWR_ENGINE_SWR, 0) < 0 || av_opt_set_int(swr, "filter_size", 32, 0) < 0 ||
        av_opt_set_int(swr, "phase_shift", 10, 0) < 0 || av_opt_set_int(swr, "linear_interp", 1, 0) < 0 ||
        av_opt_set_int(swr, "exact_rational", 1, 0) < 0 || av_opt_set_double(swr, "cutoff", 0.97, 0) < 0 ||
        av_opt_set_int(swr, "filter_type", SWR_FILTER_TYPE_KAISER, 0) < 0 ||
        av_opt_set_int(swr, "kaiser_beta", 9, 0) < 0 || av_opt_set_int(swr, "dither_method", SWR_DITHER_NONE, 0) < 0 ||
        av_opt_set_sample_fmt(swr, "internal_sample_fmt", AV_SAMPLE_FMT_FLTP, 0) < 0 || swr_init(swr) < 0)
        swr_free(&swr);
    return swr;
}

/* Feeds frames (NULL, 0: the end) through swr into p. */
static int resample(pcm *p, SwrContext *swr, const float *in, int frames)
{
    for (;;) {
        int room = swr_get_out_samples(swr, frames);
        if (room < 0)
            return ds_fail(p->err, p->errlen, DS_MEDIA_EDECODE, "%s: resampling failed", p->path);
        room += 16;
        int rc = pcm_reserve(p, (size_t)room);
        if (rc != DS_MEDIA_OK)
            return rc;
        uint8_t *o = (uint8_t *)(p->out + p->len);
        const uint8_t *i = (const uint8_t *)in;
        int got = swr_convert(swr, &o, room, in ? &i : NULL, frames);
        if (got < 0)
            return ds_fail(p->err, p->errlen, DS_MEDIA_EDECODE, "%s: resampling failed", p->path);
        p->len += (size_t)got;
        /* Input is consumed whole; only the flush can need more than one round. */
        if (in || got == 0)
            return DS_MEDIA_OK;
    }
}

static int read_all(pcm *p, SNDFILE *sf, const SF_INFO *si, int rate, size_t max_samples)
{
    SwrContext *swr = resampler(si->samplerate, rate);
    float *block = malloc((size_t)BLOCK_FRAMES * (size_t)si->channels * sizeof *block);
    float *mono = malloc(BLOCK_FRAMES * sizeof *mono);
    int rc = DS_MEDIA_OK;
    if (!swr || !block || !mono)
        rc = ds_fail(p->err, p->errlen, DS_MEDIA_ENOMEM, "%s: cannot set up resampling %d -> %d Hz", p->path,
                     si->samplerate, rate);
    sf_count_t done = 0;
    while (rc == DS_MEDIA_OK && done < si->frames && !(max_samples && p->len >= max_samples)) {
        sf_count_t want = si->frames - done < BLOCK_FRAMES ? si->frames - done : BLOCK_FRAMES;
        sf_count_t got = sf_readf_float(sf, block, want);
        if (got <= 0) {
            const char *why = sf_error(sf) ? sf_strerror(sf) : "unexpected end of data";
            rc = ds_fail(p->err, p->errlen, DS_MEDIA_EDECODE, "%s: read failed at frame %lld of %lld: %s",
                         p->path, (long long)done, (long long)si->frames, why);
            break;
        }
        const int ch = si->channels;
        for (sf_count_t i = 0; i < got; i++) {
            float s = 0;
            for (int c = 0; c < ch; c++)
                s += block[i * ch + c];
            mono[i] = ch == 1 ? s : s / (float)ch;
        }
        done += got;
        rc = resample(p, swr, mono, (int)got);
    }
    if (rc == DS_MEDIA_OK && !(max_samples && p->len >= max_samples))
        rc = resample(p, swr, NULL, 0);
    swr_free(&swr);
    free(block);
    free(mono);
    return rc;
}

int ds_audio_read(const char *path, int rate, size_t max_samples, int16_t **out, size_t *n, ds_audio_info *info,
                  char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    if (!path || !out || !n || rate < 1 || rate > 384000)
        return ds_fail(err, errlen, DS_MEDIA_EINVAL, "%s: bad arguments (rate %d, out %s, n %s)",
                       path ? path : "(null path)", rate, out ? "set" : "NULL", n ? "set" : "NULL");
    ds_media_quiet_ffmpeg();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return ds_fail(err, errlen, e == ENOENT ? DS_MEDIA_ENOENT : DS_MEDIA_EIO, "%s: cannot open: %s", path,
                       strerror(e));
    }
    struct stat st;
    int bad = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (bad) {
        close(fd);
        return ds_fail(err, errlen, DS_MEDIA_EIO, "%s: cannot read: %s", path, strerror(bad));
    }
    SF_INFO si;
    memset(&si, 0, sizeof si);
    SNDFILE *sf = sf_open_fd(fd, SFM_READ, &si, SF_FALSE);
    if (!sf) {
        int rc = ds_fail(err, errlen, DS_MEDIA_EDECODE, "%s: not a readable audio file: %s", path, sf_strerror(NULL));
        close(fd);
        return rc;
    }
    pcm p = {.path = path, .err = err, .errlen = errlen};
    int rc = DS_MEDIA_OK;
    if (si.frames <= 0 || si.channels < 1 || si.samplerate < 1)
        rc = ds_fail(err, errlen, DS_MEDIA_EDECODE, "%s: no audio (%lld frames, %d channels, %d Hz)", path,
                     (long long)si.frames, si.channels, si.samplerate);
    else
        rc = read_all(&p, sf, &si, rate, max_samples);
    sf_close(sf);
    close(fd);
    if (rc == DS_MEDIA_OK && p.len == 0)
        rc = ds_fail(err, errlen, DS_MEDIA_EDECODE, "%s: %lld frames at %d Hz are too short for one sample at %d Hz",
                     path, (long long)si.frames, si.samplerate, rate);
    if (rc != DS_MEDIA_OK) {
        free(p.out);
        return rc;
    }
    if (max_samples && p.len > max_samples)
        p.len = max_samples;
    *out = p.out;
    *n = p.len;
    if (info)
        *info = (ds_audio_info){.rate = si.samplerate, .channels = si.channels, .frames = si.frames};
    return DS_MEDIA_OK;
}
