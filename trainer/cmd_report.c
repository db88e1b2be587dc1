/* empd report: the report of a training run folder or of a fusion folder (trainer/report.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/commands.h"
#include "trainer/report.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: empd report [--quiet] DIR...\n"
               "  Writes DIR/report.html (one self-contained page), DIR/report.md, DIR/report.json and the\n"
               "  pictures in DIR/report/, for each DIR: a training run folder (empd train --out: config.json,\n"
               "  metrics.jsonl; finished or not) or a fusion folder (empd fuse --out: fusion.json).\n"
               "  --quiet   print nothing but errors\n");
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {{"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int quiet = 0, o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (o) {
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "empd report: unknown option '%s' (empd report --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        const char *dir = argv[i];
        char path[4200], err[1024];
        struct stat sb;
        if (stat(dir, &sb) || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "empd report: %s: %s\n", dir, errno == ENOENT ? "no such folder" : "not a folder");
            rc = 1;
            continue;
        }
        snprintf(path, sizeof path, "%s/fusion.json", dir);
        int fusion = stat(path, &sb) == 0;
        if ((fusion ? tr_report_fusion : tr_report_run)(dir, err, sizeof err)) {
            fprintf(stderr, "empd report: %s\n", err);
            rc = 1;
            continue;
        }
        if (!quiet)
            printf("report: %s/report.html (report.md, report.json and the pictures in %s/report/ beside it)\n", dir,
                   dir);
    }
    return rc;
}
