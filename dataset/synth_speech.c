/* synth_speech.c: one utterance's speech with libespeak-ng, written as wav with libsndfile. */
#include <espeak-ng/speak_lib.h>
#include <math.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/error.h"
#include "dataset/synth_media_internal.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* espeak-ng is one global synthesizer: one lock for the process, held for a whole corpus so that the order
 * of utterances (which its hidden state depends on) is the caller's order. */
static pthread_mutex_t speech_lock = PTHREAD_MUTEX_INITIALIZER;
static int espeak_out_rate; /* 0 until espeak_Initialize succeeded */

typedef struct {
    int16_t *s;
    size_t n, cap;
    int failed;
} pcm_buf;

static int collect_samples(short *wav, int n, espeak_EVENT *events)
{
    pcm_buf *b = events ? events->user_data : NULL;
    if (!b || !wav || n <= 0 || b->failed)
        return 0;
    if (b->n + (size_t)n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + (size_t)n)
            cap *= 2;
        int16_t *s = realloc(b->s, cap * sizeof *s);
        if (!s) {
            b->failed = 1;
            return 1; /* stops the synthesis */
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->n, wav, (size_t)n * sizeof *wav);
    b->n += (size_t)n;
    return 0;
}

int sm_speech_begin(char *err, size_t errlen)
{
    pthread_mutex_lock(&speech_lock);
    if (!espeak_out_rate) {
        /* DONT_EXIT: without it espeak-ng calls exit() when its data files are missing. */
        int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 200, NULL, espeakINITIALIZE_DONT_EXIT);
        if (rate <= 0) {
            pthread_mutex_unlock(&speech_lock);
            return ds_fail(err, errlen, -1, "espeak-ng: cannot initialize (is the espeak-ng-data package installed?)");
        }
        espeak_SetSynthCallback(collect_samples);
        espeak_out_rate = rate;
    }
    return 0;
}

void sm_speech_end(void) { pthread_mutex_unlock(&speech_lock); }

static int clampi(double v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)lround(v); }

/* espeak-ng's parameters for u: the person's voice, moved by the cue emotion at the utterance's intensity. */
static int set_voice(const sm_utt *u, sm_rng *r)
{
    static const char *const female[] = {"en-us+f1", "en-us+f2", "en-us+f3", "en-us+f4", "en-us+f5"};
    static const char *const male[] = {"en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+m6", "en-us+m7"};
    static const double timbre_pitch[3] = {12, 0, -12}, age_pitch[4] = {18, 4, 0, -6};
    static const double age_rate[4] = {1.05, 1.02, 1.0, 0.88};
    sm_rng look = {u->person.look};
    const char *voice = u->person.female ? female[sm_rng_below(&look, NELEM(female))]
                                          : male[sm_rng_below(&look, NELEM(male))];
    double own_pitch = sm_rng_range(&look, -6, 6), own_rate = sm_rng_range(&look, 0.92, 1.08);
    const sm_style *s = &sm_styles[u->audio_cue];
    double I = u->intensity_audio;
    double pitch = 50 + timbre_pitch[u->person.timbre] + age_pitch[u->person.age] + own_pitch + I * s->pitch +
                   sm_rng_range(r, -3, 3);
    double range = 50 + I * s->range;
    double rate = 195 * age_rate[u->person.age] * own_rate * (1 + I * s->rate) * sm_rng_range(r, 0.96, 1.04);
    double volume = 100 * (1 + I * s->volume);
    if (espeak_SetVoiceByName(voice) != EE_OK)
        return -1;
    int bad = espeak_SetParameter(espeakPITCH, clampi(pitch, 0, 100), 0) != EE_OK;
    bad |= espeak_SetParameter(espeakRANGE, clampi(range, 0, 100), 0) != EE_OK;
    bad |= espeak_SetParameter(espeakRATE, clampi(rate, espeakRATE_MINIMUM, espeakRATE_MAXIMUM), 0) != EE_OK;
    bad |= espeak_SetParameter(espeakVOLUME, clampi(volume, 10, 200), 0) != EE_OK;
    return bad ? -1 : 0;
}

/* Gain, background noise, a breath for silent text, resampling and channel layout: the file as u plans it.
 * Returns interleaved frames in *out (malloc'd), their count in *n_out. */
static int shape_signal(const sm_utt *u, sm_rng *r, const pcm_buf *b, int in_rate, int16_t **out, size_t *n_out)
{
    size_t n_in = b->n;
    int breath = n_in < (size_t)in_rate / 10;
    if (breath)
        n_in = (size_t)(in_rate * sm_rng_range(r, 0.3, 0.5));
    double gain = sm_rng_range(r, 0.85, 1.0), noise = breath ? 150 : sm_rng_range(r, 15, 110);
    size_t n = (size_t)((double)n_in * u->rate / in_rate);
    int16_t *o = malloc((n ? n : 1) * (size_t)u->channels * sizeof *o);
    if (!o)
        return -1;
    for (size_t i = 0; i < n; i++) {
        /* Linear interpolation is enough here: readers resample these files, the quality is not the point. */
        double x = 0;
        if (!breath) {
            double pos = (double)i * in_rate / u->rate;
            size_t j = (size_t)pos;
            double f = pos - (double)j, a = b->s[j], c = j + 1 < b->n ? b->s[j + 1] : a;
            x = gain * (a + f * (c - a));
        }
        double w = noise * (sm_rng_unit(r) + sm_rng_unit(r) + sm_rng_unit(r) - 1.5) * 2;
        double v = x + w;
        o[i * (size_t)u->channels] = (int16_t)clampi(v, -32768, 32767);
        if (u->channels == 2) /* unequal channels: a plain left-channel reader would be caught out */
            o[i * 2 + 1] = (int16_t)clampi(0.7 * x + w, -32768, 32767);
    }
    *out = o;
    *n_out = n;
    return 0;
}

int sm_speech_write(const sm_utt *u, const char *tmp, char *err, size_t errlen)
{
    sm_rng r = {sm_stream(u->seed, u->cid, u->k, 0x5be3c4u)};
    pcm_buf b = {0};
    if (u->text[0]) {
        if (set_voice(u, &r) != 0)
            return ds_fail(err, errlen, -1, "%s: espeak-ng rejected the voice or its parameters", tmp);
        espeak_ERROR rc = espeak_Synth(u->text, strlen(u->text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, &b);
        if (rc != EE_OK || b.failed) {
            free(b.s);
            return ds_fail(err, errlen, -1, "%s: espeak-ng failed to speak (%s)", tmp,
                           b.failed ? "out of memory" : "synthesis error");
        }
    }
    int16_t *pcm;
    size_t n;
    int rc = shape_signal(u, &r, &b, espeak_out_rate, &pcm, &n);
    free(b.s);
    if (rc != 0)
        return ds_fail(err, errlen, -1, "%s: out of memory", tmp);
    SF_INFO info = {.samplerate = u->rate, .channels = u->channels, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *f = sf_open(tmp, SFM_WRITE, &info);
    if (!f) {
        free(pcm);
        return ds_fail(err, errlen, -1, "%s: cannot create: %s", tmp, sf_strerror(NULL));
    }
    sf_count_t w = sf_writef_short(f, pcm, (sf_count_t)n);
    free(pcm);
    int close_rc = sf_close(f);
    if (w != (sf_count_t)n || close_rc != 0)
        return ds_fail(err, errlen, -1, "%s: cannot write the samples", tmp);
    return 0;
}
