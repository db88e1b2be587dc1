/* Fuzzes ds_manifest_read (dataset/manifest.c + manifest_media.c), the reader of shards/manifest.json. Every
 * outcome leaves a manifest that ds_manifest_free releases without leaks. A manifest that reads must be one
 * whole JSON document, be accepted by ds_manifest_write (it checks the same invariants) and read back from what
 * it wrote to the same contents. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/manifest.h"
#include "dataset/record.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/memfile.h"

static int same_str(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

static int same_strv(const ds_strv *a, const ds_strv *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]))
            return 0;
    return 1;
}

static void check_equal(const ds_manifest *a, const ds_manifest *b)
{
    CHECK(a->version == b->version && a->format_version == b->format_version && a->labels == b->labels);
    CHECK(same_str(a->created_by, b->created_by) && same_str(a->source_data_dir, b->source_data_dir) &&
          same_str(a->source_json, b->source_json));
    CHECK(a->n_splits == b->n_splits && a->n_skips == b->n_skips && a->n_vocabs == b->n_vocabs);
    for (int i = 0; i < a->n_splits; i++) {
        const ds_manifest_split *x = &a->splits[i], *y = ds_manifest_find_split(b, x->name);
        CHECK(y && x->count == y->count && same_strv(&x->shards, &y->shards));
        CHECK(same_strv(&x->conversation_ids, &y->conversation_ids));
        CHECK(!memcmp(x->label7_hist, y->label7_hist, sizeof x->label7_hist) &&
              !memcmp(x->label32_hist, y->label32_hist, sizeof x->label32_hist));
    }
    for (int i = 0; i < a->n_skips; i++)
        CHECK(!strcmp(a->skips[i].reason, b->skips[i].reason) && a->skips[i].count == b->skips[i].count);
    CHECK(same_strv(&a->skip_lines, &b->skip_lines));
    for (int i = 0; i < a->n_vocabs; i++) {
        const ds_manifest_vocab *y = ds_manifest_find_vocab(b, a->vocabs[i].name);
        CHECK(y && same_strv(&a->vocabs[i].items, &y->items));
    }
    CHECK(!strcmp(a->vocab_md5, b->vocab_md5) && a->vocab_size == b->vocab_size);
    CHECK(a->utt_max_tokens == b->utt_max_tokens && a->ctx_max_tokens == b->ctx_max_tokens);
    const ds_manifest_media *p = &a->media, *q = &b->media;
    CHECK(p->audio == q->audio && p->video == q->video);
    if (p->audio || p->video) {
        CHECK(p->audio_rate == q->audio_rate && p->audio_max_seconds == q->audio_max_seconds);
        CHECK(p->n_frames == q->n_frames && p->frame_w == q->frame_w && p->frame_h == q->frame_h);
        CHECK(p->frame_format == q->frame_format && p->jpeg_quality == q->jpeg_quality);
        CHECK(same_str(p->scaler, q->scaler) && same_str(p->audio_dir, q->audio_dir) &&
              same_str(p->video_dir, q->video_dir));
        CHECK(p->audio_present == q->audio_present && p->audio_missing == q->audio_missing &&
              p->audio_bad == q->audio_bad && p->video_present == q->video_present &&
              p->video_missing == q->video_missing && p->video_bad == q->video_bad);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    ds_manifest m;
    char err[512];
    err[0] = 0;
    int rc = ds_manifest_read(memfile_put(in, n), &m, err, sizeof err);
    if (rc != DS_SHARD_OK) {
        CHECK(rc < 0 && err[0] != 0);
        ds_manifest_free(&m);
        return 0;
    }
    CHECK(check_whole_json(in, n));
    /* A private folder per rewrite (ds_manifest_write publishes through path.tmp and a rename), gone before
     * any check can abort. */
    char dir[] = "/dev/shm/empd-fuzz-manifest-XXXXXX", path[sizeof dir + 32];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/%s", dir, DS_MANIFEST_FILE);
    int wrc = ds_manifest_write(&m, path, err, sizeof err);
    ds_manifest back;
    char err2[512] = "";
    int rrc = wrc == DS_SHARD_OK ? ds_manifest_read(path, &back, err2, sizeof err2) : DS_SHARD_OK;
    unlink(path);
    rmdir(dir);
    if (wrc != DS_SHARD_OK) {
        fprintf(stderr, "a manifest that reads does not write: %s\n", err);
        abort();
    }
    if (rrc != DS_SHARD_OK) {
        fprintf(stderr, "a rewritten manifest does not read: %s\n", err2);
        abort();
    }
    check_equal(&m, &back);
    ds_manifest_free(&m);
    ds_manifest_free(&back);
    return 0;
}
