/* synth_media.h: the media of the mini-AvaMERG corpus: audio_v5_0/dia{CID}utt{K}_{AID}.wav and
 * video_v5_0/dia{CID}utt{K}_{AID}.mp4 for every utterance of train.json and test.json (written before by
 * synth_text_write, read back with am_corpus_load).
 *
 * What it promises:
 *   - Names follow the AID rule of the real files: K is the utterance index, AID the speaker_profile.ID for
 *     even K and listener_profile.ID for odd K. test.json has no profiles (as the real one), so its avatars
 *     get hidden IDs in 1..99 drawn from the seed: a reader must find those files by the prefix
 *     dia{CID}utt{K}_ and any AID.
 *   - Speech: espeak-ng (the library) speaks the utterance's text, 16-bit PCM wav at 22,050 Hz mono, or
 *     (about 1 utterance in 5) resampled to 24,000 Hz and/or stereo with unequal channels, so readers must
 *     resample and downmix. Pitch, pitch range, rate and amplitude follow the audio cue's emotion, scaled by
 *     an intensity, on top of the person: gender picks a male or female espeak variant, timbre and age shift
 *     pitch and rate, and each avatar has its own small offsets. A little white noise is added.
 *   - Video: a cairo-drawn face whose mouth, eyes and brows show the video cue's emotion (7 expressions:
 *     happy smiles, surprised raises brows and opens an O mouth, angry lowers brows into a V, fear raises
 *     brows inward with wide eyes and a stretched mouth, sad tilts the brows up inward with a frown, disgusted
 *     raises the upper lip and wrinkles the nose, contempt lifts one mouth corner), the mouth moving as if
 *     talking, with head motion, blinks and pixel noise. H.264 (libx264 preset superfast, crf 23, GOP 12,
 *     2 B-frames, yuv420p) in mp4 with the index at the end (no faststart). Size and frame rate vary per
 *     conversation (160x120 .. 480x360, some 16:9 and square; 12/15/24/25/30 fps), length per utterance
 *     (0.5 .. 4 s with the text's length, and about 3% of clips shorter than 8 frames).
 *   - The noise design (what makes fusion worth it): the true 7-class label of a conversation (train: its
 *     last turn's speaker_emotion; test: a hidden label drawn from train's class frequencies) shows in the
 *     audio of all its utterances with probability SYNTH_MEDIA_P_AUDIO and in its video with probability
 *     SYNTH_MEDIA_P_VIDEO, drawn independently of each other and of the text cue of synth_text; otherwise
 *     that modality shows one of the 6 other classes, uniformly. Speaker utterances show their cue at
 *     intensity 0.7..1, listener utterances (who mirror the speaker) at 0.2..0.45. So no single modality
 *     determines the label, and each is well above chance (1/7).
 *   - The mess of the real zips, at fixed small rates and deterministic counts (reported in the summary):
 *     about 3% of wav and of mp4 files missing (independently), about 2% of files with an AppleDouble
 *     `._` twin (a 4,096-byte AppleDouble header, not media), a __MACOSX/ folder with a few `._` files,
 *     1 + n/400 mp4 cut to 40% of their bytes (unreadable: the index sits at the end) and one wav cut inside
 *     its header. Empty utterances get a short breath-like noise wav.
 *   - Determinism: the same corpus, seed and media choice give the same bytes in every file, whatever the
 *     thread count (x264 single-threaded with fixed parameters and BITEXACT flags, so no encoder version
 *     string or creation time). Caveat: espeak-ng keeps synthesis state (pitch flutter and wave phase) in
 *     statics that no API resets, so the speech of one utterance depends on everything espeak-ng said before
 *     in the process. Speech is therefore made in one fixed order, and byte-identical wavs need a process
 *     whose espeak-ng has said nothing else (empd synth is such a process; tests fork one per corpus).
 *   - Files are written to "<name>.tmp", fsync'd and renamed: a killed run leaves no partial file under a
 *     final name. Final names planned as missing are removed if an earlier run left them; other files of an
 *     earlier run with other settings are not: use a fresh folder.
 *
 * Thread safety: one call at a time per process for speech (a process-wide mutex serializes espeak-ng);
 * video work runs on opts.threads threads. Nothing is printed; libav logging of the encoder is silenced
 * through x264's own log level, not through av_log_set_level.
 */
