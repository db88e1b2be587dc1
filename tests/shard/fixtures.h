/* Shared fixtures of test_shard: deterministic random records, temporary folders, shards + manifest
 * builders, and the test functions of each source file (main is in test_shard.c). */
#ifndef EMPD_TESTS_SHARD_FIXTURES_H
#define EMPD_TESTS_SHARD_FIXTURES_H

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

extern char err[512];

uint64_t rnd(uint64_t *s);

/* A record with its own token storage; never copy one (the record points into it). */
typedef struct {
    ds_record r;
    uint16_t ctx[MAX_CTX];
    uint16_t tok[DS_MAX_UTT][MAX_UTT_TOK];
} rec_store;

/* Deterministic in (seed, index), so any test can regenerate what was written. */
void gen_record(rec_store *st, uint64_t seed, uint32_t index);
void assert_rec_eq(const ds_record *a, const ds_record *b);

char *make_tmpdir(void);
void rm_tmpdir(char *d);              /* removes the folder and frees d */
int exists_in(const char *dir, const char *name);
int count_entries(const char *dir);

/* Write samples 0..sum(sizes)-1 of a split as parts of the given sizes and describe them in m. */
void make_split(const char *dir, ds_manifest *m, const char *name, uint64_t seed, const int *sizes, int parts);
void manifest_base(ds_manifest *m);
void write_manifest(const char *dir, const ds_manifest *m);
/* Flip one byte of a published file in place (bit rot), at the first occurrence of needle + delta. */
void corrupt_file(const char *path, const char *needle, long delta);

void test_crc_known_and_chained(void **state);
void test_crc_matches_zlib(void **state);
void test_record_roundtrip_random(void **state);
void test_record_rejects_bad_fields(void **state);
void test_record_every_corruption_detected(void **state);
void test_record_versioning(void **state);
void test_record_structure_checks(void **state);
void test_writer_publishes_on_close(void **state);
void test_writer_grows_map(void **state);
void test_multi_part_split(void **state);
void test_verify(void **state);
void test_manifest_roundtrip(void **state);
void test_manifest_malformed(void **state);
void test_loader_fill(void **state);
void test_loader_threads(void **state);
void test_python_reader_matches(void **state);
void test_python_reader_detects_corruption(void **state);

#endif
