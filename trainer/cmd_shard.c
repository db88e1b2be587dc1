/* empd shard: an AvaMERG folder -> LMDB shards + manifest.json. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/sharder.h"
#include "trainer/commands.h"
#include "trainer/paths.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: empd shard --data DIR --out DIR [--split seed] [--labels 7|32] [--vocab FILE]\n"
               "                  [--json FILE] [--utt-tokens N] [--ctx-tokens N] [--split-seed N]\n"
               "                  [--on-error skip|fail]\n\n"
               "  --data DIR         AvaMERG folder (train.json at its root or in audio_v5_0/)\n"
               "  --out DIR          shard folder to write (manifest.json + {train,val,test}-NNNNN.lmdb)\n"
               "  --split seed       the seed project's 60/20/20 split (the only split so far)\n"
               "  --split-seed N     random.seed of the split (42)\n"
               "  --vocab FILE       BERT vocab.txt (default: $EMPD_VOCAB or third_party/bert-base-uncased/vocab.txt)\n"
               "  --json FILE        read this json instead of looking in --data\n"
               "  --utt-tokens N     tokens kept per utterance, [CLS] and [SEP] included (128)\n"
               "  --ctx-tokens N     tokens kept of the context (256)\n"
               "  --on-error MODE    skip (count and list bad conversations in the manifest) or fail (skip)\n"
               "  --labels 7|32      the label space empd train uses by default (7); records hold both\n");
}

static int parse_int(const char *s, const char *what, long lo, long hi, long *out)
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

int cmd_shard(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},       {"out", required_argument, 0, 'o'},
        {"split", required_argument, 0, 's'},      {"vocab", required_argument, 0, 'v'},
        {"json", required_argument, 0, 'j'},       {"utt-tokens", required_argument, 0, 'u'},
        {"ctx-tokens", required_argument, 0, 'c'}, {"split-seed", required_argument, 0, 'S'},
        {"on-error", required_argument, 0, 'e'},   {"labels", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    ds_sharder_opts o = {.utt_max_tokens = 128, .ctx_max_tokens = 256, .split_seed = 42, .on_error = AM_ON_ERROR_SKIP,
                         .labels = 7};
    char vocab[4096];
    int have_vocab = tr_default_vocab(vocab, sizeof vocab), opt;
    long v;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': o.data_dir = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'j': o.json_path = optarg; break;
        case 'v': snprintf(vocab, sizeof vocab, "%s", optarg); have_vocab = 1; break;
        case 's':
            if (strcmp(optarg, "seed")) {
                fprintf(stderr, "empd shard: --split '%s' is unknown (only 'seed')\n", optarg);
                return 2;
            }
            break;
        case 'u':
        case 'c':
            if (parse_int(optarg, opt == 'u' ? "--utt-tokens" : "--ctx-tokens", 2, 65535, &v))
                return 2;
            *(opt == 'u' ? &o.utt_max_tokens : &o.ctx_max_tokens) = (int)v;
            break;
        case 'S':
            if (parse_int(optarg, "--split-seed", 0, 2147483647L, &v))
                return 2;
            o.split_seed = v;
            break;
        case 'e':
            if (strcmp(optarg, "skip") && strcmp(optarg, "fail")) {
                fprintf(stderr, "empd shard: --on-error must be skip or fail, got '%s'\n", optarg);
                return 2;
            }
            o.on_error = strcmp(optarg, "fail") ? AM_ON_ERROR_SKIP : AM_ON_ERROR_FAIL;
            break;
        case 'l':
            if (strcmp(optarg, "7") && strcmp(optarg, "32")) {
                fprintf(stderr, "empd shard: --labels must be 7 or 32, got '%s'\n", optarg);
                return 2;
            }
            o.labels = atoi(optarg);
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
    ds_sharder_summary sum;
    char err[1024];
    if (ds_sharder_run(&o, &sum, err, sizeof err)) {
        fprintf(stderr, "empd shard: %s\n", err);
        return 1;
    }
    printf("shard: %s -> %s: train %zu, val %zu, test %zu samples; %zu conversations skipped (see manifest.json)\n",
           sum.json_path, o.out_dir, sum.n_train, sum.n_val, sum.n_test, sum.n_skipped);
    return 0;
}
