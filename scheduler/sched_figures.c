// sched_figures.c: reading a job's result files and drawing its figures
// (sched_figures.h). Every figure is a pass over the records in log order;
// nothing here knows how the records were produced, only their fields.
#include "scheduler/sched_figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cn_file.h"
#include "scheduler/svg_chart.h"

#define MAX_RANKS 256
#define MAX_FILE (256u << 20)

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool type_is(const cJSON *rec, const char *type)
{
    const char *t = str(rec, "type");
    if (type == NULL) // a sweep's fold record has no type
        return t == NULL && cJSON_GetObjectItemCaseSensitive(rec, "fold") != NULL;
    return t && strcmp(t, type) == 0;
}

// load_json reads dir/name into *out (NULL when absent).
static cn_err load_json(const char *dir, const char *name, cJSON **out, char *err, size_t errlen)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *data;
    size_t len;
    *out = NULL;
    cn_err e = cn_file_read_all(path, MAX_FILE, &data, &len, err, errlen);
    if (e == CN_ENOTFOUND)
        return CN_OK;
    if (e != CN_OK)
        return e;
    *out = cJSON_ParseWithLength((const char *)data, len);
    free(data);
    if (*out == NULL)
        return cn_errf(err, errlen, CN_EFORMAT, "%s: not valid JSON", path);
    return CN_OK;
}

// csv_field copies the next comma-separated field of *p (quotes undone).
static void csv_field(const char **p, char *out, size_t n)
{
    const char *s = *p;
    size_t k = 0;
    if (*s == '"') {
        for (s++; *s; s++) {
            if (*s == '"' && s[1] == '"')
                s++;
            else if (*s == '"') {
                s++;
                break;
            }
            if (k + 1 < n)
                out[k++] = *s;
        }
    } else
        for (; *s && *s != ',' && *s != '\n'; s++)
            if (k + 1 < n)
                out[k++] = *s;
    out[k] = 0;
    if (*s == ',')
        s++;
    *p = s;
}

// The columns of trials.csv the figures read, found by their header names
// (the file gains columns as the sweep learns more: rung, stopped, ...).
enum {
    TC_TRIAL,
    TC_PARAMS,
    TC_FOLDS,
    TC_RUNG,
    TC_STOPPED,
    TC_MEAN,
    TC_STD,
    TC_SECONDS,
    TC_FAILED,
    TC_N
};
static const char *const TRIAL_COLS[TC_N] = {"trial",        "params",  "folds_done",
                                             "rung",         "stopped", "mean_accuracy",
                                             "std_accuracy", "seconds", "failed"};
#define TC_MAX_FIELDS 32

