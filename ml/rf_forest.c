// rf_forest.c: forest parameters, fitting trees in parallel, prediction,
// out-of-bag score and feature importances (see rf.h).
//
// Fitting prepares the data once (rf_prep), then each tree t is built by
// whichever pool worker takes it, using only PRNG stream (seed, t) for its
// bootstrap sample and its feature draws, so the forest is the same for any
// thread count. The folds of a cross-validation are fitted in one such job
// (see fit_set below), each fold exactly as a fit of its own.
#include "ml/rf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cn_clock.h"
#include "ml/rf_impl.h"
#include "ml/threadpool.h"

rf_params rf_params_default(void)
{
    rf_params p;
    memset(&p, 0, sizeof p);
    p.n_estimators = 100;
    p.criterion = RF_GINI;
    p.max_depth = 0;
    p.min_samples_split = 2;
    p.min_samples_leaf = 1;
    p.min_impurity_decrease = 0.0;
    p.max_features = RF_MAXF_SQRT;
    p.max_features_n = 0;
    p.max_features_frac = 0;
    p.bootstrap = true;
    p.max_samples_n = 0;
    p.max_samples_frac = 0;
    p.class_weight = RF_CW_NONE;
    p.splitter = RF_SPLIT_BEST;
    p.ccp_alpha = 0.0;
    p.oob_score = false;
    p.seed = 0;
    p.threads = 0;
    return p;
}

static int parse_int(const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end != 0 || x < lo || x > hi)
        return 0;
    *out = x;
    return 1;
}

static int parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end != 0 || !isfinite(x))
        return 0;
    *out = x;
    return 1;
}

static int is_none(const char *v)
{
    return strcasecmp(v, "none") == 0 || strcasecmp(v, "null") == 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0)
        *out = true;
    else if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0)
        *out = false;
    else
        return 0;
    return 1;
}

#define BAD(allowed)                                                                               \
    cn_errf(err, errlen, CN_EINVAL, "forest parameter %s: \"%s\" is not allowed (allowed: %s)",    \
            key, value, allowed)

cn_err rf_params_set(rf_params *p, const char *key, const char *value, char *err, size_t errlen)
{
    long long i;
    double d;
    bool b;
    if (strcmp(key, "n_estimators") == 0) {
        if (!parse_int(value, 1, 100000, &i))
            return BAD("an integer 1..100000");
        p->n_estimators = (int)i;
    } else if (strcmp(key, "criterion") == 0) {
        if (strcmp(value, "gini") == 0)
            p->criterion = RF_GINI;
        else if (strcmp(value, "entropy") == 0 || strcmp(value, "log_loss") == 0)
            p->criterion = RF_ENTROPY;
        else
            return BAD("gini|entropy|log_loss");
    } else if (strcmp(key, "max_depth") == 0) {
        if (is_none(value))
            p->max_depth = 0;
        else if (parse_int(value, 0, 1000000, &i))
            p->max_depth = (int)i;
        else
            return BAD("none or an integer >= 0 (0 = unlimited)");
    } else if (strcmp(key, "min_samples_split") == 0) {
        if (!parse_int(value, 2, 1000000000, &i))
            return BAD("an integer >= 2");
        p->min_samples_split = (int)i;
    } else if (strcmp(key, "min_samples_leaf") == 0) {
        if (!parse_int(value, 1, 1000000000, &i))
            return BAD("an integer >= 1");
        p->min_samples_leaf = (int)i;
    } else if (strcmp(key, "min_impurity_decrease") == 0) {
        if (!parse_double(value, &d) || d < 0)
            return BAD("a number >= 0");
        p->min_impurity_decrease = d;
    } else if (strcmp(key, "max_features") == 0) {
        if (strcmp(value, "sqrt") == 0 || strcmp(value, "auto") == 0)
            p->max_features = RF_MAXF_SQRT;
        else if (strcmp(value, "log2") == 0)
            p->max_features = RF_MAXF_LOG2;
        else if (strcmp(value, "all") == 0 || is_none(value))
            p->max_features = RF_MAXF_ALL;
        else if (parse_int(value, 1, 1000000000, &i)) {
            p->max_features = RF_MAXF_INT;
            p->max_features_n = (int)i;
        } else if (parse_double(value, &d) && d > 0 && d <= 1) {
            p->max_features = RF_MAXF_FRACTION;
            p->max_features_frac = d;
        } else
            return BAD("sqrt|log2|all|none, an integer >= 1, or a fraction in (0, 1]");
    } else if (strcmp(key, "bootstrap") == 0) {
        if (!parse_bool(value, &b))
            return BAD("true|false");
        p->bootstrap = b;
    } else if (strcmp(key, "max_samples") == 0) {
        if (is_none(value)) {
            p->max_samples_n = 0;
            p->max_samples_frac = 0;
        } else if (parse_int(value, 1, (long long)1 << 40, &i)) {
            p->max_samples_n = (size_t)i;
            p->max_samples_frac = 0;
        } else if (parse_double(value, &d) && d > 0 && d <= 1) {
            p->max_samples_n = 0;
            p->max_samples_frac = d;
        } else
            return BAD("none, an integer >= 1, or a fraction in (0, 1]");
    } else if (strcmp(key, "class_weight") == 0) {
        if (is_none(value))
            p->class_weight = RF_CW_NONE;
        else if (strcmp(value, "balanced") == 0)
            p->class_weight = RF_CW_BALANCED;
        else if (strcmp(value, "balanced_subsample") == 0)
            p->class_weight = RF_CW_BALANCED_SUBSAMPLE;
        else
            return BAD("none|balanced|balanced_subsample");
    } else if (strcmp(key, "splitter") == 0) {
        if (strcmp(value, "best") == 0)
            p->splitter = RF_SPLIT_BEST;
        else if (strcmp(value, "random") == 0)
            p->splitter = RF_SPLIT_RANDOM;
        else
            return BAD("best|random");
    } else if (strcmp(key, "ccp_alpha") == 0) {
        if (!parse_double(value, &d) || d < 0)
            return BAD("a number >= 0");
        p->ccp_alpha = d;
    } else if (strcmp(key, "oob_score") == 0) {
        if (!parse_bool(value, &b))
            return BAD("true|false");
        p->oob_score = b;
    } else if (strcmp(key, "seed") == 0 || strcmp(key, "random_state") == 0) {
        if (is_none(value))
            p->seed = 0;
        else if (parse_int(value, 0, INT64_MAX, &i))
            p->seed = (uint64_t)i;
        else
            return BAD("an integer >= 0");
    } else if (strcmp(key, "threads") == 0 || strcmp(key, "n_jobs") == 0) {
        if (is_none(value))
            p->threads = 0;
        else if (parse_int(value, -1, 4096, &i))
            p->threads = i < 0 ? 0 : (int)i;
        else
            return BAD("an integer 0..4096 (0 or -1 = all CPUs)");
    } else {
        return cn_errf(err, errlen, CN_EINVAL,
                       "unknown forest parameter \"%s\" (known: n_estimators, criterion, "
                       "max_depth, min_samples_split, min_samples_leaf, min_impurity_decrease, "
                       "max_features, bootstrap, max_samples, class_weight, splitter, ccp_alpha, "
                       "oob_score, seed, threads)",
                       key);
    }
    return CN_OK;
}

