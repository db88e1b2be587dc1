/* empd shard: an AvaMERG folder -> LMDB shards + manifest.json, split across MPI ranks, resumable;
 * empd shard verify DIR: every record against its CRC and the manifest. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "dataset/shard.h"
#include "dataset/sharder.h"
#include "trainer/commands.h"
#include "trainer/cpus.h"
#include "trainer/paths.h"
#include "trainer/progress.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: [mpirun -np N] empd shard --data DIR --out DIR [options]\n"
               "       empd shard verify DIR\n\n"
               "  --data DIR          AvaMERG folder (train.json at its root or in audio_v5_0/)\n"
               "  --out DIR           shard folder to write (manifest.json + {train,val,test}-NNNNN.lmdb); a killed\n"
               "                      run started again with the same input and options continues where it stopped\n"
               "  --json FILE         read this json instead of looking in --data\n"
               "  --audio-dir DIR     the .wav files (default DATA/audio_v5_0)\n"
               "  --video-dir DIR     the .mp4 files (default DATA/video_v5_0)\n"
               "  --media WHAT        all, audio, video or none: which media to decode and store (all)\n"
               "  --audio-seconds S   waveforms are cut to S seconds (10)\n"
               "  --frame-size N      frames are resized to N x N (224), or give WxH\n"
               "  --frames FORMAT     jpeg or raw storage of frames (jpeg)\n"
               "  --jpeg-quality Q    1..100 (90)\n"
               "  --threads N         decoding threads per rank (default: the cores of this host / ranks on it)\n"
               "  --part-samples N    samples per shard file (64); ranks split the files among them\n"
               "  --split seed        the seed project's 60/20/20 split (the only split so far)\n"
               "  --split-seed N      random.seed of the split (42)\n"
               "  --vocab FILE        BERT vocab.txt (default: $EMPD_VOCAB or third_party/bert-base-uncased/vocab.txt)\n"
               "  --utt-tokens N      tokens kept per utterance, [CLS] and [SEP] included (128)\n"
               "  --ctx-tokens N      tokens kept of the context (256)\n"
               "  --on-error MODE     skip: bad conversations and undecodable media files are counted and listed in\n"
               "                      the manifest; fail: the first one stops the run (skip)\n"
               "  --labels 7|32       the label space empd train uses by default (7); records hold both\n"
               "  --quiet             no progress bar and no summary line\n");
}

static int parse_long(const char *s, const char *what, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "empd shard: %s must be an integer in %ld..%ld, got '%s'\n", what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_frame_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (*end == 'x')
        b = strtol(end + 1, &end, 10);
    if (!*s || *end || a < 16 || a > 1024 || b < 16 || b > 1024) {
        fprintf(stderr, "empd shard: --frame-size must be N or WxH with each in 16..1024, got '%s'\n", s);
        return -1;
    }
    *w = (int)a;
    *h = (int)b;
    return 0;
}

/* The position of v in the NULL-terminated list of choices, or -1 after one line naming them. */
static int one_of(const char *v, const char *flag, const char *const *choices)
{
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(v, choices[i]))
            return i;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", choices[i]);
    }
    fprintf(stderr, "empd shard: %s must be one of %s, got '%s'\n", flag, list, v);
    return -1;
}

static int cmd_shard_verify(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: empd shard verify DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, DS_MANIFEST_FILE);
    ds_manifest m = {0};
    ds_shard_verify_stats st = {0};
    int rc = ds_manifest_read(path, &m, err, sizeof err);
    if (!rc)
        rc = ds_shard_verify(dir, &m, &st, err, sizeof err);
    if (rc)
        fprintf(stderr, "empd shard verify: %s\n", err);
    else
        printf("verify: %s: %zu records, %.1f MB, every CRC and count matches manifest.json\n", dir, st.records,
               (double)st.bytes / 1e6);
    ds_manifest_free(&m);
    return rc ? 1 : 0;
}

typedef struct {
    tr_progress bar;
    int show, begun;
    const char *label;
} shard_progress;

/* The bar starts at the first report, which knows this rank's total and what earlier runs finished
 * (counted as done, not in the rate). */
static void on_progress(void *ctx, size_t done, size_t total)
{
    shard_progress *p = ctx;
    if (!p->begun) {
        tr_progress_begin(&p->bar, p->show, p->label, "samples", (int64_t)done, (int64_t)total);
        p->begun = 1;
    }
    tr_progress_update(&p->bar, (int64_t)done, NULL);
}

