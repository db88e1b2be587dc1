/* empd inspect: one sample of a shards folder, as text, PNG frames and wav audio. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset/avamerg.h"
#include "dataset/image.h"
#include "dataset/shard.h"
#include "dataset/wordpiece.h"
#include "trainer/commands.h"
#include "models/errors.h"
#include "trainer/paths.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: empd inspect DIR --sample N [--split NAME] [--out DIR] [--vocab FILE]\n\n"
               "  DIR            a shards folder (manifest.json + *.lmdb)\n"
               "  --sample N     the sample's index within its split\n"
               "  --split NAME   train, val or test (train)\n"
               "  --out DIR      also write each utterance's frames as PNG (uttU-frameF.png) and audio as\n"
               "                 16 kHz wav (uttU.wav) into DIR (created if missing)\n"
               "  --vocab FILE   vocab.txt to print tokens as text (default: the one empd shard uses)\n");
}

static const char *vocab_str(const ds_manifest *m, const char *name, int32_t id)
{
    const ds_manifest_vocab *v = ds_manifest_find_vocab(m, name);
    return v && id >= 0 && (size_t)id < v->items.n ? v->items.v[id] : "?";
}

static void print_tokens(const wp_vocab *voc, const uint16_t *tok, int n)
{
    for (int i = 0; i < n; i++) {
        const char *t = voc ? wp_vocab_token(voc, tok[i]) : NULL;
        if (t)
            printf(t[0] == '#' && t[1] == '#' ? "%s" : " %s", t[0] == '#' && t[1] == '#' ? t + 2 : t);
        else
            printf(" %u", (unsigned)tok[i]);
    }
    printf("\n");
}

static void print_record(const ds_manifest *m, const ds_record *r, const wp_vocab *voc)
{
    static const char *const meta_vocab[DS_META_N] = {"age",   "gender", "timbre", NULL,  "age",
                                                      "gender", "timbre", NULL,    "topic", "event_scenario",
                                                      "emotion_cause", "goal_to_response"};
    static const char *const meta_name[DS_META_N] = {
        "speaker_age",  "speaker_gender",  "speaker_timbre",  "speaker_id", "listener_age",  "listener_gender",
        "listener_timbre", "listener_id", "topic", "event_scenario*", "emotion_cause*", "goal_to_response*"};
    static const char *const roles[] = {"speaker", "listener", "listener_response"};
    printf("sample %u: conversation %s, label7 %d (%s), label32 %d (%s), record version %u\n", r->sample_index,
           r->conversation_id, r->label7, r->label7 >= 0 ? am_label7_name(r->label7) : "unlabeled", r->label32,
           r->label32 >= 0 ? am_label32_name(r->label32) : "unlabeled", r->version);
    for (int k = 0; k < DS_META_N; k++)
        if (meta_vocab[k])
            printf("  %-18s %d (%s)\n", meta_name[k], r->meta[k], vocab_str(m, meta_vocab[k], r->meta[k]));
        else
            printf("  %-18s %d\n", meta_name[k], r->meta[k]);
    printf("  (* label-leaking: off in training unless asked for)\n  context (%u tokens):", r->n_ctx);
    print_tokens(voc, r->ctx, r->n_ctx);
    for (int u = 0; u < r->n_utt; u++) {
        const ds_utt *du = &r->utt[u];
        printf("  utt %d: index %u, %s, avatar %d, %u tokens, audio ", u, du->index, roles[du->role], du->avatar,
               du->n_tokens);
        if (du->presence & DS_PRESENT_AUDIO)
            printf("%.2f s", (double)du->n_samples / DS_AUDIO_RATE);
        else
            printf("%s", du->presence & DS_PRESENT_AUDIO_BAD ? "bad file" : "absent");
        printf(", video ");
        if (du->presence & DS_PRESENT_VIDEO) {
            size_t bytes = 0;
            for (int f = 0; f < DS_N_FRAMES; f++)
                bytes += du->frame_len[f];
            printf("%d frames %ux%u %s, %zu bytes\n", DS_N_FRAMES, r->frame_w, r->frame_h,
                   r->frame_format == DS_FRAME_JPEG ? "jpeg" : "raw", bytes);
        } else {
            printf("%s\n", du->presence & DS_PRESENT_VIDEO_BAD ? "bad file" : "absent");
        }
        printf("     ");
        print_tokens(voc, du->tokens, du->n_tokens);
    }
}

static int write_media(const ds_record *r, const char *out, char *err, size_t errlen)
{
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        return md_fail(err, errlen, "%s: cannot create: %s", out, strerror(errno));
    ds_jpeg *j = NULL;
    uint8_t *rgb = r->has_video ? malloc((size_t)r->frame_w * r->frame_h * 3) : NULL;
    int rc = r->has_video && !rgb ? md_fail(err, errlen, "out of memory") : 0;
    if (!rc && r->has_video && r->frame_format == DS_FRAME_JPEG)
        rc = ds_jpeg_open(&j, err, errlen);
    char path[4400];
    int files = 0;
    for (int u = 0; !rc && u < r->n_utt; u++) {
        const ds_utt *du = &r->utt[u];
        if (du->presence & DS_PRESENT_AUDIO) {
            snprintf(path, sizeof path, "%s/utt%d.wav", out, u);
            rc = ds_wav_write(path, du->wave, du->n_samples, DS_AUDIO_RATE, err, errlen);
            files += !rc;
        }
        for (int f = 0; !rc && (du->presence & DS_PRESENT_VIDEO) && f < DS_N_FRAMES; f++) {
            const uint8_t *px = du->frame[f];
            if (r->frame_format == DS_FRAME_JPEG) {
                rc = ds_jpeg_decode(j, du->frame[f], du->frame_len[f], r->frame_w, r->frame_h, rgb, err, errlen);
                px = rgb;
            }
            snprintf(path, sizeof path, "%s/utt%d-frame%d.png", out, u, f);
            if (!rc)
                rc = ds_png_write(path, px, r->frame_w, r->frame_h, err, errlen);
            files += !rc;
        }
    }
    if (!rc)
        printf("inspect: %d files in %s\n", files, out);
    ds_jpeg_close(j);
    free(rgb);
    return rc;
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"sample", required_argument, 0, 'n'}, {"split", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},    {"vocab", required_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    const char *split = "train", *out = NULL, *dir = NULL;
    char vocab[4096], *end;
    int have_vocab = tr_default_vocab(vocab, sizeof vocab), opt;
    long long sample = -1;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'n':
            sample = strtoll(optarg, &end, 10);
            if (!*optarg || *end || sample < 0) {
                fprintf(stderr, "empd inspect: --sample must be an index >= 0, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 's': split = optarg; break;
        case 'o': out = optarg; break;
        case 'v': snprintf(vocab, sizeof vocab, "%s", optarg); have_vocab = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "empd inspect: %s '%s' (empd inspect --help)\n",
                    opt == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
            return 2;
        }
    }
    if (optind + 1 == argc)
        dir = argv[optind];
    if (!dir || sample < 0) {
        fprintf(stderr, "empd inspect: give a shards folder and --sample N (empd inspect --help)\n");
        return 2;
    }
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, DS_MANIFEST_FILE);
    ds_manifest m = {0};
    ds_shard_reader *rd = NULL;
    ds_shard_txn *t = NULL;
    wp_vocab *voc = NULL;
    int rc = ds_manifest_read(path, &m, err, sizeof err);
    const ds_manifest_split *sp = rc ? NULL : ds_manifest_find_split(&m, split);
    if (!rc && !sp)
        rc = md_fail(err, sizeof err, "%s: no split '%s'", path, split);
    if (!rc && (size_t)sample >= sp->count)
        rc = md_fail(err, sizeof err, "%s: split %s has %zu samples, no sample %lld", path, split, sp->count, sample);
    if (!rc)
        rc = ds_shard_reader_open(dir, split, sp->shards.v, sp->shards.n, &rd, err, sizeof err);
    if (!rc)
        rc = ds_shard_txn_begin(rd, &t, err, sizeof err);
    ds_record r;
    if (!rc)
        rc = ds_shard_txn_get(t, (size_t)sample, &r, err, sizeof err);
    if (!rc) {
        /* Text is a convenience: without the vocabulary the ids are printed. */
        char verr[512];
        if (have_vocab && wp_vocab_load(vocab, &voc, verr, sizeof verr) == 0 && strcmp(wp_vocab_md5(voc), m.vocab_md5)) {
            wp_vocab_free(voc);
            voc = NULL;
        }
        print_record(&m, &r, voc);
        if (out)
            rc = write_media(&r, out, err, sizeof err);
    }
    if (rc)
        fprintf(stderr, "empd inspect: %s\n", err);
    wp_vocab_free(voc);
    ds_shard_txn_end(t);
    ds_shard_reader_close(rd);
    ds_manifest_free(&m);
    return rc ? 1 : 0;
}
