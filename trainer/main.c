/* empd: one binary, one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "trainer/commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"synth", cmd_synth, "write a small AvaMERG-format corpus with a learnable signal"},
    {"shard", cmd_shard, "AvaMERG folder -> LMDB shards + manifest.json"},
    {"inspect", cmd_inspect, "print one sample of a shards folder; write its frames (PNG) and audio (wav)"},
    {"train", cmd_train, "train a model on shards (under mpirun/srun for several ranks)"},
    {"fuse", cmd_fuse, "fit late fusion of trained runs' val predictions; report test"},
    {"predict", cmd_predict, "label new conversations (or one utterance) with trained runs and a fusion"},
    {"report", cmd_report, "report.html, report.md and report.json of a run or fusion folder"},
    {"tokenize", cmd_tokenize, "BERT WordPiece ids of UTF-8 lines on stdin"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: empd COMMAND [OPTIONS]   (empd COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "empd: unknown command '%s' (empd --help lists them)\n", argv[1]);
    return 2;
}
