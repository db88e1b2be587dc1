/* manifest_internal.h: what the manifest's files share (manifest.c writes, reads and checks the whole
 * manifest, manifest_media.c does the same for its "media" object). Not a public header. */
#ifndef EMPD_DATASET_MANIFEST_INTERNAL_H
#define EMPD_DATASET_MANIFEST_INTERNAL_H

#include "dataset/manifest.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* The file being read and the caller's error buffer, so the reading helpers can name both in one line. */
typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} mf_rctx;

/* Reading helpers. field is the full field path for the message ("media.counts.audio_bad"); every failure
 * is DS_SHARD_ECORRUPT ("PATH: FIELD: WHAT") unless stated otherwise. */

/* Always DS_SHARD_ECORRUPT, with what as the message's last part. */
int mf_bad(const mf_rctx *c, const char *field, const char *what);
/* obj[key], or NULL with *rc set when the key is missing. */
const cJSON *mf_get(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, int *rc);
/* obj[key] when it is an object, or NULL with *rc set. */
const cJSON *mf_get_object(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, int *rc);
/* An integer in lo..hi (bounds within +-2^53) into *out; 0 or the error code. */
int mf_get_int(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, double lo, double hi,
               double *out);
/* A string, copied into *out (the caller frees it); 0, the error code, or DS_SHARD_ENOMEM. */
int mf_get_str(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, char **out);

/* The media part. A media object is written, and checked, only when some medium was sharded (audio or
 * video set): without one, mf_check_media and mf_add_media do nothing and succeed, and a manifest without
 * the key reads as zeros. */

/* The ranges of ds_manifest_media's fields; code (DS_SHARD_EINVAL on write, DS_SHARD_ECORRUPT on read)
 * with a message naming path and the field, or DS_SHARD_OK. */
int mf_check_media(const ds_manifest_media *md, const char *path, int code, char *err, size_t errlen);
/* Add md as root's "media" object; 0, or -1 when out of memory (root still owns what was added). */
int mf_add_media(cJSON *root, const ds_manifest_media *md);
/* Read the "media" object o into md; every key is required once the object is there, and mf_check_media
 * checks the values afterwards. On failure md may hold some strings, which ds_manifest_free releases. */
int mf_read_media(const mf_rctx *c, const cJSON *o, ds_manifest_media *md);

#endif
