/* Fixtures of test_loader: deterministic records with media, shards and manifests in scratch folders (on
 * tests/common/shard_fixtures.h, which test_shard shares), batch comparison, and the case group of
 * each source file (main is in test_loader.c). */
#ifndef EMPD_TESTS_LOADER_FIXTURES_H
#define EMPD_TESTS_LOADER_FIXTURES_H

#include "tests/common/shard_fixtures.h"

#include "dataset/image.h"
#include "dataset/loader.h"

#define MAX_WAVE 130            /* samples of the longest waveform */
#define FRAME_W 24
#define FRAME_H 16
#define FRAME_RAW_BYTES (FRAME_W * FRAME_H * 3)

/* A record with its own storage; never copy one (the record points into it). Media kinds: */
enum { MEDIA_NONE, MEDIA_JPEG, MEDIA_RAW };
typedef struct {
    SF_RECORD_TEXT_FIELDS;
    int16_t wave[DS_MAX_UTT][MAX_WAVE];
    uint8_t rgb[DS_MAX_UTT][DS_N_FRAMES][FRAME_RAW_BYTES];
    ds_buf jpeg[DS_MAX_UTT][DS_N_FRAMES];
    ds_jpeg *enc;
} rec_store;

/* Deterministic in (seed, index, media): random labels, metadata, tokens over the whole uint16 range,
 * 0..DS_MAX_UTT utterances, and with media some utterances with a waveform (1..MAX_WAVE samples) and
 * 8 frames, others without (missing or bad). */
rec_store *rec_new(void);
void rec_free(rec_store *st);
void gen_record(rec_store *st, uint64_t seed, uint32_t index, int media);

char *make_tmpdir(void);
void rm_tmpdir(char *d);              /* removes the folder and frees d */

/* Write samples 0..n-1 of a split (deterministic in seed) in `parts` files and describe them in m
 * (which gets media settings when media != MEDIA_NONE). */
void make_split(const char *dir, ds_manifest *m, const char *name, uint64_t seed, int n, int parts, int media);
/* The same, calling hook(st, ctx) on every record before it is written (to damage one, say). */
typedef void (*rec_hook)(rec_store *st, void *ctx);
void make_split_with(const char *dir, ds_manifest *m, const char *name, uint64_t seed, int n, int parts, int media,
                     rec_hook hook, void *ctx);
/* sf_manifest_base; make_split adds the media settings. */
void manifest_base(ds_manifest *m);

/* An allocator that counts its calls and bytes (64-byte aligned malloc underneath). */
typedef struct {
    int allocs, frees;
    size_t bytes;
} counting;
ds_allocator counting_allocator(counting *c);

/* 1 when two batches of one shape hold the same bytes (padding included) and the same n. */
int batch_same(const ds_batch *a, const ds_batch *b);

/* Each source file's cases as one cmocka group; the number of cases that failed. */
int loader_run_cases(void);
int prefetch_run_cases(void);

#endif