/* How many ranks failed, agreed by all; a rank that cannot take part in the vote counts them all. */
static int64_t count_failures(comm_group *g, int rc)
{
    int64_t f = rc != 0;
    if (comm_allreduce(g, &f, 1, COMM_I64, COMM_SUM, NULL, 0))
        return comm_size(g);
    return f;
}

static int report_failure(comm_group *g, int rc, const char *err)
{
    int64_t failed = count_failures(g, rc);
    if (rc && (failed < comm_size(g) || comm_rank(g) == 0)) {
        if (failed < comm_size(g))
            fprintf(stderr, "empd shard: rank %d: %s\n", comm_rank(g), err);
        else
            fprintf(stderr, "empd shard: %s\n", err);
        fflush(stderr);
    }
    return failed != 0;
}

static int default_threads(comm_group *g) { return tr_default_threads(comm_local_size(g)); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_summary(comm_group *g, ds_sharder *s, const ds_sharder_opts *o, const ds_sharder_stats *st,
                          double seconds)
{
    int64_t v[3] = {(int64_t)st->utterances, (int64_t)st->parts_written, (int64_t)st->parts_resumed};
    if (comm_allreduce(g, v, 3, COMM_I64, COMM_SUM, NULL, 0) || comm_rank(g) != 0)
        return;
    ds_sharder_plan p;
    ds_sharder_get_plan(s, &p);
    const ds_manifest *m = ds_sharder_manifest(s);
    printf("shard: %s -> %s: train %zu, val %zu, test %zu samples, %zu utterances in %zu files (%lld resumed); ",
           p.json_path, o->out_dir, p.n_train, p.n_val, p.n_test, p.n_utterances, p.n_parts, (long long)v[2]);
    if (m && m->media.audio)
        printf("audio %lld present, %lld missing, %lld bad; ", (long long)m->media.audio_present,
               (long long)m->media.audio_missing, (long long)m->media.audio_bad);
    if (m && m->media.video)
        printf("video %lld present, %lld missing, %lld bad; ", (long long)m->media.video_present,
               (long long)m->media.video_missing, (long long)m->media.video_bad);
    printf("%zu conversations skipped (see manifest.json); %.1f s, %.1f utterances/s on %d rank%s x %d thread%s\n",
           p.n_skipped, seconds, seconds > 0 ? (double)v[0] / seconds : 0.0, comm_size(g),
           comm_size(g) > 1 ? "s" : "", o->threads, o->threads > 1 ? "s" : "");
    fflush(stdout);
}

static int run_shard(ds_sharder_opts *o, int threads_given, int quiet)
{
    char err[1024] = "";
    comm_group *g;
    if (comm_init(NULL, NULL, &g, err, sizeof err)) {
        fprintf(stderr, "empd shard: %s\n", err);
        return 1;
    }
    if (!threads_given)
        o->threads = default_threads(g);
    double t0 = now_s();
    ds_sharder *s = NULL;
    int rank = comm_rank(g), rc = ds_sharder_open(o, &s, err, sizeof err);
    if (report_failure(g, rc, err))
        goto out;
    rc = rank == 0 ? ds_sharder_prepare(s, err, sizeof err) : 0;
    if (report_failure(g, rc, err))
        goto out;
    /* Ranks take the files in turn, so rank 0's share tracks the whole job's; the bar says whose it is. */
    shard_progress pr = {.show = rank == 0 && !quiet && tr_progress_tty(),
                         .label = comm_size(g) > 1 ? "shard (rank 0)" : "shard"};
    ds_sharder_stats st;
    rc = ds_sharder_write(s, rank, comm_size(g), on_progress, &pr, &st, err, sizeof err);
    if (pr.begun)
        tr_progress_end(&pr.bar);
    if (report_failure(g, rc, err))
        goto out;
    rc = rank == 0 ? ds_sharder_finish(s, err, sizeof err) : 0;
    if (report_failure(g, rc, err))
        goto out;
    if (!quiet)
        print_summary(g, s, o, &st, now_s() - t0);
    rc = 0;
out:
    ds_sharder_close(s);
    comm_finalize(g, NULL, 0);
    return rc ? 1 : 0;
}

int cmd_shard(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "verify"))
        return cmd_shard_verify(argc - 1, argv + 1);
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},          {"out", required_argument, 0, 'o'},
        {"split", required_argument, 0, 's'},         {"vocab", required_argument, 0, 'v'},
        {"json", required_argument, 0, 'j'},          {"utt-tokens", required_argument, 0, 'u'},
        {"ctx-tokens", required_argument, 0, 'c'},    {"split-seed", required_argument, 0, 'S'},
        {"on-error", required_argument, 0, 'e'},      {"labels", required_argument, 0, 'l'},
        {"audio-dir", required_argument, 0, 'A'},     {"video-dir", required_argument, 0, 'V'},
        {"media", required_argument, 0, 'm'},         {"audio-seconds", required_argument, 0, 'a'},
        {"frame-size", required_argument, 0, 'f'},    {"frames", required_argument, 0, 'F'},
        {"jpeg-quality", required_argument, 0, 'q'},  {"threads", required_argument, 0, 't'},
        {"part-samples", required_argument, 0, 'p'},  {"quiet", no_argument, 0, 'Q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    ds_sharder_opts o;
    ds_sharder_opts_default(&o);
    char vocab[4096];
    int have_vocab = tr_default_vocab(vocab, sizeof vocab), opt, threads_given = 0, quiet = 0, k;
    long v;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': o.data_dir = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'j': o.json_path = optarg; break;
        case 'A': o.audio_dir = optarg; break;
        case 'V': o.video_dir = optarg; break;
        case 'v': snprintf(vocab, sizeof vocab, "%s", optarg); have_vocab = 1; break;
        case 'Q': quiet = 1; break;
        case 's':
            if (one_of(optarg, "--split", (const char *[]){"seed", NULL}) < 0)
                return 2;
            break;
        case 'u':
        case 'c':
            if (parse_long(optarg, opt == 'u' ? "--utt-tokens" : "--ctx-tokens", 2, 65535, &v))
                return 2;
            *(opt == 'u' ? &o.utt_max_tokens : &o.ctx_max_tokens) = (int)v;
            break;
        case 'S':
            if (parse_long(optarg, "--split-seed", 0, 2147483647L, &v))
                return 2;
            o.split_seed = v;
            break;
        case 'e':
            if ((k = one_of(optarg, "--on-error", (const char *[]){"skip", "fail", NULL})) < 0)
                return 2;
            o.on_error = k ? AM_ON_ERROR_FAIL : AM_ON_ERROR_SKIP;
            break;
        case 'l':
            if ((k = one_of(optarg, "--labels", (const char *[]){"7", "32", NULL})) < 0)
                return 2;
            o.labels = k ? 32 : 7;
            break;
        case 'm':
            if ((k = one_of(optarg, "--media", (const char *[]){"all", "audio", "video", "none", NULL})) < 0)
                return 2;
            o.audio = k == 0 || k == 1;
            o.video = k == 0 || k == 2;
            break;
        case 'a': {
            char *end;
            o.audio_max_seconds = strtod(optarg, &end);
            if (!*optarg || *end || !(o.audio_max_seconds > 0 && o.audio_max_seconds <= 600)) {
                fprintf(stderr, "empd shard: --audio-seconds must be a number in (0, 600], got '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'f':
            if (parse_frame_size(optarg, &o.frame_w, &o.frame_h))
                return 2;
            break;
        case 'F':
            if ((k = one_of(optarg, "--frames", (const char *[]){"jpeg", "raw", NULL})) < 0)
                return 2;
            o.frame_format = k ? DS_FRAME_RAW : DS_FRAME_JPEG;
            break;
        case 'q':
            if (parse_long(optarg, "--jpeg-quality", 1, 100, &v))
                return 2;
            o.jpeg_quality = (int)v;
            break;
        case 't':
            if (parse_long(optarg, "--threads", 1, 256, &v))
                return 2;
            o.threads = (int)v;
            threads_given = 1;
            break;
        case 'p':
            if (parse_long(optarg, "--part-samples", 1, 1000000, &v))
                return 2;
            o.part_samples = (int)v;
            break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "empd shard: %s '%s' (empd shard --help lists the options)\n",
                    opt == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
            return 2;
        }
    }
    if (!o.data_dir || !o.out_dir || optind < argc) {
        fprintf(stderr, "empd shard: --data and --out are required (empd shard --help)\n");
        return 2;
    }
    if (!have_vocab) {
        fprintf(stderr, "empd shard: no BERT vocabulary at %s (run launch/setup, or give --vocab FILE)\n", vocab);
        return 1;
    }
    o.vocab_path = vocab;
    return run_shard(&o, threads_given, quiet);
}
