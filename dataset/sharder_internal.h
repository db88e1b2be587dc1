/* sharder_internal.h: what the sharder's files share (sharder.c plans and publishes, sharder_part.c writes
 * the parts, sharder_media.c decodes one utterance's media). Not a public header. */
#ifndef EMPD_DATASET_SHARDER_INTERNAL_H
#define EMPD_DATASET_SHARDER_INTERNAL_H

#include "dataset/avamerg.h"
#include "dataset/manifest.h"
#include "dataset/record.h"
#include "dataset/sharder.h"
#include "dataset/split.h"
#include "dataset/wordpiece.h"

#include <stddef.h>
#include <stdint.h>

enum { SH_V_AGE, SH_V_GENDER, SH_V_TIMBRE, SH_V_TOPIC, SH_V_EVENT, SH_V_CAUSE, SH_V_GOAL, SH_N_VOCABS };

/* A vocabulary under construction: strings in order of first sight, id 0 = unknown, with an open-addressing
 * index so building over tens of thousands of texts stays linear. */
typedef struct {
    ds_manifest_vocab *mv;
    size_t *slots; /* id + 1, 0 empty */
    size_t cap;
} sh_vocab;

typedef struct {
    const char *name;     /* "train", "val", "test" */
    const size_t *idx;    /* corpus sample of each split index */
    size_t n;
    size_t n_parts;
    size_t first_part;    /* global number of its part 0 */
} sh_split;

struct ds_sharder {
    const ds_sharder_opts *o;
    char json_path[4096], audio_dir[4096], video_dir[4096];
    char fingerprint[33];     /* md5 of everything a record depends on */
    wp_vocab *voc;
    am_corpus c;
    split_result sp;
    ds_manifest m;            /* vocabularies (built at open); the rest filled by ds_sharder_finish */
    sh_vocab vb[SH_N_VOCABS];
    sh_split splits[3];
    size_t n_parts, n_utterances;
    int finished;             /* the manifest is published */
};

/* Global part g -> its split and part number within the split. */
void sh_part_of(const ds_sharder *s, size_t g, const sh_split **sp, size_t *part);
/* Paths of a part's shard file and report ("train-00003.lmdb", ".parts/train-00003.lmdb.json") in out_dir. */
void sh_part_paths(const ds_sharder *s, const sh_split *sp, size_t part, char *lmdb, size_t ln, char *report,
                   size_t rn);

/* Text and metadata of corpus sample `sample` as split index `index` into r; tok is a scratch area of
 * (1 + DS_MAX_UTT) * max(utt, ctx) tokens that r points into, tmp one of max(utt, ctx) uint32. */
void sh_record_text(const ds_sharder *s, const am_sample *sample, uint32_t index, uint32_t *tmp, uint16_t *tok,
                    ds_record *r);

/* A part's report (.parts/NAME.lmdb.json), written just before its shard file is published. */
typedef struct {
    size_t audio_present, audio_missing, audio_bad;
    size_t video_present, video_missing, video_bad;
} sh_media_counts;

void sh_media_counts_add(sh_media_counts *to, const sh_media_counts *c);

typedef struct {
    size_t count;             /* samples in the part */
    char media_digest[33];    /* md5 of name, size and mtime of every media file the part read */
    sh_media_counts media;
    ds_strv lines;            /* "audio: FILE: reason" / "video: FILE: reason" per undecodable file */
} sh_report;

/* Reads a report and checks it belongs to this run (fingerprint). DS_SHARD_ENOENT when absent,
 * DS_SHARD_ECORRUPT when malformed or made under other settings. Free r->lines even on failure. */
int sh_report_read(const ds_sharder *s, const char *path, sh_report *r, char *err, size_t errlen);

/* One decoding thread's reusable state and one utterance's media outcome. */
typedef struct sh_media_ctx sh_media_ctx;
int sh_media_ctx_new(const ds_sharder_opts *o, sh_media_ctx **out, char *err, size_t errlen);
void sh_media_ctx_free(sh_media_ctx *m);

/* Storage of one sample's media, reused from sample to sample. */
typedef struct {
    int16_t *wave[DS_MAX_UTT];
    ds_buf jpeg[DS_MAX_UTT][DS_N_FRAMES];
    uint8_t *raw;             /* DS_MAX_UTT * DS_N_FRAMES frames when frames are stored raw */
} sh_media_store;
void sh_media_store_free(sh_media_store *st);

/* The path of utterance u's wav (video 0) or mp4 (video 1) into buf; -1 when it has no avatar ID (no name). */
int sh_media_path(const ds_sharder *s, const am_sample *a, int u, int video, char *buf, size_t n);

/* Decodes utterance u of sample into r->utt[u] (media pointers into st) and sets its presence bits.
 * A missing file counts as missing; an undecodable one, under AM_ON_ERROR_SKIP, as bad with its line
 * pushed onto bad_lines; under AM_ON_ERROR_FAIL it is an error (DS_SHARD_ECORRUPT, the line in err). */
int sh_media_utterance(const ds_sharder *s, sh_media_ctx *m, const am_sample *sample, int u, ds_record *r,
                       sh_media_store *st, sh_media_counts *counts, ds_strv *bad_lines, char *err, size_t errlen);

#endif
