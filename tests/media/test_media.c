/* test_media: video frames, audio waveforms, JPEG, PNG and wav of dataset/media.h and dataset/image.h.
 * Inputs are made at test time with the ffmpeg CLI in a scratch folder. References, run at test time: the
 * ffmpeg CLI (frames via select+scale, audio via -ac 1 -ar 16000, packet counts via ffprobe) and, through
 * ref_media.py, PyAV (frames) and numpy (the frame rule). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "dataset/image.h"
#include "dataset/media.h"
#include "tests/common/test_files.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FW 224
#define FH 224
#define NF 8
#define FRAME_BYTES ((size_t)FW * FH * 3)

static char dir[128];
static char err[512];

/* The clips: sizes, rates, GOPs and B-frames chosen so that seeking is not trivial. */
typedef struct {
    const char *name, *args;
    int w, h;
    double fps;
    int64_t frames;
} clip;

static const clip clips[] = {
    {"c640.mp4", "-f lavfi -i testsrc2=size=640x480:rate=25:duration=3 -c:v libx264 -g 12 -bf 2", 640, 480, 25, 75},
    {"c320.mp4", "-f lavfi -i testsrc2=size=320x240:rate=30:duration=2 -f lavfi -i sine=d=2 -c:a aac -c:v libx264 "
                 "-g 30 -bf 3 -x264-params open-gop=1", 320, 240, 30, 60},
    {"c176.mp4", "-f lavfi -i testsrc2=size=176x144:rate=12.5:duration=2 -c:v libx264 -g 5 -bf 2", 176, 144, 12.5, 25},
    {"c250.mp4", "-f lavfi -i testsrc2=size=250x142:rate=15:duration=1 -c:v libx264 -colorspace bt709 "
                 "-color_primaries bt709 -color_trc bt709", 250, 142, 15, 15},
    {"c5.mp4", "-f lavfi -i testsrc2=size=96x64:rate=25 -frames:v 5 -c:v libx264 -bf 2", 96, 64, 25, 5},
    {"c1.mp4", "-f lavfi -i testsrc2=size=200x150:rate=25 -frames:v 1 -c:v libx264", 200, 150, 25, 1},
    {"m4.avi", "-f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -c:v mpeg4 -bf 2 -g 10 -q:v 4", 320, 240, 25, 50},
    {"long.mp4", "-f lavfi -i testsrc2=size=640x480:rate=25:duration=3 -c:v libx264 -bf 3", 640, 480, 25, 75},
};
#define N_CLIPS ((int)(sizeof clips / sizeof *clips))

typedef struct {
    const char *name, *args;
    int rate, channels;
    double seconds;
} wav;

static const wav wavs[] = {
    {"a22050.wav", "aevalsrc=0.4*sin(2*PI*440*t)+0.2*sin(2*PI*3100*t)+0.1*(random(0)-0.5):s=22050:d=2", 22050, 1, 2},
    {"a24000.wav", "aevalsrc=0.3*sin(2*PI*220*t)+0.1*(random(0)-0.5)|0.3*sin(2*PI*5000*t)+0.1*(random(1)-0.5)"
                   ":s=24000:d=10", 24000, 2, 10},
    {"a44100.wav", "aevalsrc=0.5*sin(2*PI*1000*t)|0.5*sin(2*PI*7000*t)+0.2*(random(0)-0.5):s=44100:d=1.5", 44100, 2,
     1.5},
    {"a8000.wav", "aevalsrc=0.6*sin(2*PI*300*t)+0.2*(random(0)-0.5):s=8000:d=1", 8000, 1, 1},
    {"a16000.wav", "aevalsrc=0.6*sin(2*PI*500*t)+0.3*(random(0)-0.5):s=16000:d=1", 16000, 1, 1},
};
#define N_WAVS ((int)(sizeof wavs / sizeof *wavs))

static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

static char *in_dir(const char *name)
{
    static __thread char p[4][256];
    static __thread int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 * (double)n / se);
}

static const char *db(double psnr_db)
{
    static char s[32];
    if (isinf(psnr_db))
        return "inf (bit-exact)";
    snprintf(s, sizeof s, "%.1f dB", psnr_db);
    return s;
}

static uint8_t *read_bytes(const char *path, size_t want)
{
    size_t len = 0;
    char *b = tf_read_text(path, &len);
    assert_non_null(b);
    assert_int_equal(len, want);
    return (uint8_t *)b;
}

