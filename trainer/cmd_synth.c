/* empd synth: a small AvaMERG-format corpus with a learnable text signal. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "dataset/synth_text.h"
#include "trainer/commands.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: empd synth --out DIR [--conversations N] [--seed N]\n\n"
               "  --out DIR            folder to write train.json and test.json into (created if missing)\n"
               "  --conversations N    labeled conversations in train.json (300)\n"
               "  --seed N             same seed, same bytes (1)\n");
}

int cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},
        {"conversations", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *out = NULL;
    long n = 300;
    unsigned long long seed = 1;
    int opt;
    char *end;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 'n':
            n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 1000000) {
                fprintf(stderr, "empd synth: --conversations must be 1..1000000, got '%s'\n", optarg);
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
    char err[1024];
    if (synth_text_write(out, (int)n, seed, err, sizeof err)) {
        fprintf(stderr, "empd synth: %s\n", err);
        return 1;
    }
    printf("synth: %ld conversations -> %s/train.json, %s/test.json\n", n, out, out);
    return 0;
}
