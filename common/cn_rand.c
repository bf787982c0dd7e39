// cn_rand.c: the non-inline distributions of cn_rand.h.
#include "common/cn_rand.h"

#include <string.h>

#include "common/cn_err.h"

#include <math.h>

double cn_rng_normal(cn_rng *r)
{
    double u1 = cn_rng_uniform(r), u2 = cn_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double cn_rng_gamma(cn_rng *r, double shape)
{
    if (shape < 1.0) {
        // Boost a shape < 1 with the standard power trick.
        double u = cn_rng_uniform(r);
        if (u < 1e-300)
            u = 1e-300;
        return cn_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = cn_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = cn_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

void cn_rng_shuffle(cn_rng *r, void *a, size_t n, size_t size)
{
    unsigned char *b = a, tmp[64];
    CN_ASSERT(size <= sizeof tmp);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)cn_rng_below(r, i);
        memcpy(tmp, b + (i - 1) * size, size);
        memmove(b + (i - 1) * size, b + j * size, size);
        memcpy(b + j * size, tmp, size);
    }
}
