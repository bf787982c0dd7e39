// sweep_spec.c: parsing, validation and trial expansion of sweep files.
#include "scheduler/sweep_spec.h"
#include "scheduler/sweep_spec_impl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_config.h"
#include "common/cn_rand.h"
#include "ml/mlp_fit.h"
#include "ml/rf.h"

#define MAX_TRIALS 100000

static const char *kind_names = "grid, choice, uniform, quniform, loguniform, qloguniform, "
                                "randint, qrandint";

static cn_err require_object(const cJSON *v, const char *path, char *err, size_t errlen)
{
    if (!cJSON_IsObject(v))
        return cn_errf(err, errlen, CN_EINVAL, "%s: expected an object", path);
    return CN_OK;
}

static cn_err parse_dim(const cJSON *v, dim *d, char *err, size_t errlen)
{
    d->name = v->string;
    if (!cJSON_IsObject(v)) {
        if (cJSON_IsArray(v))
            return cn_errf(err, errlen, CN_EINVAL,
                           "space.%s: a bare list is ambiguous; write {\"grid\": [...]} or "
                           "{\"choice\": [...]}",
                           v->string);
        d->kind = DIM_FIXED;
        d->values = v;
        return CN_OK;
    }
    if (v->child == NULL || v->child->next != NULL)
        return cn_errf(err, errlen, CN_EINVAL,
                       "space.%s: expected exactly one of {%s} with its arguments", v->string,
                       kind_names);
    const cJSON *a = v->child;
    const char *k = a->string;
    if (!cJSON_IsArray(a))
        return cn_errf(err, errlen, CN_EINVAL, "space.%s.%s: expected a list", v->string, k);
    int n = cJSON_GetArraySize(a);
    if (strcmp(k, "grid") == 0 || strcmp(k, "choice") == 0) {
        if (n < 1)
            return cn_errf(err, errlen, CN_EINVAL, "space.%s.%s: needs at least one value",
                           v->string, k);
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(a, i);
            bool numbers = cJSON_IsArray(e);
            for (const cJSON *x = numbers ? e->child : NULL; x; x = x->next)
                numbers = numbers && cJSON_IsNumber(x);
            if (cJSON_IsObject(e) || (cJSON_IsArray(e) && !numbers))
                return cn_errf(err, errlen, CN_EINVAL,
                               "space.%s.%s[%d]: values must be numbers, strings, booleans, "
                               "null or lists of numbers",
                               v->string, k, i);
        }
        d->kind = k[0] == 'g' ? DIM_GRID : DIM_CHOICE;
        d->values = a;
        return CN_OK;
    }
    int quant = k[0] == 'q';
    const char *base = k + quant;
    if (strcmp(base, "uniform") == 0)
        d->kind = DIM_UNIFORM;
    else if (strcmp(base, "loguniform") == 0)
        d->kind = DIM_LOGUNIFORM;
    else if (strcmp(base, "randint") == 0)
        d->kind = DIM_RANDINT;
    else
        return cn_errf(err, errlen, CN_EINVAL, "space.%s.%s: unknown distribution (allowed: %s)",
                       v->string, k, kind_names);
    if (n != 2 + quant)
        return cn_errf(err, errlen, CN_EINVAL, "space.%s.%s: expected [lo, hi%s]", v->string, k,
                       quant ? ", q" : "");
    for (int i = 0; i < n; i++)
        if (!cJSON_IsNumber(cJSON_GetArrayItem(a, i)))
            return cn_errf(err, errlen, CN_EINVAL, "space.%s.%s[%d]: expected a number", v->string,
                           k, i);
    d->lo = cJSON_GetArrayItem(a, 0)->valuedouble;
    d->hi = cJSON_GetArrayItem(a, 1)->valuedouble;
    d->q = quant ? cJSON_GetArrayItem(a, 2)->valuedouble : 0;
    if (!(d->lo < d->hi) || (quant && !(d->q > 0)))
        return cn_errf(err, errlen, CN_EINVAL, "space.%s.%s: need lo < hi%s (got %g, %g)",
                       v->string, k, quant ? " and q > 0" : "", d->lo, d->hi);
    if (d->kind == DIM_LOGUNIFORM && d->lo <= 0)
        return cn_errf(err, errlen, CN_EINVAL, "space.%s.%s: lo must be > 0 for a log scale",
                       v->string, k);
    if (d->kind == DIM_RANDINT && (d->lo != floor(d->lo) || d->hi != floor(d->hi)))
        return cn_errf(err, errlen, CN_EINVAL, "space.%s.%s: bounds must be integers", v->string,
                       k);
    return CN_OK;
}