static int setup(void **state)
{
    (void)state;
    if (tf_make_temp_dir(dir, "test_media") != 0)
        return -1;
    for (int i = 0; i < N_CLIPS; i++)
        sh("ffmpeg -nostdin -v error -y %s -preset veryfast -pix_fmt yuv420p %s", clips[i].args, in_dir(clips[i].name));
    for (int i = 0; i < N_WAVS; i++)
        sh("ffmpeg -nostdin -v error -y -f lavfi -i '%s' -c:a pcm_s16le %s", wavs[i].args, in_dir(wavs[i].name));
    /* Broken inputs: cut in half with the index at the end (no moov) and at the front (mdat cut short). */
    sh("ffmpeg -nostdin -v error -y -i %s -c copy -movflags +faststart %s", in_dir("c640.mp4"), in_dir("fs.mp4"));
    sh("f=%s; head -c $(($(stat -c %%s $f) / 2)) $f > %s", in_dir("c640.mp4"), in_dir("trunc.mp4"));
    sh("f=%s; head -c $(($(stat -c %%s $f) / 2)) $f > %s", in_dir("fs.mp4"), in_dir("trunc_fs.mp4"));
    sh(": > %s; : > %s", in_dir("zero.mp4"), in_dir("zero.wav"));
    tf_write_text(in_dir("text.mp4"), "this is not a video\n");
    tf_write_text(in_dir("text.wav"), "RIFF but not really a wav file at all\n");
    sh("ffmpeg -nostdin -v error -y -f lavfi -i sine=d=1 -c:a aac %s", in_dir("audio_only.mp4"));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tf_remove_tree(dir);
    return 0;
}

static void test_frame_indices_match_numpy(void **state)
{
    (void)state;
    const int ns[] = {1, 2, 3, 7, 8, 16};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        char cmd[8192];
        int at = snprintf(cmd, sizeof cmd, "%s %s/ref_media.py indices %d", EMPD_PYTHON, MEDIA_TEST_SRC, ns[a]);
        for (int t = 1; t <= 400; t++)
            at += snprintf(cmd + at, sizeof cmd - (size_t)at, " %d", t * (t % 7 == 0 ? 97 : 1));
        FILE *py = popen(cmd, "r");
        assert_non_null(py);
        for (int t = 1; t <= 400; t++) {
            int64_t idx[16];
            ds_video_frame_indices(t * (t % 7 == 0 ? 97 : 1), ns[a], idx);
            for (int i = 0; i < ns[a]; i++) {
                long long ref;
                assert_int_equal(fscanf(py, "%lld", &ref), 1);
                assert_int_equal(idx[i], ref);
            }
        }
        assert_int_equal(pclose(py), 0);
    }
}

/* Our frames of every clip, shared by the tests below (decoded once). */
static uint8_t *ours[N_CLIPS];

static void decode_all(void)
{
    for (int c = 0; c < N_CLIPS; c++) {
        if (ours[c])
            continue;
        ours[c] = malloc(NF * FRAME_BYTES);
        ds_video_info info;
        int rc = ds_video_read_frames(in_dir(clips[c].name), NF, FW, FH, ours[c], &info, err, sizeof err);
        if (rc != DS_MEDIA_OK)
            fail_msg("%s: %s", clips[c].name, err);
        assert_int_equal(info.width, clips[c].w);
        assert_int_equal(info.height, clips[c].h);
        assert_int_equal(info.n_frames, clips[c].frames);
        assert_true(fabs(info.fps - clips[c].fps) < 1e-6);
        assert_true(fabs(info.duration - (double)clips[c].frames / clips[c].fps) < 0.1);
    }
}

static void test_frame_count_matches_ffprobe(void **state)
{
    (void)state;
    decode_all();
    for (int c = 0; c < N_CLIPS; c++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -count_packets -show_entries "
                 "stream=nb_read_packets -of csv=p=0 %s", in_dir(clips[c].name));
        FILE *p = popen(cmd, "r");
        long long count = -1;
        assert_int_equal(fscanf(p, "%lld", &count), 1);
        assert_int_equal(pclose(p), 0);
        assert_int_equal(count, clips[c].frames);
    }
}

