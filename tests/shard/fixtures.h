/* Shared fixtures of test_shard: deterministic random records with media, temporary folders, shards +
 * manifest builders (on tests/common/shard_fixtures.h, which test_loader shares), and the test functions of
 * each source file (main is in test_shard.c). */
#ifndef EMPD_TESTS_SHARD_FIXTURES_H
#define EMPD_TESTS_SHARD_FIXTURES_H

#include "tests/common/shard_fixtures.h"

#define MAX_SAMPLES 200    /* per utterance; the manifest's audio_max_seconds is MAX_SAMPLES / 16000 */
#define MAX_FRAME 96       /* bytes of a JPEG-looking frame, and the most w*h*3 of a raw one */

/* Which media gen_record gives its records and manifest_base describes: one setting for a whole shards
 * folder, as a sharder writes it. Default: audio and JPEG-looking video of 6x4. */
typedef struct {
    int audio, video, format, w, h;
} media_cfg;
extern media_cfg gen_media;

/* A record with its own token and media storage; never copy one (the record points into it). */
typedef struct {
    SF_RECORD_TEXT_FIELDS;
    int16_t wave[DS_MAX_UTT][MAX_SAMPLES];
    uint8_t frames[DS_MAX_UTT][DS_N_FRAMES][MAX_FRAME];
} rec_store;

/* Deterministic in (seed, index, gen_media), so any test can regenerate what was written. Utterances get
 * each medium present, bad or absent at random. */
void gen_record(rec_store *st, uint64_t seed, uint32_t index);
/* Every field equal, media included (samples and frame bytes compared exactly). */
void assert_rec_eq(const ds_record *a, const ds_record *b);

char *make_tmpdir(void);
void rm_tmpdir(char *d);              /* removes the folder and frees d */
int exists_in(const char *dir, const char *name);
int count_entries(const char *dir);

/* Write samples 0..sum(sizes)-1 of a split as parts of the given sizes and describe them in m. */
void make_split(const char *dir, ds_manifest *m, const char *name, uint64_t seed, const int *sizes, int parts);
/* sf_manifest_base plus the media of gen_media (audio and frames in /data/AvaMERG). */
void manifest_base(ds_manifest *m);

void test_crc_known_and_chained(void **state);
void test_crc_matches_zlib(void **state);
void test_record_roundtrip_random(void **state);
void test_record_rejects_bad_fields(void **state);
void test_record_every_corruption_detected(void **state);
void test_record_versioning(void **state);
void test_record_structure_checks(void **state);
void test_record_media_rules(void **state);
void test_record_encode_speed(void **state);
void test_writer_publishes_on_close(void **state);
void test_writer_grows_map(void **state);
void test_multi_part_split(void **state);
void test_verify(void **state);
void test_verify_media(void **state);
void test_manifest_roundtrip(void **state);
void test_manifest_malformed(void **state);
void test_python_reader_matches(void **state);
void test_python_reader_detects_corruption(void **state);

#endif
