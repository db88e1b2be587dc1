/* test_synth: the mini-AvaMERG media (dataset/synth_media.h): same seed same bytes, the AID naming rule,
 * the deliberate mess, and (through check_media.py: ffprobe, PyAV, CPython's wave, numpy) decodable files
 * whose audio and video follow their cues.
 *
 * Every corpus is written in a child process: espeak-ng's output depends on what it said before in the
 * process (synth_media.h), so each corpus needs a process whose espeak-ng is fresh. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataset/avamerg.h"
#include "dataset/md5.h"
#include "dataset/synth_media.h"
#include "dataset/synth_text.h"
#include "tests/common/test_files.h"

typedef struct {
    char dir[600];
    synth_media_summary sum;
    double secs;
} corpus;

static char root[64];
static corpus A, B, C; /* A and B: same seed; C: another seed */

/* Writes text and media in a child; the parent gets the summary through a pipe. */
static int make_corpus(corpus *c, const char *name, int n, uint64_t seed, int threads)
{
    snprintf(c->dir, sizeof c->dir, "%s/%s", root, name);
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        char err[1024];
        synth_media_opts o = {SYNTH_MEDIA_ALL, threads, 1};
        synth_media_summary s;
        int rc = synth_text_write(c->dir, n, seed, err, sizeof err);
        if (rc == 0)
            rc = synth_media_write(c->dir, seed, &o, &s, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "synth %s: %s\n", name, err);
        else if (write(fds[1], &s, sizeof s) != (ssize_t)sizeof s)
            rc = 1;
        _exit(rc ? 1 : 0);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], &c->sum, sizeof c->sum);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c->secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return pid > 0 && got == (ssize_t)sizeof c->sum && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (tf_make_temp_dir(root, "empd-synth") != 0)
        return -1;
    if (make_corpus(&A, "a", 60, 5, 2) || make_corpus(&B, "b", 60, 5, 1) || make_corpus(&C, "c", 8, 6, 2))
        return -1;
    fprintf(stderr, "synth: %d utterances in %.1f s (2 threads), %.1f s (1 thread)\n", A.sum.n_utterances, A.secs,
            B.secs);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tf_remove_tree(root);
    return 0;
}

/* ---- the tree as sorted "relative-path md5" lines ---- */

typedef struct {
    char **v;
    size_t n, cap;
} lines;

static void lines_add(lines *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    l->v[l->n] = strdup(s);
    assert_non_null(l->v[l->n++]);
}

static void lines_free(lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void hash_tree(const char *base, const char *rel, lines *out)
{
    char path[1200];
    snprintf(path, sizeof path, "%s%s%s", base, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[1200], full[2400], line[1300], hex[33], err[256];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", base, sub);
        struct stat st;
        assert_int_equal(stat(full, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            hash_tree(base, sub, out);
            continue;
        }
        if (md5_file_hex(full, hex, err, sizeof err) != 0)
            fail_msg("%s", err);
        snprintf(line, sizeof line, "%s %s", sub, hex);
        lines_add(out, line);
    }
    closedir(d);
    qsort(out->v, out->n, sizeof *out->v, cmp_str);
}

static void test_same_seed_same_bytes(void **state)
{
    (void)state;
    lines a = {0}, b = {0}, c = {0};
    hash_tree(A.dir, "", &a);
    hash_tree(B.dir, "", &b);
    hash_tree(C.dir, "", &c);
    assert_true(a.n > 500);
    assert_int_equal(a.n, b.n); /* B was written by one thread, A by two */
    for (size_t i = 0; i < a.n; i++) {
        if (strcmp(a.v[i], b.v[i]) != 0)
            fail_msg("same seed, different trees: '%s' vs '%s'", a.v[i], b.v[i]);
        assert_null(strstr(a.v[i], ".tmp"));
    }
    /* Another seed: other json, and no media file of C has the bytes of any media file of A. */
    size_t media = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (!strncmp(c.v[i], "train.json ", 11))
            for (size_t j = 0; j < a.n; j++)
                if (!strncmp(a.v[j], "train.json ", 11))
                    assert_string_not_equal(c.v[i], a.v[j]);
        if (!strstr(c.v[i], "_v5_0/dia"))
            continue; /* json, sidecar and the AppleDouble files, which are all alike */
        media++;
        const char *hc = strchr(c.v[i], ' ');
        for (size_t j = 0; j < a.n; j++) {
            const char *ha = strchr(a.v[j], ' ');
            if (strstr(a.v[j], "_v5_0/dia") && !strcmp(hc, ha))
                fail_msg("another seed, same bytes: %s and %s", c.v[i], a.v[j]);
        }
    }
    assert_true(media > 30);
    print_message("tree: %zu files identical for the same seed; another seed: %zu media files, none like A's\n",
                  a.n, media);
    lines_free(&a);
    lines_free(&b);
    lines_free(&c);
}

/* ---- names ---- */

typedef struct {
    char split[8], cid[16], wav[12], mp4[12];
    int k, aid;
} cue_row;

static cue_row *read_cues(const char *dir, size_t *n)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, SYNTH_MEDIA_CUES_FILE);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f)); /* header */
    cue_row *v = NULL;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        v = realloc(v, (*n + 1) * sizeof *v);
        assert_non_null(v);
        cue_row *r = &v[(*n)++];
        int got = sscanf(line, "%7s %15s %d %d %*d %*d %*d %*d %*f %*f %11s %*d %*d %11s", r->split, r->cid, &r->k,
                         &r->aid, r->wav, r->mp4);
        assert_int_equal(got, 6);
    }
    fclose(f);
    return v;
}