cn_err rf_params_from_json(rf_params *p, const struct cJSON *obj, char *err, size_t errlen)
{
    if (obj == NULL || !cJSON_IsObject(obj))
        return cn_errf(err, errlen, CN_EINVAL, "forest parameters must be a JSON object");
    for (const cJSON *it = obj->child; it != NULL; it = it->next) {
        char buf[64];
        const char *v;
        if (cJSON_IsString(it)) {
            v = it->valuestring;
        } else if (cJSON_IsBool(it)) {
            v = cJSON_IsTrue(it) ? "true" : "false";
        } else if (cJSON_IsNull(it)) {
            v = "none";
        } else if (cJSON_IsNumber(it)) {
            double x = it->valuedouble;
            if (x == floor(x) && fabs(x) < 1e15)
                snprintf(buf, sizeof buf, "%.0f", x);
            else
                snprintf(buf, sizeof buf, "%.17g", x);
            v = buf;
        } else {
            return cn_errf(err, errlen, CN_EINVAL,
                           "forest parameter %s: value must be a number, string, boolean or null",
                           it->string ? it->string : "?");
        }
        cn_err e = rf_params_set(p, it->string ? it->string : "", v, err, errlen);
        if (e != CN_OK)
            return e;
    }
    return CN_OK;
}

cn_err rf_params_from_json_text(rf_params *p, const char *text, const char *origin, char *err,
                                size_t errlen)
{
    cJSON *obj = cJSON_Parse(text);
    if (obj == NULL)
        return cn_errf(err, errlen, CN_EFORMAT,
                       "%s: not valid JSON (expected an object like {\"max_depth\": 20})", origin);
    rf_params q = *p;
    char sub[CN_ERRBUF_LEN];
    cn_err e = rf_params_from_json(&q, obj, sub, sizeof sub);
    cJSON_Delete(obj);
    if (e != CN_OK)
        return cn_errf(err, errlen, e, "%s: %s", origin, sub);
    *p = q;
    return CN_OK;
}

// frac_text writes a fraction as a JSON string so that it reads back as a
// fraction: JSON numbers lose the difference between 1 (one feature or one
// sample) and 1.0 (all of them).
static void frac_text(char *buf, size_t n, double v)
{
    snprintf(buf, n, "\"%.17g", v);
    if (strpbrk(buf, ".eE") == NULL)
        snprintf(buf + strlen(buf), n - strlen(buf), ".0");
    snprintf(buf + strlen(buf), n - strlen(buf), "\"");
}

