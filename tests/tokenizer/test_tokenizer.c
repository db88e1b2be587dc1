/* WordPiece and MD5 against references nobody here wrote: HF's tokenizers.js (npm) on the lines of
 * gen_lines.py, CPython's hashlib for MD5. The references are made at test time in the build folder. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataset/md5.h"
#include "dataset/wordpiece.h"
#include "tests/common/test_files.h"

#define VOCAB_MD5 "64800d5d8528ce344256daf115d4965e"
#define VOCAB_PATH TTOK_SOURCE_DIR "/third_party/bert-base-uncased/vocab.txt"
#define REF_DIR TTOK_SOURCE_DIR "/third_party/node/node_modules/@huggingface/tokenizers"
#define MIN_LINES 2000

typedef struct {
    char *bytes;   /* one line, not NUL-terminated inside (lines may hold NUL) */
    size_t len;
    uint32_t *ref; /* reference ids, [CLS] and [SEP] included */
    size_t nref;
} ref_line;

static wp_vocab *vocab;
static ref_line *lines;
static size_t nlines;

static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

/* Splits text at '\n' into at most max pieces; returns the count. */
static size_t split_lines(char *text, size_t len, char **starts, size_t *lens, size_t max)
{
    size_t n = 0;
    for (size_t at = 0; at < len && n < max;) {
        char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        starts[n] = text + at;
        lens[n++] = end - at;
        at = end + 1;
    }
    return n;
}

static size_t parse_ids(const char *s, size_t len, uint32_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && s[i] == ' ')
            i++;
        if (i >= len)
            break;
        uint32_t v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            v = v * 10 + (uint32_t)(s[i++] - '0');
        if (n < cap)
            out[n] = v;
        n++;
    }
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    struct stat st;
    if (stat(VOCAB_PATH, &st) || stat(REF_DIR "/package.json", &st)) {
        fprintf(stderr, "tokenizer: %s or the npm reference @huggingface/tokenizers is missing: "
                        "run launch/setup (or launch/fetch-vocab)\n", VOCAB_PATH);
        return -1;
    }
    char err[512];
    if (wp_vocab_load(VOCAB_PATH, &vocab, err, sizeof err)) {
        fprintf(stderr, "tokenizer: %s\n", err);
        return -1;
    }
    if (run("'%s' '%s/tests/tokenizer/gen_lines.py' '%s/lines.txt'", TTOK_PYTHON, TTOK_SOURCE_DIR, TTOK_WORK_DIR) ||
        run("'%s' '%s/tests/tokenizer/hf_reference.mjs' '%s' '%s' '%s/lines.txt' '%s/ref.txt'", TTOK_NODE,
            TTOK_SOURCE_DIR, REF_DIR, VOCAB_PATH, TTOK_WORK_DIR, TTOK_WORK_DIR)) {
        fprintf(stderr, "tokenizer: generating lines or the HF reference failed (python %s, node %s)\n",
                TTOK_PYTHON, TTOK_NODE);
        return -1;
    }
    size_t tlen, rlen;
    char *text = tf_read_text(TTOK_WORK_DIR "/lines.txt", &tlen), *ref = tf_read_text(TTOK_WORK_DIR "/ref.txt", &rlen);
    if (!text || !ref)
        return -1;
    size_t max = tlen + 1;
    char **ts = malloc(max * sizeof *ts), **rs = malloc(max * sizeof *rs);
    size_t *tl = malloc(max * sizeof *tl), *rl = malloc(max * sizeof *rl);
    nlines = split_lines(text, tlen, ts, tl, max);
    if (split_lines(ref, rlen, rs, rl, max) != nlines) {
        fprintf(stderr, "tokenizer: %s/ref.txt and lines.txt differ in line count\n", TTOK_WORK_DIR);
        return -1;
    }
    lines = calloc(nlines, sizeof *lines);
    for (size_t i = 0; i < nlines; i++) {
        lines[i].bytes = ts[i];
        lines[i].len = tl[i];
        lines[i].nref = parse_ids(rs[i], rl[i], NULL, 0);
        lines[i].ref = malloc((lines[i].nref + 1) * sizeof *lines[i].ref);
        parse_ids(rs[i], rl[i], lines[i].ref, lines[i].nref);
    }
    free(ts);
    free(rs);
    free(tl);
    free(rl);
    free(ref);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (nlines)
        free(lines[0].bytes);
    for (size_t i = 0; i < nlines; i++)
        free(lines[i].ref);
    free(lines);
    wp_vocab_free(vocab);
    return 0;
}