static const cue_row *find_row(const cue_row *v, size_t n, const char *cid, int k)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].cid, cid) && v[i].k == k)
            return &v[i];
    return NULL;
}

static int exists(const char *dir, const char *sub, const char *cid, int k, int aid, const char *ext)
{
    char path[800];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/dia%sutt%d_%d.%s", dir, sub, cid, k, aid, ext);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Every utterance of train.json has its files under the AID rule unless the plan left them out; test.json has
 * no profiles, so its files are found by prefix, with one hidden AID per role. */
static void check_split_names(const char *json, const cue_row *rows, size_t n_rows, int *n_utt)
{
    char path[700], err[512];
    snprintf(path, sizeof path, "%s/%s", A.dir, json);
    am_corpus c;
    if (am_corpus_load(path, AM_ON_ERROR_FAIL, &c, err, sizeof err) != AM_OK)
        fail_msg("%s", err);
    int labeled = strcmp(json, "train.json") == 0;
    for (size_t i = 0; i < c.n; i++) {
        const am_sample *s = &c.v[i];
        int role_aid[2] = {-1, -1};
        for (int u = 0; u < s->n_utt; u++) {
            const am_utt *au = &s->utt[u];
            const cue_row *r = find_row(rows, n_rows, s->conversation_id, au->index);
            assert_non_null(r);
            (*n_utt)++;
            int aid = labeled ? au->avatar_id : r->aid;
            assert_int_equal(r->aid, aid);
            assert_true(aid >= 1 && aid <= 99);
            if (!labeled) {
                int side = au->index % 2;
                if (role_aid[side] >= 0)
                    assert_int_equal(role_aid[side], aid);
                role_aid[side] = aid;
            }
            assert_int_equal(exists(A.dir, "audio_v5_0", s->conversation_id, au->index, aid, "wav"),
                             strcmp(r->wav, "missing") != 0);
            assert_int_equal(exists(A.dir, "video_v5_0", s->conversation_id, au->index, aid, "mp4"),
                             strcmp(r->mp4, "missing") != 0);
        }
    }
    am_corpus_free(&c);
}

static int count_prefixed(const char *dir, const char *sub, const char *prefix, const char *ext)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), el = strlen(ext);
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 && len > el && !strcmp(e->d_name + len - el, ext);
    }
    closedir(d);
    return n;
}

static void test_names_follow_aid_rule(void **state)
{
    (void)state;
    size_t n_rows;
    cue_row *rows = read_cues(A.dir, &n_rows);
    int n_utt = 0;
    check_split_names("train.json", rows, n_rows, &n_utt);
    check_split_names("test.json", rows, n_rows, &n_utt);
    assert_int_equal(n_utt, A.sum.n_utterances);
    assert_int_equal((size_t)n_utt, n_rows);
    int test_rows = 0;
    for (size_t i = 0; i < n_rows; i++)
        test_rows += !strcmp(rows[i].split, "test");
    assert_true(test_rows > 0);
    free(rows);
}