// load_trials reads trials.csv (written by the sweep when it ends). A trial
// has a full score unless it failed or ASHA stopped it with a partial one.
static cJSON *load_trials(const char *dir)
{
    char path[1300], e[64];
    snprintf(path, sizeof path, "%s/trials.csv", dir);
    uint8_t *data;
    size_t len;
    if (cn_file_read_all(path, MAX_FILE, &data, &len, e, sizeof e) != CN_OK)
        return NULL;
    char(*f)[4096] = malloc(TC_MAX_FIELDS * sizeof *f);
    if (f == NULL) {
        free(data);
        return NULL;
    }
    // The header names the columns.
    int col[TC_N];
    for (int c = 0; c < TC_N; c++)
        col[c] = -1;
    const char *p = (const char *)data;
    int nf = 0;
    while (*p && *p != '\n' && nf < TC_MAX_FIELDS) {
        csv_field(&p, f[0], sizeof f[0]);
        for (int c = 0; c < TC_N; c++)
            if (strcmp(f[0], TRIAL_COLS[c]) == 0)
                col[c] = nf;
        nf++;
    }
    cJSON *arr = cJSON_CreateArray();
    // Every line after the header is a trial; a params field holds no newline.
    for (p = strchr((const char *)data, '\n'); p && p[1]; p = strchr(p, '\n')) {
        p++;
        for (int i = 0; i < nf; i++)
            csv_field(&p, f[i], sizeof f[i]);
#define FIELD(c) (col[c] >= 0 ? f[col[c]] : "")
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "trial", atof(FIELD(TC_TRIAL)));
        cJSON *params = cJSON_Parse(FIELD(TC_PARAMS));
        cJSON_AddItemToObject(t, "params", params ? params : cJSON_CreateObject());
        cJSON_AddNumberToObject(t, "folds_done", atof(FIELD(TC_FOLDS)));
        cJSON_AddNumberToObject(t, "rung", col[TC_RUNG] >= 0 ? atof(FIELD(TC_RUNG)) : -1);
        cJSON_AddNumberToObject(t, "mean_accuracy", atof(FIELD(TC_MEAN)));
        cJSON_AddNumberToObject(t, "std_accuracy", atof(FIELD(TC_STD)));
        cJSON_AddNumberToObject(t, "seconds", atof(FIELD(TC_SECONDS)));
        bool failed = atoi(FIELD(TC_FAILED)) != 0, stopped = atoi(FIELD(TC_STOPPED)) != 0;
        cJSON_AddBoolToObject(t, "failed", failed);
        cJSON_AddBoolToObject(t, "stopped", stopped);
        cJSON_AddBoolToObject(t, "full_score", !failed && !stopped);
#undef FIELD
        cJSON_AddItemToArray(arr, t);
    }
    free(f);
    free(data);
    return arr;
}

static cn_err load_log(sched_results *r)
{
    char path[1300], e[64];
    snprintf(path, sizeof path, "%s/results.jsonl", r->dir);
    uint8_t *data;
    size_t len;
    if (cn_file_read_all(path, MAX_FILE, &data, &len, e, sizeof e) != CN_OK)
        return CN_OK; // no log yet
    size_t cap = 0;
    for (size_t i = 0; i < len; i++)
        cap += data[i] == '\n';
    r->recs = calloc(cap + 1, sizeof *r->recs);
    if (r->recs == NULL) {
        free(data);
        return CN_ENOMEM;
    }
    char *s = (char *)data;
    for (char *nl; (nl = memchr(s, '\n', len - (size_t)(s - (char *)data))) != NULL; s = nl + 1) {
        cJSON *rec = cJSON_ParseWithLength(s, (size_t)(nl - s));
        if (rec && cJSON_IsObject(rec))
            r->recs[r->n_recs++] = rec;
        else
            cJSON_Delete(rec);
    }
    free(data);
    return CN_OK;
}