/* Ids with [CLS]/[SEP] of a NUL-terminated string; returns the count. */
static size_t enc(const char *s, uint32_t *ids, size_t cap)
{
    return wp_encode_special(vocab, s, strlen(s), ids, cap);
}

static void assert_same_ids(const char *a, const char *b)
{
    uint32_t x[256], y[256];
    size_t nx = enc(a, x, 256), ny = enc(b, y, 256);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx * sizeof *x);
}

static void test_known_sentence(void **state)
{
    (void)state;
    const uint32_t want[] = {101, 7592, 1010, 2026, 3899, 2003, 10140, 102};
    uint32_t ids[32];
    size_t n = enc("Hello, my dog is cute", ids, 32);
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want, sizeof want);
    assert_int_equal(wp_vocab_size(vocab), 30522);
    assert_int_equal(wp_vocab_id(vocab, "[CLS]"), 101);
    assert_int_equal(wp_vocab_id(vocab, "[unused0]"), 1);
    assert_int_equal(wp_vocab_id(vocab, "##ing"), 2075);
    assert_int_equal(wp_vocab_id(vocab, "no-such-token"), -1);
    assert_string_equal(wp_vocab_md5(vocab), VOCAB_MD5);
}

static void test_reference_lines(void **state)
{
    (void)state;
    size_t same = 0, shown = 0;
    uint32_t *ids = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < nlines; i++) {
        const ref_line *l = &lines[i];
        if (l->nref + 2 > cap) {
            cap = l->nref + 2;
            ids = realloc(ids, cap * sizeof *ids);
        }
        size_t n = wp_encode_special(vocab, l->bytes, l->len, ids, cap);
        if (n == l->nref && !memcmp(ids, l->ref, n * sizeof *ids)) {
            same++;
        } else if (shown++ < 5) {
            fprintf(stderr, "tokenizer: line %zu differs (%zu ids, reference %zu): %.*s\n", i + 1, n, l->nref,
                    (int)(l->len < 120 ? l->len : 120), l->bytes);
        }
    }
    free(ids);
    printf("tokenizer: %zu/%zu lines identical to HF tokenizers.js\n", same, nlines);
    assert_true(nlines >= MIN_LINES);
    assert_int_equal(same, nlines);
}

static void test_truncation(void **state)
{
    (void)state;
    uint32_t ids[4096];
    size_t checked = 0;
    for (size_t i = 0; i < nlines; i += 7) {
        const ref_line *l = &lines[i];
        if (l->nref > 4096)
            continue;
        size_t body = l->nref - 2, n = 99;
        for (size_t cap = 0; cap <= body + 1; cap += 1 + cap / 3) {
            assert_int_equal(wp_encode(vocab, l->bytes, l->len, cap ? ids : NULL, cap, &n), 0);
            assert_int_equal(n, body);
            size_t kept = cap < body ? cap : body;
            assert_memory_equal(ids, l->ref + 1, kept * sizeof *ids);
        }
        for (size_t max_len = 2; max_len <= l->nref + 1; max_len += 1 + max_len / 2) {
            size_t got = wp_encode_special(vocab, l->bytes, l->len, ids, max_len);
            size_t want = l->nref < max_len ? l->nref : max_len;
            assert_int_equal(got, want);
            assert_int_equal(ids[0], 101);
            assert_int_equal(ids[got - 1], 102);
            assert_memory_equal(ids + 1, l->ref + 1, (got - 2) * sizeof *ids);
        }
        checked++;
    }
    assert_true(checked > 100);
    assert_int_equal(wp_encode_special(vocab, "hello", 5, ids, 1), 0);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    assert_same_ids("a\xff" "b", "ab");
    assert_same_ids("caf\xc3", "caf");
    assert_same_ids("x\xe2\x82y", "xy");
    assert_same_ids("\xed\xa0\x80surrogate", "surrogate");
    assert_same_ids("\xc0\xafover\xe0\x80\xaflong", "overlong");
    assert_same_ids("\xf4\x90\x80\x80" "big\xf8\x88\x80\x80\x80", "big");
    assert_same_ids("\xc3\x28", "(");
    uint32_t ids[600];
    unsigned seed = 12345;
    char buf[512];
    for (int it = 0; it < 20000; it++) {
        size_t len = (size_t)(it % 500);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (char)(seed >> 16);
        }
        size_t n = wp_encode_special(vocab, buf, len, ids, 600);
        assert_true(n >= 2 && n <= 600);
        for (size_t i = 0; i < n; i++)
            assert_true(ids[i] < wp_vocab_size(vocab));
    }
}