static void test_mess_is_counted(void **state)
{
    (void)state;
    const synth_media_summary *s = &A.sum;
    print_message("mess: %d utterances, %d wav, %d mp4, missing %d/%d, corrupt %d/%d, AppleDouble %d + %d\n",
                  s->n_utterances, s->n_wav, s->n_mp4, s->n_missing_wav, s->n_missing_mp4, s->n_corrupt_wav,
                  s->n_corrupt_mp4, s->n_appledouble, s->n_macosx);
    assert_int_equal(s->n_wav + s->n_missing_wav, s->n_utterances);
    assert_int_equal(s->n_mp4 + s->n_missing_mp4, s->n_utterances);
    assert_true(s->n_missing_wav > 0 && s->n_missing_wav < s->n_utterances / 10);
    assert_true(s->n_missing_mp4 > 0 && s->n_missing_mp4 < s->n_utterances / 10);
    assert_int_equal(s->n_corrupt_wav, 1);
    assert_int_equal(s->n_corrupt_mp4, 1);
    assert_int_equal(s->n_macosx, 6);
    assert_true(s->n_appledouble > 0);
    assert_int_equal(count_prefixed(A.dir, "audio_v5_0", "dia", ".wav"), s->n_wav);
    assert_int_equal(count_prefixed(A.dir, "video_v5_0", "dia", ".mp4"), s->n_mp4);
    assert_int_equal(count_prefixed(A.dir, "audio_v5_0", "._dia", ".wav") +
                         count_prefixed(A.dir, "video_v5_0", "._dia", ".mp4"),
                     s->n_appledouble);
    assert_int_equal(count_prefixed(A.dir, "__MACOSX/audio_v5_0", "._dia", ".wav") +
                         count_prefixed(A.dir, "__MACOSX/video_v5_0", "._dia", ".mp4"),
                     s->n_macosx);
    assert_int_equal(count_prefixed(A.dir, "audio_v5_0", "", ".tmp") + count_prefixed(A.dir, "video_v5_0", "", ".tmp"),
                     0);
}

/* ffprobe, PyAV, wave and numpy read the files and measure the cues. */
static void test_media_decode_and_carry_cues(void **state)
{
    (void)state;
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "%s %s/check_media.py %s 2>&1", TSY_PYTHON, TSY_SOURCE_DIR, A.dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[1024], last[1024] = "";
    while (fgets(line, sizeof line, p)) {
        if (strstr(line, "moov atom not found")) /* FFmpeg's own log line for the corrupt file */
            continue;
        print_message("%s", line);
        snprintf(last, sizeof last, "%s", line);
    }
    int rc = pclose(p);
    assert_int_equal(rc, 0);
    assert_string_equal(last, "OK\n");
}

static void test_options_and_errors(void **state)
{
    (void)state;
    char dir[700], err[512];
    synth_media_summary s;
    synth_media_opts none = {0, 2, 0}, bad = {SYNTH_MEDIA_ALL, 0, 0}, all = {SYNTH_MEDIA_ALL, 2, 0};
    snprintf(dir, sizeof dir, "%s/empty", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(synth_media_write(dir, 1, &none, &s, err, sizeof err), SYNTH_MEDIA_OK);
    assert_int_equal(s.n_utterances, 0);
    assert_int_equal(tf_count_entries(dir, ""), 0);
    assert_int_equal(synth_media_write(dir, 1, &bad, &s, err, sizeof err), SYNTH_MEDIA_ERR_ARG);
    assert_int_equal(synth_media_write(dir, 1, &all, &s, err, sizeof err), SYNTH_MEDIA_ERR_INPUT);
    assert_non_null(strstr(err, "train.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_names_follow_aid_rule),
        cmocka_unit_test(test_mess_is_counted),
        cmocka_unit_test(test_media_decode_and_carry_cues),
        cmocka_unit_test(test_options_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
