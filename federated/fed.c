// fed.c: federated round logic (see fed.h).
#include "federated/fed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_rand.h"

static const char *const names[] = {"fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi",
                                    "fedadagrad"};

cn_err fed_strategy_parse(const char *name, fed_strategy *out)
{
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (fed_strategy)i;
            return CN_OK;
        }
    return CN_EINVAL;
}

const char *fed_strategy_name(fed_strategy s)
{
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

void fed_server_default(fed_server *s, fed_strategy strategy)
{
    memset(s, 0, sizeof *s);
    s->strategy = strategy;
    bool fedopt = strategy == FED_ADAM || strategy == FED_YOGI || strategy == FED_ADAGRAD;
    s->lr = fedopt ? 1e-2 : 1.0;
    s->momentum = 0.9;
    s->beta1 = 0.9;
    s->beta2 = 0.99;
    s->tau = 1e-3;
}

cn_err fed_server_optim(const fed_server *s, optim_cfg *o, char *err, size_t errlen)
{
    switch (s->strategy) {
    case FED_AVG:
    case FED_PROX:
        optim_cfg_default(o, OPTIM_SGD);
        break;
    case FED_AVGM:
        optim_cfg_default(o, OPTIM_MOMENTUM);
        o->momentum = (float)s->momentum;
        break;
    case FED_ADAM:
    case FED_YOGI:
    case FED_ADAGRAD:
        optim_cfg_default(o, s->strategy == FED_ADAM   ? OPTIM_ADAM
                             : s->strategy == FED_YOGI ? OPTIM_YOGI
                                                       : OPTIM_ADAGRAD);
        o->beta1 = (float)s->beta1;
        o->beta2 = (float)s->beta2;
        o->eps = (float)s->tau;
        break;
    default:
        return cn_errf(err, errlen, CN_EINVAL, "strategy %d: allowed %s", (int)s->strategy,
                       FED_STRATEGIES);
    }
    o->lr = (float)s->lr;
    char inner[CN_ERRBUF_LEN];
    if (optim_cfg_check(o, inner, sizeof inner) != CN_OK)
        return cn_errf(err, errlen, CN_EINVAL, "%s server: %s", fed_strategy_name(s->strategy),
                       inner);
    return CN_OK;
}

void fed_prox_grad(const float *w, const float *w_global, float mu, float *grad, size_t n)
{
    for (size_t i = 0; i < n; i++)
        grad[i] += mu * (w[i] - w_global[i]);
}

double fed_prox_loss(const float *w, const float *w_global, float mu, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)w[i] - (double)w_global[i];
        s += d * d;
    }
    return 0.5 * (double)mu * s;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t fed_select(uint64_t seed, uint64_t round, uint32_t n, uint32_t k, uint32_t *out)
{
    if (k > n)
        k = n;
    uint32_t *all = malloc((size_t)n * sizeof *all);
    if (all == NULL)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        all[i] = i;
    cn_rng r;
    cn_rng_seed(&r, seed ^ (round * 0x9e3779b97f4a7c15ull), 0xfed);
    cn_rng_shuffle(&r, all, n, sizeof *all);
    memcpy(out, all, (size_t)k * sizeof *out);
    free(all);
    qsort(out, k, sizeof *out, cmp_u32);
    return k;
}

uint32_t fed_clients_per_round(double per_round, uint32_t min_clients, uint32_t n)
{
    double k = per_round < 1.0 ? ceil(per_round * (double)n) : per_round;
    if (k < (double)min_clients)
        k = (double)min_clients;
    if (k < 1)
        k = 1;
    return k > (double)n ? n : (uint32_t)k;
}

bool fed_round_closes(uint32_t selected, uint32_t finished, uint32_t dropped, uint32_t failed,
                      uint32_t min_updates, double elapsed_s, double deadline_s)
{
    if (finished + dropped + failed >= selected)
        return true;
    if (min_updates > 0 && finished >= min_updates)
        return true;
    return deadline_s > 0 && elapsed_s >= deadline_s;
}

double fed_label_skew(const size_t *client, const size_t *global, int n_classes)
{
    double nc = 0, ng = 0;
    for (int c = 0; c < n_classes; c++) {
        nc += (double)client[c];
        ng += (double)global[c];
    }
    if (nc == 0 || ng == 0)
        return 0;
    double tv = 0;
    for (int c = 0; c < n_classes; c++)
        tv += fabs((double)client[c] / nc - (double)global[c] / ng);
    return 0.5 * tv;
}
