#include "dataset/media.h"

#include "dataset/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void quiet_init(void) { av_log_set_level(AV_LOG_QUIET); }

void ds_media_quiet_ffmpeg(void) { pthread_once(&quiet_once, quiet_init); }

void ds_video_frame_indices(int64_t total, int n, int64_t *idx)
{
    if (total <= n || n == 1) {
        for (int i = 0; i < n; i++)
            idx[i] = i < total ? i : total - 1;
        return;
    }
    /* numpy's linspace: arange(num) * step with step = (stop - start) / (num - 1), the end point set exactly. */
    double step = (double)(total - 1) / (double)(n - 1);
    for (int i = 0; i < n - 1; i++)
        idx[i] = (int64_t)((double)i * step);
    idx[n - 1] = total - 1;
}

/* One call's state. pkts holds the video stream's packets in decode order. */
typedef struct {
    const char *path;
    char *err;
    size_t errlen;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    struct SwsContext *sws;
    AVFrame *frame;
    AVPacket **pkts;
    int64_t n_pkts, cap_pkts;
    int64_t n_frames;        /* packets that present a frame: all but those flagged discard */
    int64_t *sorted_pts;     /* pts of the n_frames presented packets, ascending; NULL in sequential mode */
    int64_t *pts_pkt;        /* for sorted_pts[k]: its packet's decode-order index */
    int64_t next;            /* next packet to send */
    int64_t out_count;       /* frames output since packet 0 (sequential mode) */
    int draining;            /* the decoder was sent the end of stream */
    int live;                /* the decoder has been fed from a keyframe since its last flush */
    int sws_w, sws_h, sws_fmt, sws_space, sws_range;
} vid;

/* Errors of the operating system (as opposed to FFmpeg's own: the bytes are not what was expected). */
static int is_os_error(int av)
{
    static const int os[] = {EACCES, EPERM, EIO, EISDIR, ENOTDIR, ELOOP, ENAMETOOLONG, EMFILE, ENFILE, ENXIO};
    for (size_t i = 0; i < sizeof os / sizeof *os; i++)
        if (av == AVERROR(os[i]))
            return 1;
    return 0;
}

static int vid_av_fail(vid *v, int av, const char *what)
{
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(av, msg, sizeof msg);
    int code = av == AVERROR(ENOMEM) ? DS_MEDIA_ENOMEM : DS_MEDIA_EDECODE;
    return ds_fail(v->err, v->errlen, code, "%s: %s: %s", v->path, what, msg);
}

static int open_input(vid *v)
{
    int rc = avformat_open_input(&v->fmt, v->path, NULL, NULL);
    if (rc == AVERROR(ENOENT))
        return ds_fail(v->err, v->errlen, DS_MEDIA_ENOENT, "%s: no such file", v->path);
    if (rc == AVERROR(ENOMEM))
        return ds_fail(v->err, v->errlen, DS_MEDIA_ENOMEM, "%s: out of memory opening the file", v->path);
    if (rc < 0) {
        char msg[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(rc, msg, sizeof msg);
        int os = is_os_error(rc);
        return ds_fail(v->err, v->errlen, os ? DS_MEDIA_EIO : DS_MEDIA_EDECODE, "%s: %s: %s", v->path,
                       os ? "cannot open" : "not a readable container (truncated, corrupt or not media)", msg);
    }
    /* Containers with full headers (mp4, mkv, avi) describe their streams without decoding anything; only
     * headerless ones need the probing decode. */
    if (v->fmt->nb_streams == 0 || (v->fmt->ctx_flags & AVFMTCTX_NOHEADER)) {
        rc = avformat_find_stream_info(v->fmt, NULL);
        if (rc < 0)
            return vid_av_fail(v, rc, "cannot read stream information");
    }
    return DS_MEDIA_OK;
}

static int open_decoder(vid *v, int *stream)
{
    const AVCodec *codec = NULL;
    int s = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (s == AVERROR_DECODER_NOT_FOUND)
        return ds_fail(v->err, v->errlen, DS_MEDIA_EDECODE, "%s: no decoder for its video stream", v->path);
    if (s < 0)
        return ds_fail(v->err, v->errlen, DS_MEDIA_EDECODE, "%s: no video stream", v->path);
    AVStream *st = v->fmt->streams[s];
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec)
        return ds_fail(v->err, v->errlen, DS_MEDIA_ENOMEM, "%s: out of memory", v->path);
    int rc = avcodec_parameters_to_context(v->dec, st->codecpar);
    if (rc < 0)
        return vid_av_fail(v, rc, "video stream parameters");
    v->dec->thread_count = 1;
    v->dec->pkt_timebase = st->time_base;
    rc = avcodec_open2(v->dec, codec, NULL);
    if (rc < 0)
        return vid_av_fail(v, rc, "cannot open the video decoder");
    *stream = s;
    return DS_MEDIA_OK;
}