cn_err sched_results_load(const char *dir, sched_results **out, char *err, size_t errlen)
{
    *out = NULL;
    sched_results *r = calloc(1, sizeof *r);
    if (r == NULL)
        return CN_ENOMEM;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    cn_err e;
    if ((e = load_json(dir, "job.json", &r->job, err, errlen)) != CN_OK ||
        (e = load_json(dir, "spec.json", &r->spec, err, errlen)) != CN_OK ||
        (e = load_json(dir, "summary.json", &r->summary, err, errlen)) != CN_OK ||
        (e = load_log(r)) != CN_OK)
        goto fail;
    char path[1300];
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    if (r->job == NULL && r->summary == NULL && r->n_recs == 0 && access(path, F_OK) != 0) {
        e = cn_errf(err, errlen, CN_ENOTFOUND,
                    "%s: not a job's results (no job.json, summary.json or results.jsonl)", dir);
        goto fail;
    }
    // The experiments keep a run's job file as job.json beside its results:
    // a job.json without "kind" is a spec, and the run is named by its
    // directory.
    bool record = r->job && cJSON_GetObjectItemCaseSensitive(r->job, "kind");
    if (!record && r->job && r->spec == NULL) {
        r->spec = r->job;
        r->job = NULL;
    }
    const char *slash = strrchr(dir, '/');
    const char *base = slash && slash[1] ? slash + 1 : dir;
    const char *id = str(r->job, "id");
    snprintf(r->id, sizeof r->id, "%s", id ? id : base);
    const char *kind = str(r->job, "kind");
    r->trials = load_trials(dir);
    bool sweep =
        kind ? strcmp(kind, "sweep") == 0 : r->trials != NULL || str(r->summary, "sweep_id");
    const char *mode = str(r->spec, "mode");
    r->kind = sweep ? FIG_SWEEP
              : (mode && strcmp(mode, "federated") == 0) || sched_results_count(r, "round")
                  ? FIG_FEDERATED
                  : FIG_TRAIN;
    const char *name = str(r->spec, "name");
    snprintf(r->label, sizeof r->label, "%s", record && name ? name : base);
    const char *part = str(r->spec, "partition");
    double alpha = num(r->spec, "alpha");
    size_t l = strlen(r->label);
    if (r->kind == FIG_FEDERATED && part && strcmp(part, "dirichlet") == 0 && isfinite(alpha))
        snprintf(r->label + l, sizeof r->label - l, " (dirichlet %g)", alpha);
    else if (r->kind == FIG_FEDERATED && part)
        snprintf(r->label + l, sizeof r->label - l, " (%.60s)", part);
    *out = r;
    return CN_OK;
fail:
    sched_results_free(r);
    return e;
}

void sched_results_set_trials(sched_results *r, cJSON *trials)
{
    cJSON_Delete(r->trials);
    r->trials = trials;
}

void sched_results_free(sched_results *r)
{
    if (r == NULL)
        return;
    cJSON_Delete(r->job);
    cJSON_Delete(r->spec);
    cJSON_Delete(r->summary);
    cJSON_Delete(r->trials);
    for (size_t i = 0; i < r->n_recs; i++)
        cJSON_Delete(r->recs[i]);
    free(r->recs);
    free(r);
}

size_t sched_results_count(const sched_results *r, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_recs; i++)
        n += type_is(r->recs[i], type);
    return n;
}

static const char *const sweep_figs[] = {"timeline", NULL};
static const char *const train_figs[] = {
    "loss-time",  "accuracy-time", "loss-samples", "accuracy-samples",
    "throughput", "staleness",     "bytes",        NULL};
static const char *const fed_figs[] = {
    "round-accuracy", "round-clients",  "round-bytes", "round-time",
    "accuracy-time",  "accuracy-bytes", NULL};

const char *const *sched_fig_names(fig_kind kind)
{
    return kind == FIG_SWEEP ? sweep_figs : kind == FIG_TRAIN ? train_figs : fed_figs;
}

// A growable set of series, each with its own x and y arrays.
typedef struct plot {
    svg_series s[16];
    double *x[16], *y[16];
    size_t cap[16];
    char names[16][128];
    size_t n;
    bool oom;
} plot;

static int plot_series(plot *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return (int)i;
    if (p->n == 16)
        return -1;
    snprintf(p->names[p->n], sizeof p->names[p->n], "%s", name);
    p->s[p->n].name = p->names[p->n];
    return (int)p->n++;
}

static void plot_add(plot *p, int s, double x, double y)
{
    if (s < 0)
        return;
    svg_series *se = &p->s[s];
    if (se->n == p->cap[s]) {
        size_t cap = p->cap[s] ? 2 * p->cap[s] : 64;
        double *nx = realloc(p->x[s], cap * sizeof *nx);
        if (nx)
            p->x[s] = nx;
        double *ny = realloc(p->y[s], cap * sizeof *ny);
        if (ny)
            p->y[s] = ny;
        if (nx == NULL || ny == NULL) {
            p->oom = true;
            return;
        }
        p->cap[s] = cap;
    }
    p->x[s][se->n] = x;
    p->y[s][se->n] = y;
    se->n++;
    se->x = p->x[s];
    se->y = p->y[s];
}

