/* Fuzzes tr_config_load (trainer/config.c) on arbitrary config files and --set overrides. The input up to the
 * first NUL byte is the file; each later NUL-terminated piece is one --set (at most 8). A configuration that
 * loads must come from one whole JSON document and reload from its own canonical JSON to the same struct, the
 * same text and the same hashes (that text is what a checkpoint stores and a resume reads back), and that text
 * must name every documented field exactly once, nested in its sections, and nothing else. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/check.h"
#include "tests/fuzz/memfile.h"
#include "trainer/config.h"

#define MAX_SETS 8

/* The documented fields, as `empd train --help` prints them (first word of each line). */
static char **field_names(int *n)
{
    static char **names;
    static int count;
    if (!names) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        CHECK(f != NULL);
        tr_config_print_fields(f);
        fclose(f);
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            names = realloc(names, (size_t)(count + 1) * sizeof *names);
            CHECK(names != NULL);
            char key[128];
            CHECK(sscanf(line, "%127s", key) == 1);
            names[count++] = strdup(key);
        }
        free(text);
    }
    *n = count;
    return names;
}

/* Counts the leaves of the canonical JSON under prefix (NULL at the top), each of which must be a documented
 * field, into seen[]: a dotted or empty key, an empty object or a key named twice would be a value the struct
 * never saw (a typo that trains silently with a default). */
static void check_leaves(const cJSON *o, const char *prefix, int *seen)
{
    int n;
    char **names = field_names(&n);
    if (!o->child) {
        fprintf(stderr, "canonical config has the empty object '%s'\n", prefix ? prefix : "");
        abort();
    }
    for (const cJSON *c = o->child; c; c = c->next) {
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", c->string);
        if (cJSON_IsObject(c)) {
            check_leaves(c, path, seen);
            continue;
        }
        int k = 0;
        while (k < n && strcmp(names[k], path) != 0)
            k++;
        if (k == n || seen[k]++) {
            fprintf(stderr, "canonical config has the key '%s'%s\n", path, k == n ? "" : " twice");
            abort();
        }
    }
}

/* The canonical JSON names every documented field exactly once. */
static void check_canonical(const char *json)
{
    int n;
    field_names(&n);
    int *seen = calloc((size_t)n, sizeof *seen);
    cJSON *canon = cJSON_Parse(json);
    CHECK(seen != NULL && cJSON_IsObject(canon));
    check_leaves(canon, NULL, seen);
    for (int k = 0; k < n; k++)
        CHECK(seen[k] == 1);
    cJSON_Delete(canon);
    free(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    char *buf = malloc(n + 1);
    CHECK(buf != NULL);
    memcpy(buf, in, n);
    buf[n] = 0;
    size_t file_len = strlen(buf);
    char *sets[MAX_SETS];
    int n_sets = 0;
    for (size_t at = file_len + 1; at < n && n_sets < MAX_SETS; at += strlen(buf + at) + 1)
        sets[n_sets++] = buf + at;

    tr_config c;
    char err[512];
    err[0] = 0;
    int rc = tr_config_load(memfile_put(buf, file_len), sets, n_sets, &c, err, sizeof err);
    if (rc != 0) {
        CHECK(rc == -1 && err[0] != 0 && c.json == NULL);
        free(buf);
        return 0;
    }
    CHECK(c.json != NULL && check_whole_json(buf, file_len));
    check_canonical(c.json);

    tr_config back;
    rc = tr_config_load(memfile_put(c.json, strlen(c.json)), NULL, 0, &back, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "canonical config does not reload: %s\n%s\n", err, c.json);
        abort();
    }
    CHECK(strcmp(back.json, c.json) == 0);
    CHECK(strcmp(back.model_hash, c.model_hash) == 0 && strcmp(back.config_hash, c.config_hash) == 0);
    CHECK(memcmp(&c.data, &back.data, sizeof c.data) == 0);
    CHECK(memcmp(&c.model, &back.model, sizeof c.model) == 0);
    CHECK(memcmp(&c.train, &back.train, sizeof c.train) == 0);
    tr_config_free(&c);
    tr_config_free(&back);
    free(buf);
    return 0;
}
