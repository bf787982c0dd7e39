// sched_sweep.c: the sweep job kind: distributed hyper-parameter sweeps of
// random forests and of MLPs on the job kernel (sched_job.h).
//
// A sweep file (sweep_spec.h) expands into trials; each trial into `upt`
// work items (units; item = trial * upt + unit). For a random forest a unit
// is one cross-validation fold (upt = folds), so one trial spreads over
// every worker and a lost worker costs one fold; the data set is named by
// hash (role "data") and checked on submission by parsing it as workers
// will. For an MLP (model "mlp") a unit trains a fresh network on one
// worker, on the training set less a held-out validation split, and scores
// it on that split (worker/wk_mlp_trial.h); the data are IDX files (roles
// "train_images", "train_labels"). An MLP trial has one unit, or under ASHA
// one per rung, where rung r trains for b_r epochs (the budget is epochs,
// not folds), and its score is that of its highest unit done.
//
// Each finished unit is one record in the results log; when every unit
// that will run has ended the sweep writes trials.csv, best.json and
// summary.json beside it (the files the report reads). The id depends only
// on the spec and the data, so resubmitting the same sweep finds it.
//
// Search on demand ("scheduler": "asha" or "algorithm": "tpe"): every unit
// is added held and released when the sweep decides it should run. Each
// time the queue runs dry (a report, each tick) the sweep releases, first,
// the folds of a promotion (sweep_search.h), else the first rung of the
// next trial, whose parameters TPE proposes then. Each decision is one
// record ("trial": a trial starts, with its parameters; "promote": a trial
// is given a rung) written before its units are released, so a restarted
// sweep rebuilds the same state from its log: it neither re-runs a finished
// fold nor promotes a trial twice.
//
// Under ASHA's tree budget ("tree_budget": true) a forest rung also trains
// fewer trees, so each rung runs its own folds: a trial has sum(b_r) units
// laid out rung after rung (sweep_search.h), the task carries the rung's
// "trees", and a trial's score is the mean of its highest rung's folds.
#include "scheduler/sched_kinds_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "common/cn_log.h"
#include "ml/csv.h"
#include "ml/idx.h"
#include "ml/rf.h"
#include "scheduler/sweep_search.h"
#include "scheduler/sweep_spec.h"

#define MAX_DATA_BYTES (1024u << 20)

typedef struct unit {
    bool done, failed;
    double acc, bacc, f1, fit_s, pred_s;
    char *error; // last failure
} unit;

typedef struct sweep {
    sweep_spec *spec;
    char spec_sha[SCHED_SHA_LEN];   // of spec text + data hash: the id's suffix
    char data_sha[SCHED_SHA_LEN];   // forest: the CSV; mlp: the images
    char labels_sha[SCHED_SHA_LEN]; // mlp: the labels
    uint64_t data_size;
    bool mlp;
    uint32_t upt; // units per trial
    unit *units;  // (n_trials * upt)
    size_t n_units, n_done, n_failed, n_replayed;
    bool summarized;
    // search on demand
    bool on_demand; // units are released by the sweep (asha or tpe)
    asha *asha;     // NULL: every started trial runs every fold
    bool *started;  // (n_trials) its first units were released
    size_t next_trial;
} sweep;

static void sweep_free(void *impl)
{
    sweep *w = impl;
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_units; i++)
        free(w->units[i].error);
    free(w->units);
    free(w->started);
    asha_free(w->asha);
    sweep_spec_free(w->spec);
    free(w);
}

// check_data parses the stored data set as workers will, so a wrong label
// column or a broken row is reported before anything runs.
static cn_err check_data(sched_jobs *k, const sweep *w, const char *name, char *err, size_t errlen)
{
    char path[1200];
    sched_jobs_data_path(k, w->data_sha, path, sizeof path);
    uint8_t *text;
    size_t len;
    cn_err e = cn_file_read_all(path, MAX_DATA_BYTES, &text, &len, err, errlen);
    if (e != CN_OK)
        return e;
    csv_options o = csv_options_default();
    o.label_mode = CSV_LABEL_NAME;
    o.label_name = w->spec->label;
    o.drop_columns = w->spec->drop;
    ds_dataset *d = NULL;
    e = ds_parse_csv((const char *)text, len, name, &o, &d, err, errlen);
    free(text);
    if (e != CN_OK)
        return e;
    size_t *counts = calloc((size_t)d->n_classes, sizeof *counts);
    if (counts) {
        ds_class_counts(d, counts);
        size_t minc = (size_t)-1;
        for (int c = 0; c < d->n_classes; c++)
            minc = counts[c] < minc ? counts[c] : minc;
        if (minc < w->spec->folds)
            CN_WARN("%s: the smallest class has %zu rows, fewer than %u folds", name, minc,
                    w->spec->folds);
        free(counts);
    }
    if (d->n_rows < w->spec->folds)
        e = cn_errf(err, errlen, CN_EINVAL, "%s: %zu rows cannot make %u folds", name, d->n_rows,
                    w->spec->folds);
    ds_dataset_free(d);
    return e;
}