static double quantize(double x, double q)
{
    return q > 0 ? round(x / q) * q : x;
}

static cJSON *sample_dim(const dim *d, cn_rng *r)
{
    switch (d->kind) {
    case DIM_CHOICE: {
        int n = cJSON_GetArraySize(d->values);
        return cJSON_Duplicate(cJSON_GetArrayItem(d->values, (int)cn_rng_below(r, (uint64_t)n)), 1);
    }
    case DIM_UNIFORM:
        return cJSON_CreateNumber(quantize(d->lo + (d->hi - d->lo) * cn_rng_uniform(r), d->q));
    case DIM_LOGUNIFORM: {
        double x = exp(log(d->lo) + (log(d->hi) - log(d->lo)) * cn_rng_uniform(r));
        return cJSON_CreateNumber(quantize(x, d->q));
    }
    case DIM_RANDINT: {
        if (d->q > 0) { // qrandint: multiples of q in [lo, hi], hi inclusive
            double steps = floor((d->hi - d->lo) / d->q);
            return cJSON_CreateNumber(d->lo + d->q * (double)cn_rng_below(r, (uint64_t)steps + 1));
        }
        return cJSON_CreateNumber(d->lo + (double)cn_rng_below(r, (uint64_t)(d->hi - d->lo)));
    }
    default:
        return NULL;
    }
}

typedef struct expand {
    const dim *dims;
    int ndims;
    cJSON *fixed;
    sweep_spec *spec;
    size_t cap;
    char *err;
    size_t errlen;
} expand;

bool sweep_params_check(const sweep_spec *s, const cJSON *params, char *err, size_t errlen)
{
    if (strcmp(s->model, "mlp") == 0) {
        mlp_hparams h;
        mlp_hparams_default(&h);
        return mlp_hparams_from_json(&h, params, "parameters", err, errlen) == CN_OK;
    }
    rf_params p = rf_params_default();
    return rf_params_from_json(&p, params, err, errlen) == CN_OK &&
           rf_params_validate(&p, err, errlen) == CN_OK;
}

static cn_err add_trial(expand *x, cJSON *params)
{
    sweep_spec *s = x->spec;
    if (s->n_trials >= MAX_TRIALS)
        return cn_errf(x->err, x->errlen, CN_ERANGE,
                       "the search space expands to more than %d trials; use random search or "
                       "fewer grid values",
                       MAX_TRIALS);
    char perr[CN_ERRBUF_LEN];
    if (!sweep_params_check(s, params, perr, sizeof perr)) {
        char *text = cJSON_PrintUnformatted(params);
        cn_errf(x->err, x->errlen, CN_EINVAL, "trial %zu %s: %s", s->n_trials, text ? text : "",
                perr);
        free(text);
        return CN_EINVAL;
    }
    if (s->n_trials == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        char **nt = realloc(s->trials, cap * sizeof *nt);
        if (nt == NULL)
            return CN_ENOMEM;
        s->trials = nt;
        x->cap = cap;
    }
    char *text = cJSON_PrintUnformatted(params);
    if (text == NULL)
        return CN_ENOMEM;
    s->trials[s->n_trials++] = text;
    return CN_OK;
}