/* The worst PSNR of frames[n] (w x h, frame rule over total) against the ffmpeg CLI decoding the same frames. */
static double worst_vs_cli(const char *name, int64_t total, int n, int w, int h, const uint8_t *frames)
{
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    ds_video_frame_indices(total, n, idx);
    size_t fb = (size_t)w * (size_t)h * 3;
    /* The select expression names each distinct frame once; the CLI then outputs them in order. */
    char *sel = malloc(32 * (size_t)n + 1);
    int at = 0, u = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || idx[i] != idx[i - 1])
            at += sprintf(sel + at, "%seq(n\\,%lld)", u++ ? "+" : "", (long long)idx[i]);
    const char *ref = in_dir("ref_cli.rgb");
    sh("ffmpeg -nostdin -v error -y -i %s -vf \"select='%s',scale=%d:%d:flags=bilinear\" -fps_mode passthrough "
       "-pix_fmt rgb24 -f rawvideo %s", in_dir(name), sel, w, h, ref);
    uint8_t *want = read_bytes(ref, (size_t)u * fb);
    double worst = INFINITY;
    for (int i = 0, slot = -1; i < n; i++) {
        slot += i == 0 || idx[i] != idx[i - 1];
        double p = psnr(frames + (size_t)i * fb, want + (size_t)slot * fb, fb);
        worst = p < worst ? p : worst;
    }
    free(want);
    free(sel);
    free(idx);
    return worst;
}

static void test_frames_match_ffmpeg_cli(void **state)
{
    (void)state;
    decode_all();
    for (int c = 0; c < N_CLIPS; c++) {
        double worst = worst_vs_cli(clips[c].name, clips[c].frames, NF, FW, FH, ours[c]);
        printf("frames vs ffmpeg CLI: %-9s worst frame PSNR %s\n", clips[c].name, db(worst));
        assert_true(worst >= 40.0);
    }
}

/* Every frame, and other counts, exercise each choice between seeking and decoding on. A clip cut by stream
 * copy carries an edit list whose pre-roll packet is flagged discard; raw H.264 has no timestamps (frames
 * are counted in output order); MPEG-TS has no header (its streams are probed). */
static void test_frames_all_counts_and_containers(void **state)
{
    (void)state;
    sh("ffmpeg -nostdin -v error -y -ss 0.5 -i %s -c copy %s", in_dir("c640.mp4"), in_dir("cut.mp4"));
    sh("ffmpeg -nostdin -v error -y -i %s -c copy -f h264 %s", in_dir("c176.mp4"), in_dir("c176.h264"));
    sh("ffmpeg -nostdin -v error -y -i %s -c copy %s", in_dir("c320.mp4"), in_dir("c320.ts"));
    const struct {
        const char *name;
        int n;
        int64_t total;
    } runs[] = {{"c320.mp4", 60, 60}, {"c176.mp4", 25, 25}, {"m4.avi", 50, 50}, {"long.mp4", 75, 75},
                {"c640.mp4", 13, 75}, {"c640.mp4", 30, 75}, {"cut.mp4", 62, 62}, {"cut.mp4", NF, 62},
                {"c176.h264", NF, 25}, {"c176.h264", 25, 25}, {"c320.ts", NF, 60}};
    const int w = 64, h = 48;
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        uint8_t *f = malloc((size_t)runs[r].n * w * h * 3);
        ds_video_info info;
        int rc = ds_video_read_frames(in_dir(runs[r].name), runs[r].n, w, h, f, &info, err, sizeof err);
        if (rc != DS_MEDIA_OK)
            fail_msg("%s: %s", runs[r].name, err);
        assert_int_equal(info.n_frames, runs[r].total);
        double worst = worst_vs_cli(runs[r].name, info.n_frames, runs[r].n, w, h, f);
        printf("frames vs ffmpeg CLI: %-9s %2d of %2lld frames at %dx%d: worst PSNR %s\n", runs[r].name,
               runs[r].n, (long long)info.n_frames, w, h, db(worst));
        assert_true(worst >= 40.0);
        free(f);
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
             "stream=nb_read_frames -of csv=p=0 %s", in_dir("cut.mp4"));
    FILE *p = popen(cmd, "r");
    long long count = -1;
    assert_int_equal(fscanf(p, "%lld", &count), 1);
    assert_int_equal(pclose(p), 0);
    ds_video_info info;
    uint8_t *one = malloc(FRAME_BYTES);
    assert_int_equal(ds_video_read_frames(in_dir("cut.mp4"), 1, FW, FH, one, &info, err, sizeof err), DS_MEDIA_OK);
    assert_int_equal(info.n_frames, count);
    free(one);
}

