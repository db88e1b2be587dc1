/* manifest_media.c: the manifest's "media" object (what the sharder decoded and how it stored it): its
 * checks, its JSON and its reading; manifest.c calls these for the whole manifest. */
#include "dataset/error.h"
#include "dataset/manifest_internal.h"
#include "dataset/record.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DS_MEDIA_MAX_SIDE    4096    /* frame width and height */
#define DS_MEDIA_MAX_SECONDS 86400   /* audio_max_seconds; keeps every count of samples within 32 bits */

/* The integer fields of "media" with their ranges, and its six utterance counts ("media.counts"). */
static const struct {
    const char *key;
    size_t off;
    int lo, hi;
} media_ints[] = {
    {"audio_rate", offsetof(ds_manifest_media, audio_rate), DS_AUDIO_RATE, DS_AUDIO_RATE},
    {"n_frames", offsetof(ds_manifest_media, n_frames), DS_N_FRAMES, DS_N_FRAMES},
    {"frame_width", offsetof(ds_manifest_media, frame_w), 1, DS_MEDIA_MAX_SIDE},
    {"frame_height", offsetof(ds_manifest_media, frame_h), 1, DS_MEDIA_MAX_SIDE},
    {"jpeg_quality", offsetof(ds_manifest_media, jpeg_quality), 1, 100},
};
#define N_MEDIA_INTS (sizeof media_ints / sizeof *media_ints)

static const struct {
    const char *key;
    size_t off;
} media_counts[6] = {
    {"audio_present", offsetof(ds_manifest_media, audio_present)},
    {"audio_missing", offsetof(ds_manifest_media, audio_missing)},
    {"audio_bad", offsetof(ds_manifest_media, audio_bad)},
    {"video_present", offsetof(ds_manifest_media, video_present)},
    {"video_missing", offsetof(ds_manifest_media, video_missing)},
    {"video_bad", offsetof(ds_manifest_media, video_bad)},
};

#define MEDIA_FIELD(md, type, off) (*(type *)(void *)((char *)(md) + (off)))

static int media_written(const ds_manifest_media *md) { return md->audio || md->video; }

int mf_check_media(const ds_manifest_media *md, const char *path, int code, char *err, size_t errlen)
{
    if (!media_written(md))
        return DS_SHARD_OK;
    if ((md->audio != 0 && md->audio != 1) || (md->video != 0 && md->video != 1))
        return ds_fail(err, errlen, code, "%s: media.audio, media.video: %d, %d (expected 0 or 1)", path, md->audio,
                       md->video);
    for (size_t i = 0; i < N_MEDIA_INTS; i++) {
        int v = MEDIA_FIELD(md, const int, media_ints[i].off);
        if (v < media_ints[i].lo || v > media_ints[i].hi)
            return ds_fail(err, errlen, code, "%s: media.%s: %d (expected %d..%d)", path, media_ints[i].key, v,
                           media_ints[i].lo, media_ints[i].hi);
    }
    if (!(md->audio_max_seconds > 0 && md->audio_max_seconds <= DS_MEDIA_MAX_SECONDS))
        return ds_fail(err, errlen, code, "%s: media.audio_max_seconds: %g (expected > 0 and <= %d)", path,
                       md->audio_max_seconds, DS_MEDIA_MAX_SECONDS);
    if (md->frame_format != DS_FRAME_RAW && md->frame_format != DS_FRAME_JPEG)
        return ds_fail(err, errlen, code, "%s: media.frame_format: %d (expected raw %d or jpeg %d)", path,
                       md->frame_format, DS_FRAME_RAW, DS_FRAME_JPEG);
    for (int i = 0; i < 6; i++) {
        int64_t v = MEDIA_FIELD(md, const int64_t, media_counts[i].off);
        int sharded = i < 3 ? md->audio : md->video;
        if (v < 0 || (!sharded && v != 0))
            return ds_fail(err, errlen, code, "%s: media.counts.%s: %lld (expected %s)", path, media_counts[i].key,
                           (long long)v, sharded ? ">= 0" : "0: that medium was not sharded");
    }
    return DS_SHARD_OK;
}

