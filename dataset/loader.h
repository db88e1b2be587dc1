/* loader.h: batches for the trainer, read from a shards folder (manifest.json + LMDB shards).
 *
 * ds_loader_open reads the manifest and opens every split's shards once (call it after MPI init, once per
 * process, never across fork(): LMDB's rule, see shard.h). ds_loader_fill copies the samples at the given
 * indices of a split into a ds_batch: plain host arrays in the dtypes the model wants (int64 ids, float
 * masks), laid out row-major so the trainer can wrap them as tensors without copying.
 *
 * Layout of one row (a sample):
 *   utterances occupy slots 0..k-1 in conversation order, k = min(n_utt, U); when a sample has more than U
 *   utterances the LAST U are kept (the final utterance, the response, is what the model reads last);
 *   a token list longer than its row (L for utterances, C for the context) keeps its first L-1 (C-1) tokens
 *   and its last token, so a list that ends in [SEP] still ends in [SEP]; padding is token 0 ([PAD]) with
 *   mask 0; absent utterance slots have utt_valid 0, role 0 and all-zero tokens and mask;
 *   labels are copied as stored (-1 = unlabeled: the trainer must not score such rows).
 * Rows n..B-1 are all zero.
 *
 * Thread safety: any number of threads may call ds_loader_fill at once on distinct batches (each call
 * runs its own read transaction); open and close must not overlap anything.
 * Return codes are the DS_SHARD_* codes of record.h.
 */
#ifndef EMPD_DATASET_LOADER_H
#define EMPD_DATASET_LOADER_H

#include "dataset/manifest.h"
#include "dataset/record.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int B, U, L, C;            /* rows, utterance slots, tokens per utterance, context tokens */
    int64_t *utt_tokens;       /* [B*U*L], 0 = [PAD] */
    float *utt_mask;           /* [B*U*L] 1 valid token, 0 pad */
    float *utt_valid;          /* [B*U] 1 the utterance exists */
    int64_t *utt_role;         /* [B*U] enum ds_role */
    int64_t *ctx_tokens;       /* [B*C] */
    float *ctx_mask;           /* [B*C] */
    int64_t *meta;             /* [B*DS_META_N], enum ds_meta_slot order */
    int64_t *label7, *label32; /* [B] */
    int64_t *sample_index;     /* [B] */
    int n;                     /* rows filled (<= B) */
} ds_batch;

/* Allocate the arrays of a B x U x L (+ C) batch, zeroed, 64-byte aligned. Needs B >= 1,
 * 1 <= U <= DS_MAX_UTT, L >= 2, C >= 2 (DS_SHARD_EINVAL), else DS_SHARD_ENOMEM or DS_SHARD_OK. */
int ds_batch_alloc(ds_batch *b, int B, int U, int L, int C, char *err, size_t errlen);

/* Free the arrays; b is zeroed. Safe on a zeroed or already freed batch. */
void ds_batch_free(ds_batch *b);

typedef struct ds_loader ds_loader;

/* Read shards_dir/manifest.json and open the shards of every split it lists; each split's record count
 * must match the manifest. Codes of ds_manifest_read and ds_shard_reader_open; messages name the file. */
int ds_loader_open(const char *shards_dir, ds_loader **out, char *err, size_t errlen);

/* The manifest read at open (vocabularies, tokenizer settings, histograms); owned by the loader. */
const ds_manifest *ds_loader_manifest(const ds_loader *l);

/* Samples in split; 0 for a split the manifest does not list. */
size_t ds_loader_count(const ds_loader *l, const char *split);

/* Fill rows 0..n-1 of b with the samples indices[0..n-1] of split and zero the rest; b->n = n.
 * DS_SHARD_EINVAL for n outside 0..B, DS_SHARD_ENOENT for an unknown split or an index out of range,
 * DS_SHARD_ECORRUPT for a bad record (named, with its file). On failure b->n is 0 and the contents of b
 * are unspecified. */
int ds_loader_fill(ds_loader *l, const char *split, const size_t *indices, int n, ds_batch *b, char *err,
                   size_t errlen);

/* Close the shards and free the manifest. NULL is a no-op. */
void ds_loader_close(ds_loader *l);

#endif
