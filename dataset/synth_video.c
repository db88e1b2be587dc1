/* synth_video.c: one utterance's face clip, encoded H.264 (libx264) into an mp4 with libavformat. */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <stdio.h>

#include "dataset/error.h"
#include "dataset/synth_media_internal.h"

typedef struct {
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame;
    AVPacket *pkt;
    sm_face *face;
} clip;

static void clip_free(clip *c)
{
    if (c->oc && c->oc->pb)
        avio_closep(&c->oc->pb);
    avformat_free_context(c->oc);
    avcodec_free_context(&c->enc);
    av_frame_free(&c->frame);
    av_packet_free(&c->pkt);
    sm_face_close(c->face);
}

static int av_fail(char *err, size_t errlen, const char *path, const char *what, int averr)
{
    char msg[AV_ERROR_MAX_STRING_SIZE] = "";
    if (averr < 0)
        av_strerror(averr, msg, sizeof msg);
    return ds_fail(err, errlen, -1, "%s: %s%s%s", path, what, averr < 0 ? ": " : "", msg);
}

/* Fixed encoder settings, single-threaded, so the same frames give the same bytes. x264's own log level
 * keeps it quiet without touching libav's process-wide log level. */
static int open_encoder(clip *c, const sm_utt *u, const char *tmp, char *err, size_t errlen)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (!codec)
        return ds_fail(err, errlen, -1, "%s: this FFmpeg has no libx264 encoder", tmp);
    c->enc = avcodec_alloc_context3(codec);
    if (!c->enc)
        return ds_fail(err, errlen, -1, "%s: out of memory", tmp);
    AVCodecContext *e = c->enc;
    e->width = u->width;
    e->height = u->height;
    e->time_base = (AVRational){1, u->fps};
    e->framerate = (AVRational){u->fps, 1};
    e->pix_fmt = AV_PIX_FMT_YUV420P;
    e->gop_size = 12;
    e->max_b_frames = 2;
    e->thread_count = 1;
    e->color_range = AVCOL_RANGE_MPEG;
    e->colorspace = AVCOL_SPC_SMPTE170M;
    e->color_primaries = AVCOL_PRI_SMPTE170M;
    e->color_trc = AVCOL_TRC_SMPTE170M;
    e->flags |= AV_CODEC_FLAG_BITEXACT;
    /* No AV_CODEC_FLAG_GLOBAL_HEADER: with it libavcodec's x264 wrapper prints x264's settings at
     * AV_LOG_INFO; without it the mp4 muxer builds its avcC box from the first packet's SPS/PPS. */
    AVDictionary *o = NULL;
    av_dict_set(&o, "preset", "superfast", 0);
    av_dict_set(&o, "crf", "23", 0);
    av_dict_set(&o, "x264-params", "log=-1:threads=1:lookahead-threads=1:sliced-threads=0", 0);
    int rc = avcodec_open2(e, codec, &o);
    av_dict_free(&o);
    if (rc < 0)
        return av_fail(err, errlen, tmp, "cannot open the H.264 encoder", rc);
    c->st = avformat_new_stream(c->oc, NULL);
    if (!c->st)
        return ds_fail(err, errlen, -1, "%s: out of memory", tmp);
    c->st->time_base = e->time_base;
    c->st->avg_frame_rate = e->framerate;
    rc = avcodec_parameters_from_context(c->st->codecpar, e);
    return rc < 0 ? av_fail(err, errlen, tmp, "cannot set the stream parameters", rc) : 0;
}

/* Sends one frame (NULL flushes) and writes every packet the encoder has ready. */
static int encode(clip *c, AVFrame *frame, const char *tmp, char *err, size_t errlen)
{
    int rc = avcodec_send_frame(c->enc, frame);
    if (rc < 0)
        return av_fail(err, errlen, tmp, "the encoder refused a frame", rc);
    for (;;) {
        rc = avcodec_receive_packet(c->enc, c->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return av_fail(err, errlen, tmp, "encoding failed", rc);
        av_packet_rescale_ts(c->pkt, c->enc->time_base, c->st->time_base);
        c->pkt->stream_index = c->st->index;
        rc = av_interleaved_write_frame(c->oc, c->pkt);
        if (rc < 0)
            return av_fail(err, errlen, tmp, "cannot write a packet", rc);
    }
}

static int write_clip(clip *c, const sm_utt *u, const char *tmp, char *err, size_t errlen)
{
    int rc = avformat_alloc_output_context2(&c->oc, NULL, "mp4", tmp);
    if (rc < 0 || !c->oc)
        return av_fail(err, errlen, tmp, "cannot set up the mp4 muxer", rc);
    /* BITEXACT: no "Lavf" encoder tag, so the bytes do not change with the FFmpeg build. */
    c->oc->flags |= AVFMT_FLAG_BITEXACT;
    if (open_encoder(c, u, tmp, err, errlen) != 0)
        return -1;
    c->frame = av_frame_alloc();
    c->pkt = av_packet_alloc();
    c->face = sm_face_open(u);
    if (!c->frame || !c->pkt || !c->face)
        return ds_fail(err, errlen, -1, "%s: out of memory", tmp);
    c->frame->format = AV_PIX_FMT_YUV420P;
    c->frame->width = u->width;
    c->frame->height = u->height;
    if ((rc = av_frame_get_buffer(c->frame, 0)) < 0)
        return av_fail(err, errlen, tmp, "cannot allocate a frame", rc);
    if ((rc = avio_open(&c->oc->pb, tmp, AVIO_FLAG_WRITE)) < 0)
        return av_fail(err, errlen, tmp, "cannot create", rc);
    if ((rc = avformat_write_header(c->oc, NULL)) < 0)
        return av_fail(err, errlen, tmp, "cannot write the mp4 header", rc);
    for (int i = 0; i < u->n_frames; i++) {
        if ((rc = av_frame_make_writable(c->frame)) < 0)
            return av_fail(err, errlen, tmp, "cannot allocate a frame", rc);
        if (sm_face_draw(c->face, i, c->frame->data, c->frame->linesize) != 0)
            return ds_fail(err, errlen, -1, "%s: cairo failed to draw frame %d", tmp, i);
        c->frame->pts = i;
        if (encode(c, c->frame, tmp, err, errlen) != 0)
            return -1;
    }
    if (encode(c, NULL, tmp, err, errlen) != 0)
        return -1;
    if ((rc = av_write_trailer(c->oc)) < 0)
        return av_fail(err, errlen, tmp, "cannot finish the mp4", rc);
    if ((rc = avio_closep(&c->oc->pb)) < 0)
        return av_fail(err, errlen, tmp, "cannot close", rc);
    return 0;
}

int sm_video_write(const sm_utt *u, const char *tmp, char *err, size_t errlen)
{
    clip c = {0};
    int rc = write_clip(&c, u, tmp, err, errlen);
    clip_free(&c);
    return rc;
}
