/* Fixtures shared by test_shard and test_loader, so both write their shards folders the same way:
 * the random stream, the text half of a deterministic record, a split written as LMDB shard parts and
 * counted into a manifest, the manifest fields both describe alike, and byte-level file damage.
 * Every helper fails the running cmocka test on an error instead of returning a code. */
#ifndef EMPD_TESTS_COMMON_SHARD_FIXTURES_H
#define EMPD_TESTS_COMMON_SHARD_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "dataset/manifest.h"
#include "dataset/record.h"

#include <stdint.h>

#define MAX_CTX 60
#define MAX_UTT_TOK 40
#define MD5 "64800d5d8528ce344256daf115d4965e"

/* The error buffer every dataset call of a test binary writes into (shown by a failing assertion). */
extern char err[512];

/* splitmix64: the next value of the stream whose state is *s. */
uint64_t rnd(uint64_t *s);

/* The first members of each test's record store: the record and the text storage sf_gen_record fills
 * (a field list rather than a nested struct, so that the tests keep writing st->r, st->ctx, st->tok). */
#define SF_RECORD_TEXT_FIELDS                                                                                  \
    ds_record r;                                                                                               \
    uint16_t ctx[MAX_CTX];                                                                                     \
    uint16_t tok[DS_MAX_UTT][MAX_UTT_TOK]

/* Called once per utterance u, right after its tokens, to add media from the same stream s. */
typedef void (*sf_utt_fn)(void *arg, ds_record *r, int u, uint64_t *s);
/* Zeroes r and fills it deterministically in (seed, index, what media adds): labels (some -1), metadata,
 * MAX_CTX context tokens at most in ctx, 0..DS_MAX_UTT utterances of MAX_UTT_TOK tokens at most in tok,
 * tokens over the whole uint16 range. media may be NULL (a text-only record). */
void sf_gen_record(ds_record *r, uint16_t *ctx, uint16_t (*tok)[MAX_UTT_TOK], uint64_t seed, uint32_t index,
                   sf_utt_fn media, void *arg);

/* The record of sample index, valid until the next call. */
typedef const ds_record *(*sf_record_fn)(void *arg, uint32_t index);
/* Writes samples 0..sum(sizes)-1 of split `name` into dir as `parts` shard parts of the given sizes and
 * adds the split to m: shard files, conversation ids, label histograms, and the media counts of records
 * with has_audio / has_video. */
void sf_write_split(const char *dir, ds_manifest *m, const char *name, const int *sizes, int parts,
                    sf_record_fn next, void *arg);
/* Zeroes m and sets what a sharder writes apart from splits and media: versions, 7 labels, created_by,
 * vocabulary MD5 and size, token limits MAX_UTT_TOK / MAX_CTX, source paths. */
void sf_manifest_base(ds_manifest *m, const char *created_by);
/* Publishes m as dir/manifest.json. */
void write_manifest(const char *dir, const ds_manifest *m);

/* Flip one byte of a published file in place (bit rot), at the first occurrence of needle + delta.
 * corrupt_bytes takes a needle of n bytes and returns the offset it flipped; flip_byte flips (or flips
 * back) the byte at an offset. */
void corrupt_file(const char *path, const char *needle, long delta);
long corrupt_bytes(const char *path, const void *needle, size_t n, long delta);
void flip_byte(const char *path, long at);

#endif
