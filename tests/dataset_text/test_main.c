/* test_main.c: runs every group of test_dataset_text, and the helpers they share. */
#define _GNU_SOURCE
#include "test_dataset_text.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void)
{
    if (tmpdir[0])
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tdt_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/empd-dataset-text-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            tmpdir[0] = '\0';
            fail_msg("mkdtemp failed");
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

void tdt_path(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", tdt_tmpdir(), name); }

const char *tdt_write_file(const char *name, const char *text)
{
    static char path[512];
    tdt_path(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

char *tdt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *tdt_pyref(const char *fmt, ...)
{
    static char args[16384], cmd[17000];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    assert_true(len >= 0 && (size_t)len < sizeof args);
    snprintf(cmd, sizeof cmd, "'%s' '%s/pyref.py' %s", TDT_PYTHON, TDT_SOURCE_DIR, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (size_t got; (got = fread(out + n, 1, cap - n - 1, p)) > 0;) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[n] = '\0';
    int status = pclose(p);
    if (status != 0)
        fail_msg("reference failed (status %d): %s", status, cmd);
    return out;
}

int main(void)
{
    int failed = 0;
    failed += tdt_run_avamerg();
    failed += tdt_run_pyrandom();
    failed += tdt_run_split();
    failed += tdt_run_sampler();
    failed += tdt_run_synth_text();
    return failed ? 1 : 0;
}
