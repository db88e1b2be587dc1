/* empd synth: a small AvaMERG-format corpus, text and media, with learnable and noisy signals. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataset/synth_media.h"
#include "dataset/synth_text.h"
#include "trainer/commands.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: empd synth --out DIR [--conversations N] [--seed N] [--media all|audio|video|none]\n"
               "                  [--threads N] [--cues]\n\n"
               "  --out DIR            folder to write train.json, test.json, audio_v5_0/ and video_v5_0/ into\n"
               "                       (created if missing; use a fresh one)\n"
               "  --conversations N    labeled conversations in train.json (300)\n"
               "  --seed N             same seed, same bytes in every file (1)\n"
               "  --media M            which media to write (all)\n"
               "  --threads N          threads: one speaks, the others encode video (2)\n"
               "  --cues               also write %s, the cue classes the generator chose (debugging)\n",
            SYNTH_MEDIA_CUES_FILE);
}

static int parse_media(const char *s)
{
    static const char *const names[] = {"none", "audio", "video", "all"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},
        {"conversations", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},
        {"media", required_argument, 0, 'm'},
        {"threads", required_argument, 0, 't'},
        {"cues", no_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *out = NULL;
    long n = 300, threads = 2;
    unsigned long long seed = 1;
    synth_media_opts mo = {SYNTH_MEDIA_ALL, 2, 0};
    int opt;
    char *end;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 'n':
            n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > SYNTH_TEXT_MAX_CONVERSATIONS) {
                fprintf(stderr, "empd synth: --conversations must be 1..%d, got '%s'\n", SYNTH_TEXT_MAX_CONVERSATIONS,
                        optarg);
                return 2;
            }
            break;
        case 's':
            seed = strtoull(optarg, &end, 10);
            if (*end || !*optarg) {
                fprintf(stderr, "empd synth: --seed must be a non-negative integer, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if ((mo.media = parse_media(optarg)) < 0) {
                fprintf(stderr, "empd synth: --media must be all, audio, video or none, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 't':
            threads = strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > 64) {
                fprintf(stderr, "empd synth: --threads must be 1..64, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'c': mo.write_cues = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "empd synth: %s '%s' (empd synth --help lists the options)\n",
                    opt == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
            return 2;
        }
    }
    if (!out || optind < argc) {
        fprintf(stderr, "empd synth: --out DIR is required (empd synth --help)\n");
        return 2;
    }
    mo.threads = (int)threads;
    char err[1024];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (synth_text_write(out, (int)n, seed, err, sizeof err)) {
        fprintf(stderr, "empd synth: %s\n", err);
        return 1;
    }
    synth_media_summary s;
    if (synth_media_write(out, seed, &mo, &s, err, sizeof err)) {
        fprintf(stderr, "empd synth: %s\n", err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("synth: %ld conversations -> %s (train.json, test.json): %d utterances with media in %d conversations, "
           "%d wav, %d mp4, missing %d wav / %d mp4, corrupt %d wav / %d mp4, AppleDouble %d + %d in __MACOSX, "
           "%.1f s\n",
           n, out, s.n_utterances, s.n_conversations, s.n_wav, s.n_mp4, s.n_missing_wav, s.n_missing_mp4,
           s.n_corrupt_wav, s.n_corrupt_mp4, s.n_appledouble, s.n_macosx, secs);
    return 0;
}