cn_err rf_params_format(const rf_params *p, cn_buf *o)
{
    static const char *mf[] = {"\"sqrt\"", "\"log2\"", "", "", "null"};
    static const char *cw[] = {"null", "\"balanced\"", "\"balanced_subsample\""};
    char maxf[32], maxd[32], maxs[32];
    if (p->max_features == RF_MAXF_INT)
        snprintf(maxf, sizeof maxf, "%d", p->max_features_n);
    else if (p->max_features == RF_MAXF_FRACTION)
        frac_text(maxf, sizeof maxf, p->max_features_frac);
    else
        snprintf(maxf, sizeof maxf, "%s", mf[p->max_features]);
    if (p->max_depth > 0)
        snprintf(maxd, sizeof maxd, "%d", p->max_depth);
    else
        snprintf(maxd, sizeof maxd, "null");
    if (p->max_samples_n > 0)
        snprintf(maxs, sizeof maxs, "%zu", p->max_samples_n);
    else if (p->max_samples_frac > 0)
        frac_text(maxs, sizeof maxs, p->max_samples_frac);
    else
        snprintf(maxs, sizeof maxs, "null");
    return cn_buf_printf(
        o,
        "{\"n_estimators\": %d, \"criterion\": \"%s\", \"max_depth\": %s, "
        "\"min_samples_split\": %d, \"min_samples_leaf\": %d, \"min_impurity_decrease\": %.17g, "
        "\"max_features\": %s, \"bootstrap\": %s, \"max_samples\": %s, \"class_weight\": %s, "
        "\"splitter\": \"%s\", \"ccp_alpha\": %.17g, \"oob_score\": %s, \"seed\": %llu}",
        p->n_estimators, p->criterion == RF_GINI ? "gini" : "entropy", maxd, p->min_samples_split,
        p->min_samples_leaf, p->min_impurity_decrease, maxf, p->bootstrap ? "true" : "false", maxs,
        cw[p->class_weight], p->splitter == RF_SPLIT_BEST ? "best" : "random", p->ccp_alpha,
        p->oob_score ? "true" : "false", (unsigned long long)p->seed);
}

cn_err rf_params_validate(const rf_params *p, char *err, size_t errlen)
{
    if (p->n_estimators < 1)
        return cn_errf(err, errlen, CN_EINVAL, "n_estimators must be >= 1, not %d",
                       p->n_estimators);
    if (p->max_depth < 0)
        return cn_errf(err, errlen, CN_EINVAL, "max_depth must be >= 0 (0 = unlimited)");
    if (p->min_samples_split < 2)
        return cn_errf(err, errlen, CN_EINVAL, "min_samples_split must be >= 2");
    if (p->min_samples_leaf < 1)
        return cn_errf(err, errlen, CN_EINVAL, "min_samples_leaf must be >= 1");
    if (!(p->min_impurity_decrease >= 0) || !(p->ccp_alpha >= 0))
        return cn_errf(err, errlen, CN_EINVAL, "min_impurity_decrease and ccp_alpha must be >= 0");
    if (p->max_features == RF_MAXF_INT && p->max_features_n < 1)
        return cn_errf(err, errlen, CN_EINVAL, "max_features must be >= 1");
    if (p->max_features == RF_MAXF_FRACTION &&
        !(p->max_features_frac > 0 && p->max_features_frac <= 1))
        return cn_errf(err, errlen, CN_EINVAL, "max_features fraction must be in (0, 1]");
    if (p->max_samples_frac < 0 || p->max_samples_frac > 1)
        return cn_errf(err, errlen, CN_EINVAL, "max_samples fraction must be in (0, 1]");
    if (p->threads < 0)
        return cn_errf(err, errlen, CN_EINVAL, "threads must be >= 0 (0 = all CPUs)");
    return CN_OK;
}

// ---------------------------------------------------------------------------

rf_forest *rf_forest_alloc(int n_trees, size_t n_features, int n_classes)
{
    rf_forest *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->n_trees = n_trees;
    f->n_features = n_features;
    f->n_classes = n_classes;
    f->trees = calloc(n_trees > 0 ? (size_t)n_trees : 1, sizeof *f->trees);
    f->class_values = calloc(n_classes > 0 ? (size_t)n_classes : 1, sizeof *f->class_values);
    if (f->trees == NULL || f->class_values == NULL) {
        rf_forest_free(f);
        return NULL;
    }
    return f;
}

void rf_forest_free(rf_forest *f)
{
    if (f == NULL)
        return;
    if (f->trees)
        for (int t = 0; t < f->n_trees; t++)
            rf_tree_fini(&f->trees[t]);
    free(f->trees);
    free(f->class_values);
    if (f->feature_names) {
        for (size_t j = 0; j < f->n_features; j++)
            free(f->feature_names[j]);
        free(f->feature_names);
    }
    free(f);
}

// A fit job grows the trees of one or more training sets (the whole fit, or
// every fold of a cross-validation) as one parallel-for over (set, tree):
// task s * n_estimators + t is tree t of set s. A set's prepared data and
// evaluation buffers are made by the first worker that reaches one of its
// trees (a worker that would wait for them prepares the next set meanwhile)
// and freed by the worker that finishes its last tree, so no worker idles
// at the boundary between sets and only the very last tree runs alone.
typedef enum { SET_NEW, SET_PREPARING, SET_READY, SET_FAILED } set_state;

// fit_set is one training set of a fit job.
// Thread rule: state, trees_left, status and t0_ns under the job's mutex;
// the fields below them are written by the worker that prepares the set
// before state becomes SET_READY (the mutex publishes them), then only
// read, except each worker's own slice of eval, and the worker that
// finishes the last tree reads all of them.
typedef struct fit_set {
    rf_fold *spec; // the caller's rows and outputs
    set_state state;
    int trees_left;
    cn_err status;
    uint64_t t0_ns; // when its first tree was taken
    rf_prep prep;
    double *cw; // (n_classes) class weights or NULL
    size_t n_draws;
    double *eval;     // (pool size, n_eval, n_classes) or NULL
    float *eval_cols; // (n_features, n_eval) the evaluation rows, column by column
    uint32_t *route;  // (pool size, 3, n_eval) rf_tree_route scratch and leaves
} fit_set;