static cn_err plot_render(plot *p, svg_kind kind, const char *title, const char *xl, const char *yl,
                          const char *const *cats, size_t ncat, cn_buf *out)
{
    svg_chart c = {.kind = kind,
                   .title = title,
                   .xlabel = xl,
                   .ylabel = yl,
                   .series = p->s,
                   .n_series = p->n,
                   .categories = cats,
                   .n_categories = ncat};
    cn_err e = p->oom ? CN_ENOMEM : svg_chart_render(&c, out);
    for (size_t i = 0; i < 16; i++) {
        free(p->x[i]);
        free(p->y[i]);
    }
    return e;
}

// ---------------------------------------------------------------- sweep

cJSON *sched_fig_params(const sched_results *r)
{
    if (r->kind != FIG_SWEEP)
        return NULL;
    cJSON *names = cJSON_CreateArray();
    const cJSON *t, *first = NULL;
    cJSON_ArrayForEach(t, r->trials)
    {
        const cJSON *kv;
        cJSON_ArrayForEach(kv, cJSON_GetObjectItemCaseSensitive(t, "params"))
        {
            bool seen = false;
            const cJSON *n;
            cJSON_ArrayForEach(n, names) seen |= strcmp(n->valuestring, kv->string) == 0;
            if (seen)
                continue;
            // Keep a parameter only when some trial differs from the first.
            bool varies = false;
            const cJSON *u;
            cJSON_ArrayForEach(u, r->trials)
            {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(first ? first : t, "params"), kv->string);
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(u, "params"), kv->string);
                varies |= a == NULL || b == NULL || !cJSON_Compare(a, b, true);
            }
            if (varies)
                cJSON_AddItemToArray(names, cJSON_CreateString(kv->string));
        }
        if (first == NULL)
            first = t;
    }
    return names;
}

bool sched_trial_full_score(const cJSON *t)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "full_score");
    return f == NULL ? !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "failed"))
                     : cJSON_IsTrue(f);
}

// trial_scored: t has a full score to plot (a partial one, of a trial ASHA
// stopped, would not compare with the others).
static bool trial_scored(const cJSON *t)
{
    return num(t, "folds_done") > 0 && sched_trial_full_score(t);
}

static cn_err fig_score(const sched_results *r, const char *param, cn_buf *out)
{
    const cJSON *dflt = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r->summary, "default"), "params");
    bool numeric = true;
    const cJSON *t;
    cJSON_ArrayForEach(t, r->trials)
    {
        const cJSON *v =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "params"), param);
        numeric &= v == NULL || cJSON_IsNumber(v);
    }
    char title[200];
    snprintf(title, sizeof title, "CV accuracy against %s", param);
    plot p = {0};
    if (numeric) {
        int all = plot_series(&p, "trials"), def = dflt ? plot_series(&p, "default") : -1;
        cJSON_ArrayForEach(t, r->trials)
        {
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(t, "params");
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, param);
            if (!trial_scored(t) || v == NULL)
                continue;
            bool is_def = dflt && cJSON_Compare(params, dflt, true);
            plot_add(&p, is_def ? def : all, v->valuedouble, num(t, "mean_accuracy"));
        }
        return plot_render(&p, SVG_SCATTER, title, param, "mean CV accuracy", NULL, 0, out);
    }
    // A categorical parameter: the best trial's score for each value.
    char cats[32][64];
    const char *catp[32];
    double best[32];
    size_t nc = 0;
    cJSON_ArrayForEach(t, r->trials)
    {
        if (!trial_scored(t))
            continue;
        const cJSON *v =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "params"), param);
        char val[64];
        if (v == NULL)
            snprintf(val, sizeof val, "(unset)");
        else if (cJSON_IsString(v))
            snprintf(val, sizeof val, "%s", v->valuestring);
        else
            snprintf(val, sizeof val, "%g", v->valuedouble);
        size_t i = 0;
        while (i < nc && strcmp(cats[i], val) != 0)
            i++;
        if (i == nc && nc == 32)
            continue;
        if (i == nc) {
            snprintf(cats[nc], sizeof cats[nc], "%s", val);
            catp[nc] = cats[nc];
            best[nc++] = -INFINITY;
        }
        double m = num(t, "mean_accuracy");
        best[i] = m > best[i] ? m : best[i];
    }
    int s = plot_series(&p, "");
    for (size_t i = 0; i < nc; i++)
        plot_add(&p, s, (double)i, best[i]);
    return plot_render(&p, SVG_BAR, title, param, "best mean CV accuracy", catp, nc, out);
}

