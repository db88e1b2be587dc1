#include "models/hf_export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/safetensors.h"

static int make_dir(const char *dir, char *err, size_t errlen)
{
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        if (mkdir(parent, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: cannot create: %s", parent, strerror(errno));
            return -1;
        }
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int hf_export(const mp_params *ps, const char *prefix, const char *dir, const char *config_json, char *err,
              size_t errlen)
{
    size_t plen = strlen(prefix);
    st_tensor *ts = calloc((size_t)ps->n + 1, sizeof *ts);
    if (!ts) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    size_t n = 0;
    for (int i = 0; i < ps->n; i++) {
        const char *name = ps->v[i].name;
        if (strncmp(name, prefix, plen) || name[plen] != '.')
            continue;
        tc_tensor *t = ps->v[i].t;
        ts[n] = (st_tensor){.name = name + plen + 1, .dtype = ST_F32, .ndim = tc_ndim(t), .data = tc_data_ptr(t),
                            .nbytes = (size_t)tc_numel(t) * sizeof(float)};
        for (int d = 0; d < ts[n].ndim; d++)
            ts[n].shape[d] = tc_size(t, d);
        if (tc_dtype_of(t) != TC_F32 || !ts[n].data) {
            snprintf(err, errlen, "%s: parameter '%s' is not a contiguous f32 host tensor", dir, name);
            free(ts);
            return -1;
        }
        n++;
    }
    char path[4200];
    int rc = 0;
    if (n == 0) {
        snprintf(err, errlen, "%s: the model has no parameters named '%s.*'", dir, prefix);
        rc = -1;
    }
    if (rc == 0)
        rc = make_dir(dir, err, errlen);
    /* The weights first: a folder with a config.json is a complete one. */
    if (rc == 0) {
        static const char *const meta[] = {"format", "pt"};
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = st_write(path, ts, n, meta, 1, err, errlen);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        rc = st_write_bytes(path, config_json, strlen(config_json), err, errlen);
    }
    free(ts);
    return rc;
}