// grid_rec walks every combination of grid (and, for grid search, choice)
// dimensions; at each leaf it draws the random dimensions once.
static cn_err grid_rec(expand *x, int i, cJSON *cur, cn_rng *r, bool expand_choice)
{
    if (i == x->ndims) {
        cJSON *params = cJSON_Duplicate(cur, 1);
        if (params == NULL)
            return CN_ENOMEM;
        for (int j = 0; j < x->ndims; j++) {
            const dim *d = &x->dims[j];
            bool random = d->kind == DIM_UNIFORM || d->kind == DIM_LOGUNIFORM ||
                          d->kind == DIM_RANDINT || (d->kind == DIM_CHOICE && !expand_choice);
            if (random)
                cJSON_AddItemToObject(params, d->name, sample_dim(d, r));
        }
        cn_err e = add_trial(x, params);
        cJSON_Delete(params);
        return e;
    }
    const dim *d = &x->dims[i];
    if (d->kind == DIM_GRID || (d->kind == DIM_CHOICE && expand_choice)) {
        int n = cJSON_GetArraySize(d->values);
        for (int k = 0; k < n; k++) {
            cJSON_AddItemToObject(cur, d->name,
                                  cJSON_Duplicate(cJSON_GetArrayItem(d->values, k), 1));
            cn_err e = grid_rec(x, i + 1, cur, r, expand_choice);
            cJSON_DeleteItemFromObject(cur, d->name);
            if (e != CN_OK)
                return e;
        }
        return CN_OK;
    }
    if (d->kind == DIM_FIXED) {
        cJSON_AddItemToObject(cur, d->name, cJSON_Duplicate(d->values, 1));
        cn_err e = grid_rec(x, i + 1, cur, r, expand_choice);
        cJSON_DeleteItemFromObject(cur, d->name);
        return e;
    }
    return grid_rec(x, i + 1, cur, r, expand_choice);
}

void sweep_spec_free(sweep_spec *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_trials; i++)
        free(s->trials[i]);
    free(s->trials);
    if (s->space) {
        cJSON_Delete(s->space->root);
        free(s->space->dims);
        free(s->space);
    }
    free(s);
}

// read_forest_data reads a forest sweep's data section: a CSV file.
static cn_err read_forest_data(const cJSON *data, sweep_spec *s, char *err, size_t errlen)
{
    if (data == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "data: missing (give {\"path\": FILE})");
    char path[CN_OPT_STRLEN] = "", label[CN_OPT_STRLEN], drop[CN_OPT_STRLEN];
    cn_err e;
    snprintf(label, sizeof label, "%s", s->label);
    snprintf(drop, sizeof drop, "%s", s->drop);
    cn_opt data_opts[] = {{"path", CN_OPT_STRING, path, "data file", 0, 0, NULL},
                          {"label", CN_OPT_STRING, label, "label column", 0, 0, NULL},
                          {"drop", CN_OPT_STRING, drop, "columns to drop", 0, 0, NULL},
                          CN_OPT_END};
    if ((e = cn_config_apply_json(data_opts, data, "data", err, errlen)) != CN_OK)
        return e;
    if (!path[0])
        return cn_errf(err, errlen, CN_EINVAL, "data.path: missing (a string is required)");
    if (strlen(label) >= sizeof s->label || strlen(drop) >= sizeof s->drop)
        return cn_errf(err, errlen, CN_EINVAL, "data: label or drop is too long");
    snprintf(s->data_path, sizeof s->data_path, "%s", path);
    snprintf(s->label, sizeof s->label, "%s", label);
    snprintf(s->drop, sizeof s->drop, "%s", drop);
    return CN_OK;
}

// read_mlp_data reads an MLP sweep's data section: IDX training files and
// the validation fraction.
static cn_err read_mlp_data(const cJSON *data, sweep_spec *s, char *err, size_t errlen)
{
    if (data == NULL)
        return cn_errf(err, errlen, CN_EINVAL,
                       "data: missing (give {\"train_images\": FILE, \"train_labels\": FILE})");
    char images[CN_OPT_STRLEN] = "", labels[CN_OPT_STRLEN] = "";
    int64_t rows = 0;
    s->validation = 0.1;
    cn_opt data_opts[] = {
        {"train_images", CN_OPT_STRING, images, "IDX training images", 0, 0, NULL},
        {"train_labels", CN_OPT_STRING, labels, "IDX training labels", 0, 0, NULL},
        {"train_rows", CN_OPT_INT, &rows, "training rows (0 = all)", 0, 1e9, NULL},
        {"validation", CN_OPT_DOUBLE, &s->validation, "held-out fraction", 0.001, 0.9, NULL},
        CN_OPT_END};
    cn_err e = cn_config_apply_json(data_opts, data, "data", err, errlen);
    if (e != CN_OK)
        return e;
    if (!images[0] || !labels[0])
        return cn_errf(err, errlen, CN_EINVAL,
                       "data: an mlp sweep needs train_images and train_labels (IDX files)");
    snprintf(s->train_images, sizeof s->train_images, "%s", images);
    snprintf(s->train_labels, sizeof s->train_labels, "%s", labels);
    s->train_rows = (uint64_t)rows;
    return CN_OK;
}