typedef struct fit_job {
    const rf_params *p;
    const ds_dataset *d;
    int n_workers;
    int max_features;
    fit_set *sets; // (n_sets)
    int n_sets;
    rf_forest *f;         // one set only: the forest that keeps its trees; NULL: keep none
    double *oob;          // with f: (pool size, n_rows, n_classes) or NULL
    rf_scratch *scratch;  // (pool size)
    fit_set **scratch_of; // (pool size) the set each worker's scratch is sized for, or NULL
    pthread_mutex_t mu;
    pthread_cond_t ready; // a set left SET_PREPARING
} fit_job;

static void set_free(fit_set *fs)
{
    rf_prep_fini(&fs->prep);
    free(fs->cw);
    free(fs->eval);
    free(fs->eval_cols);
    free(fs->route);
    fs->cw = NULL;
    fs->eval = NULL;
    fs->eval_cols = NULL;
    fs->route = NULL;
}

// set_prepare makes fs's codes, class weights and evaluation buffers.
static cn_err set_prepare(const fit_job *j, fit_set *fs)
{
    const rf_params *p = j->p;
    const ds_dataset *d = j->d;
    const rf_fold *sp = fs->spec;
    size_t n_rows = sp->rows ? sp->n_rows : d->n_rows, n_eval = sp->n_eval;
    int k = d->n_classes;
    if (rf_prep_build(d, sp->rows, n_rows, &fs->prep) != CN_OK)
        return CN_ENOMEM;
    if (p->class_weight == RF_CW_BALANCED ||
        (p->class_weight == RF_CW_BALANCED_SUBSAMPLE && !p->bootstrap) ||
        (p->class_weight == RF_CW_BALANCED_SUBSAMPLE && k > 256)) {
        double *cw = calloc((size_t)k, sizeof *cw);
        if (cw == NULL)
            return CN_ENOMEM;
        int present = 0;
        for (size_t i = 0; i < n_rows; i++)
            cw[fs->prep.y[i]] += 1;
        for (int c = 0; c < k; c++)
            present += cw[c] > 0;
        for (int c = 0; c < k; c++)
            cw[c] = cw[c] > 0 ? (double)n_rows / (present * cw[c]) : 1.0;
        fs->cw = cw;
    }
    if (sp->eval_rows == NULL)
        return CN_OK;
    size_t ne = n_eval ? n_eval : 1, nf = d->n_features;
    fs->eval = calloc((size_t)j->n_workers * ne * (size_t)k, sizeof *fs->eval);
    fs->route = malloc((size_t)j->n_workers * 3 * ne * sizeof *fs->route);
    fs->eval_cols = malloc(ne * nf * sizeof *fs->eval_cols);
    if (fs->eval == NULL || fs->route == NULL || fs->eval_cols == NULL)
        return CN_ENOMEM;
    for (size_t i = 0; i < n_eval; i++)
        for (size_t q = 0; q < nf; q++)
            fs->eval_cols[q * n_eval + i] = d->x[sp->eval_rows[i] * nf + q];
    return CN_OK;
}

// set_wait returns 1 once fs is prepared, 0 if it failed. The first caller
// prepares it; a later one prepares the next set meanwhile if nobody has,
// else waits.
static int set_wait(fit_job *j, fit_set *fs)
{
    pthread_mutex_lock(&j->mu);
    if (fs->t0_ns == 0)
        fs->t0_ns = cn_now_ns();
    while (fs->state == SET_NEW || fs->state == SET_PREPARING) {
        fit_set *g = fs;
        if (fs->state == SET_PREPARING)
            g = fs + 1 < j->sets + j->n_sets && fs[1].state == SET_NEW ? fs + 1 : NULL;
        if (g == NULL) {
            pthread_cond_wait(&j->ready, &j->mu);
            continue;
        }
        g->state = SET_PREPARING;
        pthread_mutex_unlock(&j->mu);
        cn_err e = set_prepare(j, g);
        pthread_mutex_lock(&j->mu);
        g->state = e == CN_OK ? SET_READY : SET_FAILED;
        if (e != CN_OK && g->status == CN_OK)
            g->status = e;
        pthread_cond_broadcast(&j->ready);
    }
    int ok = fs->state == SET_READY && fs->status == CN_OK;
    pthread_mutex_unlock(&j->mu);
    return ok;
}

// set_finish turns the summed class probabilities of fs's evaluation rows
// into predictions and frees what the set no longer needs. It runs once,
// after fs's last tree.
static void set_finish(const fit_job *j, fit_set *fs)
{
    rf_fold *sp = fs->spec;
    int k = j->d->n_classes;
    size_t n_eval = sp->n_eval;
    if (fs->eval != NULL) {
        for (size_t i = 0; i < n_eval; i++) {
            double *acc = fs->eval + i * k;
            for (int w = 1; w < j->n_workers; w++)
                for (int c = 0; c < k; c++)
                    acc[c] += fs->eval[((size_t)w * n_eval + i) * k + c];
            int32_t best = 0;
            for (int c = 1; c < k; c++)
                if (acc[c] > acc[best])
                    best = c;
            sp->pred[i] = best;
        }
    }
    sp->fit_seconds = (double)(cn_now_ns() - fs->t0_ns) * 1e-9;
    set_free(fs);
}