static void test_words_and_scripts(void **state)
{
    (void)state;
    uint32_t ids[256];
    char word[512];
    memset(word, 'a', 101);
    word[100] = '\0';
    assert_int_not_equal(enc(word, ids, 256), 3);   /* 100 letters: pieces, no [UNK] */
    assert_int_not_equal(ids[1], 100);
    word[100] = 'a';
    word[101] = '\0';
    assert_int_equal(enc(word, ids, 256), 3);
    assert_int_equal(ids[1], 100);
    /* HF Python and Rust give CJK ideographs beyond the BMP spaces of their own; tokenizers.js only
     * does it for the BMP (UTF-16 units), so the comparison corpus spaces them and this checks the rest. */
    assert_same_ids("a\xf0\xa0\x80\x80" "b", "a \xf0\xa0\x80\x80 b");
    assert_same_ids("x\xf0\xaf\xa0\x80y", "x \xf0\xaf\xa0\x80 y");
    assert_same_ids("CAF\xc3\x89 \xce\x9f\xce\x94\xce\xa5\xce\xa3\xce\xa3\xce\x95\xce\xa5\xce\xa3",
                    "cafe \xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x82");
    assert_same_ids("\xe2\x80\x8bzero\xef\xbb\xbfwidth\x01", "zerowidth");
}