int mf_add_media(cJSON *root, const ds_manifest_media *md)
{
    if (!media_written(md))
        return 0;
    cJSON *o = cJSON_AddObjectToObject(root, "media");
    int bad = !o || !cJSON_AddBoolToObject(o, "audio", md->audio) ||
              !cJSON_AddNumberToObject(o, "audio_max_seconds", md->audio_max_seconds) ||
              !cJSON_AddStringToObject(o, "audio_dir", md->audio_dir ? md->audio_dir : "") ||
              !cJSON_AddBoolToObject(o, "video", md->video) ||
              !cJSON_AddStringToObject(o, "frame_format", md->frame_format == DS_FRAME_JPEG ? "jpeg" : "raw") ||
              !cJSON_AddStringToObject(o, "scaler", md->scaler ? md->scaler : "") ||
              !cJSON_AddStringToObject(o, "video_dir", md->video_dir ? md->video_dir : "");
    for (size_t i = 0; !bad && i < N_MEDIA_INTS; i++)
        bad = !cJSON_AddNumberToObject(o, media_ints[i].key, MEDIA_FIELD(md, const int, media_ints[i].off));
    cJSON *counts = bad ? NULL : cJSON_AddObjectToObject(o, "counts");
    bad = bad || !counts;
    for (int i = 0; !bad && i < 6; i++)
        bad = !cJSON_AddNumberToObject(counts, media_counts[i].key,
                                       (double)MEDIA_FIELD(md, const int64_t, media_counts[i].off));
    return bad ? -1 : 0;
}

static int get_bool(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, int *out)
{
    int rc = 0;
    const cJSON *v = mf_get(c, obj, key, field, &rc);
    if (rc)
        return rc;
    if (!cJSON_IsBool(v))
        return mf_bad(c, field, "expected true or false");
    *out = cJSON_IsTrue(v);
    return 0;
}

int mf_read_media(const mf_rctx *c, const cJSON *o, ds_manifest_media *md)
{
    int rc = 0;
    char f[64];
    double d;
    const cJSON *v;
    if (!cJSON_IsObject(o))
        return mf_bad(c, "media", "expected an object");
    if ((rc = get_bool(c, o, "audio", "media.audio", &md->audio)) ||
        (rc = mf_get_str(c, o, "audio_dir", "media.audio_dir", &md->audio_dir)) ||
        (rc = get_bool(c, o, "video", "media.video", &md->video)) ||
        (rc = mf_get_str(c, o, "scaler", "media.scaler", &md->scaler)) ||
        (rc = mf_get_str(c, o, "video_dir", "media.video_dir", &md->video_dir)))
        return rc;
    for (size_t i = 0; i < N_MEDIA_INTS; i++) {
        snprintf(f, sizeof f, "media.%s", media_ints[i].key);
        if ((rc = mf_get_int(c, o, media_ints[i].key, f, media_ints[i].lo, media_ints[i].hi, &d)))
            return rc;
        MEDIA_FIELD(md, int, media_ints[i].off) = (int)d;
    }
    if (!(v = mf_get(c, o, "audio_max_seconds", "media.audio_max_seconds", &rc)))
        return rc;
    if (!cJSON_IsNumber(v))
        return mf_bad(c, "media.audio_max_seconds", "expected a number");
    md->audio_max_seconds = v->valuedouble;
    if (!(v = mf_get(c, o, "frame_format", "media.frame_format", &rc)))
        return rc;
    if (!cJSON_IsString(v) || (strcmp(v->valuestring, "raw") != 0 && strcmp(v->valuestring, "jpeg") != 0))
        return mf_bad(c, "media.frame_format", "expected \"raw\" or \"jpeg\"");
    md->frame_format = strcmp(v->valuestring, "jpeg") == 0 ? DS_FRAME_JPEG : DS_FRAME_RAW;
    const cJSON *counts = mf_get_object(c, o, "counts", "media.counts", &rc);
    if (!counts)
        return rc;
    for (int i = 0; i < 6; i++) {
        snprintf(f, sizeof f, "media.counts.%s", media_counts[i].key);
        if ((rc = mf_get_int(c, counts, media_counts[i].key, f, 0, 9007199254740992.0, &d)))
            return rc;
        MEDIA_FIELD(md, int64_t, media_counts[i].off) = (int64_t)d;
    }
    return 0;
}