// read_search reads the cv, search and limits sections.
static cn_err read_search(const cJSON *cv, const cJSON *search, const cJSON *limits, sweep_spec *s,
                          char *err, size_t errlen)
{
    cn_err e = CN_OK;
    int64_t folds = s->folds, cv_seed = 0, samples = s->samples, search_seed = 0, mc = 0,
            timeout = s->unit_timeout_s, retries = s->retries, eta = s->eta, startup = s->startup,
            candidates = s->candidates, min_trees = s->min_trees;
    char algorithm[CN_OPT_STRLEN], scheduler[CN_OPT_STRLEN];
    snprintf(algorithm, sizeof algorithm, "%s", s->algorithm);
    snprintf(scheduler, sizeof scheduler, "%s", s->scheduler);
    cn_opt cv_opts[] = {{"folds", CN_OPT_INT, &folds, "folds", 2, 100, NULL},
                        {"seed", CN_OPT_INT, &cv_seed, "fold seed", 0, UINT32_MAX, NULL},
                        {"shuffle", CN_OPT_BOOL, &s->shuffle, "shuffle rows", 0, 0, NULL},
                        CN_OPT_END};
    cn_opt search_opts[] = {
        {"algorithm", CN_OPT_CHOICE, algorithm, "search algorithm", 0, 0, "grid|random|tpe"},
        {"samples", CN_OPT_INT, &samples, "draws per grid point", 1, MAX_TRIALS, NULL},
        {"seed", CN_OPT_INT, &search_seed, "search seed", 0, UINT32_MAX, NULL},
        {"scheduler", CN_OPT_CHOICE, scheduler, "trial scheduler", 0, 0, "fifo|asha"},
        {"eta", CN_OPT_INT, &eta, "ASHA reduction factor", 2, 10, NULL},
        {"tree_budget", CN_OPT_BOOL, &s->tree_budget, "ASHA: fewer trees at low rungs", 0, 0, NULL},
        {"min_trees", CN_OPT_INT, &min_trees, "ASHA: fewest trees at a rung", 1, 100000, NULL},
        {"startup", CN_OPT_INT, &startup, "TPE random start trials", 1, MAX_TRIALS, NULL},
        {"candidates", CN_OPT_INT, &candidates, "TPE draws per proposal", 1, 10000, NULL},
        CN_OPT_END};
    cn_opt limit_opts[] = {
        {"max_concurrent", CN_OPT_INT, &mc, "units at once (0 = any)", 0, 100000, NULL},
        {"unit_timeout_s", CN_OPT_INT, &timeout, "unit timeout", 1, 7 * 86400, NULL},
        {"retries", CN_OPT_INT, &retries, "re-runs of a unit", 0, 100, NULL},
        CN_OPT_END};
    if ((cv && (e = cn_config_apply_json(cv_opts, cv, "cv", err, errlen)) != CN_OK) ||
        (search &&
         (e = cn_config_apply_json(search_opts, search, "search", err, errlen)) != CN_OK) ||
        (limits && (e = cn_config_apply_json(limit_opts, limits, "limits", err, errlen)) != CN_OK))
        return e;
    s->folds = (uint32_t)folds;
    s->cv_seed = (uint64_t)cv_seed;
    s->samples = (uint32_t)samples;
    s->search_seed = (uint64_t)search_seed;
    snprintf(s->algorithm, sizeof s->algorithm, "%.15s", algorithm);
    snprintf(s->scheduler, sizeof s->scheduler, "%.15s", scheduler);
    s->eta = (uint32_t)eta;
    s->startup = (uint32_t)startup;
    s->candidates = (uint32_t)candidates;
    s->min_trees = (uint32_t)min_trees;
    s->max_concurrent = (uint32_t)mc;
    s->unit_timeout_s = (uint32_t)timeout;
    s->retries = (uint32_t)retries;
    return CN_OK;
}