static void test_frames_match_pyav(void **state)
{
    (void)state;
    decode_all();
    for (int c = 0; c < N_CLIPS; c++) {
        int64_t idx[NF];
        ds_video_frame_indices(clips[c].frames, NF, idx);
        const char *ref = in_dir("ref_av.rgb");
        char cmd[2048];
        int at = snprintf(cmd, sizeof cmd, "%s %s/ref_media.py frames %s %d %d %s", EMPD_PYTHON, MEDIA_TEST_SRC,
                          in_dir(clips[c].name), FW, FH, ref);
        for (int i = 0; i < NF; i++)
            at += snprintf(cmd + at, sizeof cmd - (size_t)at, " %lld", (long long)idx[i]);
        FILE *py = popen(cmd, "r");
        long long decoded = -1;
        assert_int_equal(fscanf(py, "%lld", &decoded), 1);
        assert_int_equal(pclose(py), 0);
        assert_int_equal(decoded, clips[c].frames);
        uint8_t *want = read_bytes(ref, NF * FRAME_BYTES);
        double worst = INFINITY;
        for (int i = 0; i < NF; i++) {
            double p = psnr(ours[c] + (size_t)i * FRAME_BYTES, want + (size_t)i * FRAME_BYTES, FRAME_BYTES);
            worst = p < worst ? p : worst;
        }
        printf("frames vs PyAV:       %-9s worst frame PSNR %s\n", clips[c].name, db(worst));
        assert_true(worst >= 40.0);
        free(want);
    }
}

static void test_frames_other_sizes_and_counts(void **state)
{
    (void)state;
    decode_all();
    /* n = 1 is frame 0; a bigger n repeats the last of a 5-frame clip; a non-square size works. */
    uint8_t *one = malloc(FRAME_BYTES), *many = malloc(12 * FRAME_BYTES);
    assert_int_equal(ds_video_read_frames(in_dir("c640.mp4"), 1, FW, FH, one, NULL, err, sizeof err), DS_MEDIA_OK);
    assert_memory_equal(one, ours[0], FRAME_BYTES);
    assert_int_equal(ds_video_read_frames(in_dir("c5.mp4"), 12, FW, FH, many, NULL, err, sizeof err), DS_MEDIA_OK);
    for (int i = 0; i < 12; i++)
        assert_memory_equal(many + (size_t)i * FRAME_BYTES, ours[4] + (size_t)(i < 5 ? i : 4) * FRAME_BYTES,
                            FRAME_BYTES);
    uint8_t *odd = malloc(97 * 61 * 3 * NF);
    assert_int_equal(ds_video_read_frames(in_dir("c176.mp4"), NF, 97, 61, odd, NULL, err, sizeof err), DS_MEDIA_OK);
    free(one);
    free(many);
    free(odd);
}