// check_idx loads the stored IDX pair as workers will and checks that the
// validation split leaves rows on both sides.
static cn_err check_idx(sched_jobs *k, const sweep *w, char *err, size_t errlen)
{
    char images[1200], labels[1200];
    sched_jobs_data_path(k, w->data_sha, images, sizeof images);
    sched_jobs_data_path(k, w->labels_sha, labels, sizeof labels);
    ds_dataset *d = NULL;
    cn_err e = idx_load(images, labels, (size_t)w->spec->train_rows, &d, err, errlen);
    if (e != CN_OK)
        return e;
    if ((double)d->n_rows * w->spec->validation < 1 ||
        (double)d->n_rows * (1 - w->spec->validation) < 1)
        e = cn_errf(err, errlen, CN_EINVAL,
                    "data.validation: %g of %zu rows leaves no validation or no training row",
                    w->spec->validation, d->n_rows);
    ds_dataset_free(d);
    return e;
}

// find_data finds the submitted data set with the given role, or fails
// saying which is missing.
static cn_err find_data(const sched_job_input *in, const char *role, const sched_data_ref **out,
                        char *err, size_t errlen)
{
    for (size_t i = 0; i < in->n_data; i++)
        if (strcmp(in->data[i].role, role) == 0) {
            *out = &in->data[i];
            return CN_OK;
        }
    return cn_errf(err, errlen, CN_EINVAL, "%s: the sweep names no data set with role \"%s\"",
                   in->spec_name, role);
}

static cn_err sweep_create(sched_jobs *k, const sched_job_input *in, void **impl, char *err,
                           size_t errlen)
{
    sweep *w = calloc(1, sizeof *w);
    if (w == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    cn_err e = sweep_spec_parse(in->spec_json, in->spec_name, &w->spec, err, errlen);
    const sched_data_ref *data = NULL, *labels = NULL;
    w->mlp = e == CN_OK && strcmp(w->spec->model, "mlp") == 0;
    if (e == CN_OK)
        e = find_data(in, w->mlp ? "train_images" : "data", &data, err, errlen);
    if (e == CN_OK && w->mlp)
        e = find_data(in, "train_labels", &labels, err, errlen);
    if (e == CN_OK) {
        snprintf(w->data_sha, sizeof w->data_sha, "%s", data->sha256);
        snprintf(w->labels_sha, sizeof w->labels_sha, "%s", labels ? labels->sha256 : "");
        w->data_size = data->size;
        cn_buf key;
        cn_buf_init(&key);
        cn_buf_printf(&key, "%s\n%s%s", in->spec_json, data->sha256, w->labels_sha);
        cn_file_sha256_hex(key.data ? key.data : "", key.len, w->spec_sha);
        cn_buf_fini(&key);
        bool halving = strcmp(w->spec->scheduler, "asha") == 0;
        if (halving)
            w->asha = asha_new(w->spec->n_trials, w->mlp ? w->spec->epochs : w->spec->folds,
                               w->spec->eta, w->spec->tree_budget ? w->spec->min_trees : 0);
        if (w->asha) // trial 0 is the default: the best is compared with its full score
            asha_set_baseline(w->asha, 0);
        w->upt = !w->mlp   ? (w->asha ? (uint32_t)asha_units(w->asha) : w->spec->folds)
                 : w->asha ? (uint32_t)asha_n_rungs(w->asha)
                           : 1;
        w->n_units = w->spec->n_trials * w->upt;
        w->units = calloc(w->n_units, sizeof *w->units);
        w->on_demand = halving || w->spec->space != NULL;
        w->started = calloc(w->spec->n_trials, sizeof *w->started);
        if (w->units == NULL || w->started == NULL || (halving && w->asha == NULL))
            e = cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    }
    if (e == CN_OK && !in->restoring)
        e = w->mlp ? check_idx(k, w, err, errlen)
                   : check_data(k, w, data->name[0] ? data->name : "data", err, errlen);
    if (e != CN_OK) {
        sweep_free(w);
        return e;
    }
    *impl = w;
    return CN_OK;
}

static void sweep_make_id(const void *impl, const sched_job_input *in, char *id, size_t n)
{
    (void)in;
    const sweep *w = impl;
    snprintf(id, n, "%.120s-%.12s", w->spec->name, w->spec_sha);
    for (char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            *p = '_';
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

// tree_budget: the forest's rungs also train fewer trees, each rung its
// own folds (sweep_search.h), so a unit is a (rung, fold) and not a fold.
static bool tree_budget(const sweep *w)
{
    return w->asha && w->spec->tree_budget;
}

// unit_key: what a unit is called in records and tasks.
static const char *unit_key(const sweep *w)
{
    return w->mlp || tree_budget(w) ? "unit" : "fold";
}

// unit_fold: the cross-validation fold of a forest trial's unit u.
static uint32_t unit_fold(const sweep *w, size_t u)
{
    return tree_budget(w) ? (uint32_t)(u - asha_first_unit(w->asha, asha_unit_rung(w->asha, u)))
                          : (uint32_t)u;
}

// trial_trees: the trees trial t's forest has at rung (its own
// n_estimators, or the forest's default, at the top rung).
static uint32_t trial_trees(const sweep *w, size_t t, size_t rung)
{
    cJSON *p = cJSON_Parse(w->spec->trials[t]);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(p, "n_estimators");
    uint32_t trees = cJSON_IsNumber(n) && n->valuedouble >= 1
                         ? (uint32_t)n->valuedouble
                         : (uint32_t)rf_params_default().n_estimators;
    cJSON_Delete(p);
    return asha_trees(w->asha, rung, trees);
}

// unit_index reads a record's (trial, unit) as an item index.
static bool unit_index(const sweep *w, const cJSON *rec, size_t *u)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "trial");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(rec, unit_key(w));
    if (!cJSON_IsNumber(t) || !cJSON_IsNumber(f) || t->valuedouble < 0 || f->valuedouble < 0 ||
        t->valuedouble >= (double)w->spec->n_trials || f->valuedouble >= w->upt)
        return false;
    *u = (size_t)t->valuedouble * w->upt + (size_t)f->valuedouble;
    return true;
}

static void set_result(unit *x, const cJSON *r)
{
    x->done = true;
    x->acc = num(r, "accuracy");
    x->bacc = num(r, "balanced_accuracy");
    x->f1 = num(r, "macro_f1");
    x->fit_s = num(r, "fit_seconds");
    x->pred_s = num(r, "predict_seconds");
}

// replay_decision restores a "trial" or "promote" record.
static void replay_decision(sweep *w, const char *type, const cJSON *rec)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "trial");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(rec, "rung");
    if (!w->on_demand || !cJSON_IsNumber(t) || t->valuedouble < 0 ||
        t->valuedouble >= (double)w->spec->n_trials)
        return;
    size_t trial = (size_t)t->valuedouble;
    if (strcmp(type, "trial") == 0) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(rec, "params");
        char *text = cJSON_IsObject(p) ? cJSON_PrintUnformatted(p) : NULL;
        if (text) {
            free(w->spec->trials[trial]);
            w->spec->trials[trial] = text;
        }
        w->started[trial] = true;
        if (w->next_trial <= trial)
            w->next_trial = trial + 1;
    }
    if (w->asha && cJSON_IsNumber(r) && r->valuedouble >= 0 &&
        r->valuedouble < (double)asha_n_rungs(w->asha))
        asha_grant(w->asha, trial, (size_t)r->valuedouble);
}

