/* loader.h: batches for the trainer, read from a shards folder (manifest.json + LMDB shards).
 *
 * ds_loader_open reads the manifest and opens every split's shards once (call it after MPI init, once per
 * process, never across fork(): LMDB's rule, see shard.h). A ds_batch is one block of host memory holding
 * plain row-major arrays in the dtypes the model wants, so the trainer wraps them as tensors without
 * copying; the caller chooses which modalities it holds (a text-only run never allocates frames).
 * ds_loader_fill fills one batch on the calling thread; prefetch.h fills a ring of them on worker threads.
 *
 * Layout of one row (a sample):
 *   utterances occupy slots 0..k-1 in conversation order, k = min(n_utt, U); when a sample has more than U
 *   utterances the LAST U are kept (the final utterance, the response, is what the model reads last), and
 *   each slot's audio and frames are that utterance's;
 *   a token list longer than its row (L for utterances, C for the context) keeps its first L-1 (C-1) tokens
 *   and its last token, so a list that ends in [SEP] still ends in [SEP]; padding is token 0 ([PAD]) with
 *   mask 0; absent utterance slots have utt_valid 0, role 0 and all-zero tokens, mask and media;
 *   a waveform keeps its first S samples; audio_len says how many are real (the rest are 0), audio_valid 1;
 *   frames are decoded (JPEG) or copied (raw) to H x W x 3 RGB, video_valid 1;
 *   a medium the utterance lacks (missing, undecodable at sharding time, or a version-1 record) is all
 *   zero with its valid mask 0 and audio_len 0;
 *   labels are copied as stored (-1 = unlabeled: the trainer must not score such rows).
 * Rows n..B-1 are all zero.
 *
 * Thread safety: any number of threads may fill distinct batches, or distinct rows of one batch, at once
 * (each with its own cursor); open and close must not overlap anything.
 * Return codes are the DS_SHARD_* codes of record.h; messages name the split, the sample and, for a record
 * that does not decode, its shard file.
 */
#ifndef EMPD_DATASET_LOADER_H
#define EMPD_DATASET_LOADER_H

#include "dataset/manifest.h"
#include "dataset/record.h"

#include <stddef.h>
#include <stdint.h>

/* Modalities of a batch (ds_batch_shape.mods). Rows, utterance validity, roles, metadata, labels and
 * sample indices are always there. */
#define DS_MOD_TEXT  0x1u   /* utt_tokens, utt_mask, ctx_tokens, ctx_mask */
#define DS_MOD_AUDIO 0x2u   /* audio, audio_len, audio_valid */
#define DS_MOD_VIDEO 0x4u   /* frames, video_valid */

typedef struct {
    int B, U;          /* rows, utterance slots: B >= 1, 1 <= U <= DS_MAX_UTT */
    int L, C;          /* with DS_MOD_TEXT: tokens per utterance and of the context, 2..65535 */
    int S;             /* with DS_MOD_AUDIO: waveform samples per utterance slot, >= 1 */
    int H, W;          /* with DS_MOD_VIDEO: frame height and width, 1..4096; must equal the records' */
    unsigned mods;     /* DS_MOD_* bits */
} ds_batch_shape;

/* Where batch memory comes from: alloc(ctx, bytes) returns 64-byte aligned memory or NULL, free(ctx, p)
 * releases it. A pinned (page-locked) allocator lets a CUDA trainer copy batches to the device
 * asynchronously; dataset/ never needs to know. */
typedef struct {
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *p);
    void *ctx;
} ds_allocator;