// read_sections reads every key of the sweep file but the search space
// (name, model, data, cv, search, limits) with option tables, so each bad
// key or value is named with what is allowed and the nearest name.
static cn_err read_sections(const cJSON *root, sweep_spec *s, char *err, size_t errlen)
{
    if (!cJSON_IsObject(root))
        return cn_errf(err, errlen, CN_EINVAL, "(top level): expected an object");
    char name[CN_OPT_STRLEN] = "", model[CN_OPT_STRLEN] = "random_forest";
    snprintf(s->model, sizeof s->model, "random_forest");
    const cJSON *data = NULL, *cv = NULL, *search = NULL, *limits = NULL, *fixed = NULL,
                *space = NULL;
    cn_opt top[] = {{"name", CN_OPT_STRING, name, "sweep name", 0, 0, NULL},
                    {"model", CN_OPT_CHOICE, model, "model", 0, 0, "random_forest|mlp"},
                    {"data", CN_OPT_OBJECT, &data, "data set", 0, 0, NULL},
                    {"cv", CN_OPT_OBJECT, &cv, "cross-validation", 0, 0, NULL},
                    {"fixed", CN_OPT_OBJECT, &fixed, "fixed parameters", 0, 0, NULL},
                    {"space", CN_OPT_OBJECT, &space, "search space", 0, 0, NULL},
                    {"search", CN_OPT_OBJECT, &search, "search algorithm", 0, 0, NULL},
                    {"limits", CN_OPT_OBJECT, &limits, "limits", 0, 0, NULL},
                    CN_OPT_END};
    cn_err e = cn_config_apply_json(top, root, "(top level)", err, errlen);
    if (e != CN_OK)
        return e;
    if (!name[0] || strlen(name) >= sizeof s->name)
        return cn_errf(err, errlen, CN_EINVAL,
                       "name: missing (a string of 1 to %zu bytes is required)",
                       sizeof s->name - 1);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->model, sizeof s->model, "%s", model);
    if (strcmp(model, "mlp") == 0)
        e = read_mlp_data(data, s, err, errlen);
    else
        e = read_forest_data(data, s, err, errlen);
    if (e != CN_OK)
        return e;
    return read_search(cv, search, limits, s, err, errlen);
}

