/* empd tokenize: BERT WordPiece ids of UTF-8 lines on stdin, one output line per input line. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/wordpiece.h"
#include "trainer/commands.h"

static void tokenize_usage(FILE *f)
{
    fprintf(f,
            "usage: empd tokenize --vocab PATH [--max-len N]\n"
            "\n"
            "Reads UTF-8 lines on stdin (any length; a trailing \\n or \\r\\n is not part of the line) and\n"
            "prints, for each, the BERT WordPiece ids (uncased) with [CLS] first and [SEP] last,\n"
            "separated by spaces.\n"
            "\n"
            "options:\n"
            "  --vocab PATH   BERT vocab.txt, one token per line (launch/fetch-vocab writes\n"
            "                 third_party/bert-base-uncased/vocab.txt)\n"
            "  --max-len N    cut each line's ids to N (N >= 2), keeping [SEP] last, as HF truncation\n"
            "                 does; default: no cut\n"
            "  --help         this text\n");
}

/* wp_vocab_load's message starts with the path; the command's line already names it. */
static const char *tokenize_reason(const char *err, const char *path)
{
    size_t n = strlen(path);
    return !strncmp(err, path, n) && !strncmp(err + n, ": ", 2) ? err + n + 2 : err;
}

static int tokenize_write_ids(const uint32_t *ids, size_t n, char **buf, size_t *cap)
{
    size_t need = n * 11 + 1;   /* up to 10 digits and a separator per id */
    if (need > *cap) {
        char *grown = realloc(*buf, need);
        if (!grown)
            return -1;
        *buf = grown;
        *cap = need;
    }
    char *o = *buf;
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, i ? " %" PRIu32 : "%" PRIu32, ids[i]);
    *o++ = '\n';
    return fwrite(*buf, 1, (size_t)(o - *buf), stdout) == (size_t)(o - *buf) ? 0 : -1;
}

static int tokenize_stream(const wp_vocab *v, size_t max_len)
{
    uint32_t cls = (uint32_t)wp_vocab_id(v, "[CLS]"), sep = (uint32_t)wp_vocab_id(v, "[SEP]");
    char *line = NULL, *out = NULL;
    size_t line_cap = 0, out_cap = 0, ids_cap = 256, lineno = 0;
    uint32_t *ids = malloc(ids_cap * sizeof *ids);
    int rc = ids ? 0 : 1;
    ssize_t got;
    while (!rc && (got = getline(&line, &line_cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n')
            len--;
        if (len && line[len - 1] == '\r')
            len--;
        size_t n;
        /* Encode into the buffer's middle; a line with more ids than room is encoded again. */
        while (!(rc = wp_encode(v, line, len, ids + 1, ids_cap - 2, &n)) && n + 2 > ids_cap) {
            uint32_t *grown = realloc(ids, (n + 2) * sizeof *ids);
            if (!grown) {
                rc = -1;
                break;
            }
            ids = grown;
            ids_cap = n + 2;
        }
        if (rc) {
            fprintf(stderr, "empd tokenize: stdin line %zu: out of memory for %zu ids\n", lineno, n + 2);
            break;
        }
        if (max_len && n > max_len - 2)
            n = max_len - 2;
        ids[0] = cls;
        ids[n + 1] = sep;
        if (tokenize_write_ids(ids, n + 2, &out, &out_cap)) {
            fprintf(stderr, "empd tokenize: cannot write ids of stdin line %zu: %s\n", lineno, strerror(errno));
            rc = 1;
        }
    }
    if (!ids)
        fprintf(stderr, "empd tokenize: out of memory\n");
    rc = rc ? 1 : 0;
    if (!rc && ferror(stdin)) {
        fprintf(stderr, "empd tokenize: read error on stdin after line %zu: %s\n", lineno, strerror(errno));
        rc = 1;
    }
    if (!rc && fflush(stdout)) {
        fprintf(stderr, "empd tokenize: cannot write ids: %s\n", strerror(errno));
        rc = 1;
    }
    free(line);
    free(out);
    free(ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *vocab_path = NULL;
    size_t max_len = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            tokenize_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc || (strcmp(argv[i], "--vocab") && strcmp(argv[i], "--max-len"))) {
            fprintf(stderr, "empd tokenize: %s '%s' (empd tokenize --help lists the options)\n",
                    i + 1 >= argc && (!strcmp(argv[i], "--vocab") || !strcmp(argv[i], "--max-len"))
                        ? "missing value after"
                        : "unknown argument",
                    argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--vocab")) {
            vocab_path = argv[++i];
        } else {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || argv[i][0] == '-' || n < 2 || n > SIZE_MAX / 8) {
                fprintf(stderr, "empd tokenize: --max-len '%s' must be an integer >= 2\n", argv[i]);
                return 2;
            }
            max_len = (size_t)n;
        }
    }
    if (!vocab_path) {
        fprintf(stderr, "empd tokenize: --vocab PATH is required (launch/fetch-vocab fetches "
                        "third_party/bert-base-uncased/vocab.txt)\n");
        return 2;
    }
    wp_vocab *v;
    char err[512];
    if (wp_vocab_load(vocab_path, &v, err, sizeof err)) {
        fprintf(stderr, "empd tokenize: cannot open vocab '%s': %s\n", vocab_path, tokenize_reason(err, vocab_path));
        return 1;
    }
    int rc = tokenize_stream(v, max_len);
    wp_vocab_free(v);
    return rc;
}