#ifndef EMPD_DATASET_SYNTH_MEDIA_H
#define EMPD_DATASET_SYNTH_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#define SYNTH_MEDIA_OK 0
#define SYNTH_MEDIA_ERR_ARG (-1)    /* opts out of range */
#define SYNTH_MEDIA_ERR_INPUT (-2)  /* train.json / test.json missing or unreadable (the reader's message) */
#define SYNTH_MEDIA_ERR_IO (-3)     /* a folder or file cannot be created or written */
#define SYNTH_MEDIA_ERR_NOMEM (-4)
#define SYNTH_MEDIA_ERR_SPEECH (-5) /* espeak-ng failed to initialize or to speak */
#define SYNTH_MEDIA_ERR_VIDEO (-6)  /* cairo drawing or the H.264 encoder / mp4 muxer failed */

/* Probability that a conversation's audio (video) cue is its true label; else one of the other 6 classes. */
#define SYNTH_MEDIA_P_AUDIO 0.65
#define SYNTH_MEDIA_P_VIDEO 0.60

/* Which media to write (opts.media). */
#define SYNTH_MEDIA_AUDIO 1
#define SYNTH_MEDIA_VIDEO 2
#define SYNTH_MEDIA_ALL (SYNTH_MEDIA_AUDIO | SYNTH_MEDIA_VIDEO)

/* The debug sidecar (opts.write_cues), NOT part of the AvaMERG layout: out_dir/synth_cues.tsv, a header
 * line then one tab-separated line per utterance:
 *   split cid k aid role label7 audio_cue video_cue intensity_audio intensity_video
 *   wav(ok|missing|corrupt|-) rate channels mp4(ok|missing|corrupt|-) width height fps frames
 * split is train or test; label7 is the hidden label for test; "-" means that medium was not asked for. */
#define SYNTH_MEDIA_CUES_FILE "synth_cues.tsv"

typedef struct {
    int media;      /* SYNTH_MEDIA_* bits; 0 writes nothing (and succeeds) */
    int threads;    /* >= 1; one of them speaks (in order), the others encode video */
    int write_cues; /* 1: also write SYNTH_MEDIA_CUES_FILE */
} synth_media_opts;

typedef struct {
    int n_conversations; /* conversations with utterances, train + test */
    int n_utterances;    /* utterances of those conversations (each has one wav and one mp4 slot) */
    int n_wav, n_mp4;    /* media files written under their final names, corrupt ones included */
    int n_missing_wav, n_missing_mp4;
    int n_corrupt_wav, n_corrupt_mp4;
    int n_appledouble;   /* ._ twins beside the media */
    int n_macosx;        /* ._ files under __MACOSX/ */
} synth_media_summary;

/* Loads out_dir/train.json and out_dir/test.json and writes out_dir/audio_v5_0/ and out_dir/video_v5_0/
 * (created if missing), plus __MACOSX/ and, when asked, the sidecar. seed should be the seed given to
 * synth_text_write (any value works; the same value gives the same bytes). opts NULL means
 * {SYNTH_MEDIA_ALL, 2 threads, no sidecar}. sum may be NULL. Returns SYNTH_MEDIA_OK or a negative
 * SYNTH_MEDIA_ERR_* with one line in err naming the file and what failed; on failure, files already
 * finished stay (each complete), none is half-written.
 * Cost with 2 threads on 2 cores: 300 conversations (~1,700 utterances) in about 25 s, writing ~170 MB of wav
 * (espeak-ng speaks slowly and 22 kHz PCM is what it is) and ~40 MB of mp4. */
int synth_media_write(const char *out_dir, uint64_t seed, const synth_media_opts *opts, synth_media_summary *sum,
                      char *err, size_t errlen);

#endif