static void test_jpeg_roundtrip(void **state)
{
    (void)state;
    decode_all();
    ds_jpeg *j = NULL;
    assert_int_equal(ds_jpeg_open(&j, err, sizeof err), DS_MEDIA_OK);
    ds_buf b = {0};
    uint8_t *back = malloc(FRAME_BYTES);
    double worst = INFINITY, sum = 0;
    size_t bytes = 0;
    int frames = 0;
    for (int c = 0; c < N_CLIPS; c++)
        for (int i = 0; i < NF; i++) {
            const uint8_t *f = ours[c] + (size_t)i * FRAME_BYTES;
            assert_int_equal(ds_jpeg_encode(j, f, FW, FH, DS_JPEG_QUALITY_DEFAULT, &b, err, sizeof err), DS_MEDIA_OK);
            assert_int_equal(ds_jpeg_decode(j, b.data, b.len, FW, FH, back, err, sizeof err), DS_MEDIA_OK);
            double p = psnr(f, back, FRAME_BYTES);
            worst = p < worst ? p : worst;
            sum += p;
            bytes += b.len;
            frames++;
        }
    printf("jpeg q%d 4:4:4 %dx%d: PSNR worst %.2f dB, mean %.2f dB, %.0f bytes/frame (raw %zu)\n",
           DS_JPEG_QUALITY_DEFAULT, FW, FH, worst, sum / frames, (double)bytes / frames, FRAME_BYTES);
    /* Measured on these clips: worst 39.88 dB, mean 40.81 dB, 15518 bytes/frame. */
    assert_true(worst >= 39.0);
    assert_true(sum / frames >= 40.3);
    assert_true((double)bytes / frames <= 17000);
    /* Not a JPEG, wrong size, damaged. */
    assert_int_equal(ds_jpeg_decode(j, "hello", 5, FW, FH, back, err, sizeof err), DS_MEDIA_EDECODE);
    assert_int_equal(ds_jpeg_encode(j, ours[0], FW, FH, 90, &b, err, sizeof err), DS_MEDIA_OK);
    assert_int_equal(ds_jpeg_decode(j, b.data, b.len, FW, FH + 1, back, err, sizeof err), DS_MEDIA_EDECODE);
    assert_non_null(strstr(err, "224x224, expected 224x225"));
    assert_int_equal(ds_jpeg_decode(j, b.data, 100, FW, FH, back, err, sizeof err), DS_MEDIA_EDECODE);
    assert_int_equal(ds_jpeg_decode(j, b.data, b.len / 2, FW, FH, back, err, sizeof err), DS_MEDIA_EDECODE);
    assert_int_equal(ds_jpeg_encode(j, ours[0], FW, FH, 0, &b, err, sizeof err), DS_MEDIA_EINVAL);
    ds_buf_free(&b);
    free(back);
    ds_jpeg_close(j);
    ds_jpeg_close(NULL);
}

static void test_png_and_wav_writers(void **state)
{
    (void)state;
    decode_all();
    const char *png = in_dir("f.png");
    assert_int_equal(ds_png_write(png, ours[0], FW, FH, err, sizeof err), DS_MEDIA_OK);
    sh("ffmpeg -nostdin -v error -y -i %s -pix_fmt rgb24 -f rawvideo %s", png, in_dir("png.rgb"));
    uint8_t *back = read_bytes(in_dir("png.rgb"), FRAME_BYTES);
    assert_memory_equal(back, ours[0], FRAME_BYTES);
    free(back);
    int16_t s[1000];
    for (int i = 0; i < 1000; i++)
        s[i] = (int16_t)(i * 65 - 32000);
    const char *w = in_dir("w.wav");
    assert_int_equal(ds_wav_write(w, s, 1000, 16000, err, sizeof err), DS_MEDIA_OK);
    int16_t *got = NULL;
    size_t n = 0;
    ds_audio_info info;
    assert_int_equal(ds_audio_read(w, 16000, 0, &got, &n, &info, err, sizeof err), DS_MEDIA_OK);
    assert_int_equal(n, 1000);
    assert_int_equal(info.rate, 16000);
    assert_int_equal(info.channels, 1);
    assert_memory_equal(got, s, sizeof s);
    free(got);
    assert_int_equal(tf_count_entries(dir, ".tmp"), 0);
    assert_int_equal(ds_png_write(in_dir("no/such/dir.png"), ours[0], FW, FH, err, sizeof err), DS_MEDIA_EIO);
    assert_non_null(strstr(err, "no/such/dir.png"));
    assert_int_equal(ds_wav_write(in_dir("no/such/dir.wav"), s, 10, 16000, err, sizeof err), DS_MEDIA_EIO);
}

/* Our waveform of each wav at 16 kHz, full length. */
static int16_t *wave[N_WAVS];
static size_t wave_n[N_WAVS];

static void read_waves(void)
{
    for (int i = 0; i < N_WAVS; i++) {
        if (wave[i])
            continue;
        ds_audio_info info;
        int rc = ds_audio_read(in_dir(wavs[i].name), 16000, 0, &wave[i], &wave_n[i], &info, err, sizeof err);
        if (rc != DS_MEDIA_OK)
            fail_msg("%s: %s", wavs[i].name, err);
        assert_int_equal(info.rate, wavs[i].rate);
        assert_int_equal(info.channels, wavs[i].channels);
        assert_int_equal(info.frames, (int64_t)llround(wavs[i].seconds * wavs[i].rate));
    }
}

