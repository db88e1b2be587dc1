#include "dataset/image.h"

#include "dataset/error.h"
#include "dataset/fsync_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <sndfile.h>
#include <turbojpeg.h>

struct ds_jpeg {
    tjhandle enc, dec;
};

static int buf_reserve(ds_buf *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    unsigned char *d = realloc(b->data, n);
    if (!d)
        return -1;
    b->data = d;
    b->cap = n;
    return 0;
}

int ds_jpeg_open(ds_jpeg **out, char *err, size_t errlen)
{
    if (!out)
        return ds_fail(err, errlen, DS_MEDIA_EINVAL, "jpeg: NULL handle pointer");
    *out = NULL;
    ds_jpeg *j = calloc(1, sizeof *j);
    if (j) {
        j->enc = tjInitCompress();
        j->dec = tjInitDecompress();
    }
    if (!j || !j->enc || !j->dec) {
        ds_jpeg_close(j);
        return ds_fail(err, errlen, DS_MEDIA_ENOMEM, "jpeg: cannot create a libturbojpeg handle");
    }
    *out = j;
    return DS_MEDIA_OK;
}

void ds_jpeg_close(ds_jpeg *j)
{
    if (!j)
        return;
    if (j->enc)
        tjDestroy(j->enc);
    if (j->dec)
        tjDestroy(j->dec);
    free(j);
}

int ds_jpeg_encode(ds_jpeg *j, const uint8_t *rgb, int w, int h, int quality, ds_buf *out, char *err, size_t errlen)
{
    if (!j || !rgb || !out || w < 1 || w > 16384 || h < 1 || h > 16384 || quality < 1 || quality > 100)
        return ds_fail(err, errlen, DS_MEDIA_EINVAL, "jpeg encode: bad arguments (%dx%d, quality %d)", w, h, quality);
    /* Compressing straight into out's storage, sized for the worst case, saves a copy per frame. */
    unsigned long cap = tjBufSize(w, h, TJSAMP_444);
    if (cap == (unsigned long)-1 || buf_reserve(out, cap) != 0)
        return ds_fail(err, errlen, DS_MEDIA_ENOMEM, "jpeg encode: cannot allocate %lu bytes for a %dx%d image", cap,
                       w, h);
    unsigned char *dst = out->data;
    unsigned long size = cap;
    if (tjCompress2(j->enc, rgb, w, 0, h, TJPF_RGB, &dst, &size, TJSAMP_444, quality, TJFLAG_NOREALLOC) != 0)
        return ds_fail(err, errlen, DS_MEDIA_EDECODE, "jpeg encode: %dx%d image: %s", w, h, tjGetErrorStr2(j->enc));
    out->len = size;
    return DS_MEDIA_OK;
}

int ds_jpeg_decode(ds_jpeg *j, const void *data, size_t len, int w, int h, uint8_t *rgb, char *err, size_t errlen)
{
    if (!j || !data || !rgb || w < 1 || h < 1)
        return ds_fail(err, errlen, DS_MEDIA_EINVAL, "jpeg decode: bad arguments (expected %dx%d)", w, h);
    /* A stream cut before its frame header reads as "tables only": success with no size set. */
    int jw = 0, jh = 0, samp, space;
    if (len > (unsigned long)-1 ||
        tjDecompressHeader3(j->dec, data, (unsigned long)len, &jw, &jh, &samp, &space) != 0)
        return ds_fail(err, errlen, DS_MEDIA_EDECODE, "jpeg decode: %zu bytes are not a JPEG: %s", len,
                       tjGetErrorStr2(j->dec));
    if (jw < 1 || jh < 1)
        return ds_fail(err, errlen, DS_MEDIA_EDECODE, "jpeg decode: %zu bytes hold no JPEG image", len);
    if (jw != w || jh != h)
        return ds_fail(err, errlen, DS_MEDIA_EDECODE, "jpeg decode: the image is %dx%d, expected %dx%d", jw, jh, w, h);
    if (tjDecompress2(j->dec, data, (unsigned long)len, rgb, w, 0, h, TJPF_RGB, 0) != 0)
        return ds_fail(err, errlen, DS_MEDIA_EDECODE, "jpeg decode: damaged %dx%d JPEG: %s", w, h,
                       tjGetErrorStr2(j->dec));
    return DS_MEDIA_OK;
}

/* path.tmp, fsync, rename, fsync of the folder. */
static int write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (!tmp)
        return ds_fail(err, errlen, DS_MEDIA_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int rc = DS_MEDIA_OK;
    const char *step = "create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        const unsigned char *p = data;
        size_t left = len;
        step = "write";
        while (left > 0) {
            ssize_t k = write(fd, p, left);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            p += k;
            left -= (size_t)k;
        }
        if (left == 0 && (step = "fsync", fsync(fd) == 0)) {
            step = "close";
            if (close(fd) == 0) {
                fd = -1;
                step = "rename";
                if (rename(tmp, path) == 0) {
                    step = NULL;
                    ds_fsync_parent(path);
                }
            }
        }
    }
    if (step) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        rc = ds_fail(err, errlen, DS_MEDIA_EIO, "%s: %s failed: %s", step[0] == 'r' ? path : tmp, step, strerror(e));
    }
    free(tmp);
    return rc;
}

