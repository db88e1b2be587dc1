/* sharder: an AvaMERG folder -> shards/ (manifest.json + {train,val,test}-NNNNN.lmdb), in parallel and
 * resumable.
 *
 * Reads train.json (at the folder's root or inside audio_v5_0/), splits it with the seed's rule, builds the
 * categorical vocabularies from the training split only, tokenizes context and utterances with WordPiece,
 * decodes every utterance's media (audio_v5_0/dia{CID}utt{K}_{AID}.wav -> 16 kHz mono int16, cut to
 * audio_max_seconds; video_v5_0/...mp4 -> DS_N_FRAMES frames by the seed's linspace rule, resized, stored as
 * JPEG or raw) and writes one record per sample. The manifest is published last, so a folder with a
 * manifest is always complete.
 *
 * Work is cut into parts: part p of a split holds samples [p*part_samples, (p+1)*part_samples) and is one
 * shard file. Process `rank` of `world` writes the parts g with g % world == rank (g counts the parts of
 * train, then val, then test), decoding with `threads` threads and writing records in sample order.
 * Before a part's file is published (renamed into place) its report, shards/.parts/{file}.json, is: the
 * settings fingerprint (input json md5, vocabulary md5, split seed, token limits, media settings and the
 * media folders' real paths, part size), a digest of the name, size and modification time of every media
 * file the part read, the media counts and the lines of undecodable files. A part whose file and report
 * both exist with this run's fingerprint and the same media digest is done and is skipped, so a killed run
 * started again continues without redoing or duplicating finished work, and a part whose media files were
 * replaced or touched since is decoded again (as is, under AM_ON_ERROR_FAIL, one holding bad files); any
 * part not done is rebuilt from scratch.
 *
 * Bad media: a missing file leaves that medium out of the utterance (presence bit 0, counted); a file that
 * fails to decode does the same under AM_ON_ERROR_SKIP (presence *_BAD bit, counted, and a line naming the
 * file and the reason in the manifest's skipped.lines) and stops the run under AM_ON_ERROR_FAIL.
 *
 * Multi-process use (the empd tool does this with MPI): every process calls ds_sharder_open (same input,
 * same plan), process 0 calls ds_sharder_prepare, all wait for it, each calls ds_sharder_write for its
 * rank, all wait, and process 0 calls ds_sharder_finish. ds_sharder_run does all of it in one process.
 * Return codes: 0 or a negative DS_SHARD_* (record.h) / AM_ERR_* (avamerg.h) code, one line in err.
 */
#ifndef EMPD_DATASET_SHARDER_H
#define EMPD_DATASET_SHARDER_H

#include <stddef.h>
#include <stdint.h>

#include "dataset/avamerg.h"
#include "dataset/manifest.h"

#define DS_SHARDER_PARTS_DIR ".parts"   /* inside the output folder: one report per finished part */

typedef struct {
    const char *data_dir;   /* AvaMERG folder */
    const char *json_path;  /* NULL: data_dir/train.json, else data_dir/audio_v5_0/train.json */
    const char *audio_dir;  /* NULL: data_dir/audio_v5_0 */
    const char *video_dir;  /* NULL: data_dir/video_v5_0 */
    const char *out_dir;    /* created if missing */
    const char *vocab_path; /* BERT vocab.txt */
    int utt_max_tokens;     /* per utterance, [CLS] and [SEP] included (128) */
    int ctx_max_tokens;     /* context (256) */
    int64_t split_seed;     /* 42 reproduces the seed's split */
    enum am_on_error on_error;
    int labels;             /* 7 or 32: the label space recorded as the trainers' default */
    int audio, video;       /* 1: decode and store that medium */
    double audio_max_seconds; /* waveforms are cut to this (10); 0 < x <= 600 */
    int frame_w, frame_h;   /* stored frame size (224 x 224), 16..1024 each */
    int frame_format;       /* DS_FRAME_JPEG or DS_FRAME_RAW */
    int jpeg_quality;       /* 1..100 (90) */
    int threads;            /* decoding threads in this process, >= 1 */
    int part_samples;       /* samples per shard file (64), >= 1 */
    /* NULL, or the manifest of the shards a model was trained on: its categorical vocabularies are used
     * as they are (a value they lack is <unk>, as in training), none is built, and every conversation of
     * the json with at least one turn goes, in file order, to the split "test", labelled or not. This
     * is how empd predict encodes new conversations exactly as the model's training data was; the
     * caller copies the token limits and media settings from the same manifest. */
    const ds_manifest *like;
} ds_sharder_opts;

/* Filled with the defaults above: the caller sets data_dir, out_dir, vocab_path and what it changes. */
void ds_sharder_opts_default(ds_sharder_opts *o);

typedef struct ds_sharder ds_sharder;

/* Checks o, reads the vocabulary and the json, splits, builds the vocabularies and plans the parts; writes
 * nothing. o and the strings it points to must outlive the sharder. */
int ds_sharder_open(const ds_sharder_opts *o, ds_sharder **out, char *err, size_t errlen);
void ds_sharder_close(ds_sharder *s);

typedef struct {
    size_t n_train, n_val, n_test;
    size_t n_skipped;        /* conversations not sharded, every reason */
    size_t n_parts;          /* shard files of the plan, all splits */
    size_t n_utterances;     /* utterances of all samples */
    char json_path[4096];    /* the file read */
} ds_sharder_plan;

void ds_sharder_get_plan(const ds_sharder *s, ds_sharder_plan *p);

/* Process 0, before any ds_sharder_write: creates the output folder and its .parts folder and withdraws an
 * old manifest (the folder counts as complete again only when the new one is published). */
int ds_sharder_prepare(ds_sharder *s, char *err, size_t errlen);

/* Called by the writing thread after every record with this process's counts so far (done includes the
 * samples of parts found finished) and total; ctx is the caller's. */
typedef void (*ds_sharder_progress_fn)(void *ctx, size_t done, size_t total);

typedef struct {
    size_t samples, utterances;     /* written by this call */
    size_t parts_written, parts_resumed;
    size_t audio_present, audio_missing, audio_bad;
    size_t video_present, video_missing, video_bad;
} ds_sharder_stats;

/* Writes this process's parts (see the top). stats may be NULL. On error the part being built is
 * abandoned (no file under its final name) and finished parts stay for the next run. */
int ds_sharder_write(ds_sharder *s, int rank, int world, ds_sharder_progress_fn progress, void *ctx,
                     ds_sharder_stats *stats, char *err, size_t errlen);

/* Process 0, after every process's ds_sharder_write succeeded: checks every part's file and report, builds
 * the manifest (counts, histograms, vocabularies, media settings and counts, skipped items) and publishes it;
 * removes shard files and reports of parts beyond the plan (left by an earlier, bigger run). */
int ds_sharder_finish(ds_sharder *s, char *err, size_t errlen);

/* The manifest ds_sharder_finish published (media counts, skipped items); NULL before it succeeded. */
const ds_manifest *ds_sharder_manifest(const ds_sharder *s);

/* open, prepare, write (rank 0 of 1), finish, close. */
int ds_sharder_run(const ds_sharder_opts *o, ds_sharder_plan *plan, ds_sharder_stats *stats, char *err,
                   size_t errlen);

#endif