static void sweep_replay(sched_job *j, const cJSON *rec)
{
    sweep *w = sched_job_impl(j);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rec, "type");
    if (cJSON_IsString(type) &&
        (strcmp(type->valuestring, "trial") == 0 || strcmp(type->valuestring, "promote") == 0)) {
        replay_decision(w, type->valuestring, rec);
        return;
    }
    size_t u;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "ok")) || !unit_index(w, rec, &u) ||
        w->units[u].done)
        return;
    set_result(&w->units[u], rec);
    w->n_done++;
    w->n_replayed++;
}

// ------------------------------------------------------------ summaries

typedef struct trial_stat {
    int rung;     // asha: the highest rung completed (-1: none); else -1
    bool stopped; // asha: completed a rung below the top and was not promoted
    uint32_t folds_done;
    double mean, std, bacc, f1, seconds;
    bool failed;
    const char *error;
} trial_stat;

// score_units finds the units of trial t whose scores make its score: all
// of them, or, under the tree budget, the folds of its highest rung with a
// fold done (scores of different tree counts are not mixed).
static void score_units(const sweep *w, size_t t, uint32_t *lo, uint32_t *hi)
{
    *lo = 0;
    *hi = w->upt;
    for (size_t r = tree_budget(w) ? asha_n_rungs(w->asha) : 0; r-- > 0;) {
        uint32_t first = (uint32_t)asha_first_unit(w->asha, r), b = asha_budget(w->asha, r);
        for (uint32_t f = first; f < first + b; f++)
            if (w->units[t * w->upt + f].done || r == 0) {
                *lo = first;
                *hi = first + b;
                return;
            }
    }
}

