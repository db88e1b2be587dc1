/* shard.h: LMDB shard files of one split: writing, reading, verifying.
 *
 * A split's samples live in one or more single-file LMDB environments named {split}-{part:05d}.lmdb
 * (part from 0) in the shards folder. The key of a record is its sample index within the split as 8 bytes
 * big-endian, so cursor order is sample order; the value is one record (record.h). Part p holds the sample
 * indices that follow those of part p-1 without a gap.
 *
 * Writing: a shard is built under {name}.tmp and appears under its final name only when
 * ds_shard_writer_close succeeds (synced, then renamed; the folder is fsync'd). Abort, or any failure,
 * removes the temporary file. A crash leaves at most a *.tmp file, which the next writer of the same part
 * replaces. Writing an existing final name replaces that file atomically.
 *
 * Reading: the files are immutable once renamed, so readers open them with
 * MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS: no lock file, no reader table, any number of
 * threads reading at once. LMDB forbids opening one file twice in a process and any use across fork():
 * open a reader once per process, after MPI init, and close it before exiting. Pointers in a record read
 * through a ds_shard_txn point into the file's mapping and stay valid until ds_shard_txn_end.
 *
 * Return codes are the DS_SHARD_* codes of record.h; messages name the file and the record
 * ("record 17 of train-00000.lmdb: crc mismatch (stored 0x..., computed 0x...)").
 */
#ifndef EMPD_DATASET_SHARD_H
#define EMPD_DATASET_SHARD_H

#include "dataset/manifest.h"
#include "dataset/record.h"

#include <stddef.h>

#define DS_SPLIT_NAME_MAX 31   /* split names: 1..31 of [a-z0-9_] */

/* 1 when s is a valid split name (1..DS_SPLIT_NAME_MAX of [a-z0-9_]), else 0. */
int ds_shard_split_name_ok(const char *s);

/* Write "{split}-{part:05d}.lmdb" into buf. DS_SHARD_EINVAL for a bad split name or part < 0,
 * or when buf is too small. */
int ds_shard_file_name(char *buf, size_t n, const char *split, int part);

/* ---- writer ---- */

typedef struct ds_shard_writer ds_shard_writer;

typedef struct {
    size_t map_size;       /* initial LMDB map size in bytes; 0 means 64 MiB. Doubled whenever full. */
    size_t batch_records;  /* records per write transaction; 0 means 256 */
    size_t batch_bytes;    /* or fewer when the encoded records reach this many bytes; 0 means 64 MiB */
} ds_shard_writer_opts;

/* Start part `part` of split `split` in folder dir (which must exist). opts may be NULL (defaults).
 * Removes a stale {name}.tmp first. DS_SHARD_EINVAL (bad name), DS_SHARD_ELMDB, DS_SHARD_EIO, DS_SHARD_ENOMEM. */
int ds_shard_writer_open(const char *dir, const char *split, int part, const ds_shard_writer_opts *opts,
                         ds_shard_writer **out, char *err, size_t errlen);

/* Encode rec and queue it under key rec->sample_index. Sample indices must increase strictly within a
 * split (DS_SHARD_EINVAL otherwise); invalid fields give DS_SHARD_EINVAL naming the field. Records are
 * written in transactions of opts.batch_records; the map grows by doubling on MDB_MAP_FULL. After a
 * failure other than EINVAL the writer can only be aborted. */
int ds_shard_writer_put(ds_shard_writer *w, const ds_record *rec, char *err, size_t errlen);

/* Records put so far. */
size_t ds_shard_writer_count(const ds_shard_writer *w);

/* The final file name (no folder), e.g. "train-00000.lmdb", for the manifest. */
const char *ds_shard_writer_file(const ds_shard_writer *w);

/* Write what is queued, sync, close, remove the temp's lock file and rename the temp to the final name;
 * fsync the folder. Frees w whatever happens; on failure nothing is left under either name. */
int ds_shard_writer_close(ds_shard_writer *w, char *err, size_t errlen);

/* Drop everything: close, remove the temporary file and its lock file, free w. NULL is a no-op. */
void ds_shard_writer_abort(ds_shard_writer *w);

/* ---- reader ---- */

typedef struct ds_shard_reader ds_shard_reader;

/* Open the shard files of split in dir read-only. files (n_files names inside dir, in part order) usually
 * come from the manifest; with files == NULL the folder is scanned for {split}-NNNNN.lmdb and the parts
 * must run 0..n-1 without a hole. Checks that every key is 8 bytes and that each file's keys continue the
 * previous file's. DS_SHARD_ENOENT (no such file / no shards), DS_SHARD_ECORRUPT (keys out of place),
 * DS_SHARD_ELMDB, DS_SHARD_ENOMEM. */
int ds_shard_reader_open(const char *dir, const char *split, char *const *files, size_t n_files,
                         ds_shard_reader **out, char *err, size_t errlen);

/* Samples in the split (sum over its files). */
size_t ds_shard_reader_count(const ds_shard_reader *r);

/* Unmaps every file. No transaction of r may be open. NULL is a no-op. */
void ds_shard_reader_close(ds_shard_reader *r);

/* A read transaction over all files of a reader: records fetched through it stay mapped until it ends.
 * One per thread at a time; any number of threads may hold one concurrently. */
typedef struct ds_shard_txn ds_shard_txn;

int ds_shard_txn_begin(ds_shard_reader *r, ds_shard_txn **out, char *err, size_t errlen);

/* Fetch and decode the record of sample `index` (0..count-1), zero-copy (see ds_record_decode), and check
 * that the record's sample_index equals its key. DS_SHARD_ENOENT for an index out of range,
 * DS_SHARD_ECORRUPT naming the record and file, DS_SHARD_ELMDB. */
int ds_shard_txn_get(ds_shard_txn *t, size_t index, ds_record *rec, char *err, size_t errlen);

/* End the transaction; records obtained through it become invalid. NULL is a no-op. */
void ds_shard_txn_end(ds_shard_txn *t);

/* ---- verification ---- */

typedef struct {
    size_t records;        /* records checked, all splits */
    size_t bytes;          /* bytes of record values checked */
} ds_shard_verify_stats;

/* Walk every record of every split the manifest lists, in dir: decode (magic, lengths, bounds, CRC, the
 * media rules of record.h), key equals sample_index, conversation id equals the manifest's at that index,
 * token counts within the manifest's tokenizer limits, and per split the record count and both label
 * histograms equal the manifest's. Media against the manifest's "media" (all zero when it has none): a
 * record carries section WAVE exactly when media.audio and FRMS exactly when media.video; frame format and
 * size equal the manifest's; no utterance has more than round(audio_max_seconds * audio_rate) samples; and
 * over all splits together the utterances with the audio bit, the AUDIO_BAD bit and neither (and likewise
 * for video) equal media.counts (present, bad, missing) for each sharded medium. Stops at the first
 * problem and names the split, file and record (a flipped byte anywhere in a record is a CRC mismatch of
 * that record). stats may be NULL.
 * DS_SHARD_ECORRUPT for a bad record or a mismatch, or any code of ds_shard_reader_open. */
int ds_shard_verify(const char *dir, const ds_manifest *m, ds_shard_verify_stats *stats, char *err, size_t errlen);

#endif