static cn_err fig_timeline(const sched_results *r, cn_buf *out)
{
    double t0 = INFINITY;
    for (size_t i = 0; i < r->n_recs; i++) {
        const cJSON *u = r->recs[i];
        if (!type_is(u, NULL))
            continue;
        double dur =
            num(u, "data_load_seconds") + num(u, "fit_seconds") + num(u, "predict_seconds");
        double start = num(u, "time_ms") / 1000 - (isfinite(dur) ? dur : 0);
        t0 = start < t0 ? start : t0;
    }
    plot p = {0};
    for (size_t i = 0; i < r->n_recs; i++) {
        const cJSON *u = r->recs[i];
        if (!type_is(u, NULL))
            continue;
        const char *w = str(u, "worker");
        int s = plot_series(&p, w ? w : "worker");
        double dur =
            num(u, "data_load_seconds") + num(u, "fit_seconds") + num(u, "predict_seconds");
        double end = num(u, "time_ms") / 1000 - t0;
        if (!isfinite(dur) || !isfinite(end))
            continue;
        // One segment per unit on its worker's row; NaN separates segments.
        plot_add(&p, s, end - dur, s + 1);
        plot_add(&p, s, end, s + 1);
        plot_add(&p, s, NAN, NAN);
    }
    return plot_render(&p, SVG_LINE, "Units over time, one row per worker",
                       "seconds since the first unit started", "worker", NULL, 0, out);
}

// ---------------------------------------------------------------- training

static cn_err fig_worker_xy(const sched_results *r, const char *xkey, const char *title,
                            const char *xl, cn_buf *out)
{
    plot p = {0};
    for (size_t i = 0; i < r->n_recs; i++) {
        const cJSON *w = r->recs[i];
        if (!type_is(w, "worker"))
            continue;
        char name[32];
        snprintf(name, sizeof name, "rank %.0f", num(w, "rank"));
        plot_add(&p, plot_series(&p, name), num(w, xkey), num(w, "loss"));
    }
    return plot_render(&p, SVG_LINE, title, xl, "training loss", NULL, 0, out);
}

// fig_eval draws test accuracy for each job against time, against the
// samples all ranks had trained on, or against the bytes all ranks had
// moved when the evaluation ran. A federated job's points are its rounds
// (time, and the bytes up and down summed over rounds so far).
typedef enum { AX_TIME, AX_SAMPLES, AX_BYTES } eval_axis;