static void trial_stats(const sweep *w, size_t t, trial_stat *ts)
{
    memset(ts, 0, sizeof *ts);
    uint32_t k = w->upt, lo, hi;
    score_units(w, t, &lo, &hi);
    double sum = 0, sq = 0;
    for (uint32_t f = 0; f < k; f++) {
        const unit *u = &w->units[t * k + f];
        if (u->done && (f < lo || f >= hi)) { // another rung's tree count: cost only
            ts->seconds += u->fit_s + u->pred_s;
            continue;
        }
        if (u->done && w->mlp) { // the score of the highest unit (most epochs) done
            ts->folds_done = f + 1;
            ts->mean = u->acc;
            ts->bacc = u->bacc;
            ts->f1 = u->f1;
            ts->seconds += u->fit_s + u->pred_s;
            continue;
        }
        if (u->done) {
            ts->folds_done++;
            sum += u->acc;
            sq += u->acc * u->acc;
            ts->bacc += u->bacc;
            ts->f1 += u->f1;
            ts->seconds += u->fit_s + u->pred_s;
        } else if (u->failed) {
            ts->failed = true;
            ts->error = u->error;
        }
    }
    if (w->asha) {
        ts->rung = asha_reached(w->asha, t, NULL);
        ts->stopped = !ts->failed && ts->rung >= 0 && asha_granted(w->asha, t) == ts->rung &&
                      (size_t)ts->rung + 1 < asha_n_rungs(w->asha);
    } else {
        ts->rung = -1;
    }
    if (ts->folds_done && !w->mlp) {
        double n = ts->folds_done;
        ts->mean = sum / n;
        double var = sq / n - ts->mean * ts->mean;
        ts->std = var > 0 ? sqrt(var) : 0;
        ts->bacc /= n;
        ts->f1 /= n;
    }
}

// full_score: ts is a trial's finished score (every fold at its own trees,
// or an MLP's last unit). Under the tree budget the rung below the top has
// every fold too, at fewer trees: only the top rung counts.
static bool full_score(const sweep *w, const trial_stat *ts)
{
    return ts->folds_done == (w->mlp ? w->upt : w->spec->folds) &&
           (!tree_budget(w) || (size_t)(ts->rung + 1) == asha_n_rungs(w->asha));
}

static size_t best_trial(const sweep *w)
{
    size_t best = 0;
    double best_acc = -1;
    for (size_t t = 0; t < w->spec->n_trials; t++) {
        trial_stat ts;
        trial_stats(w, t, &ts);
        if (!ts.failed && full_score(w, &ts) && ts.mean > best_acc) {
            best_acc = ts.mean;
            best = t;
        }
    }
    return best;
}

static cJSON *trial_json(const sweep *w, size_t t)
{
    trial_stat ts;
    trial_stats(w, t, &ts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "trial", (double)t);
    cJSON_AddItemToObject(o, "params", cJSON_Parse(w->spec->trials[t]));
    cJSON_AddNumberToObject(o, "folds_done", ts.folds_done);
    cJSON_AddNumberToObject(o, "rung", ts.rung);
    cJSON_AddBoolToObject(o, "stopped", ts.stopped);
    cJSON_AddBoolToObject(o, "full_score", !ts.failed && full_score(w, &ts));
    cJSON_AddNumberToObject(o, "mean_accuracy", ts.mean);
    cJSON_AddNumberToObject(o, "std_accuracy", ts.std);
    cJSON_AddNumberToObject(o, "mean_balanced_accuracy", ts.bacc);
    cJSON_AddNumberToObject(o, "mean_macro_f1", ts.f1);
    cJSON_AddNumberToObject(o, "seconds", ts.seconds);
    cJSON_AddBoolToObject(o, "failed", ts.failed);
    cJSON_AddStringToObject(o, "error", ts.error ? ts.error : "");
    return o;
}

static void write_trials_csv(sched_job *j, const sweep *w)
{
    cn_buf csv;
    cn_buf_init(&csv);
    cn_buf_printf(&csv, "trial,params,folds_done,rung,stopped,mean_accuracy,std_accuracy,"
                        "mean_balanced_accuracy,mean_macro_f1,seconds,failed\n");
    for (size_t t = 0; t < w->spec->n_trials; t++) {
        trial_stat ts;
        trial_stats(w, t, &ts);
        cn_buf_printf(&csv, "%zu,\"", t);
        for (const char *c = w->spec->trials[t]; *c; c++)
            cn_buf_printf(&csv, *c == '"' ? "\"\"" : "%c", *c);
        cn_buf_printf(&csv, "\",%u,%d,%d,%.6f,%.6f,%.6f,%.6f,%.3f,%d\n", ts.folds_done, ts.rung,
                      ts.stopped, ts.mean, ts.std, ts.bacc, ts.f1, ts.seconds, ts.failed);
    }
    char path[1600], err[CN_ERRBUF_LEN];
    snprintf(path, sizeof path, "%s/trials.csv", sched_job_dir(j));
    if (csv.oom || cn_file_write_atomic(path, csv.data, csv.len, err, sizeof err) != CN_OK)
        CN_ERROR("sweep %s: cannot write %s", sched_job_id(j), path);
    cn_buf_fini(&csv);
}

