// sweep_search.c: asynchronous successive halving's bookkeeping (see
// sweep_search.h). Scores live in one (n_trials, n_rungs) table; NaN marks
// a rung not completed.
#include "scheduler/sweep_search.h"

#include <math.h>
#include <stdlib.h>

#include "common/cn_err.h"

struct asha {
    size_t n_trials, n_rungs;
    uint32_t eta;
    uint32_t min_trees; // 0: no tree budget
    uint32_t budget[ASHA_MAX_RUNGS];
    size_t baseline; // trial always carried to the top rung, SIZE_MAX = none
    int *granted;    // (n_trials) highest rung given, -1 = not started
    double *score;   // (n_trials, n_rungs) row-major, NaN = not completed
};

asha *asha_new(size_t n_trials, uint32_t max_budget, uint32_t eta, uint32_t min_trees)
{
    CN_ASSERT(max_budget >= 1 && eta >= 2);
    asha *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->n_trials = n_trials;
    a->eta = eta;
    a->min_trees = min_trees;
    a->baseline = SIZE_MAX;
    for (uint64_t b = 1; b < max_budget && a->n_rungs < ASHA_MAX_RUNGS - 2; b *= eta)
        a->budget[a->n_rungs++] = (uint32_t)b;
    a->budget[a->n_rungs++] = max_budget;
    if (min_trees) // every fold at 1/eta of the trees, then the full forest
        a->budget[a->n_rungs++] = max_budget;
    a->granted = malloc((n_trials ? n_trials : 1) * sizeof *a->granted);
    a->score = malloc((n_trials ? n_trials : 1) * a->n_rungs * sizeof *a->score);
    if (a->granted == NULL || a->score == NULL) {
        asha_free(a);
        return NULL;
    }
    for (size_t t = 0; t < n_trials; t++) {
        a->granted[t] = -1;
        for (size_t r = 0; r < a->n_rungs; r++)
            a->score[t * a->n_rungs + r] = NAN;
    }
    return a;
}

void asha_free(asha *a)
{
    if (a == NULL)
        return;
    free(a->granted);
    free(a->score);
    free(a);
}

size_t asha_n_rungs(const asha *a)
{
    return a->n_rungs;
}

uint32_t asha_budget(const asha *a, size_t rung)
{
    CN_ASSERT(rung < a->n_rungs);
    return a->budget[rung];
}

uint32_t asha_trees(const asha *a, size_t rung, uint32_t n_estimators)
{
    CN_ASSERT(rung < a->n_rungs);
    if (a->min_trees == 0)
        return n_estimators;
    double t = round(n_estimators * pow(a->eta, (double)rung - (double)(a->n_rungs - 1)));
    t = t < a->min_trees ? a->min_trees : t;
    return t < n_estimators ? (uint32_t)t : n_estimators;
}

size_t asha_units(const asha *a)
{
    return asha_first_unit(a, a->n_rungs - 1) + a->budget[a->n_rungs - 1];
}

size_t asha_first_unit(const asha *a, size_t rung)
{
    CN_ASSERT(rung < a->n_rungs);
    size_t first = 0;
    for (size_t r = 0; a->min_trees && r < rung; r++)
        first += a->budget[r];
    return first;
}

size_t asha_unit_rung(const asha *a, size_t unit)
{
    size_t r = 0;
    while (r + 1 < a->n_rungs && unit >= asha_first_unit(a, r) + a->budget[r])
        r++;
    return r;
}

void asha_grant(asha *a, size_t t, size_t rung)
{
    CN_ASSERT(t < a->n_trials && rung < a->n_rungs);
    if ((int)rung > a->granted[t])
        a->granted[t] = (int)rung;
}

int asha_granted(const asha *a, size_t t)
{
    CN_ASSERT(t < a->n_trials);
    return a->granted[t];
}

void asha_complete(asha *a, size_t t, size_t rung, double score)
{
    CN_ASSERT(t < a->n_trials && rung < a->n_rungs);
    double *s = &a->score[t * a->n_rungs + rung];
    if (isnan(*s))
        *s = score;
}

int asha_reached(const asha *a, size_t t, double *score)
{
    CN_ASSERT(t < a->n_trials);
    for (size_t r = a->n_rungs; r-- > 0;)
        if (!isnan(a->score[t * a->n_rungs + r])) {
            if (score)
                *score = a->score[t * a->n_rungs + r];
            return (int)r;
        }
    return -1;
}

// better: trial t's rung-r score ranks above trial u's (ties: lower index).
static bool better(const asha *a, size_t r, size_t t, size_t u)
{
    double st = a->score[t * a->n_rungs + r], su = a->score[u * a->n_rungs + r];
    return st > su || (st == su && t < u);
}

void asha_set_baseline(asha *a, size_t t)
{
    a->baseline = t < a->n_trials ? t : SIZE_MAX;
}

bool asha_promotable(const asha *a, size_t *t_out, size_t *rung_out)
{
    size_t b = a->baseline;
    if (b != SIZE_MAX && a->granted[b] >= 0 && (size_t)a->granted[b] + 1 < a->n_rungs &&
        !isnan(a->score[b * a->n_rungs + (size_t)a->granted[b]])) {
        *t_out = b;
        *rung_out = (size_t)a->granted[b] + 1;
        return true;
    }
    for (size_t r = a->n_rungs - 1; r-- > 0;) {
        size_t n = 0;
        for (size_t t = 0; t < a->n_trials; t++)
            n += !isnan(a->score[t * a->n_rungs + r]);
        size_t k = n / a->eta;
        if (k == 0)
            continue;
        // The best trial not yet promoted is promotable when fewer than k
        // completed trials rank above it.
        size_t best = SIZE_MAX;
        for (size_t t = 0; t < a->n_trials; t++)
            if (!isnan(a->score[t * a->n_rungs + r]) && a->granted[t] == (int)r &&
                (best == SIZE_MAX || better(a, r, t, best)))
                best = t;
        if (best == SIZE_MAX)
            continue;
        size_t above = 0;
        for (size_t t = 0; t < a->n_trials; t++)
            above += t != best && !isnan(a->score[t * a->n_rungs + r]) && better(a, r, t, best);
        if (above < k) {
            *t_out = best;
            *rung_out = r + 1;
            return true;
        }
    }
    return false;
}

bool asha_finishing(const asha *a, size_t *t_out, size_t *rung_out)
{
    for (size_t t = 0; t < a->n_trials; t++)
        if (a->granted[t] == (int)a->n_rungs - 1)
            return false;
    for (size_t r = a->n_rungs - 1; r-- > 0;) {
        size_t best = SIZE_MAX;
        for (size_t t = 0; t < a->n_trials; t++)
            if (!isnan(a->score[t * a->n_rungs + r]) && a->granted[t] == (int)r &&
                (best == SIZE_MAX || better(a, r, t, best)))
                best = t;
        if (best != SIZE_MAX) {
            *t_out = best;
            *rung_out = r + 1;
            return true;
        }
    }
    return false;
}