// scratch_fit sizes worker's scratch for fs's data; the worker's reused tree
// keeps its memory.
static cn_err scratch_fit(fit_job *j, int worker, fit_set *fs)
{
    rf_scratch *s = &j->scratch[worker];
    if (j->scratch_of[worker] == fs)
        return CN_OK;
    rf_tree keep = s->tree;
    memset(&s->tree, 0, sizeof s->tree);
    rf_scratch_fini(s);
    j->scratch_of[worker] = NULL;
    cn_err e = rf_scratch_init(s, &fs->prep);
    s->tree = keep;
    if (e == CN_OK)
        j->scratch_of[worker] = fs;
    return e;
}

// grow grows tree t of set fs with the worker's scratch and adds its votes
// for the set's evaluation rows (and, with a kept forest, the out-of-bag
// rows).
static cn_err grow(fit_job *j, fit_set *fs, size_t t, int worker)
{
    const rf_params *p = j->p;
    const rf_prep *prep = &fs->prep;
    rf_scratch *s = &j->scratch[worker];
    size_t n = prep->n_rows;
    int k = prep->n_classes;
    cn_rng rng;
    cn_rng_seed(&rng, p->seed, (uint64_t)t);
    if (p->bootstrap) {
        memset(s->boot, 0, n * sizeof *s->boot);
        for (size_t i = 0; i < fs->n_draws; i++)
            s->boot[cn_rng_below(&rng, n)]++;
    } else {
        for (size_t i = 0; i < n; i++)
            s->boot[i] = 1;
    }
    double cw_sub[256];
    const double *cw = fs->cw;
    if (p->class_weight == RF_CW_BALANCED_SUBSAMPLE && k <= 256) {
        double cnt[256] = {0};
        double tot = 0;
        int present = 0;
        for (size_t i = 0; i < n; i++) {
            cnt[prep->y[i]] += s->boot[i];
            tot += s->boot[i];
        }
        for (int c = 0; c < k; c++)
            present += cnt[c] > 0;
        for (int c = 0; c < k; c++)
            cw_sub[c] = cnt[c] > 0 ? tot / (present * cnt[c]) : 1.0;
        cw = cw_sub;
    }
    for (size_t i = 0; i < n; i++)
        s->w[i] = s->boot[i] * (cw ? cw[prep->y[i]] : 1.0);
    rf_tree *tree = j->f ? &j->f->trees[t] : &s->tree;
    cn_err e = rf_tree_build(p, j->max_features, prep, s, &rng, tree);
    if (e == CN_OK && p->ccp_alpha > 0)
        e = rf_tree_prune_ccp(tree, k, p->ccp_alpha);
    if (e == CN_OK)
        e = rf_tree_finish(tree);
    if (e != CN_OK)
        return e;
    size_t n_eval = fs->spec->n_eval;
    if (fs->eval) {
        // Predict the evaluation rows while this tree is still in cache.
        double *ev = fs->eval + (size_t)worker * n_eval * (size_t)k;
        uint32_t *pos = fs->route + (size_t)worker * 3 * n_eval, *tmp = pos + n_eval;
        int32_t *leaf = (int32_t *)(tmp + n_eval);
        rf_tree_route(tree, fs->eval_cols, n_eval, pos, tmp, leaf);
        for (size_t i = 0; i < n_eval; i++) {
            const float *v = tree->value + (size_t)leaf[i] * k;
            for (int c = 0; c < k; c++)
                ev[i * k + c] += v[c];
        }
    }
    if (j->oob == NULL)
        return CN_OK;
    size_t nf = j->d->n_features;
    const size_t *rows = fs->spec->rows;
    double *acc = j->oob + (size_t)worker * n * (size_t)k;
    for (size_t i = 0; i < n; i++) {
        if (s->boot[i] != 0)
            continue;
        size_t r = rows ? rows[i] : i;
        int32_t leaf = rf_tree_leaf(tree, j->d->x + r * nf);
        const float *v = tree->value + (size_t)leaf * k;
        for (int c = 0; c < k; c++)
            acc[i * k + c] += v[c];
    }
    return CN_OK;
}

static void fit_task(void *arg, size_t task, int worker)
{
    fit_job *j = arg;
    size_t n_est = (size_t)j->p->n_estimators;
    fit_set *fs = &j->sets[task / n_est];
    cn_err e = CN_OK;
    if (set_wait(j, fs)) {
        e = scratch_fit(j, worker, fs);
        if (e == CN_OK)
            e = grow(j, fs, task % n_est, worker);
    }
    pthread_mutex_lock(&j->mu);
    if (e != CN_OK && fs->status == CN_OK)
        fs->status = e;
    int last = --fs->trees_left == 0 && fs->status == CN_OK;
    pthread_mutex_unlock(&j->mu);
    if (last)
        set_finish(j, fs);
}

static int resolve_max_features(const rf_params *p, size_t nf)
{
    double v;
    switch (p->max_features) {
    case RF_MAXF_SQRT:
        v = floor(sqrt((double)nf));
        break;
    case RF_MAXF_LOG2:
        v = floor(log2((double)nf));
        break;
    case RF_MAXF_INT:
        v = p->max_features_n;
        break;
    case RF_MAXF_FRACTION:
        v = floor(p->max_features_frac * (double)nf);
        break;
    default:
        v = (double)nf;
    }
    if (v < 1)
        v = 1;
    return (int)v;
}

