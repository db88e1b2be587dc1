/* pyrandom.c: CPython's Mersenne Twister and the random.py helpers built on it (see pyrandom.h). */
#include "dataset/pyrandom.h"

#define MT_M 397
#define MATRIX_A 0x9908b0dfU
#define UPPER_MASK 0x80000000U
#define LOWER_MASK 0x7fffffffU

static void init_genrand(pyrandom *r, uint32_t s)
{
    r->mt[0] = s;
    for (int i = 1; i < PYRANDOM_N; i++)
        r->mt[i] = 1812433253U * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->index = PYRANDOM_N;
}

static void init_by_array(pyrandom *r, const uint32_t *key, size_t len)
{
    init_genrand(r, 19650218U);
    size_t i = 1, j = 0;
    for (size_t k = PYRANDOM_N > len ? PYRANDOM_N : len; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525U)) + key[j] + (uint32_t)j;
        i++;
        j++;
        if (i >= PYRANDOM_N) {
            r->mt[0] = r->mt[PYRANDOM_N - 1];
            i = 1;
        }
        if (j >= len)
            j = 0;
    }
    for (size_t k = PYRANDOM_N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941U)) - (uint32_t)i;
        i++;
        if (i >= PYRANDOM_N) {
            r->mt[0] = r->mt[PYRANDOM_N - 1];
            i = 1;
        }
    }
    r->mt[0] = 0x80000000U;
}

void pyrandom_seed_limbs(pyrandom *r, const uint64_t *limbs, size_t n_limbs)
{
    uint32_t key[16];
    size_t n = 0;
    for (size_t i = 0; i < n_limbs && i < 8; i++) {
        key[n++] = (uint32_t)limbs[i];
        key[n++] = (uint32_t)(limbs[i] >> 32);
    }
    /* CPython keys on the integer's significant words only. */
    while (n > 1 && key[n - 1] == 0)
        n--;
    if (n == 0)
        key[n++] = 0;
    init_by_array(r, key, n);
}

void pyrandom_seed(pyrandom *r, int64_t n)
{
    uint64_t a = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    pyrandom_seed_limbs(r, &a, 1);
}

uint32_t pyrandom_u32(pyrandom *r)
{
    static const uint32_t mag01[2] = {0, MATRIX_A};
    if (r->index >= PYRANDOM_N) {
        int kk;
        uint32_t y;
        for (kk = 0; kk < PYRANDOM_N - MT_M; kk++) {
            y = (r->mt[kk] & UPPER_MASK) | (r->mt[kk + 1] & LOWER_MASK);
            r->mt[kk] = r->mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1];
        }
        for (; kk < PYRANDOM_N - 1; kk++) {
            y = (r->mt[kk] & UPPER_MASK) | (r->mt[kk + 1] & LOWER_MASK);
            r->mt[kk] = r->mt[kk + (MT_M - PYRANDOM_N)] ^ (y >> 1) ^ mag01[y & 1];
        }
        y = (r->mt[PYRANDOM_N - 1] & UPPER_MASK) | (r->mt[0] & LOWER_MASK);
        r->mt[PYRANDOM_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1];
        r->index = 0;
    }
    uint32_t y = r->mt[r->index++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

uint64_t pyrandom_getrandbits(pyrandom *r, int k)
{
    if (k <= 0 || k > 64)
        return 0;
    if (k <= 32)
        return pyrandom_u32(r) >> (32 - k);
    /* CPython fills words least significant first and cuts the last (most significant) word's low bits. */
    uint64_t lo = pyrandom_u32(r);
    uint64_t hi = pyrandom_u32(r) >> (64 - k);
    return lo | (hi << 32);
}

uint64_t pyrandom_randbelow(pyrandom *r, uint64_t n)
{
    if (n == 0)
        return 0;
    int k = 64 - __builtin_clzll(n);
    uint64_t v = pyrandom_getrandbits(r, k);
    while (v >= n)
        v = pyrandom_getrandbits(r, k);
    return v;
}

double pyrandom_random(pyrandom *r)
{
    uint32_t a = pyrandom_u32(r) >> 5, b = pyrandom_u32(r) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

void pyrandom_shuffle(pyrandom *r, size_t *x, size_t n)
{
    for (size_t i = n > 0 ? n - 1 : 0; i >= 1; i--) {
        size_t j = (size_t)pyrandom_randbelow(r, (uint64_t)i + 1);
        size_t t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}
