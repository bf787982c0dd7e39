// sweep_tpe.c: the tree-structured Parzen estimator (Bergstra et al. 2011)
// for "tpe" sweeps, one dimension at a time as Optuna's default sampler
// does it.
//
// The finished trials (and the pending ones, scored as the worst finished
// trial: the constant liar) are split into the best ceil(gamma n) ("good",
// gamma = 0.25) and the rest ("bad"). For each dimension, a density l(x) is
// fitted to the good trials' values and g(x) to the bad ones'; `candidates`
// values are drawn from l and the one with the largest l(x) / g(x) is
// proposed. Numeric dimensions (log scale for loguniform) use a mixture of
// one Gaussian per value plus a wide prior at the middle of the range, all
// truncated to the range; a value's bandwidth is the larger gap to its
// neighbours, clipped to [range / min(100, n + 1), range]. Choices use
// counts plus one (a uniform prior). Integers and quantized ranges are
// rounded after drawing. A proposal that repeats a trial already run or
// running (likely once choices and quantized ranges narrow down) is drawn
// again from the good density, since the same parameters would only score
// the same.
#include "scheduler/sweep_spec_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_rand.h"

#define TPE_GAMMA 0.25
#define TPE_RETRIES 32 // redraws of a proposal that repeats a trial

typedef struct parzen {
    double *mu, *sigma; // (n + 1) components; [n] is the prior
    size_t n;
    double lo, hi;
} parzen;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// parzen_fit places the components; v (n values in [lo, hi]) is borrowed.
static bool parzen_fit(parzen *p, const double *v, size_t n, double lo, double hi)
{
    p->n = n;
    p->lo = lo;
    p->hi = hi;
    p->mu = malloc((n + 1) * sizeof *p->mu);
    p->sigma = malloc((n + 1) * sizeof *p->sigma);
    if (p->mu == NULL || p->sigma == NULL)
        return false;
    double range = hi - lo;
    memcpy(p->mu, v, n * sizeof *v);
    qsort(p->mu, n, sizeof *p->mu, cmp_double);
    double min_s = range / (double)(n + 1 < 100 ? n + 1 : 100);
    for (size_t i = 0; i < n; i++) {
        double left = p->mu[i] - (i > 0 ? p->mu[i - 1] : lo);
        double right = (i + 1 < n ? p->mu[i + 1] : hi) - p->mu[i];
        double s = left > right ? left : right;
        p->sigma[i] = s < min_s ? min_s : s > range ? range : s;
    }
    p->mu[n] = lo + range / 2;
    p->sigma[n] = range;
    return true;
}

static void parzen_fini(parzen *p)
{
    free(p->mu);
    free(p->sigma);
}

static double phi(double z)
{
    return 0.5 * erfc(-z / sqrt(2.0));
}

// parzen_logpdf: log of the equal-weight mixture of truncated Gaussians.
static double parzen_logpdf(const parzen *p, double x)
{
    double sum = 0;
    for (size_t i = 0; i <= p->n; i++) {
        double s = p->sigma[i], z = (x - p->mu[i]) / s;
        double mass = phi((p->hi - p->mu[i]) / s) - phi((p->lo - p->mu[i]) / s);
        sum += exp(-0.5 * z * z) / (s * sqrt(2 * M_PI) * (mass > 1e-12 ? mass : 1e-12));
    }
    return log(sum / (double)(p->n + 1) + 1e-300);
}

static double parzen_draw(const parzen *p, cn_rng *r)
{
    size_t i = (size_t)cn_rng_below(r, p->n + 1);
    for (int tries = 0; tries < 100; tries++) {
        double x = p->mu[i] + p->sigma[i] * cn_rng_normal(r);
        if (x >= p->lo && x <= p->hi)
            return x;
    }
    return p->mu[i] < p->lo ? p->lo : p->mu[i] > p->hi ? p->hi : p->mu[i];
}

// ------------------------------------------------------------ one dimension

// bounds gives a numeric dimension's range in the space TPE works in.
static void bounds(const dim *d, double *lo, double *hi)
{
    if (d->kind == DIM_LOGUNIFORM) {
        *lo = log(d->lo);
        *hi = log(d->hi);
    } else if (d->kind == DIM_RANDINT) {
        double q = d->q > 0 ? d->q : 1;
        *lo = d->lo - q / 2; // qrandint: hi inclusive; randint: hi exclusive
        *hi = d->q > 0 ? d->hi + q / 2 : d->hi - 0.5;
    } else {
        *lo = d->lo;
        *hi = d->hi;
    }
}

