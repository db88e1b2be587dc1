/* media.h: decoding of the corpus' media files for the sharder: video frames (FFmpeg) and audio waveforms
 * (libsndfile + libswresample).
 *
 * Return codes: every function returns DS_MEDIA_OK (0) or one of the negative DS_MEDIA_E* codes below, and on
 * failure writes one line into the caller's err buffer (err may be NULL, errlen 0). The line starts with the
 * path as given and says what is wrong: "video_v5_0/dia1utt2_3.mp4: truncated: 41 of 75 video packets
 * readable". Nothing here prints, exits, or keeps state between calls.
 *
 * Threads: every function is thread-safe; several threads may decode different files at once. The only
 * process-wide effect is ds_media_quiet_ffmpeg (called by every function of media.h and image.h): FFmpeg's
 * own log output is switched off for the whole process, so that errors arrive only through err.
 */
#ifndef EMPD_DATASET_MEDIA_H
#define EMPD_DATASET_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#define DS_MEDIA_OK       0
#define DS_MEDIA_ENOENT  (-1)  /* the file does not exist */
#define DS_MEDIA_EDECODE (-2)  /* the file exists but cannot be decoded: truncated, corrupt, no video/audio
                                  stream, zero frames */
#define DS_MEDIA_EINVAL  (-3)  /* bad argument */
#define DS_MEDIA_ENOMEM  (-4)
#define DS_MEDIA_EIO     (-5)  /* read error other than missing */

/* Sets FFmpeg's log level to AV_LOG_QUIET, once per process (pthread_once). */
void ds_media_quiet_ffmpeg(void);

/* ---- video ---- */

typedef struct {
    int width, height;   /* the coded picture size of the stream */
    int64_t n_frames;    /* frames of the video stream, counted by demuxing its packets (see below) */
    double fps;          /* the container's average frame rate; else derived from the timestamps; 0 if unknown */
    double duration;     /* seconds: the stream's duration, else the container's, else 0 */
} ds_video_info;

/* The seed's frame rule, into idx[0..n-1]: numpy's np.linspace(0, total-1, n).astype(int) (computed the way
 * numpy does: i * ((total-1)/(n-1)) in double, truncated, the last one exactly total-1; n = 1 gives frame 0);
 * when total <= n: every frame once, then the last one repeated. Requires total >= 1 and n >= 1; idx is
 * nondecreasing. */
void ds_video_frame_indices(int64_t total, int n, int64_t *idx);

/* The n frames of ds_video_frame_indices(total, n) of the video file at path (any container and codec
 * libavformat/libavcodec read), each converted to RGB24 and resized to w x h into rgb[n*h*w*3]
 * (frame-major, then row-major, 3 bytes R,G,B per pixel).
 *
 * Frames: total is the number of packets of the best video stream (av_find_best_stream), counted by demuxing
 * the whole file without decoding: exact, and independent of the container's nb_frames (which may be absent
 * or wrong); packets flagged discard (the pre-roll an mp4 edit list cuts away, which the ffmpeg CLI does not
 * output either) are decoded but not counted. Frame k is the counted packet with the k-th smallest
 * presentation timestamp. When some packet has no timestamp, frame k is the k-th frame the decoder outputs,
 * decoding from the start.
 *
 * Decoding: the file is opened and read once; the video packets stay in memory for the call (the
 * compressed stream only; AvaMERG clips are seconds long). Each target is decoded from the last keyframe
 * at or before it in decode order whose timestamp is not after it (the decoder is flushed there), up to the
 * target's timestamp; when the decoder already stands past that keyframe (the next target lies in the same
 * GOP), it decodes forward instead. Packets that are not targets are decoded with AVDISCARD_NONREF, which
 * skips only frames no other frame references. The decoder runs with thread_count 1: the sharder
 * parallelises across files. A packet the decoder rejects is skipped as the ffmpeg CLI would; a target frame
 * the decoder drops is replaced by the next frame it outputs, and when none comes out the call fails with
 * DS_MEDIA_EDECODE.
 *
 * Scaling: one libswscale call per frame from the decoder's pixel format to AV_PIX_FMT_RGB24 with flags
 * exactly SWS_BILINEAR, the YUV matrix of the frame's colorspace (BT.601 when unspecified) and its range
 * (limited unless tagged full or a yuvj format): the same as the ffmpeg CLI's
 * "-vf scale=W:H:flags=bilinear -pix_fmt rgb24". tests/media requires PSNR >= 40 dB against that CLI
 * (select by frame number) and PyAV, and prints the figure (bit-exact on this machine's FFmpeg 5.1), for H.264
 * mp4 (closed and open GOPs, B-frames, an edit list, BT.709), MPEG-4 Part 2 avi, raw H.264 and MPEG-TS.
 *
 * info (may be NULL) is filled on success. Returns DS_MEDIA_ENOENT when path does not exist; DS_MEDIA_EIO
 * for another operating-system error opening or reading it; DS_MEDIA_EDECODE when it is not a media file,
 * has no decodable video stream or zero video packets, is truncated (a packet is cut short or fewer packets
 * can be read than the container lists), or a target frame cannot be decoded; DS_MEDIA_EINVAL for a NULL
 * path or rgb, n < 1, or w, h outside 1..16384; DS_MEDIA_ENOMEM. On failure rgb is unspecified. */
int ds_video_read_frames(const char *path, int n, int w, int h, uint8_t *rgb, ds_video_info *info,
                         char *err, size_t errlen);

/* ---- audio ---- */

typedef struct {
    int rate, channels;  /* the file's own sample rate and channel count */
    int64_t frames;      /* the file's length in frames (samples per channel), as libsndfile reports it */
} ds_audio_info;

/* Reads the audio file at path with libsndfile (wav and whatever else libsndfile reads; not mp4/AAC) as
 * float, downmixes to mono as the mean of the channels, and resamples to rate Hz int16 with libswresample:
 * the swr engine, float internally, filter_size 32, phase_shift 10, linear_interp 1, exact_rational 1,
 * cutoff 0.97, Kaiser window beta 9, no dither; float to int16 rounds to nearest and clips. The ffmpeg CLI
 * told the same (aformat=flt, pan to the channel mean, aresample with these options) gives identical samples;
 * its default `-ac 1 -ar RATE`, which resamples in int16, differs by at most 3 LSB (SNR >= 76 dB on the test
 * files); a mono file at its own rate comes out bit-exact either way.
 *
 * Keeps at most max_samples output samples (0 = all); the kept samples are exactly the first samples of the
 * whole conversion, and reading stops once they are known. *out is malloc'd (release with free()), *n its
 * length, >= 1 on success; info (may be NULL) gets the file's own properties.
 * Returns DS_MEDIA_ENOENT when path does not exist; DS_MEDIA_EIO when it cannot be opened otherwise;
 * DS_MEDIA_EDECODE when libsndfile cannot read it, it has zero frames or too few to yield one sample, or a
 * read fails midway; DS_MEDIA_EINVAL for NULL path/out/n or rate outside 1..384000; DS_MEDIA_ENOMEM.
 * On failure *out is NULL and *n 0. */
int ds_audio_read(const char *path, int rate, size_t max_samples, int16_t **out, size_t *n, ds_audio_info *info,
                  char *err, size_t errlen);

#endif
