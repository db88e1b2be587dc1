/* split.h: the seed project's train/test/val split (`--split seed`), reproduced exactly.
 *
 * The seed (Python) did:
 *     ids = [c["conversation_id"] for c in data if <first turn has a speaker_emotion>]   # file order
 *     random.seed(42); random.shuffle(ids)
 *     train = ids[:int(n*0.6)]; test = ids[int(n*0.6):int(n*0.6)+int(n*0.2)]; val = the rest
 * Here "first turn" is the turn with the lowest numeric turn_id (am_sample.first_turn_labeled). Only the
 * filter decides membership: a kept sample whose LAST turn is unlabeled (label7 == -1) stays in its split,
 * as in the seed; the caller decides what to do with it. For n = 24,696 the sizes are 14,817 / 4,939 / 4,940.
 */
#ifndef EMPD_DATASET_SPLIT_H
#define EMPD_DATASET_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "dataset/avamerg.h"

#define SPLIT_OK 0
#define SPLIT_ERR_NOMEM (-1)
#define SPLIT_ERR_EMPTY (-2) /* no sample passes the filter */

#define SPLIT_SEED_DEFAULT 42

/* Indices into am_corpus.v, each list in split order (the shuffled order, not file order). */
typedef struct {
    size_t *train, *test, *val;
    size_t n_train, n_test, n_val;
} split_result;

/* The sizes for n kept conversations: n_train = int(n*0.6), n_test = int(n*0.2), n_val = the rest,
 * computed in IEEE double exactly as Python does. */
void split_seed_sizes(size_t n, size_t *n_train, size_t *n_test, size_t *n_val);

/* Splits corpus c with random.seed(seed) (Python int semantics, so seed -42 equals 42).
 * On success fills *out (free with split_free) and returns SPLIT_OK; otherwise *out is zeroed, a negative
 * SPLIT_ERR_* is returned and err holds one line. */
int split_make_seed(const am_corpus *c, int64_t seed, split_result *out, char *err, size_t errlen);

/* Frees the three lists and zeroes *s. Safe on a zeroed result. */
void split_free(split_result *s);

#endif