int ds_png_write(const char *path, const uint8_t *rgb, int w, int h, char *err, size_t errlen)
{
    if (!path || !rgb || w < 1 || w > 16384 || h < 1 || h > 16384)
        return ds_fail(err, errlen, DS_MEDIA_EINVAL, "%s: bad arguments (png %dx%d)", path ? path : "(null path)", w,
                       h);
    ds_media_quiet_ffmpeg();
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    AVCodecContext *c = codec ? avcodec_alloc_context3(codec) : NULL;
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    int rc = DS_MEDIA_OK;
    if (!codec)
        rc = ds_fail(err, errlen, DS_MEDIA_EDECODE, "%s: FFmpeg has no png encoder", path);
    else if (!c || !f || !pkt)
        rc = ds_fail(err, errlen, DS_MEDIA_ENOMEM, "%s: out of memory", path);
    if (rc == DS_MEDIA_OK) {
        c->width = w;
        c->height = h;
        c->pix_fmt = AV_PIX_FMT_RGB24;
        c->time_base = (AVRational){1, 1};
        c->thread_count = 1;
        f->format = AV_PIX_FMT_RGB24;
        f->width = w;
        f->height = h;
        f->data[0] = (uint8_t *)rgb;
        f->linesize[0] = 3 * w;
        /* The encoder copies a frame it does not own before using it, so rgb is only read. */
        int av = avcodec_open2(c, codec, NULL);
        if (av >= 0)
            av = avcodec_send_frame(c, f);
        if (av >= 0)
            av = avcodec_send_frame(c, NULL);
        if (av >= 0)
            av = avcodec_receive_packet(c, pkt);
        if (av < 0) {
            char msg[AV_ERROR_MAX_STRING_SIZE];
            av_strerror(av, msg, sizeof msg);
            rc = ds_fail(err, errlen, av == AVERROR(ENOMEM) ? DS_MEDIA_ENOMEM : DS_MEDIA_EDECODE,
                         "%s: png encoding of a %dx%d image failed: %s", path, w, h, msg);
        }
    }
    if (rc == DS_MEDIA_OK)
        rc = write_atomic(path, pkt->data, (size_t)pkt->size, err, errlen);
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&c);
    return rc;
}

/* libsndfile writes the wav into memory through these, so the file itself is written once, atomically. */
typedef struct {
    ds_buf b;
    sf_count_t pos;
    int failed;
} mem_file;

static sf_count_t mem_len(void *u) { return (sf_count_t)((mem_file *)u)->b.len; }

static sf_count_t mem_seek(sf_count_t off, int whence, void *u)
{
    mem_file *m = u;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : (sf_count_t)m->b.len;
    if (base + off < 0)
        return -1;
    m->pos = base + off;
    return m->pos;
}

static sf_count_t mem_read(void *ptr, sf_count_t count, void *u)
{
    mem_file *m = u;
    sf_count_t left = (sf_count_t)m->b.len - m->pos;
    if (count > left)
        count = left > 0 ? left : 0;
    memcpy(ptr, m->b.data + m->pos, (size_t)count);
    m->pos += count;
    return count;
}

static sf_count_t mem_write(const void *ptr, sf_count_t count, void *u)
{
    mem_file *m = u;
    size_t end = (size_t)(m->pos + count);
    if (end > m->b.cap && buf_reserve(&m->b, end > 2 * m->b.cap ? end : 2 * m->b.cap) != 0) {
        m->failed = 1;
        return 0;
    }
    if ((size_t)m->pos > m->b.len)
        memset(m->b.data + m->b.len, 0, (size_t)m->pos - m->b.len);
    memcpy(m->b.data + m->pos, ptr, (size_t)count);
    m->pos += count;
    if (end > m->b.len)
        m->b.len = end;
    return count;
}

static sf_count_t mem_tell(void *u) { return ((mem_file *)u)->pos; }

int ds_wav_write(const char *path, const int16_t *samples, size_t n, int rate, char *err, size_t errlen)
{
    if (!path || (n > 0 && !samples) || rate < 1)
        return ds_fail(err, errlen, DS_MEDIA_EINVAL, "%s: bad arguments (wav of %zu samples at %d Hz)",
                       path ? path : "(null path)", n, rate);
    SF_VIRTUAL_IO io = {mem_len, mem_seek, mem_read, mem_write, mem_tell};
    mem_file m = {{0}, 0, 0};
    SF_INFO si = {.samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open_virtual(&io, SFM_WRITE, &si, &m);
    if (!sf)
        return ds_fail(err, errlen, DS_MEDIA_EINVAL, "%s: libsndfile cannot write this wav: %s", path,
                       sf_strerror(NULL));
    sf_count_t wrote = n > 0 ? sf_write_short(sf, samples, (sf_count_t)n) : 0;
    sf_close(sf);
    int rc;
    if (m.failed)
        rc = ds_fail(err, errlen, DS_MEDIA_ENOMEM, "%s: out of memory for %zu samples", path, n);
    else if (wrote != (sf_count_t)n)
        rc = ds_fail(err, errlen, DS_MEDIA_EIO, "%s: libsndfile wrote %lld of %zu samples", path, (long long)wrote, n);
    else
        rc = write_atomic(path, m.b.data, m.b.len, err, errlen);
    ds_buf_free(&m.b);
    return rc;
}