static void test_md5_vs_hashlib(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 3, 55, 56, 57, 63, 64, 65, 127, 128, 1000, 1 << 20};
    uint8_t *data = malloc(1 << 20);
    unsigned seed = 7;
    for (size_t i = 0; i < 1 << 20; i++) {
        seed = seed * 1664525u + 1013904223u;
        data[i] = (uint8_t)(seed >> 24);
    }
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char path[512], out[600], hex[33], err[256], want[64] = "";
        snprintf(path, sizeof path, "%s/md5-%zu.bin", TTOK_WORK_DIR, sizes[k]);
        snprintf(out, sizeof out, "%s.hashlib", path);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, sizes[k], f), sizes[k]);
        fclose(f);
        assert_int_equal(run("'%s' -c 'import hashlib,sys; print(hashlib.md5(open(sys.argv[1],\"rb\").read())"
                             ".hexdigest())' '%s' > '%s'", TTOK_PYTHON, path, out), 0);
        f = fopen(out, "r");
        assert_non_null(f);
        assert_non_null(fgets(want, sizeof want, f));
        fclose(f);
        want[strcspn(want, "\n")] = '\0';
        assert_int_equal(md5_file_hex(path, hex, err, sizeof err), 0);
        assert_string_equal(hex, want);
        md5_ctx c;   /* the same bytes fed in uneven pieces */
        uint8_t d[16];
        md5_init(&c);
        for (size_t at = 0, step = 1; at < sizes[k]; at += step, step = step * 3 % 97 + 1)
            md5_update(&c, data + at, at + step <= sizes[k] ? step : sizes[k] - at);
        md5_final(&c, d);
        md5_hex(d, hex);
        assert_string_equal(hex, want);
    }
    free(data);
    char hex[33], err[256];
    assert_int_equal(md5_file_hex(VOCAB_PATH, hex, err, sizeof err), 0);
    assert_string_equal(hex, VOCAB_MD5);
    assert_int_equal(md5_file_hex("/nonexistent/x", hex, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x"));
}

static wp_vocab *load_text(const char *name, const char *content, size_t len, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", TTOK_WORK_DIR, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
    wp_vocab *v = NULL;
    int rc = wp_vocab_load(path, &v, err, errlen);
    assert_true(rc == 0 ? v != NULL : v == NULL);
    return v;
}

static void test_vocab_files(void **state)
{
    (void)state;
    char err[512];
    wp_vocab *v;
    assert_int_equal(wp_vocab_load("/nonexistent/vocab.txt", &v, err, sizeof err), -1);
    assert_null(v);
    assert_non_null(strstr(err, "/nonexistent/vocab.txt"));
    assert_null(load_text("empty.txt", "", 0, err, sizeof err));
    assert_non_null(strstr(err, "empty"));
    const char no_unk[] = "[PAD]\n[CLS]\n[SEP]\nhello\n";
    assert_null(load_text("no-unk.txt", no_unk, sizeof no_unk - 1, err, sizeof err));
    assert_non_null(strstr(err, "[UNK]"));
    const char nul[] = "[UNK]\n[CLS]\n[SEP]\nhe\0llo\n";
    assert_null(load_text("nul.txt", nul, sizeof nul - 1, err, sizeof err));
    assert_non_null(strstr(err, "line 4"));
    /* CRLF lines, a repeated token (the later id wins), no final newline */
    const char crlf[] = "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r\n##s\r\nhello\r\n!";
    v = load_text("crlf.txt", crlf, sizeof crlf - 1, err, sizeof err);
    assert_non_null(v);
    assert_int_equal(wp_vocab_size(v), 8);
    assert_int_equal(wp_vocab_id(v, "!"), 7);
    uint32_t ids[16];
    size_t n = wp_encode_special(v, "Hellos! xyz", 11, ids, 16);
    const uint32_t want[] = {2, 6, 5, 7, 1, 3};
    assert_int_equal(n, 6);
    assert_memory_equal(ids, want, sizeof want);
    wp_vocab_free(v);
    wp_vocab_free(NULL);
}

typedef struct {
    size_t first, step, bad;
} thread_job;

static void *encode_lines(void *arg)
{
    thread_job *job = arg;
    uint32_t ids[4096];
    for (int round = 0; round < 3; round++)
        for (size_t i = job->first; i < nlines; i += job->step) {
            if (lines[i].nref > 4096)
                continue;
            size_t n = wp_encode_special(vocab, lines[i].bytes, lines[i].len, ids, 4096);
            job->bad += n != lines[i].nref || memcmp(ids, lines[i].ref, n * sizeof *ids);
        }
    return NULL;
}

static void test_threads_share_vocab(void **state)
{
    (void)state;
    enum { NT = 4 };
    pthread_t t[NT];
    thread_job jobs[NT];
    for (size_t i = 0; i < NT; i++) {
        jobs[i] = (thread_job){.first = i % 2, .step = 2};
        assert_int_equal(pthread_create(&t[i], NULL, encode_lines, &jobs[i]), 0);
    }
    for (size_t i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
}

/* The empd binary: same ids as the reference, --max-len, --help, a bad vocab path. */
static void test_cli(void **state)
{
    (void)state;
    if (!TTOK_EMPD[0]) {
        printf("tokenizer: empd is not a target of this build; the CLI test has nothing to run\n");
        skip();
    }
    assert_int_equal(run("'%s' tokenize --vocab '%s' < '%s/lines.txt' > '%s/cli.txt'", TTOK_EMPD, VOCAB_PATH,
                         TTOK_WORK_DIR, TTOK_WORK_DIR), 0);
    assert_int_equal(run("cmp -s '%s/cli.txt' '%s/ref.txt'", TTOK_WORK_DIR, TTOK_WORK_DIR), 0);
    assert_int_equal(run("printf 'Hello, my dog is cute\\r\\nsecond line\\n' | '%s' tokenize --vocab '%s' "
                         "--max-len 5 > '%s/cli5.txt'", TTOK_EMPD, VOCAB_PATH, TTOK_WORK_DIR), 0);
    size_t len;
    char *got = tf_read_text(TTOK_WORK_DIR "/cli5.txt", &len);
    assert_non_null(got);
    assert_string_equal(got, "101 7592 1010 2026 102\n101 2117 2240 102\n");
    free(got);
    assert_int_equal(run("'%s' tokenize --help > '%s/help.txt'", TTOK_EMPD, TTOK_WORK_DIR), 0);
    got = tf_read_text(TTOK_WORK_DIR "/help.txt", &len);
    assert_non_null(got);
    assert_non_null(strstr(got, "--vocab"));
    assert_non_null(strstr(got, "--max-len"));
    free(got);
    assert_int_equal(run("'%s' tokenize --vocab /nonexistent/v.txt < /dev/null 2> '%s/bad.txt'", TTOK_EMPD,
                         TTOK_WORK_DIR), 1);
    got = tf_read_text(TTOK_WORK_DIR "/bad.txt", &len);
    assert_non_null(got);
    assert_non_null(strstr(got, "empd tokenize: cannot open vocab '/nonexistent/v.txt': "));
    assert_non_null(strchr(got, '\n'));
    assert_ptr_equal(strchr(got, '\n'), got + len - 1);   /* one line */
    free(got);
}

int main(void)
{
    mkdir(TTOK_WORK_DIR, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_sentence),
        cmocka_unit_test(test_reference_lines),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_words_and_scripts),
        cmocka_unit_test(test_md5_vs_hashlib),
        cmocka_unit_test(test_vocab_files),
        cmocka_unit_test(test_threads_share_vocab),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests_name("tokenizer", tests, group_setup, group_teardown);
}
