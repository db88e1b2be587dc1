#include "models/hf_import.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/errors.h"
#include "models/safetensors.h"

static int starts_with(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

static int ends_with_part(const char *s, const char *part, size_t *stem)
{
    size_t n = strlen(s), k = strlen(part);
    if (n < k || strcmp(s + n - k, part) || (n > k && s[n - k - 1] != '.'))
        return 0;
    *stem = n - k;
    return 1;
}

static int is_ignored(const hf_import_rules *r, const char *name, const char *rest)
{
    for (int i = 0; i < HF_IMPORT_MAX_RULES && r->ignore[i]; i++)
        if (starts_with(name, r->ignore[i]) || starts_with(rest, r->ignore[i]))
            return 1;
    return 0;
}

/* The other spelling of a name's last part, if it has one (LayerNorm gamma/beta, the two
 * generations of weight norm); 0 when there is none. */
static int other_spelling(const char *name, char *buf, size_t n)
{
    static const char *const pairs[][2] = {
        {"gamma", "weight"},
        {"beta", "bias"},
        {"weight_g", "parametrizations.weight.original0"},
        {"weight_v", "parametrizations.weight.original1"},
        {"parametrizations.weight.original0", "weight_g"},
        {"parametrizations.weight.original1", "weight_v"},
    };
    size_t stem;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (ends_with_part(name, pairs[i][0], &stem))
            return snprintf(buf, n, "%.*s%s", (int)stem, name, pairs[i][1]) < (int)n;
    return 0;
}

static int find_param(const mp_params *ps, const char *prefix, const char *rest)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < ps->n; i++) {
        const char *name = ps->v[i].name;
        if (plen && (strncmp(name, prefix, plen) || name[plen] != '.'))
            continue;
        if (!strcmp(name + (plen ? plen + 1 : 0), rest))
            return i;
    }
    return -1;
}

/* The parameter a file tensor fills, by its name after the file prefix: as spelled, then in the
 * other spelling. -1 when none. */
static int match_param(const mp_params *ps, const char *prefix, const char *rest)
{
    char alt[512];
    int i = find_param(ps, prefix, rest);
    if (i < 0 && other_spelling(rest, alt, sizeof alt))
        i = find_param(ps, prefix, alt);
    return i;
}

static int under_prefix(const char *name, const char *prefix)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    return !plen || (!strncmp(name, prefix, plen) && name[plen] == '.');
}

static const char *shape_text(char *buf, size_t n, const int64_t *shape, int ndim)
{
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < n)
        snprintf(buf + at, n - at, "]");
    return buf;
}

static int tc_dtype_of_st(st_dtype d, tc_dtype *out)
{
    switch (d) {
    case ST_F32: *out = TC_F32; return 1;
    case ST_F16: *out = TC_F16; return 1;
    case ST_BF16: *out = TC_BF16; return 1;
    default: return 0;
    }
}

/* Checks tensor t against parameter p: dtype and shape. */
static int check_tensor(const char *path, const st_tensor *t, const mp_param *p, char *err, size_t errlen)
{
    tc_dtype dt;
    if (!tc_dtype_of_st(t->dtype, &dt))
        return md_fail(err, errlen, "%s: tensor '%s' is %s; only F32, F16 and BF16 load into the model's '%s'", path,
                       t->name, st_dtype_name(t->dtype), p->name);
    int64_t shape[TC_MAX_DIMS];
    int ndim = tc_ndim(p->t), same = ndim == t->ndim;
    for (int d = 0; d < ndim && d < TC_MAX_DIMS; d++) {
        shape[d] = tc_size(p->t, d);
        same = same && shape[d] == t->shape[d];
    }
    if (!same) {
        char a[160], b[160];
        return md_fail(err, errlen, "%s: tensor '%s' has shape %s, the model's '%s' is %s", path, t->name,
                       shape_text(a, sizeof a, t->shape, t->ndim), p->name, shape_text(b, sizeof b, shape, ndim));
    }
    return 0;
}