// write_summaries writes trials.csv, best.json and summary.json.
static void write_summaries(sched_job *j, sweep *w)
{
    write_trials_csv(j, w);
    size_t best = best_trial(w);
    trial_stat def, bst;
    trial_stats(w, 0, &def);
    trial_stats(w, best, &bst);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddNumberToObject(b, "trial", (double)best);
    cJSON_AddItemToObject(b, "params", cJSON_Parse(w->spec->trials[best]));
    cJSON_AddNumberToObject(b, "mean_accuracy", bst.mean);
    cJSON_AddNumberToObject(b, "std_accuracy", bst.std);
    sched_job_write_json(j, "best.json", b);
    cJSON_Delete(b);

    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "sweep_id", sched_job_id(j));
    cJSON_AddStringToObject(m, "name", w->spec->name);
    cJSON_AddStringToObject(m, "data_sha256", w->data_sha);
    cJSON_AddStringToObject(m, "model", w->spec->model);
    cJSON_AddNumberToObject(m, "folds", w->mlp ? 0 : w->spec->folds);
    cJSON_AddBoolToObject(m, "shuffle", w->spec->shuffle);
    cJSON_AddNumberToObject(m, "trials", (double)w->spec->n_trials);
    cJSON_AddStringToObject(m, "algorithm", w->spec->algorithm);
    cJSON_AddStringToObject(m, "scheduler", w->spec->scheduler);
    if (w->asha) {
        size_t stopped = 0;
        for (size_t t = 0; t < w->spec->n_trials; t++) {
            trial_stat ts;
            trial_stats(w, t, &ts);
            stopped += ts.stopped;
        }
        cJSON_AddNumberToObject(m, "eta", w->spec->eta);
        cJSON_AddBoolToObject(m, "tree_budget", tree_budget(w));
        if (tree_budget(w))
            cJSON_AddNumberToObject(m, "min_trees", w->spec->min_trees);
        cJSON_AddNumberToObject(m, "trials_stopped", (double)stopped);
    }
    cJSON_AddNumberToObject(m, "units", (double)w->n_units);
    cJSON_AddNumberToObject(m, "units_done", (double)w->n_done);
    cJSON_AddNumberToObject(m, "units_failed", (double)w->n_failed);
    cJSON_AddNumberToObject(m, "units_replayed", (double)w->n_replayed);
    cJSON_AddNumberToObject(m, "elapsed_seconds", sched_job_elapsed_s(j));
    cJSON_AddNumberToObject(
        m, "workers_alive",
        (double)sched_members_count(sched_jobs_members(sched_job_kernel(j)), CLUSTER_ROLE_WORKER));
    cJSON_AddNumberToObject(m, "dispatch_overhead_ms", sched_job_overhead_ms(j));
    cJSON_AddNumberToObject(m, "record_write_ms", sched_job_record_ms(j));
    cJSON *d = cJSON_AddObjectToObject(m, "default");
    cJSON_AddItemToObject(d, "params", cJSON_Parse(w->spec->trials[0]));
    cJSON_AddNumberToObject(d, "mean_accuracy", def.mean);
    cJSON_AddNumberToObject(d, "std_accuracy", def.std);
    cJSON *bb = cJSON_AddObjectToObject(m, "best");
    cJSON_AddNumberToObject(bb, "trial", (double)best);
    cJSON_AddItemToObject(bb, "params", cJSON_Parse(w->spec->trials[best]));
    cJSON_AddNumberToObject(bb, "mean_accuracy", bst.mean);
    cJSON_AddNumberToObject(bb, "std_accuracy", bst.std);
    sched_job_write_json(j, "summary.json", m);
    cJSON_Delete(m);
}

// ------------------------------------------------------------ search on demand

// trial_units: how many of trial t's units were given to it: a forest's
// folds up to its rung's budget, an MLP's units up to its rung.
static uint32_t trial_units(const sweep *w, size_t t)
{
    if (!w->started[t])
        return 0;
    if (w->asha == NULL)
        return w->upt;
    int g = asha_granted(w->asha, t);
    return g < 0 ? 0
           : w->mlp
               ? (uint32_t)g + 1
               : (uint32_t)(asha_first_unit(w->asha, (size_t)g) + asha_budget(w->asha, (size_t)g));
}

// sync_rungs tells ASHA every rung trial t has completed: for a forest the
// mean accuracy of rung r's b_r folds once they are all done (its first
// folds, or under the tree budget its own), for an MLP the score of unit r.
static void sync_rungs(sweep *w, size_t t)
{
    if (w->asha == NULL)
        return;
    uint32_t k = w->upt;
    for (int r = 0; w->mlp && r <= asha_granted(w->asha, t); r++)
        if (w->units[t * k + (size_t)r].done)
            asha_complete(w->asha, t, (size_t)r, w->units[t * k + (size_t)r].acc);
    for (int r = 0; !w->mlp && r <= asha_granted(w->asha, t); r++) {
        uint32_t b = asha_budget(w->asha, (size_t)r);
        size_t first = t * k + asha_first_unit(w->asha, (size_t)r);
        double sum = 0;
        uint32_t f = 0;
        while (f < b && w->units[first + f].done)
            sum += w->units[first + f++].acc;
        if (f < b)
            return;
        asha_complete(w->asha, t, (size_t)r, sum / b);
    }
}

// release_units queues trial t's held units among those it was given (a
// prefix: rungs are laid out in order; releasing twice is harmless).
static void release_units(sched_job *j, sweep *w, size_t t)
{
    for (uint32_t f = 0; f < trial_units(w, t); f++)
        sched_job_item_release(j, t * w->upt + f);
}

