// cv.c: stratified k-fold assignment and the fit/score loop over folds
// (see cv.h).
#include "ml/cv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cn_rand.h"
#include "ml/metrics.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

cn_err cv_assign_folds(const int32_t *y, size_t n, int n_classes, int k, bool shuffle,
                       uint64_t seed, int *fold_of)
{
    if (k < 2 || (size_t)k > n || n_classes < 1)
        return CN_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= n_classes)
            return CN_ERANGE;
    size_t *count = calloc((size_t)n_classes, sizeof *count);
    int *slots = malloc(n * sizeof *slots);
    size_t *start = calloc((size_t)n_classes + 1, sizeof *start);
    size_t *fill = calloc((size_t)n_classes, sizeof *fill);
    if (!count || !slots || !start || !fill) {
        free(count);
        free(slots);
        free(start);
        free(fill);
        return CN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        count[y[i]]++;
    for (int c = 0; c < n_classes; c++)
        start[c + 1] = start[c] + count[c];
    // As sklearn: in the label-sorted order, position p goes to fold p % k;
    // within a class, the folds it received are laid out in fold order.
    for (int c = 0; c < n_classes; c++) {
        size_t s = 0;
        for (int f = 0; f < k; f++) {
            // Positions p in [start[c], start[c+1]) with p % k == f.
            size_t lo = start[c], hi = start[c + 1];
            size_t first = lo + (size_t)((f - (int)(lo % (size_t)k) + k) % k);
            size_t m = first < hi ? (hi - first + (size_t)k - 1) / (size_t)k : 0;
            for (size_t t = 0; t < m; t++)
                slots[start[c] + s++] = f;
        }
        if (shuffle) {
            cn_rng rng;
            cn_rng_seed(&rng, seed, (uint64_t)c);
            cn_rng_shuffle(&rng, slots + start[c], count[c], sizeof *slots);
        }
    }
    for (size_t i = 0; i < n; i++) {
        int c = y[i];
        fold_of[i] = slots[start[c] + fill[c]++];
    }
    free(count);
    free(slots);
    free(start);
    free(fill);
    return CN_OK;
}

// split_rows writes the train and test rows of fold f, given each row's
// fold, into new arrays. Returns CN_OK or CN_ENOMEM (nothing allocated).
static cn_err split_rows(const int *fold_of, size_t n, int f, size_t **train, size_t *n_train,
                         size_t **test, size_t *n_test)
{
    size_t nt = 0;
    for (size_t i = 0; i < n; i++)
        nt += fold_of[i] == f;
    size_t *tr = malloc((n - nt ? n - nt : 1) * sizeof *tr);
    size_t *te = malloc((nt ? nt : 1) * sizeof *te);
    if (tr == NULL || te == NULL) {
        free(tr);
        free(te);
        return CN_ENOMEM;
    }
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (fold_of[i] == f)
            te[b++] = i;
        else
            tr[a++] = i;
    }
    *train = tr;
    *test = te;
    *n_train = a;
    *n_test = b;
    return CN_OK;
}

cn_err cv_fold_indices(const int32_t *y, size_t n, int n_classes, int k, int f, bool shuffle,
                       uint64_t seed, size_t **train, size_t *n_train, size_t **test,
                       size_t *n_test)
{
    *train = *test = NULL;
    *n_train = *n_test = 0;
    if (k >= 2 && (f < 0 || f >= k))
        return CN_ERANGE;
    int *fold_of = malloc((n ? n : 1) * sizeof *fold_of);
    if (fold_of == NULL)
        return CN_ENOMEM;
    cn_err e = cv_assign_folds(y, n, n_classes, k, shuffle, seed, fold_of);
    if (e == CN_OK)
        e = split_rows(fold_of, n, f, train, n_train, test, n_test);
    free(fold_of);
    return e;
}

// score_fold fills r (allocating r->confusion) from the predictions pred of
// the test rows te[0..nte) of d. Returns CN_OK or CN_ENOMEM.
static cn_err score_fold(const ds_dataset *d, const size_t *te, size_t nte, const int32_t *pred,
                         cv_fold_result *r)
{
    int nc = d->n_classes;
    int32_t *truth = malloc((nte ? nte : 1) * sizeof *truth);
    r->confusion = malloc((size_t)nc * (size_t)nc * sizeof *r->confusion);
    cn_err e = CN_ENOMEM;
    if (truth != NULL && r->confusion != NULL) {
        for (size_t i = 0; i < nte; i++)
            truth[i] = d->y[te[i]];
        e = metrics_confusion(truth, pred, nte, nc, r->confusion);
    }
    free(truth);
    if (e != CN_OK) {
        free(r->confusion);
        r->confusion = NULL;
        return e;
    }
    r->accuracy = metrics_accuracy(r->confusion, nc);
    r->balanced_accuracy = metrics_balanced_accuracy(r->confusion, nc);
    r->macro_f1 = metrics_macro_f1(r->confusion, nc);
    r->n_test = nte;
    return CN_OK;
}