static int copy_names(rf_forest *f, const ds_dataset *d)
{
    memcpy(f->class_values, d->class_values, (size_t)d->n_classes * sizeof *f->class_values);
    snprintf(f->label_name, sizeof f->label_name, "%s", d->label_name);
    if (d->feature_names) {
        f->feature_names = calloc(d->n_features ? d->n_features : 1, sizeof(char *));
        if (f->feature_names == NULL)
            return 0;
        for (size_t j = 0; j < d->n_features; j++)
            if ((f->feature_names[j] = strdup(d->feature_names[j] ? d->feature_names[j] : "")) ==
                NULL)
                return 0;
    }
    return 1;
}

// check_set validates one training set's rows before any work starts. what
// prefixes messages ("" for a single fit, "fold 2: " for a fold).
static cn_err check_set(const rf_params *p, const ds_dataset *d, const rf_fold *sp, size_t *n_draws,
                        const char *what, char *err, size_t errlen)
{
    size_t n_rows = sp->rows ? sp->n_rows : d->n_rows;
    if (n_rows == 0 || d->n_features == 0)
        return cn_errf(err, errlen, CN_EINVAL, "%sno rows or no features to train on", what);
    if (n_rows > UINT32_MAX)
        return cn_errf(err, errlen, CN_EINVAL, "%stoo many rows (at most %u)", what, UINT32_MAX);
    if (sp->rows)
        for (size_t i = 0; i < n_rows; i++)
            if (sp->rows[i] >= d->n_rows)
                return cn_errf(err, errlen, CN_ERANGE, "%srow index %zu out of range (%zu rows)",
                               what, sp->rows[i], d->n_rows);
    *n_draws = n_rows;
    if (p->max_samples_n > 0)
        *n_draws = p->max_samples_n;
    else if (p->max_samples_frac > 0)
        *n_draws = (size_t)fmax(1.0, round((double)n_rows * p->max_samples_frac));
    if (p->bootstrap && *n_draws > n_rows)
        return cn_errf(err, errlen, CN_EINVAL, "%smax_samples=%zu is larger than the %zu rows",
                       what, *n_draws, n_rows);
    if (sp->eval_rows)
        for (size_t i = 0; i < sp->n_eval; i++)
            if (sp->eval_rows[i] >= d->n_rows)
                return cn_errf(err, errlen, CN_ERANGE,
                               "%sevaluation row %zu out of range (%zu rows)", what,
                               sp->eval_rows[i], d->n_rows);
    return CN_OK;
}