/* Compares our 16 kHz waveform of wav i with the ffmpeg CLI run with filter graph af; returns max |diff|. */
static int audio_vs_cli(int i, const char *af, const char *label)
{
    const char *ref = in_dir("ref.s16");
    sh("ffmpeg -nostdin -v error -y -i %s %s -f s16le %s", in_dir(wavs[i].name), af, ref);
    size_t len = 0;
    int16_t *want = (int16_t *)tf_read_text(ref, &len);
    assert_non_null(want);
    assert_int_equal(len / 2, wave_n[i]);
    int maxd = 0;
    double sig = 0, noise = 0;
    for (size_t k = 0; k < wave_n[i]; k++) {
        int d = abs(wave[i][k] - want[k]);
        maxd = d > maxd ? d : maxd;
        sig += (double)want[k] * want[k];
        noise += (double)d * d;
    }
    double snr = noise == 0 ? INFINITY : 10 * log10(sig / noise);
    printf("audio vs ffmpeg CLI %s: %-10s %zu samples, max |diff| %d LSB, SNR %.1f dB\n", label, wavs[i].name,
           wave_n[i], maxd, snr);
    assert_true(snr >= 70.0);
    free(want);
    return maxd;
}

static void test_audio_matches_ffmpeg_cli(void **state)
{
    (void)state;
    read_waves();
    for (int i = 0; i < N_WAVS; i++) {
        /* The CLI's default path resamples in int16: within a few LSB of ours, exact for mono at 16 kHz. */
        int maxd = audio_vs_cli(i, "-ac 1 -ar 16000", "default");
        assert_true(maxd <= 3);
        if (wavs[i].rate == 16000 && wavs[i].channels == 1)
            assert_int_equal(maxd, 0);
        /* Told our settings (float, mean downmix, the header's swr options), the CLI must agree exactly. */
        char af[512];
        snprintf(af, sizeof af, "-af 'aformat=sample_fmts=flt,pan=mono|c0=%s,aresample=16000:resampler=swr:"
                 "filter_size=32:phase_shift=10:linear_interp=1:exact_rational=1:cutoff=0.97:filter_type=kaiser:"
                 "kaiser_beta=9:internal_sample_fmt=fltp:dither_method=none'",
                 wavs[i].channels == 1 ? "c0" : "0.5*c0+0.5*c1");
        assert_int_equal(audio_vs_cli(i, af, "same settings"), 0);
    }
}

static void test_audio_max_samples(void **state)
{
    (void)state;
    read_waves();
    for (int i = 0; i < N_WAVS; i++) {
        const size_t cuts[] = {1, 777, 16000, wave_n[i] - 1, wave_n[i], wave_n[i] + 5};
        for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
            int16_t *got = NULL;
            size_t n = 0;
            assert_int_equal(ds_audio_read(in_dir(wavs[i].name), 16000, cuts[c], &got, &n, NULL, err, sizeof err),
                             DS_MEDIA_OK);
            assert_int_equal(n, cuts[c] < wave_n[i] ? cuts[c] : wave_n[i]);
            assert_memory_equal(got, wave[i], n * sizeof *got);
            free(got);
        }
    }
}

static void expect_error(int rc, int want, const char *path)
{
    assert_int_equal(rc, want);
    assert_non_null(strstr(err, path));
    assert_null(strchr(err, '\n'));
    printf("  %s\n", err);
}

static void test_errors(void **state)
{
    (void)state;
    uint8_t *rgb = malloc(NF * FRAME_BYTES);
    const char *bad[] = {"trunc.mp4", "trunc_fs.mp4", "zero.mp4", "text.mp4", "audio_only.mp4", "a8000.wav"};
    expect_error(ds_video_read_frames(in_dir("missing.mp4"), NF, FW, FH, rgb, NULL, err, sizeof err),
                 DS_MEDIA_ENOENT, "missing.mp4");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_error(ds_video_read_frames(in_dir(bad[i]), NF, FW, FH, rgb, NULL, err, sizeof err),
                     DS_MEDIA_EDECODE, bad[i]);
    expect_error(ds_video_read_frames(in_dir("c640.mp4"), 0, FW, FH, rgb, NULL, err, sizeof err), DS_MEDIA_EINVAL,
                 "c640.mp4");
    expect_error(ds_video_read_frames(dir, NF, FW, FH, rgb, NULL, err, sizeof err), DS_MEDIA_EIO, dir);
    int16_t *out = NULL;
    size_t n = 7;
    expect_error(ds_audio_read(in_dir("missing.wav"), 16000, 0, &out, &n, NULL, err, sizeof err), DS_MEDIA_ENOENT,
                 "missing.wav");
    assert_null(out);
    assert_int_equal(n, 0);
    const char *badw[] = {"zero.wav", "text.wav", "c640.mp4"};
    for (size_t i = 0; i < sizeof badw / sizeof *badw; i++)
        expect_error(ds_audio_read(in_dir(badw[i]), 16000, 0, &out, &n, NULL, err, sizeof err), DS_MEDIA_EDECODE,
                     badw[i]);
    expect_error(ds_audio_read(in_dir("a8000.wav"), 0, 0, &out, &n, NULL, err, sizeof err), DS_MEDIA_EINVAL,
                 "a8000.wav");
    expect_error(ds_audio_read(dir, 16000, 0, &out, &n, NULL, err, sizeof err), DS_MEDIA_EIO, dir);
    free(rgb);
}

