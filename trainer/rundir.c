#include "trainer/rundir.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/checkpoint.h"
#include "models/errors.h"

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Rewrites metrics.jsonl with only the events of steps <= step (a line without a step is kept). */
static int truncate_metrics(const char *path, int64_t step, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : md_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    char *kept = NULL, *line = NULL;
    size_t len = 0, cap = 0, lcap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &lcap, f)) > 0) {
        /* A line cut short by the stop (no newline, or not JSON) is dropped with the rest. */
        cJSON *j = line[n - 1] == '\n' ? cJSON_ParseWithLength(line, (size_t)n) : NULL;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
        int keep = cJSON_IsObject(j) && (!cJSON_IsNumber(s) || s->valuedouble <= (double)step);
        cJSON_Delete(j);
        if (!keep)
            continue;
        if (len + (size_t)n > cap) {
            char *grown = realloc(kept, cap = (len + (size_t)n) * 2);
            if (!grown) {
                rc = md_fail(err, errlen, "%s: out of memory", path);
                break;
            }
            kept = grown;
        }
        memcpy(kept + len, line, (size_t)n);
        len += (size_t)n;
    }
    free(line);
    fclose(f);
    if (rc == 0)
        rc = tr_write_file_atomic(path, kept ? kept : "", len, err, errlen);
    free(kept);
    return rc;
}

/* Whether checkpoint folder ck lies in run folder dir's checkpoints/. */
static int belongs_to(const char *ck, const char *dir)
{
    char a[PATH_MAX], b[PATH_MAX], mine[4200];
    snprintf(mine, sizeof mine, "%s/checkpoints", dir);
    if (!realpath(ck, a) || !realpath(mine, b))
        return 0;
    char *slash = strrchr(a, '/');
    if (slash)
        *slash = 0;
    return !strcmp(a, b);
}

int tr_rundir_open(const char *dir, int64_t resume_step, const char *resumed_from, const char *config_json,
                   FILE **metrics, char *err, size_t errlen)
{
    char metrics_path[4200], ck[4200], latest[4300];
    *metrics = NULL;
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", dir);
    snprintf(ck, sizeof ck, "%s/checkpoints", dir);
    int starts_here = resume_step < 0 || (resumed_from && !belongs_to(resumed_from, dir));
    if (starts_here && (exists(metrics_path) || exists(ck)))
        return md_fail(err, errlen, "%s already holds a run: continue it with --resume auto, or choose another --out%s", dir,
                    resume_step < 0 ? "" : " to continue a checkpoint of another run");
    if (resume_step >= 0) {
        int found = tr_ckpt_find_latest(dir, latest, sizeof latest, err, errlen);
        if (found < 0)
            return -1;
        const char *name = found ? strrchr(latest, '/') : NULL;
        long long newest = name ? strtoll(name + 6, NULL, 10) : -1; /* "/step-NNNNNNNN" */
        if (newest > resume_step)
            return md_fail(err, errlen, "%s has a newer checkpoint (step %lld) than the one resumed from (step %lld): "
                        "resume from the newest, remove the newer ones, or use another --out", dir, newest,
                        (long long)resume_step);
    }
    if (mkdir_p(dir) != 0)
        return md_fail(err, errlen, "%s: cannot create the run folder: %s", dir, strerror(errno));
    if (resume_step >= 0 && truncate_metrics(metrics_path, resume_step, err, errlen))
        return -1;
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (tr_write_file_atomic(cfg, config_json, strlen(config_json), err, errlen))
        return -1;
    if (!(*metrics = fopen(metrics_path, "a")))
        return md_fail(err, errlen, "%s: cannot open: %s", metrics_path, strerror(errno));
    return 0;
}
