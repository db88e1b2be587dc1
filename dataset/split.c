/* split.c: the seed split (see split.h). */
#include "dataset/split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/pyrandom.h"

void split_seed_sizes(size_t n, size_t *n_train, size_t *n_test, size_t *n_val)
{
    /* Python's int(n*0.6) truncates the double product: keep the same arithmetic, not n*3/5. */
    *n_train = (size_t)((double)n * 0.6);
    *n_test = (size_t)((double)n * 0.2);
    *n_val = n - *n_train - *n_test;
}

int split_make_seed(const am_corpus *c, int64_t seed, split_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->v[i].first_turn_labeled != 0;
    if (n == 0) {
        if (err && errlen)
            snprintf(err, errlen, "seed split: none of the %zu samples has a labeled first turn", c->n);
        return SPLIT_ERR_EMPTY;
    }
    size_t *ids = malloc(n * sizeof *ids);
    if (!ids) {
        if (err && errlen)
            snprintf(err, errlen, "seed split: out of memory for %zu ids", n);
        return SPLIT_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].first_turn_labeled)
            ids[k++] = i;

    pyrandom r;
    pyrandom_seed(&r, seed);
    pyrandom_shuffle(&r, ids, n);

    split_seed_sizes(n, &out->n_train, &out->n_test, &out->n_val);
    size_t sizes[3] = {out->n_train, out->n_test, out->n_val};
    size_t **lists[3] = {&out->train, &out->test, &out->val};
    size_t off = 0;
    for (int s = 0; s < 3; s++) {
        /* malloc(0) may return NULL: always ask for one element. */
        *lists[s] = malloc((sizes[s] ? sizes[s] : 1) * sizeof **lists[s]);
        if (!*lists[s]) {
            free(ids);
            split_free(out);
            if (err && errlen)
                snprintf(err, errlen, "seed split: out of memory for %zu ids", n);
            return SPLIT_ERR_NOMEM;
        }
        memcpy(*lists[s], ids + off, sizes[s] * sizeof *ids);
        off += sizes[s];
    }
    free(ids);
    return SPLIT_OK;
}

void split_free(split_result *s)
{
    free(s->train);
    free(s->test);
    free(s->val);
    memset(s, 0, sizeof *s);
}