// fit_impl fits a forest on each of the n_sets training sets in one job. out
// (one set only) receives the forest with its trees; with out NULL no trees
// are kept.
static cn_err fit_impl(const rf_params *p, const ds_dataset *d, rf_fold *specs, int n_sets,
                       rf_forest **out, char *err, size_t errlen)
{
    if (out != NULL)
        *out = NULL;
    cn_err e = rf_params_validate(p, err, errlen);
    if (e != CN_OK)
        return e;
    if (d->y == NULL || d->n_classes < 1 || d->class_values == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "the data set has no labels; a forest needs them");
    if (p->max_features == RF_MAXF_INT && (size_t)p->max_features_n > d->n_features)
        return cn_errf(err, errlen, CN_EINVAL,
                       "max_features=%d is larger than the number of features (%zu)",
                       p->max_features_n, d->n_features);
    if (n_sets < 1)
        return cn_errf(err, errlen, CN_EINVAL, "no folds to fit (at least 1)");
    if ((size_t)n_sets * (size_t)p->n_estimators > SIZE_MAX / 2)
        return cn_errf(err, errlen, CN_EINVAL, "too many folds (%d)", n_sets);
    int k = d->n_classes;
    fit_job job;
    memset(&job, 0, sizeof job);
    ml_pool *pool = NULL;
    rf_forest *f = NULL;
    job.sets = calloc((size_t)n_sets, sizeof *job.sets);
    if (job.sets == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory while fitting the forest");
    for (int s = 0; s < n_sets; s++) {
        char what[32] = "";
        if (n_sets > 1)
            snprintf(what, sizeof what, "fold %d: ", s);
        fit_set *fs = &job.sets[s];
        fs->spec = &specs[s];
        fs->spec->fit_seconds = 0;
        fs->trees_left = p->n_estimators;
        if ((e = check_set(p, d, fs->spec, &fs->n_draws, what, err, errlen)) != CN_OK) {
            free(job.sets);
            return e;
        }
    }
    e = CN_ENOMEM;
    job.p = p;
    job.d = d;
    job.n_sets = n_sets;
    job.max_features = resolve_max_features(p, d->n_features);
    pthread_mutex_init(&job.mu, NULL);
    pthread_cond_init(&job.ready, NULL);
    if (out != NULL) {
        f = rf_forest_alloc(p->n_estimators, d->n_features, k);
        if (f == NULL || !copy_names(f, d))
            goto fail;
        f->params = *p;
        job.f = f;
    }
    if (ml_pool_new(p->threads, &pool) != CN_OK)
        goto fail;
    job.n_workers = ml_pool_size(pool);
    job.scratch = calloc((size_t)job.n_workers, sizeof *job.scratch);
    job.scratch_of = calloc((size_t)job.n_workers, sizeof *job.scratch_of);
    if (job.scratch == NULL || job.scratch_of == NULL)
        goto fail;
    size_t n_rows = specs[0].rows ? specs[0].n_rows : d->n_rows;
    int want_oob = p->oob_score && p->bootstrap && f != NULL;
    if (want_oob) {
        job.oob = calloc((size_t)job.n_workers * n_rows * (size_t)k, sizeof *job.oob);
        if (job.oob == NULL)
            goto fail;
    }
    ml_pool_run(pool, (size_t)n_sets * (size_t)p->n_estimators, fit_task, &job);
    for (int s = 0; s < n_sets; s++) {
        if ((e = job.sets[s].status) != CN_OK) {
            if (n_sets > 1)
                cn_errf(err, errlen, e, "fold %d: out of memory while fitting the forest", s);
            else
                cn_errf(err, errlen, e, "out of memory while fitting the forest");
            goto fail_keep;
        }
    }
    if (want_oob) {
        const size_t *rows = specs[0].rows;
        size_t hit = 0, scored = 0;
        for (size_t i = 0; i < n_rows; i++) {
            double *acc = job.oob + i * k;
            for (int w = 1; w < job.n_workers; w++)
                for (int c = 0; c < k; c++)
                    acc[c] += job.oob[((size_t)w * n_rows + i) * k + c];
            double sum = 0;
            int best = 0;
            for (int c = 0; c < k; c++) {
                sum += acc[c];
                if (acc[c] > acc[best])
                    best = c;
            }
            if (sum <= 0)
                continue;
            scored++;
            hit += best == d->y[rows ? rows[i] : i];
        }
        f->oob_score = scored ? (double)hit / (double)scored : 0.0;
        f->has_oob = 1;
    }
    e = CN_OK;
    goto done;
fail:
    cn_errf(err, errlen, e, "out of memory while fitting the forest");
fail_keep:
    rf_forest_free(f);
    f = NULL;
done:
    if (job.scratch)
        for (int w = 0; w < job.n_workers; w++)
            rf_scratch_fini(&job.scratch[w]);
    for (int s = 0; s < n_sets; s++)
        set_free(&job.sets[s]);
    free(job.sets);
    free(job.scratch);
    free(job.scratch_of);
    free(job.oob);
    ml_pool_free(pool);
    pthread_cond_destroy(&job.ready);
    pthread_mutex_destroy(&job.mu);
    if (out != NULL)
        *out = f;
    return e;
}

cn_err rf_forest_fit(const rf_params *p, const ds_dataset *d, const size_t *rows, size_t n_rows,
                     rf_forest **out, char *err, size_t errlen)
{
    rf_fold one = {rows, n_rows, NULL, 0, NULL, 0};
    return fit_impl(p, d, &one, 1, out, err, errlen);
}

cn_err rf_forest_fit_predict(const rf_params *p, const ds_dataset *d, const size_t *rows,
                             size_t n_rows, const size_t *eval_rows, size_t n_eval, int32_t *pred,
                             rf_forest **out, char *err, size_t errlen)
{
    rf_fold one = {rows, n_rows, eval_rows, n_eval, pred, 0};
    return fit_impl(p, d, &one, 1, out, err, errlen);
}

cn_err rf_forest_fit_predict_folds(const rf_params *p, const ds_dataset *d, rf_fold *folds,
                                   int n_folds, char *err, size_t errlen)
{
    return fit_impl(p, d, folds, n_folds, NULL, err, errlen);
}

// ---------------------------------------------------------------------------

void rf_forest_predict_proba(const rf_forest *f, const float *x, size_t n, double *proba)
{
    int k = f->n_classes;
    memset(proba, 0, n * (size_t)k * sizeof *proba);
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * f->n_features;
        double *pr = proba + i * k;
        for (int t = 0; t < f->n_trees; t++) {
            const rf_tree *tree = &f->trees[t];
            const float *v = tree->value + (size_t)rf_tree_leaf(tree, row) * k;
            for (int c = 0; c < k; c++)
                pr[c] += v[c];
        }
        for (int c = 0; c < k; c++)
            pr[c] /= f->n_trees;
    }
}

static int32_t predict_one(const rf_forest *f, const float *row, double *pr)
{
    int k = f->n_classes;
    memset(pr, 0, (size_t)k * sizeof *pr);
    for (int t = 0; t < f->n_trees; t++) {
        const rf_tree *tree = &f->trees[t];
        const float *v = tree->value + (size_t)rf_tree_leaf(tree, row) * k;
        for (int c = 0; c < k; c++)
            pr[c] += v[c];
    }
    int32_t best = 0;
    for (int c = 1; c < k; c++)
        if (pr[c] > pr[best])
            best = c;
    return best;
}

void rf_forest_predict(const rf_forest *f, const float *x, size_t n, int32_t *out)
{
    double stackbuf[64];
    double *pr = f->n_classes <= 64 ? stackbuf : malloc((size_t)f->n_classes * sizeof *pr);
    CN_ASSERT(pr != NULL);
    for (size_t i = 0; i < n; i++)
        out[i] = predict_one(f, x + i * f->n_features, pr);
    if (pr != stackbuf)
        free(pr);
}

typedef struct predict_job {
    const rf_forest *f;
    const ds_dataset *d;
    const size_t *rows;
    size_t n;
    int32_t *out;
} predict_job;

#define PREDICT_CHUNK 256