cn_err sweep_spec_parse(const char *text, const char *origin, sweep_spec **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    cJSON *root = cJSON_Parse(text);
    if (root == NULL) {
        size_t line = 1;
        const char *at = cJSON_GetErrorPtr();
        for (const char *p = text; at && p < at && *p; p++)
            line += *p == '\n';
        return cn_errf(err, errlen, CN_EFORMAT, "%s:%zu: invalid JSON (fix the syntax near here)",
                       origin, line);
    }
    sweep_spec *s = calloc(1, sizeof *s);
    dim *dims = NULL;
    cJSON *cur = NULL;
    char inner[CN_ERRBUF_LEN] = "";
    cn_err e = CN_ENOMEM;
    if (s == NULL)
        goto done;
    snprintf(s->label, sizeof s->label, "Cover_Type");
    snprintf(s->drop, sizeof s->drop, "Id");
    s->folds = 5;
    s->shuffle = true;
    snprintf(s->algorithm, sizeof s->algorithm, "random");
    s->samples = 10;
    snprintf(s->scheduler, sizeof s->scheduler, "fifo");
    s->eta = 3;
    s->startup = 10;
    s->candidates = 24;
    s->min_trees = 10;
    s->unit_timeout_s = 1800;
    s->retries = 2;
    if ((e = read_sections(root, s, inner, sizeof inner)) != CN_OK)
        goto done;
    const cJSON *fixed = cJSON_GetObjectItemCaseSensitive(root, "fixed");
    if (fixed && (e = require_object(fixed, "fixed", inner, sizeof inner)) != CN_OK)
        goto done;
    const cJSON *space = cJSON_GetObjectItemCaseSensitive(root, "space");
    if (space && (e = require_object(space, "space", inner, sizeof inner)) != CN_OK)
        goto done;
    int ndims = space ? cJSON_GetArraySize(space) : 0;
    dims = calloc((size_t)ndims + 1, sizeof *dims);
    if (dims == NULL) {
        e = CN_ENOMEM;
        goto done;
    }
    int i = 0;
    bool is_grid = strcmp(s->algorithm, "grid") == 0;
    for (const cJSON *it = space ? space->child : NULL; it; it = it->next, i++) {
        if (fixed && cJSON_GetObjectItemCaseSensitive(fixed, it->string)) {
            e = cn_errf(inner, sizeof inner, CN_EINVAL,
                        "space.%s: also set in \"fixed\"; keep it in one place", it->string);
            goto done;
        }
        if ((e = parse_dim(it, &dims[i], inner, sizeof inner)) != CN_OK)
            goto done;
        if (is_grid && (dims[i].kind == DIM_UNIFORM || dims[i].kind == DIM_LOGUNIFORM ||
                        dims[i].kind == DIM_RANDINT)) {
            e = cn_errf(inner, sizeof inner, CN_EINVAL,
                        "space.%s: grid search cannot enumerate a continuous or random range; "
                        "use \"search\": {\"algorithm\": \"random\"} or list values with grid",
                        it->string);
            goto done;
        }
        if (strcmp(s->algorithm, "tpe") == 0 && dims[i].kind == DIM_GRID) {
            e = cn_errf(inner, sizeof inner, CN_EINVAL,
                        "space.%s: TPE proposes every value itself; write {\"choice\": [...]} "
                        "instead of a grid",
                        it->string);
            goto done;
        }
    }
    if (s->tree_budget && (strcmp(s->scheduler, "asha") != 0 || strcmp(s->model, "mlp") == 0)) {
        e = cn_errf(inner, sizeof inner, CN_EINVAL,
                    "search.tree_budget: trees are a second budget of ASHA over a forest's folds; "
                    "set \"scheduler\": \"asha\" with a forest model, or drop the key");
        goto done;
    }
    if (strcmp(s->model, "mlp") == 0) {
        const cJSON *ep = fixed ? cJSON_GetObjectItemCaseSensitive(fixed, "epochs") : NULL;
        s->epochs = cJSON_IsNumber(ep) && ep->valuedouble >= 1 ? (uint32_t)ep->valuedouble : 5;
        if (strcmp(s->scheduler, "asha") == 0 && space &&
            cJSON_GetObjectItemCaseSensitive(space, "epochs")) {
            e = cn_errf(inner, sizeof inner, CN_EINVAL,
                        "space.epochs: epochs are ASHA's budget in an mlp sweep; set the most a "
                        "trial may get in \"fixed\": {\"epochs\": N}");
            goto done;
        }
    }
    // Trial 0: the defaults plus the fixed parameters.
    expand x = {.dims = dims, .ndims = ndims, .spec = s, .err = inner, .errlen = sizeof inner};
    cur = fixed ? cJSON_Duplicate(fixed, 1) : cJSON_CreateObject();
    if (cur == NULL) {
        e = CN_ENOMEM;
        goto done;
    }
    if ((e = add_trial(&x, cur)) != CN_OK)
        goto done;
    cn_rng r;
    cn_rng_seed(&r, s->search_seed, 0x5ee9);
    uint32_t reps = is_grid ? 1 : s->samples;
    for (uint32_t k = 0; k < reps; k++)
        if ((e = grid_rec(&x, 0, cur, &r, is_grid)) != CN_OK)
            goto done;
    if (strcmp(s->algorithm, "tpe") == 0) {
        s->space = calloc(1, sizeof *s->space);
        if (s->space == NULL) {
            e = CN_ENOMEM;
            goto done;
        }
        s->space->root = root; // dims point into it
        s->space->dims = dims;
        s->space->ndims = ndims;
        root = NULL;
        dims = NULL;
    }
    e = CN_OK;
done:
    if (e != CN_OK) {
        cn_errf(err, errlen, e, "%s: %s", origin, inner[0] ? inner : cn_strerror(e));
        sweep_spec_free(s);
        s = NULL;
    }
    cJSON_Delete(cur);
    free(dims);
    cJSON_Delete(root);
    *out = s;
    return e;
}
