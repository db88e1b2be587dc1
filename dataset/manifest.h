/* manifest.h: shards/manifest.json, the table of contents of a shards folder (layout in dataset/FORMAT.md).
 *
 * The manifest says which splits exist, how many samples each holds, which shard files hold them in
 * which order, the conversation id of every sample, label histograms, what the sharder skipped and why,
 * the categorical vocabularies (built from train only; index = id, 0 = unknown), the tokenizer settings
 * and where the data came from. Shards plus manifest are self-describing: nothing else is needed to train.
 *
 * Ownership: every pointer in a ds_manifest is heap memory owned by the struct; ds_manifest_free releases
 * all of it. Build one by zero-initialising it and using the add/push helpers, or set the string fields
 * with strdup. Return codes are the DS_SHARD_* codes of record.h; messages go to err.
 */
#ifndef EMPD_DATASET_MANIFEST_H
#define EMPD_DATASET_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define DS_MANIFEST_VERSION 1
#define DS_MANIFEST_FILE    "manifest.json"

/* A growable array of owned strings. Zero-initialise; ds_strv_free releases it. */
typedef struct {
    char **v;
    size_t n, cap;
} ds_strv;

/* Append a copy of s. DS_SHARD_ENOMEM on allocation failure. */
int ds_strv_push(ds_strv *s, const char *str);
void ds_strv_free(ds_strv *s);

typedef struct {
    char *name;                  /* "train", "val", "test", ... */
    size_t count;                /* samples; sample indices are 0..count-1 */
    ds_strv shards;              /* file names relative to the shards folder, in part order */
    ds_strv conversation_ids;    /* [count], in sample order */
    int64_t label7_hist[7];      /* samples per 7-class label; unlabeled samples are not counted */
    int64_t label32_hist[32];
} ds_manifest_split;

typedef struct {
    char *reason;                /* short machine-friendly key, e.g. "no_label" */
    int64_t count;
} ds_manifest_skip;

typedef struct {
    char *name;                  /* "topic", "age", ... */
    ds_strv items;               /* items.v[id] is the string of id; id 0 is the unknown entry */
} ds_manifest_vocab;

/* What the sharder decoded from the media files, and how it stored them (manifest key "media"; absent in
 * shards without media, which read as audio = video = 0). */
typedef struct {
    int audio;                   /* 1: records carry waveforms (section WAVE) */
    int audio_rate;              /* DS_AUDIO_RATE */
    double audio_max_seconds;    /* waveforms were cut to this length */
    int video;                   /* 1: records carry frames (section FRMS) */
    int n_frames;                /* DS_N_FRAMES */
    int frame_w, frame_h;        /* every frame's size */
    int frame_format;            /* DS_FRAME_RAW or DS_FRAME_JPEG (record.h) */
    int jpeg_quality;            /* 1..100, meaningful for JPEG storage */
    char *scaler;                /* the swscale filter frames were resized with, e.g. "bilinear" */
    char *audio_dir, *video_dir; /* provenance: the folders read */
    /* Utterances of all splits: with the medium, without a file, with a file that failed to decode. */
    int64_t audio_present, audio_missing, audio_bad;
    int64_t video_present, video_missing, video_bad;
} ds_manifest_media;

typedef struct {
    int version;                 /* DS_MANIFEST_VERSION */
    int format_version;          /* record format version of the shards (DS_RECORD_VERSION when written) */
    int labels;                  /* the label space trainers default to: 7 (the authors' classes) or 32 (raw) */
    char *created_by;            /* program and version, e.g. "empd 0.1" */
    int n_splits;
    ds_manifest_split *splits;
    int n_skips;
    ds_manifest_skip *skips;     /* count per reason */
    ds_strv skip_lines;          /* one human-readable line per skipped item */
    int n_vocabs;
    ds_manifest_vocab *vocabs;
    char vocab_md5[33];          /* md5 of the tokenizer's vocab.txt, lowercase hex */
    int vocab_size;              /* entries of the tokenizer's vocab.txt: every token id is below it */
    int utt_max_tokens;          /* tokens per utterance the sharder kept at most */
    int ctx_max_tokens;          /* tokens of the context the sharder kept at most */
    char *source_data_dir;       /* the AvaMERG folder the shards were made from */
    char *source_json;           /* the json file read (path as given) */
    ds_manifest_media media;
} ds_manifest;

/* Add an empty split named name (copied). NULL when out of memory or when the name is already there. */
ds_manifest_split *ds_manifest_add_split(ds_manifest *m, const char *name);
/* Add an empty vocabulary named name (copied). NULL when out of memory or when the name is already there. */
ds_manifest_vocab *ds_manifest_add_vocab(ds_manifest *m, const char *name);
/* Count one skipped item under reason and, when line is not NULL, keep line. DS_SHARD_ENOMEM on failure. */
int ds_manifest_add_skip(ds_manifest *m, const char *reason, const char *line);

/* Lookups by name; NULL when absent. */
const ds_manifest_split *ds_manifest_find_split(const ds_manifest *m, const char *name);
const ds_manifest_vocab *ds_manifest_find_vocab(const ds_manifest *m, const char *name);

/* Write m to path as JSON: to path + ".tmp", fsync, rename, fsync the folder, so that path holds either the
 * old manifest or the complete new one. Checks the same invariants as ds_manifest_read before writing
 * (DS_SHARD_EINVAL naming the field), DS_SHARD_EIO on a file error, DS_SHARD_ENOMEM. */
int ds_manifest_write(const ds_manifest *m, const char *path, char *err, size_t errlen);

/* Read path into *m (which is overwritten; free it with ds_manifest_free even on failure).
 * DS_SHARD_ENOENT when the file does not exist, DS_SHARD_EIO when it cannot be read, DS_SHARD_ECORRUPT when
 * it is not JSON or a field is missing or malformed: the message names the file and the field path
 * ("shards/manifest.json: splits.train.label7_histogram: expected an array of 7 integers"). Checks:
 * version == DS_MANIFEST_VERSION, format_version >= 1, per split len(conversation_ids) == count, each
 * histogram's entries >= 0 with sum <= count, shards listed whenever count > 0, md5 of 32 hex digits,
 * token limits in 1..65535. */
int ds_manifest_read(const char *path, ds_manifest *m, char *err, size_t errlen);

void ds_manifest_free(ds_manifest *m);

#endif