// log_decision records that trial t starts (type "trial", with its
// parameters) or is promoted ("promote") to rung.
static void log_decision(sched_job *j, const sweep *w, const char *type, size_t t, size_t rung)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddNumberToObject(o, "trial", (double)t);
    cJSON_AddNumberToObject(o, "rung", (double)rung);
    if (w->asha)
        cJSON_AddNumberToObject(o, w->mlp ? "epochs" : "folds", asha_budget(w->asha, rung));
    if (tree_budget(w))
        cJSON_AddNumberToObject(o, "trees", trial_trees(w, t, rung));
    if (strcmp(type, "trial") == 0)
        cJSON_AddItemToObject(o, "params", cJSON_Parse(w->spec->trials[t]));
    cJSON_AddNumberToObject(o, "time_ms", (double)cn_wall_ms());
    sched_job_log(j, o);
    cJSON_Delete(o);
}

// tpe_propose replaces trial t's random draw by TPE's proposal from the
// trials started so far. Under ASHA a trial's score is the highest rung it
// completed plus its score there, so a deeper trial always ranks above a
// shallower one; a trial with no rung (or folds) done yet is pending.
static void tpe_propose(sweep *w, size_t t)
{
    sweep_tpe_obs *obs = calloc(t, sizeof *obs);
    if (obs == NULL)
        return;
    size_t n = 0;
    for (size_t i = 0; i < t; i++) {
        trial_stat ts;
        trial_stats(w, i, &ts);
        if (!w->started[i] || ts.failed)
            continue;
        obs[n].params = w->spec->trials[i];
        if (w->asha) {
            double sc;
            int r = asha_reached(w->asha, i, &sc);
            obs[n].pending = r < 0;
            obs[n].score = r + sc;
        } else {
            obs[n].pending = !full_score(w, &ts);
            obs[n].score = ts.mean;
        }
        n++;
    }
    char *p;
    if (sweep_spec_tpe_suggest(w->spec, t, obs, n, &p) == CN_OK) {
        free(w->spec->trials[t]);
        w->spec->trials[t] = p;
    }
    free(obs);
}

// finishing: ASHA's promotion toward the first full score once nothing
// else is left to run (asha_finishing).
static bool finishing(sched_job *j, const sweep *w, size_t *t, size_t *rung)
{
    size_t pending, leased;
    sched_job_items(j, NULL, &pending, &leased, NULL, NULL);
    return w->asha && pending == 0 && leased == 0 && w->next_trial >= w->spec->n_trials &&
           asha_finishing(w->asha, t, rung);
}

// feed releases work while fewer items are pending than worker slots wait
// (at least one): a promotion first, else the next trial's first rung,
// else, with nothing left, the promotion toward a first full score.
static void feed(sched_job *j, sweep *w)
{
    if (!w->on_demand || sched_job_state(j) != JOB_RUNNING)
        return;
    size_t want = sched_jobs_waiting(sched_job_kernel(j)), pending;
    want = want ? want : 1;
    sched_job_items(j, NULL, &pending, NULL, NULL, NULL);
    while (pending < want) {
        size_t t, rung;
        if (w->asha && (asha_promotable(w->asha, &t, &rung) || finishing(j, w, &t, &rung))) {
            log_decision(j, w, "promote", t, rung);
            asha_grant(w->asha, t, rung);
        } else if (w->next_trial < w->spec->n_trials) {
            t = w->next_trial++;
            if (w->spec->space && t > w->spec->startup)
                tpe_propose(w, t);
            log_decision(j, w, "trial", t, 0);
            w->started[t] = true;
            if (w->asha)
                asha_grant(w->asha, t, 0);
        } else {
            break;
        }
        release_units(j, w, t);
        sync_rungs(w, t); // folds already done (replayed) count at once
        sched_job_items(j, NULL, &pending, NULL, NULL, NULL);
    }
}

// all_ran: every unit that will run has ended.
static bool all_ran(sched_job *j, const sweep *w)
{
    if (!w->on_demand)
        return w->n_done + w->n_failed >= w->n_units;
    size_t pending, leased, t, rung;
    sched_job_items(j, NULL, &pending, &leased, NULL, NULL);
    return pending == 0 && leased == 0 && w->next_trial >= w->spec->n_trials &&
           !(w->asha && (asha_promotable(w->asha, &t, &rung) || finishing(j, w, &t, &rung)));
}

static void check_finished(sched_job *j, sweep *w)
{
    if (w->summarized || !all_ran(j, w))
        return;
    w->summarized = true;
    write_summaries(j, w);
    char why[128];
    snprintf(why, sizeof why, "%zu of %zu units failed", w->n_failed, w->n_units);
    sched_job_finish(j, w->n_failed ? JOB_FAILED : JOB_DONE, w->n_failed ? why : NULL);
}

// ------------------------------------------------------------ kind callbacks