/* p <- t converted to p's dtype, without autograd. */
static int copy_tensor(const char *path, const st_tensor *t, const mp_param *p, char *err, size_t errlen)
{
    tc_dtype dt = TC_F32;
    tc_dtype_of_st(t->dtype, &dt);
    /* safetensors promises no alignment; torch's kernels expect element alignment. */
    void *aligned = NULL, *data = (void *)(uintptr_t)t->data;
    if ((uintptr_t)data % st_dtype_size(t->dtype) != 0) {
        aligned = malloc(t->nbytes ? t->nbytes : 1);
        if (!aligned)
            return md_fail(err, errlen, "%s: tensor '%s': out of memory", path, t->name);
        memcpy(aligned, t->data, t->nbytes);
        data = aligned;
    }
    tc_scope *s = tc_scope_begin();
    tc_tensor *src = tc_from_blob(data, t->shape, t->ndim, dt);
    int rc = src ? tc_copy_(p->t, src) : TC_ETORCH;
    int end = s ? tc_scope_end(s) : TC_ENOMEM;
    free(aligned);
    if (rc != TC_OK || end != TC_OK)
        return md_fail(err, errlen, "%s: tensor '%s': copying into the model's '%s' failed: %s", path, t->name, p->name,
                       tc_last_error());
    return 0;
}

/* Matches every file tensor to a parameter (match[i], -1 when ignored) and checks the whole
 * file; 0 when it can be copied as it is. */
static int check_file(mp_params *ps, const st_file *f, const char *path, const hf_import_rules *r, int *match,
                      int *by_param, int *ignored, char *err, size_t errlen)
{
    size_t n = st_count(f);
    int unexpected = 0;
    const char *first_unexpected = NULL;
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        const char *rest = r->file_prefix && starts_with(t->name, r->file_prefix) ? t->name + strlen(r->file_prefix)
                                                                                  : t->name;
        match[i] = -1;
        if (is_ignored(r, t->name, rest)) {
            (*ignored)++;
            continue;
        }
        int p = match_param(ps, r->prefix, rest);
        if (p < 0) {
            if (!unexpected++)
                first_unexpected = t->name;
            continue;
        }
        if (by_param[p] >= 0)
            return md_fail(err, errlen, "%s: tensors '%s' and '%s' both fill the model's '%s'", path,
                           st_at(f, (size_t)by_param[p])->name, t->name, ps->v[p].name);
        if (check_tensor(path, t, &ps->v[p], err, errlen) != 0)
            return -1;
        match[i] = p;
        by_param[p] = (int)i;
    }
    if (unexpected)
        return md_fail(err, errlen, "%s: tensor '%s' matches nothing in the model (%d unexpected tensor%s)", path,
                       first_unexpected, unexpected, unexpected == 1 ? "" : "s");
    int missing = 0;
    const char *first_missing = NULL;
    for (int p = 0; p < ps->n; p++)
        if (by_param[p] < 0 && under_prefix(ps->v[p].name, r->prefix) && !missing++)
            first_missing = ps->v[p].name;
    if (missing)
        return md_fail(err, errlen, "%s: the model's '%s' is missing from the file (%d missing tensor%s)", path,
                       first_missing, missing, missing == 1 ? "" : "s");
    return 0;
}

int hf_import(mp_params *ps, const char *path, const hf_import_rules *rules, hf_import_report *rep, char *err,
              size_t errlen)
{
    if (rep)
        *rep = (hf_import_report){0, 0};
    st_file *f;
    if (st_open(path, &f, err, errlen) != 0)
        return -1;
    size_t n = st_count(f);
    int *match = malloc((n + 1) * sizeof *match), *by_param = malloc(((size_t)ps->n + 1) * sizeof *by_param);
    int ignored = 0, loaded = 0, rc = -1, was;
    if (!match || !by_param) {
        md_fail(err, errlen, "%s: out of memory", path);
        goto done;
    }
    for (int p = 0; p < ps->n; p++)
        by_param[p] = -1;
    if (check_file(ps, f, path, rules, match, by_param, &ignored, err, errlen) != 0)
        goto done;
    was = tc_grad_enabled_set(0);
    rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (match[i] >= 0) {
            rc = copy_tensor(path, st_at(f, i), &ps->v[match[i]], err, errlen);
            loaded += rc == 0;
        }
    tc_grad_enabled_set(was);
    if (rc == 0 && rep)
        *rep = (hf_import_report){loaded, ignored};
done:
    free(match);
    free(by_param);
    st_close(f);
    return rc;
}
