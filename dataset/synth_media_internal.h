/* synth_media_internal.h: what the parts of synth_media share: the per-utterance plan, the seeded PRNG,
 * the emotion styles, and the speech / face / video writers. Not for use outside dataset/synth_*.c. */
#ifndef EMPD_DATASET_SYNTH_MEDIA_INTERNAL_H
#define EMPD_DATASET_SYNTH_MEDIA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64: the bytes depend on the seed only, on every platform. */
typedef struct {
    uint64_t s;
} sm_rng;

static inline uint64_t sm_rng_next(sm_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline double sm_rng_unit(sm_rng *r) { return (double)(sm_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

static inline int sm_rng_below(sm_rng *r, int n) { return (int)(sm_rng_unit(r) * (double)n); }

static inline double sm_rng_range(sm_rng *r, double lo, double hi) { return lo + (hi - lo) * sm_rng_unit(r); }

/* A stream of its own for every (seed, conversation, utterance, purpose), so nothing depends on the order
 * in which threads reach the utterances. */
uint64_t sm_stream(uint64_t seed, const char *cid, int k, uint32_t purpose);

enum sm_file_state { SM_FILE_OFF = 0, SM_FILE_OK, SM_FILE_MISSING, SM_FILE_CORRUPT };

/* The person behind an avatar: what the profile says (or, for test.json, what the seed hides). */
typedef struct {
    int female;     /* 0 male, 1 female */
    int age;        /* 0 child, 1 young, 2 middle-aged, 3 elderly */
    int timbre;     /* 0 high, 1 mid, 2 low */
    uint64_t look;  /* the avatar's own offsets: voice variant, pitch, skin, hair, background */
} sm_person;

typedef struct {
    int split;           /* 0 train, 1 test */
    const char *cid;     /* conversation id (points into the loaded corpus) */
    int k, aid, role;    /* utterance index, avatar ID in the file name, am_role */
    const char *text;
    int label7;          /* true (train) or hidden (test) label */
    int audio_cue, video_cue;
    double intensity_audio, intensity_video;
    sm_person person;
    uint64_t seed;       /* corpus seed, for sm_stream */
    int wav_state, rate, channels;
    int mp4_state, width, height, fps, n_frames;
} sm_utt;

/* Prosody and expression of each 7-class emotion (index = label7), relative to a neutral face and voice. */
typedef struct {
    double pitch, range, rate, volume; /* espeak deltas: pitch and range points, rate and volume factors */
    double mouth_open, smile, mouth_width, smirk, eye_open, brow_raise, brow_tilt, sneer;
} sm_style;

extern const sm_style sm_styles[7];
extern const sm_style sm_neutral;

/* Writes the finished temporary file tmp as path: keeps only keep_bytes when keep_bytes >= 0 (the
 * deliberately corrupt files), fsyncs, renames. 0, or -1 with one line in err. */
int sm_file_commit(const char *tmp, const char *path, long keep_bytes, char *err, size_t errlen);

/* Speech (synth_speech.c). sm_speech_begin initializes espeak-ng once per process and takes the process-wide
 * speech lock; sm_speech_end releases it. Between them, sm_speech_write speaks u->text as u describes and
 * writes a wav to tmp. Both return 0 or -1 with one line in err. */
int sm_speech_begin(char *err, size_t errlen);
void sm_speech_end(void);
int sm_speech_write(const sm_utt *u, const char *tmp, char *err, size_t errlen);

/* Faces (synth_face.c): draws frame i of utterance u into a w x h 8-bit YUV 4:2:0 image (planes and
 * line sizes as libavcodec's AVFrame has them), noise included. A face keeps a cairo surface between
 * frames; sm_face_open returns NULL when out of memory. */
typedef struct sm_face sm_face;
sm_face *sm_face_open(const sm_utt *u);
int sm_face_draw(sm_face *f, int i, uint8_t *const planes[3], const int linesize[3]);
void sm_face_close(sm_face *f);

/* Video (synth_video.c): draws and encodes u's clip as H.264 in an mp4 written to tmp. 0 or -1 with err. */
int sm_video_write(const sm_utt *u, const char *tmp, char *err, size_t errlen);

#endif