typedef struct {
    int first;
    int mismatches;
} job;

static void *worker(void *arg)
{
    job *jb = arg;
    uint8_t *rgb = malloc(NF * FRAME_BYTES);
    char e[512];
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < N_CLIPS + N_WAVS; k++) {
            int i = (k + jb->first) % (N_CLIPS + N_WAVS);
            if (i < N_CLIPS) {
                if (ds_video_read_frames(in_dir(clips[i].name), NF, FW, FH, rgb, NULL, e, sizeof e) != DS_MEDIA_OK ||
                    memcmp(rgb, ours[i], NF * FRAME_BYTES) != 0)
                    jb->mismatches++;
            } else {
                int16_t *s = NULL;
                size_t n = 0;
                i -= N_CLIPS;
                if (ds_audio_read(in_dir(wavs[i].name), 16000, 0, &s, &n, NULL, e, sizeof e) != DS_MEDIA_OK ||
                    n != wave_n[i] || memcmp(s, wave[i], n * sizeof *s) != 0)
                    jb->mismatches++;
                free(s);
            }
        }
    free(rgb);
    return NULL;
}

static void test_two_threads_match_one(void **state)
{
    (void)state;
    decode_all();
    read_waves();
    job jobs[2] = {{0, 0}, {5, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(jobs[0].mismatches, 0);
    assert_int_equal(jobs[1].mismatches, 0);
}

static void test_speed(void **state)
{
    (void)state;
    uint8_t *rgb = malloc(NF * FRAME_BYTES);
    const char *v[] = {"c640.mp4", "long.mp4"};
    const char *what[] = {"GOP 12, 2 B-frames", "GOP 250, 3 B-frames"};
    for (int k = 0; k < 2; k++) {
        double t0 = now();
        for (int r = 0; r < 5; r++)
            assert_int_equal(ds_video_read_frames(in_dir(v[k]), NF, FW, FH, rgb, NULL, err, sizeof err), DS_MEDIA_OK);
        printf("speed: ds_video_read_frames, 3 s 640x480 H.264 (%s), 8 frames at 224x224: %.3f s\n", what[k],
               (now() - t0) / 5);
    }
    double t0 = now();
    for (int r = 0; r < 5; r++) {
        int16_t *s = NULL;
        size_t n = 0;
        assert_int_equal(ds_audio_read(in_dir("a24000.wav"), 16000, 0, &s, &n, NULL, err, sizeof err), DS_MEDIA_OK);
        free(s);
    }
    printf("speed: ds_audio_read, 10 s 24 kHz stereo wav -> 16 kHz mono: %.4f s\n", (now() - t0) / 5);
    free(rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_indices_match_numpy),
        cmocka_unit_test(test_frame_count_matches_ffprobe),
        cmocka_unit_test(test_frames_match_ffmpeg_cli),
        cmocka_unit_test(test_frames_all_counts_and_containers),
        cmocka_unit_test(test_frames_match_pyav),
        cmocka_unit_test(test_frames_other_sizes_and_counts),
        cmocka_unit_test(test_jpeg_roundtrip),
        cmocka_unit_test(test_png_and_wav_writers),
        cmocka_unit_test(test_audio_matches_ffmpeg_cli),
        cmocka_unit_test(test_audio_max_samples),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_two_threads_match_one),
        cmocka_unit_test(test_speed),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    for (int i = 0; i < N_CLIPS; i++)
        free(ours[i]);
    for (int i = 0; i < N_WAVS; i++)
        free(wave[i]);
    return rc;
}
