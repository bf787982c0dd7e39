// mlp_fit.c: one MLP trial on one machine (see mlp_fit.h).
#include "ml/mlp_fit.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cn_config.h"
#include "common/cn_rand.h"
#include "ml/metrics.h"

void mlp_hparams_default(mlp_hparams *h)
{
    memset(h, 0, sizeof *h);
    h->hidden[0] = 256;
    h->hidden[1] = 128;
    h->n_hidden = 2;
    h->batch = 64;
    h->epochs = 5;
    h->seed = 1;
    optim_cfg_default(&h->optim, OPTIM_SGD);
    h->optim.lr = 0.05f;
}

cn_err mlp_hidden_from_json(const cJSON *list, int *hidden, int max, int *n, const char *origin,
                            char *err, size_t errlen)
{
    int m = cJSON_GetArraySize(list);
    if (m > max)
        return cn_errf(err, errlen, CN_EINVAL, "%s: key \"hidden\": at most %d widths", origin,
                       max);
    for (int i = 0; i < m; i++) {
        const cJSON *x = cJSON_GetArrayItem(list, i);
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 1 ||
            x->valuedouble > 65536)
            return cn_errf(err, errlen, CN_EINVAL,
                           "%s: key \"hidden\": element %d is not a width in 1..65536", origin, i);
        hidden[i] = (int)x->valuedouble;
    }
    *n = m;
    return CN_OK;
}

cn_err mlp_hparams_from_json(mlp_hparams *h, const cJSON *obj, const char *origin, char *err,
                             size_t errlen)
{
    int64_t batch = h->batch, epochs = h->epochs, seed = (int64_t)h->seed;
    const cJSON *hidden = NULL;
    optim_keys ok;
    optim_keys_init(&ok);
    cn_opt opts[5 + OPTIM_KEYS_N] = {
        {"hidden", CN_OPT_ARRAY, &hidden, "hidden widths", 0, MLP_MAX_LAYERS - 1, NULL},
        {"batch", CN_OPT_INT, &batch, "rows per step", 1, 65536, NULL},
        {"epochs", CN_OPT_INT, &epochs, "epochs", 1, 100000, NULL},
        {"seed", CN_OPT_INT, &seed, "seed", 0, 9007199254740992.0, NULL},
    };
    optim_keys_opts(&ok, &opts[4]);
    cn_err e = cn_config_apply_json(opts, obj, origin, err, errlen);
    if (e != CN_OK)
        return e;
    if (hidden && (e = mlp_hidden_from_json(hidden, h->hidden, MLP_MAX_LAYERS - 1, &h->n_hidden,
                                            origin, err, errlen)) != CN_OK)
        return e;
    h->batch = (int)batch;
    h->epochs = (int)epochs;
    h->seed = (uint64_t)seed;
    return optim_keys_apply(&ok, &h->optim, origin, err, errlen);
}

cn_err mlp_holdout(const ds_dataset *d, double frac, uint64_t seed, size_t **train_rows,
                   size_t *n_train, ds_dataset **val, char *err, size_t errlen)
{
    *train_rows = NULL;
    *n_train = 0;
    *val = NULL;
    if (d->n_rows < 2 || !(frac > 0 && frac < 1))
        return cn_errf(err, errlen, CN_EINVAL,
                       "validation split: %g of %zu rows leaves no training or no validation row "
                       "(use a fraction in (0, 1) and at least 2 rows)",
                       frac, d->n_rows);
    size_t n = d->n_rows, nv = (size_t)((double)n * frac);
    nv = nv < 1 ? 1 : nv > n - 1 ? n - 1 : nv;
    size_t *rows = malloc(n * sizeof *rows);
    if (rows == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "validation split: out of memory");
    for (size_t i = 0; i < n; i++)
        rows[i] = i;
    cn_rng r;
    cn_rng_seed(&r, seed, 0x4a11d);
    cn_rng_shuffle(&r, rows, n, sizeof *rows);
    cn_err e = ds_dataset_subset(d, rows + (n - nv), nv, val);
    if (e != CN_OK) {
        free(rows);
        return cn_errf(err, errlen, e, "validation split: out of memory");
    }
    *train_rows = rows; // the first n - nv
    *n_train = n - nv;
    return CN_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

cn_err mlp_fit_eval(const mlp_hparams *h, int epochs, int n_classes, const ds_dataset *d,
                    const size_t *train_rows, size_t n_train, const ds_dataset *val, int threads,
                    mlp_fit_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n_train == 0)
        return cn_errf(err, errlen, CN_EINVAL, "no training rows");
    mlp_shape s;
    cn_err e = mlp_shape_init(&s, (int)d->n_features, h->hidden, h->n_hidden,
                              n_classes < 2 ? 2 : n_classes, err, errlen);
    if (e != CN_OK)
        return e;
    size_t n = n_train;
    int B = h->batch;
    optim_cfg oc = h->optim;
    uint64_t steps_per_epoch = (n + (size_t)B - 1) / (size_t)B;
    oc.total_steps = (uint64_t)epochs * steps_per_epoch;
    if ((e = optim_cfg_check(&oc, err, errlen)) != CN_OK)
        return e;
    float *params = malloc(s.n_params * sizeof *params);
    size_t *perm = malloc(n * sizeof *perm);
    mlp_trainer *tr = mlp_trainer_new(&s, B, threads < 1 ? 1 : threads);
    mlp_ws *ews = mlp_ws_new(&s, 1000);
    optim_state *st = optim_state_new(&oc, s.n_params);
    mlp_eval ev;
    memset(&ev, 0, sizeof ev);
    e = CN_ENOMEM;
    if (!params || !perm || !tr || !ews || !st)
        goto done;
    mlp_init_params(&s, params, h->seed);
    memcpy(perm, train_rows, n * sizeof *perm);
    cn_rng rng;
    cn_rng_seed(&rng, h->seed, 1000);
    uint64_t t = 0;
    double t0 = now_s(), loss_sum = 0;
    for (int epoch = 0; epoch < epochs; epoch++) {
        cn_rng_shuffle(&rng, perm, n, sizeof *perm);
        loss_sum = 0;
        for (size_t r0 = 0; r0 < n; r0 += (size_t)B) {
            int nb = (int)(n - r0 < (size_t)B ? n - r0 : (size_t)B);
            mlp_batch mb = {.d = d, .idx = perm + r0, .n = nb};
            float loss;
            mlp_trainer_step(tr, params, &mb, &oc, st, t++, NULL, &loss);
            loss_sum += (double)loss * nb;
        }
    }
    out->train_seconds = now_s() - t0;
    out->train_loss = loss_sum / (double)n;
    if ((e = mlp_evaluate(&s, params, val, ews, &ev, err, errlen)) != CN_OK)
        goto done;
    out->accuracy = ev.accuracy;
    out->loss = ev.loss;
    out->balanced_accuracy = metrics_balanced_accuracy(ev.confusion, ev.n_classes);
    out->macro_f1 = metrics_macro_f1(ev.confusion, ev.n_classes);
done:
    mlp_eval_fini(&ev);
    optim_state_free(st);
    mlp_ws_free(ews);
    mlp_trainer_free(tr);
    free(perm);
    free(params);
    return e;
}
