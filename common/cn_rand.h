// cn_rand.h: a small, fast, seedable PRNG (xoshiro256**, seeded by
// splitmix64) so every random choice in canopy is reproducible from a seed.
// A cn_rng is plain data: one per thread, no locking.
#ifndef CN_RAND_H
#define CN_RAND_H

#include <stddef.h>
#include <stdint.h>

typedef struct cn_rng {
    uint64_t s[4];
} cn_rng;

// cn_splitmix64 advances *x and returns a well-mixed 64-bit value.
static inline uint64_t cn_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// cn_rng_seed seeds r from seed and a stream id, so (seed, stream) pairs give
// independent sequences (e.g. one stream per tree).
static inline void cn_rng_seed(cn_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull);
    for (int i = 0; i < 4; i++)
        r->s[i] = cn_splitmix64(&x);
}

static inline uint64_t cn_rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

// cn_rng_next returns 64 random bits.
static inline uint64_t cn_rng_next(cn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = cn_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = cn_rotl64(s[3], 45);
    return result;
}

// cn_rng_below returns a uniform integer in [0, n); n must be > 0.
// Lemire's multiply-shift with rejection, so there is no modulo bias.
static inline uint64_t cn_rng_below(cn_rng *r, uint64_t n)
{
    uint64_t x = cn_rng_next(r);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = -n % n;
        while (l < t) {
            x = cn_rng_next(r);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

// cn_rng_uniform returns a double in [0, 1).
static inline double cn_rng_uniform(cn_rng *r)
{
    return (double)(cn_rng_next(r) >> 11) * 0x1.0p-53;
}

// cn_rng_normal returns a standard normal deviate (Box-Muller, one of the pair).
double cn_rng_normal(cn_rng *r);

// cn_rng_gamma returns a Gamma(shape, 1) deviate (Marsaglia-Tsang); shape > 0.
double cn_rng_gamma(cn_rng *r, double shape);

// cn_rng_shuffle permutes the n elements of size `size` at a uniformly
// (Fisher-Yates, drawing from the last element down), so a given seed gives
// the same order everywhere it is used.
void cn_rng_shuffle(cn_rng *r, void *a, size_t n, size_t size);

#endif