/* Demuxes the whole file once, keeping the video packets; other streams are discarded unread. */
static int read_packets(vid *v, int stream)
{
    for (unsigned i = 0; i < v->fmt->nb_streams; i++)
        v->fmt->streams[i]->discard = (int)i == stream ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
    AVPacket *pkt = av_packet_alloc();
    if (!pkt)
        return ds_fail(v->err, v->errlen, DS_MEDIA_ENOMEM, "%s: out of memory", v->path);
    int rc;
    while ((rc = av_read_frame(v->fmt, pkt)) >= 0) {
        if (pkt->stream_index != stream) {
            av_packet_unref(pkt);
            continue;
        }
        if (pkt->flags & AV_PKT_FLAG_CORRUPT) {
            av_packet_free(&pkt);
            return ds_fail(v->err, v->errlen, DS_MEDIA_EDECODE, "%s: truncated: video packet %lld is cut short",
                           v->path, (long long)v->n_pkts);
        }
        if (v->n_pkts == v->cap_pkts) {
            int64_t cap = v->cap_pkts ? 2 * v->cap_pkts : 256;
            AVPacket **p = realloc(v->pkts, (size_t)cap * sizeof *p);
            if (!p) {
                av_packet_free(&pkt);
                return ds_fail(v->err, v->errlen, DS_MEDIA_ENOMEM, "%s: out of memory", v->path);
            }
            v->pkts = p;
            v->cap_pkts = cap;
        }
        v->n_frames += !(pkt->flags & AV_PKT_FLAG_DISCARD);
        v->pkts[v->n_pkts++] = pkt;
        pkt = av_packet_alloc();
        if (!pkt)
            return ds_fail(v->err, v->errlen, DS_MEDIA_ENOMEM, "%s: out of memory", v->path);
    }
    av_packet_free(&pkt);
    if (rc != AVERROR_EOF) {
        char msg[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(rc, msg, sizeof msg);
        int code = is_os_error(rc) ? DS_MEDIA_EIO : rc == AVERROR(ENOMEM) ? DS_MEDIA_ENOMEM : DS_MEDIA_EDECODE;
        return ds_fail(v->err, v->errlen, code, "%s: truncated or corrupt: read failed after %lld video packets: %s",
                       v->path, (long long)v->n_pkts, msg);
    }
    int64_t listed = v->fmt->streams[stream]->nb_frames;
    if (listed > 0 && v->n_pkts < listed)
        return ds_fail(v->err, v->errlen, DS_MEDIA_EDECODE, "%s: truncated: %lld of %lld video packets readable",
                       v->path, (long long)v->n_pkts, (long long)listed);
    if (v->n_frames == 0)
        return ds_fail(v->err, v->errlen, DS_MEDIA_EDECODE, "%s: the video stream has no frames", v->path);
    return DS_MEDIA_OK;
}

typedef struct {
    int64_t pts, pkt;
} pts_ref;

static int cmp_pts_ref(const void *a, const void *b)
{
    const pts_ref *x = a, *y = b;
    if (x->pts != y->pts)
        return x->pts < y->pts ? -1 : 1;
    return (x->pkt > y->pkt) - (x->pkt < y->pkt);
}

/* Sorts the presented packets by pts; stays in sequential mode (sorted_pts NULL) when a packet has none. */
static int index_pts(vid *v)
{
    for (int64_t i = 0; i < v->n_pkts; i++)
        if (v->pkts[i]->pts == AV_NOPTS_VALUE)
            return DS_MEDIA_OK;
    v->sorted_pts = malloc((size_t)v->n_frames * sizeof *v->sorted_pts);
    v->pts_pkt = malloc((size_t)v->n_frames * sizeof *v->pts_pkt);
    pts_ref *order = malloc((size_t)v->n_frames * sizeof *order);
    if (!v->sorted_pts || !v->pts_pkt || !order) {
        free(order);
        return ds_fail(v->err, v->errlen, DS_MEDIA_ENOMEM, "%s: out of memory", v->path);
    }
    int64_t k = 0;
    for (int64_t i = 0; i < v->n_pkts; i++)
        if (!(v->pkts[i]->flags & AV_PKT_FLAG_DISCARD))
            order[k++] = (pts_ref){v->pkts[i]->pts, i};
    qsort(order, (size_t)v->n_frames, sizeof *order, cmp_pts_ref);
    for (k = 0; k < v->n_frames; k++) {
        v->sorted_pts[k] = order[k].pts;
        v->pts_pkt[k] = order[k].pkt;
    }
    free(order);
    return DS_MEDIA_OK;
}

/* The rank of a decoded frame: the number of packets presented before it. */
static int64_t frame_rank(vid *v, const AVFrame *f)
{
    if (!v->sorted_pts)
        return v->out_count;
    int64_t t = f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;
    int64_t lo = 0, hi = v->n_frames;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v->sorted_pts[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The packet to start decoding at for the frame of rank k: the last keyframe at or before its packet in
 * decode order that is not presented after it (an open GOP's leading frames need the GOP before). */
static int64_t start_packet(vid *v, int64_t k)
{
    if (!v->sorted_pts)
        return 0;
    int64_t p = v->pts_pkt[k], t = v->sorted_pts[k];
    for (int64_t i = p; i >= 0; i--)
        if ((v->pkts[i]->flags & AV_PKT_FLAG_KEY) && v->pkts[i]->pts <= t)
            return i;
    return 0;
}

/* tpts is ascending (the frame rule is nondecreasing). */
static int is_target_pts(const int64_t *tpts, int nt, int64_t pts)
{
    int lo = 0, hi = nt;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (tpts[mid] < pts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nt && tpts[lo] == pts;
}

static int convert(vid *v, const AVFrame *f, int w, int h, uint8_t *dst)
{
    int range = f->color_range;
    if (!v->sws || f->width != v->sws_w || f->height != v->sws_h || f->format != v->sws_fmt ||
        (int)f->colorspace != v->sws_space || range != v->sws_range) {
        v->sws = sws_getCachedContext(v->sws, f->width, f->height, f->format, w, h, AV_PIX_FMT_RGB24, SWS_BILINEAR,
                                      NULL, NULL, NULL);
        if (!v->sws)
            return ds_fail(v->err, v->errlen, DS_MEDIA_EDECODE, "%s: cannot convert %dx%d %s frames to RGB",
                           v->path, f->width, f->height, av_get_pix_fmt_name((enum AVPixelFormat)f->format));
        int *inv, *table, src_full, dst_full, bright, contrast, sat;
        if (sws_getColorspaceDetails(v->sws, &inv, &src_full, &table, &dst_full, &bright, &contrast, &sat) >= 0) {
            /* yuvj formats arrive full range from sws itself; a tag overrides only when present. */
            if (range != AVCOL_RANGE_UNSPECIFIED)
                src_full = range == AVCOL_RANGE_JPEG;
            sws_setColorspaceDetails(v->sws, sws_getCoefficients(f->colorspace), src_full, table, dst_full,
                                     bright, contrast, sat);
        }
        v->sws_w = f->width;
        v->sws_h = f->height;
        v->sws_fmt = f->format;
        v->sws_space = (int)f->colorspace;
        v->sws_range = range;
    }
    uint8_t *planes[4] = {dst, NULL, NULL, NULL};
    int strides[4] = {3 * w, 0, 0, 0};
    if (sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, planes, strides) != h)
        return ds_fail(v->err, v->errlen, DS_MEDIA_EDECODE, "%s: scaling a frame to %dx%d failed", v->path, w, h);
    return DS_MEDIA_OK;
}

/* Decodes forward until a frame of rank >= k comes out (left in v->frame, with its rank in *got); *got
 * stays -1 when the stream ends first. */
static int decode_until(vid *v, int64_t k, const int64_t *tpts, int nt, int64_t *got)
{
    *got = -1;
    for (;;) {
        int rc = avcodec_receive_frame(v->dec, v->frame);
        if (rc >= 0) {
            int64_t r = frame_rank(v, v->frame);
            v->out_count++;
            if (r >= k) {
                *got = r;
                return DS_MEDIA_OK;
            }
            av_frame_unref(v->frame);
            continue;
        }
        if (rc == AVERROR_EOF)
            return DS_MEDIA_OK;
        if (rc != AVERROR(EAGAIN))
            return vid_av_fail(v, rc, "decoding failed");
        if (v->next < v->n_pkts) {
            AVPacket *p = v->pkts[v->next++];
            /* Frames nothing refers to are skipped unless they are targets themselves. */
            v->dec->skip_frame = v->sorted_pts && !is_target_pts(tpts, nt, p->pts) ? AVDISCARD_NONREF
                                                                                   : AVDISCARD_DEFAULT;
            rc = avcodec_send_packet(v->dec, p);
            if (rc == AVERROR(ENOMEM))
                return vid_av_fail(v, rc, "decoding failed");
        } else if (!v->draining) {
            v->draining = 1;
            avcodec_send_packet(v->dec, NULL);
        } else {
            return DS_MEDIA_OK;
        }
    }
}

static int decode_targets(vid *v, int n, int w, int h, uint8_t *rgb)
{
    int64_t *idx = malloc(2 * (size_t)n * sizeof *idx), *tpts = idx + n;
    if (!idx)
        return ds_fail(v->err, v->errlen, DS_MEDIA_ENOMEM, "%s: out of memory", v->path);
    ds_video_frame_indices(v->n_frames, n, idx);
    for (int i = 0; i < n; i++)
        tpts[i] = v->sorted_pts ? v->sorted_pts[idx[i]] : AV_NOPTS_VALUE;
    int rc = DS_MEDIA_OK;
    size_t frame_bytes = (size_t)w * (size_t)h * 3;
    int64_t have = -1;   /* rank of the frame in v->frame, -1 when none */
    for (int i = 0; i < n && rc == DS_MEDIA_OK; i++) {
        uint8_t *dst = rgb + (size_t)i * frame_bytes;
        if (i > 0 && idx[i] == idx[i - 1]) {
            memcpy(dst, dst - frame_bytes, frame_bytes);
            continue;
        }
        if (have < idx[i]) {
            int64_t start = start_packet(v, idx[i]);
            if (!v->live || v->next <= start) {
                av_frame_unref(v->frame);
                avcodec_flush_buffers(v->dec);
                v->next = start;
                v->draining = 0;
                v->out_count = 0;
                v->live = 1;
            }
            rc = decode_until(v, idx[i], tpts, n, &have);
            if (rc == DS_MEDIA_OK && have < 0)
                rc = ds_fail(v->err, v->errlen, DS_MEDIA_EDECODE, "%s: frame %lld of %lld cannot be decoded",
                             v->path, (long long)idx[i], (long long)v->n_frames);
            if (rc != DS_MEDIA_OK)
                break;
        }
        rc = convert(v, v->frame, w, h, dst);
    }
    free(idx);
    return rc;
}

static void fill_info(vid *v, int stream, ds_video_info *info)
{
    AVStream *st = v->fmt->streams[stream];
    info->width = st->codecpar->width;
    info->height = st->codecpar->height;
    info->n_frames = v->n_frames;
    info->fps = 0;
    if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0)
        info->fps = av_q2d(st->avg_frame_rate);
    else if (v->sorted_pts && v->n_frames > 1 && v->sorted_pts[v->n_frames - 1] > v->sorted_pts[0])
        info->fps = (double)(v->n_frames - 1) /
                    ((double)(v->sorted_pts[v->n_frames - 1] - v->sorted_pts[0]) * av_q2d(st->time_base));
    info->duration = 0;
    if (st->duration > 0 && st->duration != AV_NOPTS_VALUE)
        info->duration = (double)st->duration * av_q2d(st->time_base);
    else if (v->fmt->duration > 0 && v->fmt->duration != AV_NOPTS_VALUE)
        info->duration = (double)v->fmt->duration / AV_TIME_BASE;
}

int ds_video_read_frames(const char *path, int n, int w, int h, uint8_t *rgb, ds_video_info *info,
                         char *err, size_t errlen)
{
    if (!path || !rgb || n < 1 || w < 1 || w > 16384 || h < 1 || h > 16384)
        return ds_fail(err, errlen, DS_MEDIA_EINVAL, "%s: bad arguments (n = %d, size %dx%d, rgb %s)",
                       path ? path : "(null path)", n, w, h, rgb ? "set" : "NULL");
    ds_media_quiet_ffmpeg();
    vid v = {.path = path, .err = err, .errlen = errlen, .sws_fmt = -1};
    int stream = -1;
    int rc = open_input(&v);
    if (rc == DS_MEDIA_OK)
        rc = open_decoder(&v, &stream);
    if (rc == DS_MEDIA_OK)
        rc = read_packets(&v, stream);
    if (rc == DS_MEDIA_OK)
        rc = index_pts(&v);
    if (rc == DS_MEDIA_OK && !(v.frame = av_frame_alloc()))
        rc = ds_fail(err, errlen, DS_MEDIA_ENOMEM, "%s: out of memory", path);
    if (rc == DS_MEDIA_OK)
        rc = decode_targets(&v, n, w, h, rgb);
    if (rc == DS_MEDIA_OK && info)
        fill_info(&v, stream, info);
    for (int64_t i = 0; i < v.n_pkts; i++)
        av_packet_free(&v.pkts[i]);
    free(v.pkts);
    free(v.sorted_pts);
    free(v.pts_pkt);
    av_frame_free(&v.frame);
    sws_freeContext(v.sws);
    avcodec_free_context(&v.dec);
    avformat_close_input(&v.fmt);
    return rc;
}
