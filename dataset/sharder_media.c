/* The media of one utterance: dia{CID}utt{K}_{AID}.wav / .mp4 decoded into a record's utterance. */
#include "dataset/sharder_internal.h"

#include "dataset/error.h"
#include "dataset/image.h"
#include "dataset/media.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sh_media_ctx {
    ds_jpeg *jpeg;
    uint8_t *rgb;     /* DS_N_FRAMES decoded frames, before JPEG encoding */
};

int sh_media_ctx_new(const ds_sharder_opts *o, sh_media_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    sh_media_ctx *m = calloc(1, sizeof *m);
    if (!m)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    if (o->video && o->frame_format == DS_FRAME_JPEG) {
        m->rgb = malloc((size_t)DS_N_FRAMES * o->frame_w * o->frame_h * 3);
        int rc = m->rgb ? 0 : ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
        if (!rc && ds_jpeg_open(&m->jpeg, err, errlen))
            rc = DS_SHARD_ENOMEM;
        if (rc) {
            sh_media_ctx_free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

void sh_media_ctx_free(sh_media_ctx *m)
{
    if (!m)
        return;
    ds_jpeg_close(m->jpeg);
    free(m->rgb);
    free(m);
}

void sh_media_store_free(sh_media_store *st)
{
    for (int u = 0; u < DS_MAX_UTT; u++) {
        free(st->wave[u]);
        for (int f = 0; f < DS_N_FRAMES; f++)
            ds_buf_free(&st->jpeg[u][f]);
    }
    free(st->raw);
    memset(st, 0, sizeof *st);
}

/* A file that is not there is normal (the modality is absent); one that is there but does not decode is
 * a bad input: counted and listed, or fatal. */
static int media_outcome(const ds_sharder *s, int code, const char *medium, const am_sample *a, int u,
                         const char *msg, size_t *missing, size_t *bad, uint8_t *presence, uint8_t bad_bit,
                         ds_strv *bad_lines, char *err, size_t errlen)
{
    if (code == DS_MEDIA_ENOENT) {
        (*missing)++;
        return 0;
    }
    if (code == DS_MEDIA_ENOMEM)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s", msg);
    if (s->o->on_error == AM_ON_ERROR_FAIL)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "conversation %s utterance %d: %s (--on-error skip shards "
                       "without it)", a->conversation_id, a->utt[u].index, msg);
    char line[1400];
    snprintf(line, sizeof line, "%s: conversation %s utterance %d: %s", medium, a->conversation_id, a->utt[u].index,
             msg);
    if (ds_strv_push(bad_lines, line) != DS_SHARD_OK)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    (*bad)++;
    *presence |= bad_bit;
    return 0;
}

int sh_media_path(const ds_sharder *s, const am_sample *a, int u, int video, char *buf, size_t n)
{
    if (a->utt[u].avatar_id < 0)
        return -1;
    snprintf(buf, n, "%s/dia%sutt%d_%d.%s", video ? s->video_dir : s->audio_dir, a->conversation_id,
             a->utt[u].index, a->utt[u].avatar_id, video ? "mp4" : "wav");
    return 0;
}

static int utterance_audio(const ds_sharder *s, const am_sample *a, int u, ds_utt *du, sh_media_store *st,
                           sh_media_counts *c, ds_strv *bad_lines, char *err, size_t errlen)
{
    char path[4400], msg[1024] = "";
    sh_media_path(s, a, u, 0, path, sizeof path);
    size_t max = (size_t)llround(s->o->audio_max_seconds * DS_AUDIO_RATE), n = 0;
    free(st->wave[u]);
    st->wave[u] = NULL;
    int code = ds_audio_read(path, DS_AUDIO_RATE, max, &st->wave[u], &n, NULL, msg, sizeof msg);
    if (code == DS_MEDIA_OK) {
        du->wave = st->wave[u];
        du->n_samples = (uint32_t)n;
        du->presence |= DS_PRESENT_AUDIO;
        c->audio_present++;
        return 0;
    }
    return media_outcome(s, code, "audio", a, u, msg, &c->audio_missing, &c->audio_bad, &du->presence,
                         DS_PRESENT_AUDIO_BAD, bad_lines, err, errlen);
}

static int utterance_video(const ds_sharder *s, sh_media_ctx *m, const am_sample *a, int u, ds_utt *du,
                           sh_media_store *st, sh_media_counts *c, ds_strv *bad_lines, char *err, size_t errlen)
{
    const ds_sharder_opts *o = s->o;
    char path[4400], msg[1024] = "";
    sh_media_path(s, a, u, 1, path, sizeof path);
    size_t frame = (size_t)o->frame_w * o->frame_h * 3;
    uint8_t *rgb = o->frame_format == DS_FRAME_RAW ? st->raw + (size_t)u * DS_N_FRAMES * frame : m->rgb;
    int code = ds_video_read_frames(path, DS_N_FRAMES, o->frame_w, o->frame_h, rgb, NULL, msg, sizeof msg);
    if (code != DS_MEDIA_OK)
        return media_outcome(s, code, "video", a, u, msg, &c->video_missing, &c->video_bad, &du->presence,
                             DS_PRESENT_VIDEO_BAD, bad_lines, err, errlen);
    for (int f = 0; f < DS_N_FRAMES; f++) {
        if (o->frame_format == DS_FRAME_RAW) {
            du->frame[f] = rgb + (size_t)f * frame;
            du->frame_len[f] = (uint32_t)frame;
            continue;
        }
        ds_buf *b = &st->jpeg[u][f];
        if (ds_jpeg_encode(m->jpeg, rgb + (size_t)f * frame, o->frame_w, o->frame_h, o->jpeg_quality, b, msg,
                           sizeof msg))
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "%s: frame %d: %s", path, f, msg);
        du->frame[f] = b->data;
        du->frame_len[f] = (uint32_t)b->len;
    }
    du->presence |= DS_PRESENT_VIDEO;
    c->video_present++;
    return 0;
}

int sh_media_utterance(const ds_sharder *s, sh_media_ctx *m, const am_sample *a, int u, ds_record *r,
                       sh_media_store *st, sh_media_counts *c, ds_strv *bad_lines, char *err, size_t errlen)
{
    const ds_sharder_opts *o = s->o;
    ds_utt *du = &r->utt[u];
    /* Without an avatar ID the file name cannot be formed: the media count as missing. */
    if (a->utt[u].avatar_id < 0) {
        c->audio_missing += o->audio != 0;
        c->video_missing += o->video != 0;
        return 0;
    }
    if (o->video && o->frame_format == DS_FRAME_RAW && !st->raw) {
        st->raw = malloc((size_t)DS_MAX_UTT * DS_N_FRAMES * o->frame_w * o->frame_h * 3);
        if (!st->raw)
            return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory for raw frames");
    }
    int rc = 0;
    if (o->audio)
        rc = utterance_audio(s, a, u, du, st, c, bad_lines, err, errlen);
    if (!rc && o->video)
        rc = utterance_video(s, m, a, u, du, st, c, bad_lines, err, errlen);
    return rc;
}