static void predict_chunk(void *arg, size_t task, int worker)
{
    (void)worker;
    predict_job *j = arg;
    const rf_forest *f = j->f;
    int k = f->n_classes;
    size_t lo = task * PREDICT_CHUNK;
    size_t hi = lo + PREDICT_CHUNK < j->n ? lo + PREDICT_CHUNK : j->n;
    double *pr = calloc((hi - lo) * (size_t)k, sizeof *pr);
    CN_ASSERT(pr != NULL);
    // Tree by tree over the chunk's rows, so each tree stays in cache.
    for (int t = 0; t < f->n_trees; t++) {
        const rf_tree *tree = &f->trees[t];
        for (size_t i = lo; i < hi; i++) {
            size_t r = j->rows ? j->rows[i] : i;
            const float *v =
                tree->value + (size_t)rf_tree_leaf(tree, j->d->x + r * j->d->n_features) * k;
            double *p = pr + (i - lo) * k;
            for (int c = 0; c < k; c++)
                p[c] += v[c];
        }
    }
    for (size_t i = lo; i < hi; i++) {
        const double *p = pr + (i - lo) * k;
        int32_t best = 0;
        for (int c = 1; c < k; c++)
            if (p[c] > p[best])
                best = c;
        j->out[i] = best;
    }
    free(pr);
}

cn_err rf_forest_predict_rows(const rf_forest *f, const ds_dataset *d, const size_t *rows, size_t n,
                              int32_t *out)
{
    if (d->n_features != f->n_features)
        return CN_EINVAL;
    if (rows == NULL)
        n = d->n_rows;
    for (size_t i = 0; i < n; i++)
        if (rows && rows[i] >= d->n_rows)
            return CN_ERANGE;
    predict_job job = {f, d, rows, n, out};
    size_t chunks = (n + PREDICT_CHUNK - 1) / PREDICT_CHUNK;
    ml_pool *pool = NULL;
    // Threads pay off only for large jobs; the result is the same either way.
    if (chunks > 1 && n * (size_t)f->n_trees >= 100000 && f->params.threads != 1 &&
        ml_pool_new(f->params.threads, &pool) == CN_OK) {
        ml_pool_run(pool, chunks, predict_chunk, &job);
        ml_pool_free(pool);
    } else {
        for (size_t t = 0; t < chunks; t++)
            predict_chunk(&job, t, 0);
    }
    return CN_OK;
}

size_t rf_forest_n_features(const rf_forest *f)
{
    return f->n_features;
}
int rf_forest_n_classes(const rf_forest *f)
{
    return f->n_classes;
}
const int32_t *rf_forest_class_values(const rf_forest *f)
{
    return f->class_values;
}
const char *rf_forest_label_name(const rf_forest *f)
{
    return f->label_name;
}
const char *rf_forest_feature_name(const rf_forest *f, size_t j)
{
    return f->feature_names && j < f->n_features ? f->feature_names[j] : NULL;
}
int rf_forest_n_trees(const rf_forest *f)
{
    return f->n_trees;
}
const rf_params *rf_forest_params(const rf_forest *f)
{
    return &f->params;
}

size_t rf_forest_n_nodes(const rf_forest *f)
{
    size_t n = 0;
    for (int t = 0; t < f->n_trees; t++)
        n += (size_t)f->trees[t].n_nodes;
    return n;
}

cn_err rf_forest_oob_score(const rf_forest *f, double *out)
{
    if (!f->has_oob)
        return CN_ESTATE;
    *out = f->oob_score;
    return CN_OK;
}

void rf_forest_feature_importances(const rf_forest *f, double *out)
{
    size_t nf = f->n_features;
    memset(out, 0, nf * sizeof *out);
    double *tmp = calloc(nf ? nf : 1, sizeof *tmp);
    CN_ASSERT(tmp != NULL);
    int used = 0;
    for (int t = 0; t < f->n_trees; t++) {
        const rf_tree *tree = &f->trees[t];
        if (tree->n_nodes <= 1)
            continue;
        memset(tmp, 0, nf * sizeof *tmp);
        for (int32_t i = 0; i < tree->n_nodes; i++) {
            const rf_tnode *nd = &tree->nodes[i];
            if (nd->feature < 0)
                continue;
            const rf_tnode *l = &tree->nodes[nd->left], *r = &tree->nodes[nd->right];
            tmp[nd->feature] += nd->weighted_n * nd->impurity - l->weighted_n * l->impurity -
                                r->weighted_n * r->impurity;
        }
        double sum = 0;
        for (size_t j = 0; j < nf; j++)
            sum += tmp[j];
        if (sum > 0)
            for (size_t j = 0; j < nf; j++)
                out[j] += tmp[j] / sum;
        used++;
    }
    double sum = 0;
    for (size_t j = 0; j < nf; j++)
        sum += out[j];
    if (used > 0 && sum > 0)
        for (size_t j = 0; j < nf; j++)
            out[j] /= sum;
    free(tmp);
}

int rf_forest_tree_n_nodes(const rf_forest *f, int t)
{
    return t >= 0 && t < f->n_trees ? f->trees[t].n_nodes : 0;
}

cn_err rf_forest_tree_node(const rf_forest *f, int t, int i, rf_node_info *info)
{
    if (t < 0 || t >= f->n_trees || i < 0 || i >= f->trees[t].n_nodes)
        return CN_ERANGE;
    const rf_tnode *nd = &f->trees[t].nodes[i];
    info->feature = nd->feature;
    info->threshold = nd->threshold;
    info->left = nd->left;
    info->right = nd->right;
    info->n_samples = nd->n_samples;
    info->weighted_n = nd->weighted_n;
    info->impurity = nd->impurity;
    info->value = f->trees[t].value + (size_t)i * f->n_classes;
    return CN_OK;
}
