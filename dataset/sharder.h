/* sharder: an AvaMERG folder -> shards/ (manifest.json + {train,val,test}-NNNNN.lmdb).
 * Reads train.json (at the folder's root or inside audio_v5_0/), splits it with the seed's rule,
 * builds the categorical vocabularies from the training split only, tokenizes context and
 * utterances with WordPiece, writes one record per sample and publishes the manifest last, so a
 * folder with a manifest is always complete. Media come with the next format version: every
 * utterance is stored without audio or video (presence bits 0). */
#ifndef EMPD_DATASET_SHARDER_H
#define EMPD_DATASET_SHARDER_H

#include <stddef.h>
#include <stdint.h>

#include "dataset/avamerg.h"

typedef struct {
    const char *data_dir;   /* AvaMERG folder */
    const char *json_path;  /* NULL: data_dir/train.json, else data_dir/audio_v5_0/train.json */
    const char *out_dir;    /* created if missing */
    const char *vocab_path; /* BERT vocab.txt */
    int utt_max_tokens;     /* per utterance, [CLS] and [SEP] included (128) */
    int ctx_max_tokens;     /* context (256) */
    int64_t split_seed;     /* 42 reproduces the seed's split */
    enum am_on_error on_error;
    int labels;             /* 7 or 32: the label space recorded as the trainers' default */
} ds_sharder_opts;

typedef struct {
    size_t n_train, n_val, n_test;
    size_t n_skipped;        /* conversations not sharded, every reason */
    char json_path[4096];    /* the file read */
} ds_sharder_summary;

/* Returns 0, or a negative DS_SHARD_* / AM_ERR_* code with one line in err. */
int ds_sharder_run(const ds_sharder_opts *o, ds_sharder_summary *sum, char *err, size_t errlen);

#endif