static cn_err fig_eval(const sched_results *const *jobs, size_t n, eval_axis ax, cn_buf *out)
{
    plot p = {0};
    for (size_t j = 0; j < n; j++) {
        const sched_results *r = jobs[j];
        int s = plot_series(&p, n > 1 ? r->label : "test accuracy");
        double samples[MAX_RANKS] = {0}, bytes[MAX_RANKS] = {0}, fed_bytes = 0;
        for (size_t i = 0; i < r->n_recs; i++) {
            const cJSON *rec = r->recs[i];
            double rank = num(rec, "rank");
            if (type_is(rec, "worker") && rank >= 0 && rank < MAX_RANKS) {
                samples[(int)rank] = num(rec, "samples");
                bytes[(int)rank] = num(rec, "bytes_sent") + num(rec, "bytes_received");
            }
            if (type_is(rec, "round")) {
                fed_bytes += num(rec, "bytes_up") + num(rec, "bytes_down");
                if (ax != AX_SAMPLES)
                    plot_add(&p, s, ax == AX_TIME ? num(rec, "t") : fed_bytes,
                             num(rec, "accuracy"));
                continue;
            }
            if (!type_is(rec, "eval"))
                continue;
            double x = num(rec, "t");
            if (ax != AX_TIME) {
                x = 0;
                for (int q = 0; q < MAX_RANKS; q++) {
                    double v = ax == AX_SAMPLES ? samples[q] : bytes[q];
                    x += isfinite(v) ? v : 0;
                }
            }
            plot_add(&p, s, x, num(rec, "accuracy"));
        }
    }
    static const char *const titles[] = {"Test accuracy against time",
                                         "Test accuracy against samples trained",
                                         "Test accuracy against bytes moved"};
    static const char *const xls[] = {"seconds", "samples (all workers)",
                                      "bytes sent and received (all workers)"};
    return plot_render(&p, SVG_LINE, titles[ax], xls[ax], "test accuracy", NULL, 0, out);
}

// last_per_rank collects the newest worker record of each rank.
static size_t last_per_rank(const sched_results *r, const cJSON **last)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_recs; i++) {
        const cJSON *w = r->recs[i];
        double q = num(w, "rank");
        if (!type_is(w, "worker") || !(q >= 0 && q < MAX_RANKS))
            continue;
        last[(int)q] = w;
        n = (size_t)q + 1 > n ? (size_t)q + 1 : n;
    }
    return n;
}

static cn_err fig_per_rank(const sched_results *r, bool bytes, cn_buf *out)
{
    const cJSON *last[MAX_RANKS] = {0};
    size_t n = last_per_rank(r, last);
    char cats[MAX_RANKS][32];
    const char *catp[MAX_RANKS];
    plot p = {0};
    int s0 = plot_series(&p, bytes ? "sent" : "");
    int s1 = bytes ? plot_series(&p, "received") : -1;
    for (size_t q = 0; q < n; q++) {
        snprintf(cats[q], sizeof cats[q], "rank %zu", q);
        catp[q] = cats[q];
        plot_add(&p, s0, (double)q, num(last[q], bytes ? "bytes_sent" : "samples_per_s"));
        if (bytes)
            plot_add(&p, s1, (double)q, num(last[q], "bytes_received"));
    }
    return plot_render(&p, SVG_BAR,
                       bytes ? "Bytes each worker sent to and received from the shards"
                             : "Throughput per worker",
                       "worker", bytes ? "bytes" : "samples/s", catp, n, out);
}

static cn_err fig_staleness(const sched_results *r, cn_buf *out)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(r->summary, "staleness_hist");
    int n = cJSON_GetArraySize(h);
    while (n > 1 && cJSON_GetArrayItem(h, n - 1)->valuedouble == 0)
        n--;
    char cats[64][24];
    const char *catp[64];
    plot p = {0};
    int s = plot_series(&p, "");
    for (int b = 0; b < n && b < 64; b++) {
        snprintf(cats[b], sizeof cats[b], "%d", b);
        catp[b] = cats[b];
        plot_add(&p, s, b, cJSON_GetArrayItem(h, b)->valuedouble);
    }
    return plot_render(&p, SVG_HIST, "Staleness of pushed gradients", "staleness (versions behind)",
                       "pushes", catp, (size_t)(n < 64 ? n : 64), out);
}

// ---------------------------------------------------------------- federated

