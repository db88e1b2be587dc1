/* image.h: the frame codec of the shards (JPEG through libturbojpeg) and two small writers for looking at
 * media: PNG images and 16-bit PCM wav files.
 *
 * Return codes: the DS_MEDIA_* codes of media.h; on failure one line into err (err may be NULL, errlen 0)
 * naming the file or the image and what is wrong. Nothing here prints or exits.
 *
 * Threads: a ds_jpeg handle belongs to one thread at a time (open one per thread); the writers are
 * thread-safe.
 */
#ifndef EMPD_DATASET_IMAGE_H
#define EMPD_DATASET_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset/media.h"
#include "dataset/record.h"   /* ds_buf */

/* The shards' default JPEG quality. With 4:4:4 (below), 224x224 frames decoded from H.264 test clips come
 * back at 39.9 dB PSNR or better (mean 40.8 dB) in about 15.5 KB per frame, a tenth of raw RGB (tests/media
 * measures it); quality 95 would cost 1.3-1.4x the bytes for detail below the video codec's own noise. */
#define DS_JPEG_QUALITY_DEFAULT 90

typedef struct ds_jpeg ds_jpeg;   /* a libturbojpeg compressor and decompressor */

/* A new handle into *out. DS_MEDIA_ENOMEM when libturbojpeg cannot make one; DS_MEDIA_EINVAL for NULL out. */
int ds_jpeg_open(ds_jpeg **out, char *err, size_t errlen);
/* Releases j; NULL is fine. */
void ds_jpeg_close(ds_jpeg *j);

/* Encodes the RGB24 image rgb (w x h, rows of 3*w bytes) as a baseline JPEG at quality 1..100 into out,
 * replacing its contents (out->len becomes the JPEG's size; zero-initialise out before first use).
 * Chroma subsampling 4:4:4: the frames are downscaled from video whose chroma planes (half the luma size,
 * e.g. 320x240 for 640x480) are still larger than 224x224, so the frames carry full-resolution colour;
 * 4:2:0 would cap the PSNR near 28-31 dB on coloured edges whatever the quality (measured at q90 on the
 * test clips: 29.3 dB mean for 10.4 KB against 40.8 dB for 15.5 KB).
 * Accurate (islow) DCT. Returns DS_MEDIA_EINVAL for NULL arguments, w or h outside 1..16384 or quality
 * outside 1..100; DS_MEDIA_ENOMEM when out cannot grow; DS_MEDIA_EDECODE when libturbojpeg fails. */
int ds_jpeg_encode(ds_jpeg *j, const uint8_t *rgb, int w, int h, int quality, ds_buf *out, char *err, size_t errlen);

/* Decodes the len bytes at data into rgb[w*h*3] (RGB24, accurate DCT).
 * Returns DS_MEDIA_EDECODE when the data is not a JPEG, is damaged, or is not w x h (the message gives both
 * sizes); DS_MEDIA_EINVAL for NULL arguments or w, h < 1. */
int ds_jpeg_decode(ds_jpeg *j, const void *data, size_t len, int w, int h, uint8_t *rgb, char *err, size_t errlen);

/* Writes the RGB24 image rgb (w x h) as a PNG file at path (FFmpeg's png encoder), atomically: the bytes go
 * to "<path>.tmp", are fsync'd, renamed over path, and the folder is fsync'd. Returns DS_MEDIA_EINVAL for
 * NULL arguments or sizes outside 1..16384, DS_MEDIA_EIO when a file operation fails (the message carries
 * strerror; the .tmp file is removed), DS_MEDIA_ENOMEM, DS_MEDIA_EDECODE when the encoder fails. */
int ds_png_write(const char *path, const uint8_t *rgb, int w, int h, char *err, size_t errlen);

/* Writes n mono samples at rate Hz as a 16-bit PCM wav file at path (libsndfile), atomically as
 * ds_png_write. n may be 0 (samples may then be NULL). Returns DS_MEDIA_EINVAL for a NULL path, NULL
 * samples with n > 0 or rate < 1, DS_MEDIA_EIO when a file operation fails, DS_MEDIA_ENOMEM. */
int ds_wav_write(const char *path, const int16_t *samples, size_t n, int rate, char *err, size_t errlen);

#endif