static double to_space(const dim *d, double x)
{
    return d->kind == DIM_LOGUNIFORM ? log(x) : x;
}

static double from_space(const dim *d, double u)
{
    double x = d->kind == DIM_LOGUNIFORM ? exp(u) : u;
    if (d->kind == DIM_RANDINT) {
        double q = d->q > 0 ? d->q : 1;
        x = d->lo + q * round((x - d->lo) / q);
        double top = d->q > 0 ? d->hi : d->hi - 1;
        return x < d->lo ? d->lo : x > top ? top : x;
    }
    if (d->q > 0)
        x = round(x / d->q) * d->q;
    return x < d->lo ? d->lo : x > d->hi ? d->hi : x;
}

// value_of finds dimension d's value in one trial's parameters.
static const cJSON *value_of(const cJSON *params, const dim *d)
{
    return params ? cJSON_GetObjectItemCaseSensitive(params, d->name) : NULL;
}

// suggest_numeric proposes a value of a numeric dimension.
static cJSON *suggest_numeric(const dim *d, cJSON *const *params, const bool *good, size_t n,
                              uint32_t candidates, cn_rng *r)
{
    double lo, hi;
    bounds(d, &lo, &hi);
    double *gv = malloc((n + 1) * sizeof *gv), *bv = malloc((n + 1) * sizeof *bv);
    parzen l = {0}, g = {0};
    cJSON *out = NULL;
    if (gv == NULL || bv == NULL)
        goto done;
    size_t ng = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = value_of(params[i], d);
        if (!cJSON_IsNumber(v) || (d->kind == DIM_LOGUNIFORM && v->valuedouble <= 0))
            continue;
        double u = to_space(d, v->valuedouble);
        u = u < lo ? lo : u > hi ? hi : u;
        if (good[i])
            gv[ng++] = u;
        else
            bv[nb++] = u;
    }
    if (!parzen_fit(&l, gv, ng, lo, hi) || !parzen_fit(&g, bv, nb, lo, hi))
        goto done;
    double best = 0, best_ratio = -INFINITY;
    for (uint32_t c = 0; c < candidates; c++) {
        double u = parzen_draw(&l, r);
        double ratio = parzen_logpdf(&l, u) - parzen_logpdf(&g, u);
        if (ratio > best_ratio) {
            best_ratio = ratio;
            best = u;
        }
    }
    out = cJSON_CreateNumber(from_space(d, best));
done:
    parzen_fini(&l);
    parzen_fini(&g);
    free(gv);
    free(bv);
    return out;
}

// suggest_choice proposes one of a choice's values.
static cJSON *suggest_choice(const dim *d, cJSON *const *params, const bool *good, size_t n,
                             uint32_t candidates, cn_rng *r)
{
    int k = cJSON_GetArraySize(d->values);
    double *wl = calloc((size_t)k, sizeof *wl), *wg = calloc((size_t)k, sizeof *wg);
    cJSON *out = NULL;
    if (wl == NULL || wg == NULL)
        goto done;
    double sl = k, sg = k;
    for (int c = 0; c < k; c++)
        wl[c] = wg[c] = 1; // the prior
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = value_of(params[i], d);
        for (int c = 0; v && c < k; c++)
            if (cJSON_Compare(v, cJSON_GetArrayItem(d->values, c), true)) {
                if (good[i])
                    wl[c]++, sl++;
                else
                    wg[c]++, sg++;
                break;
            }
    }
    int best = 0;
    double best_ratio = -INFINITY;
    for (uint32_t t = 0; t < candidates; t++) {
        double x = cn_rng_uniform(r) * sl;
        int c = 0;
        while (c < k - 1 && x >= wl[c])
            x -= wl[c++];
        double ratio = log(wl[c] / sl) - log(wg[c] / sg);
        if (ratio > best_ratio) {
            best_ratio = ratio;
            best = c;
        }
    }
    out = cJSON_Duplicate(cJSON_GetArrayItem(d->values, best), 1);
done:
    free(wl);
    free(wg);
    return out;
}

// ------------------------------------------------------------ proposal