static cn_err fig_rounds(const sched_results *const *jobs, size_t n, const char *name, cn_buf *out)
{
    plot p = {0};
    const char *title = "", *yl = "";
    for (size_t j = 0; j < n; j++) {
        const sched_results *r = jobs[j];
        for (size_t i = 0; i < r->n_recs; i++) {
            const cJSON *rec = r->recs[i];
            if (!type_is(rec, "round"))
                continue;
            double round = num(rec, "round");
            if (strcmp(name, "round-accuracy") == 0) {
                title = "Global test accuracy per round";
                yl = "test accuracy";
                plot_add(&p, plot_series(&p, n > 1 ? r->label : "accuracy"), round,
                         num(rec, "accuracy"));
            } else if (strcmp(name, "round-clients") == 0) {
                title = "Clients per round";
                yl = "clients";
                static const char *const keys[] = {"selected", "finished", "dropped", "late"};
                for (int k = 0; k < 4; k++)
                    plot_add(&p, plot_series(&p, keys[k]), round, num(rec, keys[k]));
            } else if (strcmp(name, "round-bytes") == 0) {
                title = "Bytes per round";
                yl = "bytes";
                plot_add(&p, plot_series(&p, "up (clients to servers)"), round,
                         num(rec, "bytes_up"));
                plot_add(&p, plot_series(&p, "down (servers to clients)"), round,
                         num(rec, "bytes_down"));
            } else {
                title = "Round time split";
                yl = "seconds";
                const cJSON *kv;
                cJSON_ArrayForEach(kv, rec)
                {
                    size_t l = strlen(kv->string);
                    if (cJSON_IsNumber(kv) && l > 8 && strcmp(kv->string + l - 8, "_seconds") == 0)
                        plot_add(&p, plot_series(&p, kv->string), round, kv->valuedouble);
                }
            }
        }
    }
    return plot_render(&p, SVG_LINE, title, "round", yl, NULL, 0, out);
}

cn_err sched_fig_render(const sched_results *const *jobs, size_t n, const char *name, cn_buf *out)
{
    if (n == 0)
        return CN_ENOTFOUND;
    const sched_results *r = jobs[0];
    switch (r->kind) {
    case FIG_SWEEP:
        if (strncmp(name, "score-", 6) == 0) {
            cJSON *params = sched_fig_params(r);
            bool known = false;
            const cJSON *v;
            cJSON_ArrayForEach(v, params) known |= strcmp(v->valuestring, name + 6) == 0;
            cJSON_Delete(params);
            return known ? fig_score(r, name + 6, out) : CN_ENOTFOUND;
        }
        if (strcmp(name, "timeline") == 0)
            return fig_timeline(r, out);
        return CN_ENOTFOUND;
    case FIG_TRAIN:
        if (strcmp(name, "loss-time") == 0)
            return fig_worker_xy(r, "t", "Training loss against time", "seconds", out);
        if (strcmp(name, "loss-samples") == 0)
            return fig_worker_xy(r, "samples", "Training loss against samples",
                                 "samples (per worker)", out);
        if (strcmp(name, "accuracy-time") == 0)
            return fig_eval(jobs, n, AX_TIME, out);
        if (strcmp(name, "accuracy-samples") == 0)
            return fig_eval(jobs, n, AX_SAMPLES, out);
        if (strcmp(name, "accuracy-bytes") == 0)
            return fig_eval(jobs, n, AX_BYTES, out);
        if (strcmp(name, "throughput") == 0 || strcmp(name, "bytes") == 0)
            return fig_per_rank(r, name[0] == 'b', out);
        if (strcmp(name, "staleness") == 0)
            return fig_staleness(r, out);
        return CN_ENOTFOUND;
    case FIG_FEDERATED:
        if (strcmp(name, "accuracy-time") == 0)
            return fig_eval(jobs, n, AX_TIME, out);
        if (strcmp(name, "accuracy-bytes") == 0)
            return fig_eval(jobs, n, AX_BYTES, out);
        for (const char *const *f = fed_figs; *f; f++)
            if (strcmp(name, *f) == 0)
                return fig_rounds(jobs, n, name, out);
        return CN_ENOTFOUND;
    }
    return CN_ENOTFOUND;
}
