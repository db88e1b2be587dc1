/* pyrandom.h: CPython's `random` module, bit for bit (MT19937 as in Modules/_randommodule.c and the
 * Python-level helpers of Lib/random.py, CPython 3.2 to 3.13 at least).
 *
 * Why: the seed project split AvaMERG with `random.seed(42); random.shuffle(ids)`; reproducing that split,
 * and letting anyone replay our shuffles in Python, needs the exact generator, not just "an MT19937".
 *
 * The state is a plain struct: copying it (memcpy, assignment, writing its bytes to a checkpoint) saves
 * the generator exactly. No global state; one pyrandom per thread.
 */
#ifndef EMPD_DATASET_PYRANDOM_H
#define EMPD_DATASET_PYRANDOM_H

#include <stddef.h>
#include <stdint.h>

#define PYRANDOM_N 624

typedef struct {
    uint32_t mt[PYRANDOM_N];
    int index; /* next word of mt to temper; PYRANDOM_N means "regenerate first" */
} pyrandom;

/* random.seed(n) for an int n: init_by_array over the 32-bit words of abs(n), least significant first
 * (key [0] for n == 0). INT64_MIN is handled (its abs is 2^63). */
void pyrandom_seed(pyrandom *r, int64_t n);

/* random.seed(n) for a non-negative integer of up to 64 * n_limbs bits given as little-endian 64-bit
 * limbs: e.g. limbs {a, b} is random.seed(a + (b << 64)). High zero limbs are allowed (CPython ignores
 * leading zero words the same way). n_limbs must be at least 1 and at most 8. */
void pyrandom_seed_limbs(pyrandom *r, const uint64_t *limbs, size_t n_limbs);

/* One raw 32-bit MT19937 output (what getrandbits(32) returns). */
uint32_t pyrandom_u32(pyrandom *r);

/* random.getrandbits(k) for 0 <= k <= 64 (k outside that range returns 0 and draws nothing). */
uint64_t pyrandom_getrandbits(pyrandom *r, int k);

/* random._randbelow(n) (the getrandbits variant): k = n.bit_length() bits, redrawn while >= n.
 * CPython defines it for n > 0 only (n == 0 never returns there); here n == 0 returns 0 and draws nothing. */
uint64_t pyrandom_randbelow(pyrandom *r, uint64_t n);

/* random.random(): a double in [0, 1) from two words, 53 bits. */
double pyrandom_random(pyrandom *r);

/* random.shuffle(x) on an array of n size_t: for i = n-1 down to 1, j = _randbelow(i+1), swap x[i], x[j]. */
void pyrandom_shuffle(pyrandom *r, size_t *x, size_t n);

#endif