static cn_err sweep_start(sched_job *j, char *err, size_t errlen)
{
    sweep *w = sched_job_impl(j);
    const sweep_spec *sp = w->spec;
    sched_job_set_policy(j, sp->unit_timeout_s * 1000u, sp->retries, sp->max_concurrent);
    cn_err e =
        w->on_demand ? sched_job_add_held_items(j, w->n_units) : sched_job_add_items(j, w->n_units);
    if (e != CN_OK)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    for (size_t u = 0; u < w->n_units; u++)
        if (w->units[u].done)
            sched_job_item_settle(j, u);
    for (size_t t = 0; w->on_demand && t < sp->n_trials; t++) {
        release_units(j, w, t); // what was decided before a restart
        sync_rungs(w, t);
    }
    CN_INFO("sweep %s: %zu trials x %u %s = %zu units (%zu already done)%s%s", sched_job_id(j),
            sp->n_trials, w->upt, w->mlp || tree_budget(w) ? "units" : "folds", w->n_units,
            w->n_done, w->asha ? ", ASHA" : "", sp->space ? ", TPE" : "");
    feed(j, w);
    check_finished(j, w);
    return CN_OK;
}

// mlp_task: an MLP unit's task document (worker/wk_mlp_trial.h).
static cJSON *mlp_task(sched_job *j, const sweep *w, uint64_t item)
{
    uint32_t k = w->upt;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", "mlp");
    cJSON_AddStringToObject(o, "sweep_id", sched_job_id(j));
    cJSON_AddNumberToObject(o, "trial", (double)(item / k));
    cJSON_AddNumberToObject(o, "unit", (double)(item % k));
    // Under ASHA unit r trains for rung r's epochs; else the trial's own.
    cJSON_AddNumberToObject(o, "epochs", w->asha ? asha_budget(w->asha, item % k) : 0);
    cJSON_AddItemToObject(o, "params", cJSON_Parse(w->spec->trials[item / k]));
    cJSON_AddStringToObject(o, "train_images", w->data_sha);
    cJSON_AddStringToObject(o, "train_labels", w->labels_sha);
    cJSON_AddNumberToObject(o, "train_rows", (double)w->spec->train_rows);
    cJSON_AddNumberToObject(o, "validation", w->spec->validation);
    cJSON_AddNumberToObject(o, "split_seed", (double)w->spec->cv_seed);
    return o;
}

static char *sweep_task(sched_job *j, uint64_t item, uint32_t attempt)
{
    sweep *w = sched_job_impl(j);
    if (w->mlp) {
        cJSON *m = mlp_task(j, w, item);
        cJSON_AddNumberToObject(m, "attempt", attempt);
        char *text = cJSON_PrintUnformatted(m);
        cJSON_Delete(m);
        return text;
    }
    uint32_t k = w->upt;
    size_t t = item / k, u = item % k;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sweep_id", sched_job_id(j));
    cJSON_AddNumberToObject(o, "trial", (double)t);
    cJSON_AddNumberToObject(o, "fold", (double)unit_fold(w, u));
    cJSON_AddNumberToObject(o, "folds", w->spec->folds);
    if (tree_budget(w)) // the rung's trees, in place of the trial's own
        cJSON_AddNumberToObject(o, "trees", trial_trees(w, t, asha_unit_rung(w->asha, u)));
    cJSON_AddNumberToObject(o, "cv_seed", (double)w->spec->cv_seed);
    cJSON_AddBoolToObject(o, "shuffle", w->spec->shuffle);
    cJSON_AddItemToObject(o, "params", cJSON_Parse(w->spec->trials[item / k]));
    cJSON_AddStringToObject(o, "data_sha256", w->data_sha);
    cJSON_AddNumberToObject(o, "data_size", (double)w->data_size);
    cJSON_AddStringToObject(o, "label", w->spec->label);
    cJSON_AddStringToObject(o, "drop", w->spec->drop);
    cJSON_AddNumberToObject(o, "attempt", attempt);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static void sweep_progress(sched_job *j, uint64_t item, uint64_t node, const cJSON *result)
{
    (void)j, (void)item, (void)node, (void)result; // folds report only when done
}

// log_unit appends a unit's record: the worker's result plus where it ran.
static void log_unit(sched_job *j, const sweep *w, uint64_t item, uint64_t node, bool ok,
                     const char *error, const cJSON *result)
{
    cJSON *o = cJSON_Duplicate(result, 1);
    if (o == NULL)
        return;
    uint32_t k = w->upt;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "trial");
    cJSON_DeleteItemFromObjectCaseSensitive(o, unit_key(w));
    cJSON_DeleteItemFromObjectCaseSensitive(o, "ok");
    cJSON_AddNumberToObject(o, "trial", (double)(item / k));
    cJSON_AddNumberToObject(o, unit_key(w), (double)(item % k));
    if (tree_budget(w)) { // the worker reports the trees it trained
        size_t rung = asha_unit_rung(w->asha, item % k);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "fold");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "rung");
        cJSON_AddNumberToObject(o, "rung", (double)rung);
        cJSON_AddNumberToObject(o, "fold", (double)unit_fold(w, item % k));
    }
    cJSON_AddBoolToObject(o, "ok", ok);
    if (!ok && !cJSON_HasObjectItem(o, "error"))
        cJSON_AddStringToObject(o, "error", error ? error : "failed");
    char id[17];
    snprintf(id, sizeof id, "%016" PRIx64, node);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "node");
    cJSON_AddStringToObject(o, "node", id);
    cJSON_AddNumberToObject(o, "time_ms", (double)cn_wall_ms());
    sched_job_log(j, o);
    cJSON_Delete(o);
}