typedef struct ranked {
    double score;
    size_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1; // best first
    return (x->i > y->i) - (x->i < y->i);
}

// propose builds one proposal: the fixed parameters plus, per dimension,
// the best of `candidates` draws from the good density. NULL when out of
// memory.
static cJSON *propose(const sweep_spec *s, cJSON *const *params, const bool *good, size_t n,
                      uint32_t candidates, cn_rng *r)
{
    const cJSON *fixed = cJSON_GetObjectItemCaseSensitive(s->space->root, "fixed");
    cJSON *prop = fixed ? cJSON_Duplicate(fixed, 1) : cJSON_CreateObject();
    for (int k = 0; prop && k < s->space->ndims; k++) {
        const dim *d = &s->space->dims[k];
        cJSON *v = d->kind == DIM_FIXED    ? cJSON_Duplicate(d->values, 1)
                   : d->kind == DIM_CHOICE ? suggest_choice(d, params, good, n, candidates, r)
                                           : suggest_numeric(d, params, good, n, candidates, r);
        if (v == NULL) {
            cJSON_Delete(prop);
            return NULL;
        }
        cJSON_AddItemToObject(prop, d->name, v);
    }
    return prop;
}

// seen reports whether prop equals the parameters of one of the n trials.
static bool seen(const cJSON *prop, cJSON *const *params, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (params[i] && cJSON_Compare(prop, params[i], true))
            return true;
    return false;
}

cn_err sweep_spec_tpe_suggest(const sweep_spec *s, size_t trial, const sweep_tpe_obs *obs, size_t n,
                              char **out)
{
    CN_ASSERT(s->space != NULL && trial < s->n_trials);
    *out = NULL;
    size_t finished = 0;
    double worst = INFINITY;
    for (size_t i = 0; i < n; i++)
        if (!obs[i].pending) {
            finished++;
            worst = obs[i].score < worst ? obs[i].score : worst;
        }
    if (finished < 2) {
        *out = strdup(s->trials[trial]);
        return *out ? CN_OK : CN_ENOMEM;
    }
    cn_err e = CN_ENOMEM;
    cJSON **params = calloc(n, sizeof *params);
    ranked *rk = calloc(n, sizeof *rk);
    bool *good = calloc(n, sizeof *good);
    cJSON *prop = NULL;
    if (params == NULL || rk == NULL || good == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        params[i] = cJSON_Parse(obs[i].params);
        rk[i] = (ranked){obs[i].pending ? worst : obs[i].score, i};
    }
    qsort(rk, n, sizeof *rk, cmp_ranked);
    size_t n_good = (size_t)ceil(TPE_GAMMA * (double)n);
    for (size_t i = 0; i < n_good; i++)
        good[rk[i].i] = true;
    cn_rng r;
    cn_rng_seed(&r, s->search_seed, 0x79e0000 + trial);
    // A proposal equal to a trial already run or running would only repeat
    // its score: redraw one dimension, chosen at random, from its good
    // density (a plain draw), keeping the others, until it is new; after
    // TPE_RETRIES take the trial's random draw.
    prop = propose(s, params, good, n, s->candidates, &r);
    for (int attempt = 0; prop && attempt < TPE_RETRIES && seen(prop, params, n); attempt++) {
        const dim *d = &s->space->dims[cn_rng_below(&r, (uint64_t)s->space->ndims)];
        cJSON *v = d->kind == DIM_FIXED    ? cJSON_Duplicate(d->values, 1)
                   : d->kind == DIM_CHOICE ? suggest_choice(d, params, good, n, 1, &r)
                                           : suggest_numeric(d, params, good, n, 1, &r);
        if (v == NULL)
            goto done;
        cJSON_ReplaceItemInObjectCaseSensitive(prop, d->name, v);
    }
    if (prop == NULL)
        goto done;
    char why[CN_ERRBUF_LEN];
    *out = !seen(prop, params, n) && sweep_params_check(s, prop, why, sizeof why)
               ? cJSON_PrintUnformatted(prop)
               : strdup(s->trials[trial]);
    e = *out ? CN_OK : CN_ENOMEM;
done:
    for (size_t i = 0; params && i < n; i++)
        cJSON_Delete(params[i]);
    free(params);
    free(rk);
    free(good);
    cJSON_Delete(prop);
    return e;
}