typedef struct {
    ds_batch_shape shape;
    int B, U, L, C, S, H, W; /* copies of shape's, for short expressions */
    uint16_t *utt_tokens;    /* [B,U,L] 0 = [PAD]         (DS_MOD_TEXT, else NULL) */
    float *utt_mask;         /* [B,U,L] 1 token, 0 pad    (DS_MOD_TEXT) */
    uint16_t *ctx_tokens;    /* [B,C]                     (DS_MOD_TEXT) */
    float *ctx_mask;         /* [B,C]                     (DS_MOD_TEXT) */
    int16_t *audio;          /* [B,U,S] 16 kHz mono       (DS_MOD_AUDIO) */
    int64_t *audio_len;      /* [B,U] real samples        (DS_MOD_AUDIO) */
    float *audio_valid;      /* [B,U] 1 the slot has audio (DS_MOD_AUDIO) */
    uint8_t *frames;         /* [B,U,DS_N_FRAMES,H,W,3] RGB (DS_MOD_VIDEO) */
    float *video_valid;      /* [B,U] 1 the slot has frames (DS_MOD_VIDEO) */
    float *utt_valid;        /* [B,U] 1 the utterance exists */
    int64_t *utt_role;       /* [B,U] enum ds_role */
    int64_t *meta;           /* [B,DS_META_N], enum ds_meta_slot order */
    int64_t *label7, *label32; /* [B] */
    int64_t *sample_index;   /* [B] */
    int n;                   /* rows filled (<= B) */
    void *block;             /* the one allocation every array lives in */
    size_t bytes;            /* its size */
    ds_allocator allocator;  /* what freed block */
} ds_batch;

/* Bytes one batch of this shape takes (what ds_batch_alloc asks its allocator for); 0 when the shape is
 * invalid or its size overflows. */
size_t ds_batch_bytes(const ds_batch_shape *shape);

/* Allocate a zeroed batch of this shape in one block from a (NULL: 64-byte aligned malloc). On failure
 * (DS_SHARD_EINVAL for a shape outside the ranges above or whose size overflows, DS_SHARD_ENOMEM) *b is
 * zeroed and needs no free. */
int ds_batch_alloc(ds_batch *b, const ds_batch_shape *shape, const ds_allocator *a, char *err, size_t errlen);

/* Give the block back to its allocator; b is zeroed. Safe on a zeroed or already freed batch. */
void ds_batch_free(ds_batch *b);

/* Zero row `row` (0..B-1) of every array. */
void ds_batch_clear_row(ds_batch *b, int row);

typedef struct ds_loader ds_loader;

/* Read shards_dir/manifest.json and open the shards of every split it lists; each split's record count
 * must match the manifest. Codes of ds_manifest_read and ds_shard_reader_open; messages name the file. */
int ds_loader_open(const char *shards_dir, ds_loader **out, char *err, size_t errlen);

/* The manifest read at open (vocabularies, tokenizer settings, media settings); owned by the loader. */
const ds_manifest *ds_loader_manifest(const ds_loader *l);

/* Samples in split; 0 for a split the manifest does not list. */
size_t ds_loader_count(const ds_loader *l, const char *split);

/* A cursor reads one split for one thread: a read transaction over its shards (records stay mapped while
 * it lives) and a JPEG decoder. DS_SHARD_ENOENT for a split the manifest does not list or that has no
 * samples, DS_SHARD_ELMDB, DS_SHARD_ENOMEM. The loader must outlive its cursors. */
typedef struct ds_loader_cursor ds_loader_cursor;
int ds_loader_cursor_open(ds_loader *l, const char *split, ds_loader_cursor **out, char *err, size_t errlen);
void ds_loader_cursor_close(ds_loader_cursor *c);  /* NULL is a no-op */

/* Fill row `row` of b with sample `index` of the cursor's split (every byte of the row is written, so
 * the row's earlier contents do not matter). DS_SHARD_EINVAL for a row outside 0..B-1, DS_SHARD_ENOENT
 * for an index out of range, DS_SHARD_ECORRUPT for a record that does not decode or whose media do not
 * fit the batch (frame size, raw frame length, a JPEG that does not decode), naming split, sample,
 * utterance and frame. On failure the row's contents are unspecified. b->n is not touched. */
int ds_loader_cursor_fill_row(ds_loader_cursor *c, size_t index, ds_batch *b, int row, char *err,
                              size_t errlen);

/* Fill rows 0..n-1 of b with the samples indices[0..n-1] of split and zero the rest; b->n = n. The
 * single-threaded reference of what prefetch.h delivers. DS_SHARD_EINVAL for n outside 0..B, the codes of
 * ds_loader_cursor_open and ds_loader_cursor_fill_row otherwise. On failure b->n is 0 and the contents of
 * b are unspecified. */
int ds_loader_fill(ds_loader *l, const char *split, const size_t *indices, int n, ds_batch *b, char *err,
                   size_t errlen);

/* Close the shards and free the manifest. NULL is a no-op. No cursor may be open. */
void ds_loader_close(ds_loader *l);

#endif