static void sweep_item_done(sched_job *j, uint64_t item, uint64_t node, bool ok, const char *error,
                            const cJSON *result)
{
    sweep *w = sched_job_impl(j);
    unit *x = &w->units[item];
    log_unit(j, w, item, node, ok, error, result);
    if (!ok) {
        free(x->error);
        x->error = strdup(error ? error : "failed");
        CN_WARN("sweep %s trial %" PRIu64 " %s %" PRIu64 " failed: %s", sched_job_id(j),
                item / w->upt, unit_key(w), item % w->upt, error ? error : "failed");
        return;
    }
    set_result(x, result);
    w->n_done++; // the end is noticed by the tick, off the report's path
    sync_rungs(w, item / w->upt);
    feed(j, w);
}

static void sweep_item_failed(sched_job *j, uint64_t item, const char *why)
{
    sweep *w = sched_job_impl(j);
    unit *x = &w->units[item];
    x->failed = true;
    if (x->error == NULL)
        x->error = strdup(why);
    w->n_failed++;
}

static void sweep_tick(sched_job *j, uint64_t now_ms)
{
    (void)now_ms;
    feed(j, sched_job_impl(j));
    check_finished(j, sched_job_impl(j));
}

// units_in_sight: the units a sweep will run: all of them, or, searching on
// demand, those ended, pending and running plus each unstarted trial's
// first rung (promotions are not known ahead).
static size_t units_in_sight(sched_job *j, const sweep *w)
{
    if (!w->on_demand)
        return w->n_units;
    size_t pending, leased;
    sched_job_items(j, NULL, &pending, &leased, NULL, NULL);
    size_t first = w->asha && !w->mlp ? asha_budget(w->asha, 0) : w->asha ? 1 : w->upt;
    return w->n_done + w->n_failed + pending + leased + (w->spec->n_trials - w->next_trial) * first;
}

static void sweep_status(sched_job *j, cJSON *out)
{
    sweep *w = sched_job_impl(j);
    size_t leased, in_sight = units_in_sight(j, w);
    sched_job_items(j, NULL, NULL, &leased, NULL, NULL);
    cJSON_AddNumberToObject(out, "trials_total", (double)w->spec->n_trials);
    cJSON_AddStringToObject(out, "model", w->spec->model);
    cJSON_AddNumberToObject(out, "folds", w->mlp ? 0 : w->spec->folds);
    cJSON_AddNumberToObject(out, "units", (double)in_sight);
    cJSON_AddNumberToObject(out, "units_done", (double)w->n_done);
    cJSON_AddNumberToObject(out, "units_running", (double)leased);
    cJSON_AddNumberToObject(out, "units_failed", (double)w->n_failed);
    cJSON_AddNumberToObject(out, "units_replayed", (double)w->n_replayed);
    double el = sched_job_elapsed_s(j);
    size_t fresh = w->n_done - w->n_replayed, left = in_sight - w->n_done - w->n_failed;
    cJSON_AddNumberToObject(out, "eta_seconds",
                            left == 0 ? 0
                            : fresh   ? el / (double)fresh * (double)left
                                      : -1);
    cJSON *trials = cJSON_AddArrayToObject(out, "trials");
    for (size_t t = 0; t < w->spec->n_trials; t++)
        cJSON_AddItemToArray(trials, trial_json(w, t));
    trial_stat bst;
    size_t best = best_trial(w);
    trial_stats(w, best, &bst);
    cJSON_AddNumberToObject(out, "best_trial", (double)best);
    cJSON_AddNumberToObject(out, "best_accuracy", full_score(w, &bst) ? bst.mean : -1);
}

static double sweep_progress_frac(sched_job *j)
{
    sweep *w = sched_job_impl(j);
    size_t total = units_in_sight(j, w);
    return total ? (double)(w->n_done + w->n_failed) / (double)total : 1;
}

const sched_kind sched_sweep_kind = {
    .name = "sweep",
    .dir = "sweeps",
    .create = sweep_create,
    .make_id = sweep_make_id,
    .replay = sweep_replay,
    .start = sweep_start,
    .task = sweep_task,
    .progress = sweep_progress,
    .item_done = sweep_item_done,
    .item_failed = sweep_item_failed,
    .tick = sweep_tick,
    .status = sweep_status,
    .progress_frac = sweep_progress_frac,
    .free = sweep_free,
};