cn_err cv_eval_fold(const rf_params *p, const ds_dataset *d, int k, int f, bool shuffle,
                    uint64_t seed, cv_fold_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (d->y == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "cross-validation needs a labelled data set");
    size_t *tr, *te, ntr, nte;
    cn_err e =
        cv_fold_indices(d->y, d->n_rows, d->n_classes, k, f, shuffle, seed, &tr, &ntr, &te, &nte);
    if (e != CN_OK)
        return cn_errf(err, errlen, e, "cannot make fold %d of %d over %zu rows: %s", f, k,
                       d->n_rows, cn_strerror(e));
    int32_t *pred = malloc((nte ? nte : 1) * sizeof *pred);
    if (pred == NULL) {
        e = cn_errf(err, errlen, CN_ENOMEM, "out of memory for fold %d", f);
        goto out;
    }
    double t0 = now_s();
    // Only the predictions count here, so the forest keeps no trees.
    e = rf_forest_fit_predict(p, d, tr, ntr, te, nte, pred, NULL, err, errlen);
    double t1 = now_s();
    if (e != CN_OK)
        goto out;
    if ((e = score_fold(d, te, nte, pred, r)) != CN_OK) {
        cn_errf(err, errlen, e, "scoring fold %d failed: %s", f, cn_strerror(e));
        goto out;
    }
    r->fit_seconds = t1 - t0;
    r->predict_seconds = now_s() - t1;
    r->n_train = ntr;
out:
    free(pred);
    free(tr);
    free(te);
    return e;
}

cn_err cv_run(const rf_params *p, const ds_dataset *d, int k, bool shuffle, uint64_t seed,
              cv_result **out, char *err, size_t errlen)
{
    *out = NULL;
    if (d->y == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "cross-validation needs a labelled data set");
    if (k < 2 || (size_t)k > d->n_rows)
        return cn_errf(err, errlen, CN_EINVAL,
                       "folds must be in 2..%zu (the number of rows), not %d", d->n_rows, k);
    size_t n = d->n_rows;
    cv_result *r = calloc(1, sizeof *r);
    rf_fold *folds = calloc((size_t)k, sizeof *folds);
    size_t **train = calloc((size_t)k, sizeof *train), **test = calloc((size_t)k, sizeof *test);
    int *fold_of = malloc(n * sizeof *fold_of);
    cn_err e = CN_ENOMEM;
    if (r == NULL || folds == NULL || train == NULL || test == NULL || fold_of == NULL ||
        (r->folds = calloc((size_t)k, sizeof *r->folds)) == NULL) {
        cn_errf(err, errlen, e, "out of memory");
        goto out;
    }
    r->k = k;
    r->n_classes = d->n_classes;
    if ((e = cv_assign_folds(d->y, n, d->n_classes, k, shuffle, seed, fold_of)) != CN_OK) {
        cn_errf(err, errlen, e, "cannot make %d folds over %zu rows: %s", k, n, cn_strerror(e));
        goto out;
    }
    for (int f = 0; f < k; f++) {
        rf_fold *fo = &folds[f];
        if ((e = split_rows(fold_of, n, f, &train[f], &fo->n_rows, &test[f], &fo->n_eval)) !=
                CN_OK ||
            (fo->pred = malloc((fo->n_eval ? fo->n_eval : 1) * sizeof *fo->pred)) == NULL) {
            e = cn_errf(err, errlen, CN_ENOMEM, "out of memory for fold %d", f);
            goto out;
        }
        fo->rows = train[f];
        fo->eval_rows = test[f];
    }
    double t0 = now_s();
    // All folds in one job: only the predictions count, so no trees are kept.
    if ((e = rf_forest_fit_predict_folds(p, d, folds, k, err, errlen)) != CN_OK)
        goto out;
    for (int f = 0; f < k; f++) {
        cv_fold_result *fr = &r->folds[f];
        double t1 = now_s();
        if ((e = score_fold(d, test[f], folds[f].n_eval, folds[f].pred, fr)) != CN_OK) {
            cn_errf(err, errlen, e, "scoring fold %d failed: %s", f, cn_strerror(e));
            goto out;
        }
        fr->fit_seconds = folds[f].fit_seconds;
        fr->predict_seconds = now_s() - t1;
        fr->n_train = folds[f].n_rows;
    }
    r->wall_seconds = now_s() - t0;
    double s = 0, s2 = 0;
    for (int f = 0; f < k; f++) {
        s += r->folds[f].accuracy;
        r->mean_balanced_accuracy += r->folds[f].balanced_accuracy / k;
        r->mean_macro_f1 += r->folds[f].macro_f1 / k;
    }
    r->mean_accuracy = s / k;
    for (int f = 0; f < k; f++) {
        double dd = r->folds[f].accuracy - r->mean_accuracy;
        s2 += dd * dd;
    }
    r->std_accuracy = sqrt(s2 / k);
out:
    for (int f = 0; folds != NULL && train != NULL && test != NULL && f < k; f++) {
        free(folds[f].pred);
        free(train[f]);
        free(test[f]);
    }
    free(folds);
    free(train);
    free(test);
    free(fold_of);
    if (e != CN_OK) {
        cv_result_free(r);
        return e;
    }
    *out = r;
    return CN_OK;
}

void cv_result_free(cv_result *r)
{
    if (r == NULL)
        return;
    if (r->folds)
        for (int f = 0; f < r->k; f++)
            free(r->folds[f].confusion);
    free(r->folds);
    free(r);
}
