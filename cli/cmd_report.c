// cmd_report.c: `canopy report RESULTS... -o DIR`: the written answers to
// the assignment's questions 1.1, 1.2, 2.1 and 2.2, from result files only.
//
// RESULTS are directories (a scheduler's state directory, results/, one
// job's directory) or files, searched recursively for: job directories
// (sched_figures.h: sweeps, training and federated jobs), the sweep scaling
// measurement (bench/sweep.sh: sweep-scaling.json), the experiments of
// deploy/experiments/run.sh (results/experiments/<exp>.json) and a
// dashboard screenshot (dashboard.png). Every number in the prose is
// printed from those files; a section whose results are missing says so
// and names the command that produces them. Sections 2.1 and 2.2 are held
// to 250 words; the command fails if the prose outgrows them.
//
// Output: DIR/REPORT.md with the figures as DIR/*.svg beside it, and
// DIR/index.html with the same figures inline (one file to open or mail).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/cn_buf.h"
#include "common/cn_file.h"
#include "scheduler/sched_figures.h"
#include "scheduler/svg_chart.h"

#define MAX_JOBS 256
#define MAX_EXPS 8
#define WORD_LIMIT 250

typedef struct inputs {
    sched_results *jobs[MAX_JOBS];
    size_t n_jobs;
    cJSON *scaling;
    char scaling_path[1024];
    cJSON *exps[MAX_EXPS];
    char exp_paths[MAX_EXPS][1024];
    size_t n_exps;
    char screenshot[1024];
} inputs;

// The report as it is written: Markdown and HTML side by side.
typedef struct doc {
    cn_buf md, html;
    const char *dir;
    size_t words; // prose words since the last doc_words_reset
    int nfig;
    bool failed; // a figure could not be written
} doc;

static const char *str(const cJSON *o, const char *k)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return s ? s : "";
}
static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

// ------------------------------------------------------------ the inputs

static cJSON *read_json(const char *path)
{
    uint8_t *data;
    size_t len;
    char err[256];
    if (cn_file_read_all(path, 64u << 20, &data, &len, err, sizeof err) != CN_OK)
        return NULL;
    cJSON *o = cJSON_ParseWithLength((const char *)data, len);
    free(data);
    return o;
}

static bool has_file(const char *dir, const char *name)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void scan_file(inputs *in, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(base, "dashboard.png") == 0 && !in->screenshot[0]) {
        snprintf(in->screenshot, sizeof in->screenshot, "%s", path);
        return;
    }
    size_t l = strlen(base);
    if (l < 5 || strcmp(base + l - 5, ".json") != 0)
        return;
    cJSON *o = read_json(path);
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "workers")) &&
        cJSON_GetObjectItemCaseSensitive(o, "cores_per_worker") && in->scaling == NULL) {
        in->scaling = o;
        snprintf(in->scaling_path, sizeof in->scaling_path, "%s", path);
    } else if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "runs")) &&
               cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "experiment")) &&
               in->n_exps < MAX_EXPS) {
        snprintf(in->exp_paths[in->n_exps], sizeof in->exp_paths[0], "%s", path);
        in->exps[in->n_exps++] = o;
    } else
        cJSON_Delete(o);
}

// scan walks path; a job directory is loaded whole and not entered.
static int scan(inputs *in, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "canopy report: %s: %s\n", path, strerror(errno));
        return CLI_EXIT_DATA;
    }
    if (!S_ISDIR(st.st_mode)) {
        scan_file(in, path);
        return CLI_EXIT_OK;
    }
    if (has_file(path, "job.json") || has_file(path, "results.jsonl")) {
        sched_results *r;
        char err[CN_ERRBUF_LEN];
        if (sched_results_load(path, &r, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canopy report: skipping %s\n", err);
            return CLI_EXIT_OK;
        }
        for (size_t i = 0; i < in->n_jobs; i++)
            if (strcmp(in->jobs[i]->id, r->id) == 0) { // the same job found twice
                sched_results_free(r);
                return CLI_EXIT_OK;
            }
        if (in->n_jobs < MAX_JOBS)
            in->jobs[in->n_jobs++] = r;
        else
            sched_results_free(r);
        return CLI_EXIT_OK;
    }
    if (depth > 8)
        return CLI_EXIT_OK;
    DIR *d = opendir(path);
    if (d == NULL)
        return CLI_EXIT_OK;
    // Sorted, so the report does not depend on the directory's order.
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        // A ".old-<ms>" directory is a sweep set aside by --fresh.
        if (e->d_name[0] == '.' || strstr(e->d_name, ".old-") || strcmp(e->d_name, "logs") == 0 ||
            strcmp(e->d_name, "data") == 0 || strcmp(e->d_name, "checkpoints") == 0)
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *names);
        if (nn == NULL)
            break;
        names = nn;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, (int (*)(const void *, const void *))strcmp);
    for (size_t i = 0; i < n; i++) {
        char child[2048];
        if (names[i])
            snprintf(child, sizeof child, "%s/%s", path, names[i]);
        if (names[i])
            scan(in, child, depth + 1);
        free(names[i]);
    }
    free(names);
    return CLI_EXIT_OK;
}

static double created(const sched_results *r)
{
    double c = num(r->job, "created_unix_ms");
    return isfinite(c) ? c : 0; // a copy without a job record counts as oldest
}

// pick returns the newest job of kind (by creation time, then order)
// whose directory's path holds hint (an experiment's name), else the newest
// of kind. A training job counts only once it finished: one cut short (a
// failed run, the fault benchmark's) has no summary to report.
static const sched_results *pick(const inputs *in, fig_kind kind, const char *hint)
{
    const sched_results *best = NULL, *hinted = NULL;
    for (size_t i = 0; i < in->n_jobs; i++) {
        const sched_results *r = in->jobs[i];
        if (r->kind != kind || (kind == FIG_TRAIN && r->summary == NULL))
            continue;
        if (best == NULL || created(r) >= created(best))
            best = r;
        if (hint && strstr(r->dir, hint) && (hinted == NULL || created(r) >= created(hinted)))
            hinted = r;
    }
    return hinted ? hinted : best;
}

static const sched_results *newest(const inputs *in, fig_kind kind)
{
    return pick(in, kind, NULL);
}

// ------------------------------------------------------------ the writer

static void html_text(cn_buf *b, const char *s)
{
    svg_escape(b, s);
}

// md_inline renders `code` spans in s for HTML (the prose's only markup).
static void html_inline(cn_buf *b, const char *s)
{
    bool code = false;
    for (const char *p = s; *p; p++) {
        if (*p == '`') {
            cn_buf_printf(b, code ? "</code>" : "<code>");
            code = !code;
            continue;
        }
        char c[2] = {*p, 0};
        html_text(b, c);
    }
    if (code)
        cn_buf_printf(b, "</code>");
}

static void doc_h(doc *d, int level, const char *text)
{
    cn_buf_printf(&d->md, "\n%.*s %s\n\n", level, "######", text);
    cn_buf_printf(&d->html, "<h%d>", level);
    html_inline(&d->html, text);
    cn_buf_printf(&d->html, "</h%d>\n", level);
}

static size_t count_words(const char *s)
{
    size_t n = 0;
    bool in = false;
    for (; *s; s++) {
        bool w = *s != ' ' && *s != '\n' && *s != '\t';
        n += w && !in;
        in = w;
    }
    return n;
}

static void doc_p(doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void doc_p(doc *d, const char *fmt, ...)
{
    cn_buf t;
    cn_buf_init(&t);
    va_list ap;
    va_start(ap, fmt);
    cn_buf_vprintf(&t, fmt, ap);
    va_end(ap);
    const char *s = t.data ? t.data : "";
    d->words += count_words(s);
    cn_buf_printf(&d->md, "%s\n\n", s);
    cn_buf_printf(&d->html, "<p>");
    html_inline(&d->html, s);
    cn_buf_printf(&d->html, "</p>\n");
    cn_buf_fini(&t);
}

// doc_missing writes the standard note of a missing result.
static void doc_missing(doc *d, const char *what, const char *command)
{
    cn_buf_printf(&d->md, "> **Results missing:** %s. Produce them with `%s`.\n\n", what, command);
    cn_buf_printf(&d->html, "<p class=\"missing\"><strong>Results missing:</strong> ");
    html_text(&d->html, what);
    cn_buf_printf(&d->html, ". Produce them with <code>");
    html_text(&d->html, command);
    cn_buf_printf(&d->html, "</code>.</p>\n");
}

// doc_table writes a table; cells is rows x ncols strings.
static void doc_table(doc *d, size_t ncols, const char *const *head, char (*cells)[96], size_t rows)
{
    cn_buf_printf(&d->md, "|");
    cn_buf_printf(&d->html, "<table><tr>");
    for (size_t c = 0; c < ncols; c++) {
        cn_buf_printf(&d->md, " %s |", head[c]);
        cn_buf_printf(&d->html, "<th>");
        html_text(&d->html, head[c]);
        cn_buf_printf(&d->html, "</th>");
    }
    cn_buf_printf(&d->md, "\n|");
    for (size_t c = 0; c < ncols; c++)
        cn_buf_printf(&d->md, " --- |");
    cn_buf_printf(&d->md, "\n");
    cn_buf_printf(&d->html, "</tr>\n");
    for (size_t r = 0; r < rows; r++) {
        cn_buf_printf(&d->md, "|");
        cn_buf_printf(&d->html, "<tr>");
        for (size_t c = 0; c < ncols; c++) {
            const char *v = cells[r * ncols + c];
            cn_buf_printf(&d->md, " ");
            for (const char *p = v; *p; p++) // a pipe would end the cell
                cn_buf_printf(&d->md, *p == '|' ? "\\|" : "%c", *p);
            cn_buf_printf(&d->md, " |");
            cn_buf_printf(&d->html, "<td>");
            html_text(&d->html, v);
            cn_buf_printf(&d->html, "</td>");
        }
        cn_buf_printf(&d->md, "\n");
        cn_buf_printf(&d->html, "</tr>\n");
    }
    cn_buf_printf(&d->md, "\n");
    cn_buf_printf(&d->html, "</table>\n");
}

// doc_fig writes svg as DIR/<name>.svg, links it from the Markdown and
// inlines it in the HTML.
static void doc_fig(doc *d, const char *name, const cn_buf *svg, const char *caption)
{
    char path[1300], err[CN_ERRBUF_LEN];
    snprintf(path, sizeof path, "%s/%s.svg", d->dir, name);
    if (svg->oom || cn_file_write_atomic(path, svg->data, svg->len, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy report: cannot write %s\n", path);
        d->failed = true;
        return;
    }
    d->nfig++;
    cn_buf_printf(&d->md, "![%s](%s.svg)\n\n*Figure %d: %s*\n\n", caption, name, d->nfig, caption);
    cn_buf_printf(&d->html, "<figure>%s<figcaption>Figure %d: ", svg->data, d->nfig);
    html_inline(&d->html, caption);
    cn_buf_printf(&d->html, "</figcaption></figure>\n");
}

// doc_bars draws a grouped bar chart (one group per category, one bar per
// series) as figure `name`.
static void doc_bars(doc *d, const char *name, const char *caption, const char *title,
                     const char *xlabel, const char *ylabel, const svg_series *ss, size_t n_series,
                     const char *const *cats, size_t n_cats)
{
    svg_chart c = {.kind = SVG_BAR,
                   .title = title,
                   .xlabel = xlabel,
                   .ylabel = ylabel,
                   .series = ss,
                   .n_series = n_series,
                   .categories = cats,
                   .n_categories = n_cats};
    cn_buf svg;
    cn_buf_init(&svg);
    if (svg_chart_render(&c, &svg) == CN_OK)
        doc_fig(d, name, &svg, caption);
    cn_buf_fini(&svg);
}

static void doc_job_fig(doc *d, const sched_results *const *jobs, size_t n, const char *fig,
                        const char *file, const char *caption)
{
    cn_buf svg;
    cn_buf_init(&svg);
    if (sched_fig_render(jobs, n, fig, &svg) == CN_OK)
        doc_fig(d, file, &svg, caption);
    cn_buf_fini(&svg);
}

// ------------------------------------------------------------ 1.1

static void params_text(const cJSON *p, char *out, size_t n)
{
    char *s = p ? cJSON_PrintUnformatted(p) : NULL;
    snprintf(out, n, "%s", s ? s : "{}");
    free(s);
}

// by_mean_desc ranks full scores first, then by mean accuracy.
static int by_mean_desc(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    bool fx = sched_trial_full_score(x), fy = sched_trial_full_score(y);
    if (fx != fy)
        return fx ? -1 : 1;
    double mx = num(x, "mean_accuracy"), my = num(y, "mean_accuracy");
    return (my > mx) - (my < mx);
}

// sweep_leaderboard writes the ten best trials, and the default's row
// (trial 0) after them when it is not among them.
static void sweep_leaderboard(doc *d, const sched_results *s)
{
    size_t n = (size_t)cJSON_GetArraySize(s->trials), k = 0;
    const cJSON **v = calloc(n + 1, sizeof *v);
    char(*cells)[96] = calloc(11 * 6, sizeof *cells);
    if (v == NULL || cells == NULL) {
        free(v);
        free(cells);
        return;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, s->trials) v[k++] = t;
    qsort(v, n, sizeof *v, by_mean_desc);
    size_t rows = 0;
    for (size_t i = 0; i < n && rows < 11; i++) {
        bool is_default = num(v[i], "trial") == 0;
        if (i >= 10 && !is_default)
            continue;
        char(*c)[96] = &cells[rows++ * 6];
        snprintf(c[0], 96, "%zu", i + 1);
        if (sched_trial_full_score(v[i]))
            snprintf(c[1], 96, "%.0f%s", num(v[i], "trial"), is_default ? " (default)" : "");
        else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v[i], "failed")))
            snprintf(c[1], 96, "%.0f%s (failed)", num(v[i], "trial"),
                     is_default ? " (default)" : "");
        else
            snprintf(c[1], 96, "%.0f%s (stopped at rung %.0f, %.0f folds)", num(v[i], "trial"),
                     is_default ? " (default)" : "", num(v[i], "rung"), num(v[i], "folds_done"));
        params_text(cJSON_GetObjectItemCaseSensitive(v[i], "params"), c[2], 96);
        snprintf(c[3], 96, "%.4f", num(v[i], "mean_accuracy"));
        snprintf(c[4], 96, "%.4f", num(v[i], "std_accuracy"));
        snprintf(c[5], 96, "%.1f", num(v[i], "seconds"));
        if (i >= 10)
            break;
    }
    static const char *const head[] = {"rank",           "trial",  "parameters", "mean CV accuracy",
                                       "std over folds", "seconds"};
    doc_table(d, 6, head, cells, rows);
    free(cells);
    free(v);
}

static void sweep_scaling(doc *d, const inputs *in)
{
    doc_h(d, 3, "Time on 1, 2 and 3 VMs");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(in->scaling, "workers");
    if (w == NULL) {
        doc_missing(d, "no sweep scaling measurement (sweep-scaling.json) in RESULTS",
                    "bench/sweep.sh");
        return;
    }
    char cells[8 * 4][96];
    size_t rows = 0;
    const cJSON *e;
    double t1 = NAN;
    cJSON_ArrayForEach(e, w)
    {
        if (rows == 8)
            break;
        double n = atof(e->string), el = num(e, "elapsed_seconds"), sp = num(e, "speedup");
        if (rows == 0)
            t1 = el;
        snprintf(cells[rows * 4], 96, "%s", e->string);
        snprintf(cells[rows * 4 + 1], 96, "%.1f", el);
        snprintf(cells[rows * 4 + 2], 96, "%.2f", sp);
        snprintf(cells[rows * 4 + 3], 96, "%.0f %%", 100 * sp / n);
        rows++;
    }
    static const char *const head[] = {"VMs (workers)", "sweep seconds", "speedup", "efficiency"};
    doc_p(d,
          "Each simulated VM is a worker limited to %g core by a CPU quota (`%s`). The "
          "sweep took %.1f s on one VM; the table gives the speedup T1/Tn and the "
          "efficiency speedup/n.",
          num(in->scaling, "cores_per_worker"), in->scaling_path, t1);
    doc_table(d, 4, head, cells, rows);
}

static void section_11(doc *d, const inputs *in)
{
    doc_h(d, 2, "1.1 Hyper-parameter tuning of the random forest");
    const sched_results *s = newest(in, FIG_SWEEP);
    if (s == NULL || s->summary == NULL) {
        doc_missing(d, "no finished sweep in RESULTS",
                    "canopy local --workers 2 tune deploy/sweeps/forest-cover.json");
        sweep_scaling(d, in);
        return;
    }
    const cJSON *best = cJSON_GetObjectItemCaseSensitive(s->summary, "best");
    const cJSON *dflt = cJSON_GetObjectItemCaseSensitive(s->summary, "default");
    char bp[512], dp[512];
    params_text(cJSON_GetObjectItemCaseSensitive(best, "params"), bp, sizeof bp);
    params_text(cJSON_GetObjectItemCaseSensitive(dflt, "params"), dp, sizeof dp);
    double bm = num(best, "mean_accuracy"), bs = num(best, "std_accuracy");
    double dm = num(dflt, "mean_accuracy"), ds = num(dflt, "std_accuracy");
    double diff = bm - dm, noise = bs > ds ? bs : ds;
    doc_p(d,
          "Sweep `%s` (`%s`): %.0f trials, each scored by %.0f-fold cross-validation (%.0f "
          "units, %.0f failed), in %.1f s on %.0f workers.",
          s->id, s->dir, num(s->summary, "trials"), num(s->summary, "folds"),
          num(s->summary, "units"), num(s->summary, "units_failed"),
          num(s->summary, "elapsed_seconds"), num(s->summary, "workers_alive"));
    doc_p(d,
          "The best trial (%.0f) has the parameters `%s` and a mean CV accuracy of %.4f "
          "(standard deviation over folds %.4f). The default parameters `%s` score %.4f "
          "(standard deviation %.4f). The difference, %+.4f, is %s the larger of the two "
          "standard deviations (%.4f)%s.",
          num(best, "trial"), bp, bm, bs, dp, dm, ds, diff,
          fabs(diff) > noise ? "larger than" : "not larger than", noise,
          fabs(diff) > noise ? ", so the tuning gain stands out of the fold-to-fold noise"
                             : ", so this sweep does not separate the tuned forest from the "
                               "default beyond fold-to-fold noise");
    doc_h(d, 3, "Leaderboard");
    sweep_leaderboard(d, s);
    doc_h(d, 3, "Score against each hyper-parameter");
    cJSON *params = sched_fig_params(s);
    const cJSON *p;
    const sched_results *one = s;
    cJSON_ArrayForEach(p, params)
    {
        char fig[200], file[220], cap[300];
        snprintf(fig, sizeof fig, "score-%s", p->valuestring);
        snprintf(file, sizeof file, "sweep-score-%s", p->valuestring);
        snprintf(cap, sizeof cap, "mean CV accuracy of each trial against `%.60s` (sweep `%.120s`)",
                 p->valuestring, s->id);
        doc_job_fig(d, &one, 1, fig, file, cap);
    }
    cJSON_Delete(params);
    doc_job_fig(d, &one, 1, "timeline", "sweep-timeline",
                "each (trial, fold) unit as a segment of time on its worker's row");
    sweep_scaling(d, in);
    doc_h(d, 3, "Held-back check");
    doc_missing(d,
                "no held-back data was given for the tuned forest (the sweep scores on "
                "cross-validation folds only)",
                "canopy forest fit TRAIN.csv --params best.json -o tuned.cnf && canopy forest "
                "predict tuned.cnf HELD_BACK.csv");
}

// ------------------------------------------------------------ 1.2

static const cJSON *find_exp(const inputs *in, const char *name, const char **path)
{
    for (size_t i = 0; i < in->n_exps; i++) {
        const char *e = str(in->exps[i], "experiment");
        if (strncmp(e, name, strlen(name)) == 0) {
            *path = in->exp_paths[i];
            return in->exps[i];
        }
    }
    return NULL;
}

// exp_table writes one row per run and a compute/communication figure.
static void exp_table(doc *d, const cJSON *e, const char *path, const char *name)
{
    static const char *const head[] = {
        "run",         "model",     "parameters",      "shards",       "workers",
        "consistency", "samples/s", "compute ms/step", "comm ms/step", "test accuracy"};
    char cells[16 * 10][96];
    const char *cats[16];
    double comp[16], comm[16];
    size_t rows = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(e, "runs"))
    {
        if (rows == 16 || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "failed")))
            continue;
        char(*c)[96] = &cells[rows * 10];
        snprintf(c[0], 96, "%s", str(r, "name"));
        snprintf(c[1], 96, "%s", str(r, "model"));
        snprintf(c[2], 96, "%.0f", num(r, "n_params"));
        snprintf(c[3], 96, "%.0f", num(r, "shards"));
        snprintf(c[4], 96, "%.0f", num(r, "workers"));
        snprintf(c[5], 96, "%s", str(r, "consistency"));
        snprintf(c[6], 96, "%.0f", num(r, "samples_per_s"));
        snprintf(c[7], 96, "%.2f", num(r, "compute_ms_per_step"));
        snprintf(c[8], 96, "%.2f", num(r, "comm_ms_per_step"));
        snprintf(c[9], 96, "%.4f", num(r, "test_accuracy"));
        cats[rows] = c[0];
        comp[rows] = num(r, "compute_ms_per_step");
        comm[rows] = num(r, "comm_ms_per_step");
        rows++;
    }
    doc_p(d, "Experiment `%s` (`%s`): %s", str(e, "experiment"), path, str(e, "description"));
    doc_table(d, 10, head, cells, rows);
    svg_series ss[2] = {{.name = "compute", .y = comp, .n = rows},
                        {.name = "communication", .y = comm, .n = rows}};
    char file[64], cap[200];
    snprintf(file, sizeof file, "exp-%s", name);
    snprintf(cap, sizeof cap, "compute against communication per step, experiment `%s`", name);
    doc_bars(d, file, cap, "Compute and communication per step", "run", "ms per step", ss, 2, cats,
             rows);
}

// run_extremes finds the runs with the fewest and most parameters.
static void run_extremes(const cJSON *e, const cJSON **small, const cJSON **large)
{
    *small = *large = NULL;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(e, "runs"))
    {
        if (!isfinite(num(r, "n_params")))
            continue;
        if (*small == NULL || num(r, "n_params") < num(*small, "n_params"))
            *small = r;
        if (*large == NULL || num(r, "n_params") > num(*large, "n_params"))
            *large = r;
    }
}

// The three ways of experiment trials-vs-data, in the order they are shown.
static const char *const TVD_MODES[] = {"trial-parallel", "data-parallel", "mix"};

// tvd_run finds the run of model and mode in e, or NULL (failed runs too).
static const cJSON *tvd_run(const cJSON *e, const char *model, const char *mode)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(e, "runs"))
    {
        if (strcmp(str(r, "model"), model) == 0 && strcmp(str(r, "mode"), mode) == 0 &&
            cJSON_GetObjectItemCaseSensitive(r, "failed") == NULL)
            return r;
    }
    return NULL;
}

// tvd_section writes experiment trials-vs-data (question 1.2 measured): the
// same configurations trained trial-parallel, data-parallel and mixed, a
// table, a figure of the time until all are done, and per model which way
// finished first.
static void tvd_section(doc *d, const cJSON *e, const char *path)
{
    static const char *const head[] = {"model",         "parameters",   "way",
                                       "workers each",  "all done (s)", "best known (s)",
                                       "best accuracy", "scored on"};
    static const char *const models[] = {"small", "large"};
    char cells[6 * 8][96];
    const char *cats[2];
    double all[3][2];
    size_t rows = 0, nm = 0;
    for (size_t m = 0; m < 2; m++) {
        bool any = false;
        for (size_t k = 0; k < 3; k++) {
            const cJSON *r = tvd_run(e, models[m], TVD_MODES[k]);
            all[k][nm] = r ? num(r, "all_done_s") : NAN;
            if (r == NULL)
                continue;
            any = true;
            char(*c)[96] = &cells[rows * 8];
            snprintf(c[0], 96, "%s (%s)", models[m], str(r, "hidden"));
            snprintf(c[1], 96, "%.0f", num(r, "n_params"));
            snprintf(c[2], 96, "%s", TVD_MODES[k]);
            snprintf(c[3], 96, "%.0f", k == 0 ? 1.0 : num(r, "workers_per_config"));
            snprintf(c[4], 96, "%.1f", num(r, "all_done_s"));
            snprintf(c[5], 96, "%.1f", num(r, "best_known_s"));
            snprintf(c[6], 96, "%.4f", num(r, "best_accuracy"));
            snprintf(c[7], 96, "%s", str(r, "accuracy_on"));
            rows++;
        }
        if (any)
            cats[nm++] = models[m];
    }
    doc_p(d,
          "Experiment `trials-vs-data` (`%s`): %.0f MLP configurations trained on %.0f workers "
          "of %.2f core each (%.0f training rows, %.0f epochs): trial-parallel (each worker "
          "trains one configuration at a time), data-parallel (each configuration on all "
          "workers through the parameter server, one after another) and a mix (two workers "
          "per configuration).",
          path, num(e, "configs"), num(e, "workers"), num(e, "cores_per_worker"),
          num(e, "train_rows"), num(e, "epochs"));
    doc_table(d, 8, head, cells, rows);
    for (size_t m = 0; m < nm; m++) {
        size_t best = 3;
        for (size_t k = 0; k < 3; k++)
            if (isfinite(all[k][m]) && (best == 3 || all[k][m] < all[best][m]))
                best = k;
        if (best == 3)
            continue;
        const cJSON *r = tvd_run(e, cats[m], TVD_MODES[best]);
        double next = NAN;
        for (size_t k = 0; k < 3; k++)
            if (k != best && isfinite(all[k][m]) && !(all[k][m] >= next))
                next = all[k][m];
        if (isfinite(next))
            doc_p(d,
                  "The %s model (%.0f parameters): %s finished all configurations first, in "
                  "%.1f s, %.1f times sooner than the next way.",
                  cats[m], num(r, "n_params"), TVD_MODES[best], all[best][m], next / all[best][m]);
        else
            doc_p(d, "The %s model (%.0f parameters): only %s finished, in %.1f s.", cats[m],
                  num(r, "n_params"), TVD_MODES[best], all[best][m]);
    }
    svg_series ss[3];
    for (size_t k = 0; k < 3; k++)
        ss[k] = (svg_series){.name = TVD_MODES[k], .y = all[k], .n = nm};
    doc_bars(d, "exp-trials-vs-data",
             "time until all configurations are trained, by way of distributing them",
             "Time until every configuration is trained", "model", "seconds", ss, 3, cats, nm);
}

static void section_12(doc *d, const inputs *in)
{
    doc_h(d, 2, "1.2 Distributing the training of one network");
    const char *mp = NULL, *sp = NULL;
    const cJSON *ms = find_exp(in, "model-size", &mp), *sh = find_exp(in, "shards", &sp);
    if (ms == NULL) {
        doc_missing(d, "no model-size measurement (results/experiments/model-size.json)",
                    "deploy/experiments/run.sh deploy/experiments/model-size.json");
    } else {
        const cJSON *small, *large;
        run_extremes(ms, &small, &large);
        if (small && large)
            doc_p(d,
                  "Data-parallel training sends every parameter's gradient and pulls every "
                  "parameter each step. With %.0f parameters a step spent %.2f ms computing and "
                  "%.2f ms communicating (ratio %.2f); with %.0f parameters, %.2f ms and %.2f ms "
                  "(ratio %.2f). Communication grows with the model while the compute of a "
                  "fixed batch grows with it too, so the ratio measured here, not the model "
                  "size alone, says whether adding workers pays. Model-parallel training would "
                  "instead send each layer's activations and their gradients (batch x width "
                  "numbers per cut) and keep each slice of the parameters on one machine: it "
                  "is the choice when the model does not fit one machine or when the "
                  "per-step parameter traffic measured above outweighs the compute, which "
                  "data parallelism cannot reduce.",
                  num(small, "n_params"), num(small, "compute_ms_per_step"),
                  num(small, "comm_ms_per_step"), num(small, "compute_comm_ratio"),
                  num(large, "n_params"), num(large, "compute_ms_per_step"),
                  num(large, "comm_ms_per_step"), num(large, "compute_comm_ratio"));
        exp_table(d, ms, mp, "model-size");
    }
    if (sh == NULL)
        doc_missing(d, "no shard-count measurement (results/experiments/shards.json)",
                    "deploy/experiments/run.sh deploy/experiments/shards.json");
    else
        exp_table(d, sh, sp, "shards");
    doc_h(d, 3, "One network or the trials of a sweep");
    const char *tp = NULL;
    const cJSON *tvd = find_exp(in, "trials-vs-data", &tp);
    if (tvd == NULL)
        doc_missing(d,
                    "no trials-against-data-parallel measurement "
                    "(results/experiments/trials-vs-data.json)",
                    "deploy/experiments/trials-vs-data.sh");
    else
        tvd_section(d, tvd, tp);
    const cJSON *w3 = NULL;
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(in->scaling, "workers"), *e;
    cJSON_ArrayForEach(e, w) w3 = e;
    const sched_results *t = newest(in, FIG_TRAIN);
    if (w3 == NULL || t == NULL) {
        doc_missing(d,
                    "the comparison needs the sweep scaling measurement and a finished "
                    "training job",
                    "bench/sweep.sh && canopy local --ps 2 --workers 2 train "
                    "deploy/jobs/fashion-mlp.json");
        return;
    }
    double n3 = atof(w3->string), s3 = num(w3, "speedup");
    doc_p(d,
          "A sweep's trials are independent: on %.0f VMs the sweep ran %.2f times faster than "
          "on one (efficiency %.0f %%), and each unit cost the scheduler %.2f ms. Training one "
          "network on %.0f workers (job `%s`) spent %.2f s computing against %.2f s "
          "communicating (ratio %.2f) and moved %.3g bytes. Distribute the trials of a sweep "
          "while there are at least as many trials as machines: they need no communication. "
          "Distribute one network's training when a single run is what must finish sooner "
          "(or does not fit one machine), and only while its compute per step stays well "
          "above its communication per step.",
          n3, s3, 100 * s3 / n3, num(w3, "dispatch_overhead_ms"), num(t->summary, "workers"), t->id,
          num(t->summary, "compute_seconds"), num(t->summary, "comm_seconds"),
          num(t->summary, "compute_comm_ratio"),
          num(t->summary, "bytes_sent") + num(t->summary, "bytes_received"));
}

// ------------------------------------------------------------ 2.1, 2.2

// fed_totals sums a federated job's round records.
typedef struct fed_totals {
    size_t rounds;
    double acc, t, bytes, selected, dropped, late;
} fed_totals;

static fed_totals fed_sum(const sched_results *r)
{
    fed_totals f = {0};
    for (size_t i = 0; i < r->n_recs; i++) {
        const cJSON *rec = r->recs[i];
        if (strcmp(str(rec, "type"), "round") != 0)
            continue;
        f.rounds++;
        f.acc = num(rec, "accuracy");
        f.t = num(rec, "t");
        f.bytes += num(rec, "bytes_up") + num(rec, "bytes_down");
        f.selected += num(rec, "selected");
        f.dropped += num(rec, "dropped");
        f.late += num(rec, "late");
    }
    return f;
}

static const char FED_CMD[] = "canopy local --ps 1 --workers 4 train FEDERATED_JOB.json";

static bool check_words(doc *d, const char *section)
{
    if (d->words <= WORD_LIMIT)
        return true;
    fprintf(stderr, "canopy report: section %s has %zu words; the limit is %d\n", section, d->words,
            WORD_LIMIT);
    return false;
}

static bool section_21(doc *d, const inputs *in)
{
    doc_h(d, 2, "2.1 Federated against distributed learning");
    d->words = 0;
    // The partitionings: the FedAvg runs of deploy/experiments' fed-skew
    // when RESULTS hold them, else every federated job.
    const sched_results *fed[8];
    size_t n = 0;
    for (int pass = 0; pass < 2 && n == 0; pass++)
        for (size_t i = 0; i < in->n_jobs && n < 8; i++) {
            const sched_results *r = in->jobs[i];
            const char *strategy = str(r->spec, "strategy");
            if (r->kind == FIG_FEDERATED && sched_results_count(r, "round") &&
                (pass == 1 ||
                 (strstr(r->dir, "fed-skew") && (!strategy[0] || strcmp(strategy, "fedavg") == 0))))
                fed[n++] = r;
        }
    if (n == 0) {
        doc_missing(d,
                    "no federated training job with round records in RESULTS (one job file "
                    "with \"mode\": \"federated\" per partitioning)",
                    FED_CMD);
        return true;
    }
    doc_p(d, "Distributed learning shuffles one data set over workers that synchronise every "
             "step; federated clients keep their own data, train locally and send an update "
             "once per round.");
    cn_buf t;
    cn_buf_init(&t);
    for (size_t i = 0; i < n && i < 5; i++) {
        fed_totals f = fed_sum(fed[i]);
        cn_buf_printf(&t, "%s`%s`: accuracy %.4f after %zu rounds (%.1f s)", i ? "; " : "",
                      fed[i]->label, f.acc, f.rounds, f.t);
    }
    doc_p(d,
          "Statistical heterogeneity shows in the accuracy per round of each partitioning "
          "(Figure %d): %s.",
          d->nfig + 1, t.data);
    cn_buf_fini(&t);
    doc_job_fig(d, fed, n, "round-accuracy", "fed-round-accuracy",
                "global test accuracy per round, one line per partitioning");
    // System heterogeneity: the fed-system experiment's run with the most
    // dropped and late clients, else the listed job with the most.
    const sched_results *sys = fed[0];
    for (size_t i = 0; i < in->n_jobs; i++) {
        const sched_results *r = in->jobs[i];
        fed_totals a = fed_sum(r), b = fed_sum(sys);
        bool preferred = strstr(r->dir, "fed-system") && !strstr(sys->dir, "fed-system");
        if (r->kind == FIG_FEDERATED && a.rounds &&
            (preferred || a.dropped + a.late > b.dropped + b.late))
            sys = r;
    }
    fed_totals f = fed_sum(sys);
    doc_p(d,
          "System heterogeneity: in `%s`, %.0f client-rounds were selected, %.0f dropped out "
          "and %.0f missed the round's deadline; a round closes without them, so slow or lost "
          "clients cost accuracy per round rather than stalling every step as a synchronous "
          "parameter server would.",
          sys->label, f.selected, f.dropped, f.late);
    const sched_results *one = sys;
    doc_job_fig(d, &one, 1, "round-clients", "fed-round-clients",
                "selected, finished, dropped and late clients per round");
    doc_job_fig(d, &one, 1, "round-time", "fed-round-time", "the time split of each round");
    return check_words(d, "2.1");
}

static bool section_22(doc *d, const inputs *in)
{
    doc_h(d, 2, "2.2 Federated learning and the parameter server on the same servers");
    d->words = 0;
    const sched_results *ps = pick(in, FIG_TRAIN, "fl-vs-ps"),
                        *fed = pick(in, FIG_FEDERATED, "fl-vs-ps");
    if (ps == NULL || ps->summary == NULL || fed == NULL || !sched_results_count(fed, "round")) {
        doc_missing(d,
                    ps == NULL || ps->summary == NULL
                        ? "no finished parameter-server training job in RESULTS"
                        : "no federated training job with round records in RESULTS (a job "
                          "file with \"mode\": \"federated\")",
                    ps == NULL || ps->summary == NULL
                        ? "canopy local --ps 2 --workers 2 train deploy/jobs/fashion-mlp.json"
                        : FED_CMD);
        return true;
    }
    fed_totals f = fed_sum(fed);
    double ps_bytes = num(ps->summary, "bytes_sent") + num(ps->summary, "bytes_received");
    doc_p(d,
          "Both run on the same scheduler and parameter-server shards. With the parameter "
          "server (`%s`, %s), workers synchronise every step: they push gradients and pull "
          "parameters, and the scheduler's data is spread over them. It reached accuracy "
          "%.4f in %.1f s after moving %.3g bytes. In federated mode (`%s`) the shards "
          "aggregate one weighted update per client per round, clients hold their own data, "
          "and only model deltas travel: %.4f after %zu rounds in %.1f s and %.3g bytes.",
          ps->id, str(ps->summary, "consistency"), num(ps->summary, "test_accuracy"),
          num(ps->summary, "seconds"), ps_bytes, fed->label, f.acc, f.rounds, f.t, f.bytes);
    const sched_results *both[2] = {ps, fed};
    doc_job_fig(d, both, 2, "accuracy-time", "ps-fed-accuracy-time",
                "test accuracy against time, parameter server and federated");
    doc_job_fig(d, both, 2, "accuracy-bytes", "ps-fed-accuracy-bytes",
                "test accuracy against bytes moved, parameter server and federated");
    return check_words(d, "2.2");
}

// ------------------------------------------------------------ the rest

static void section_training(doc *d, const inputs *in)
{
    const sched_results *t = newest(in, FIG_TRAIN);
    if (t == NULL)
        return;
    doc_h(d, 2, "Training measurements");
    doc_p(d, "Job `%s` (`%s`): model %s, %s, %.0f shards, %.0f workers.", t->id, t->dir,
          str(t->summary, "model"), str(t->summary, "consistency"), num(t->summary, "shards"),
          num(t->summary, "workers"));
    const sched_results *one = t;
    static const char *const figs[][2] = {
        {"loss-time", "training loss against time, per worker"},
        {"accuracy-samples", "test accuracy against samples trained"},
        {"throughput", "throughput per worker"},
        {"staleness", "staleness of pushed gradients"},
    };
    for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "train-%s", figs[i][0]);
        doc_job_fig(d, &one, 1, figs[i][0], file, figs[i][1]);
    }
}

// take_screenshot runs headless Chromium on url into DIR/dashboard.png.
static bool take_screenshot(const char *dir, const char *url, char *out, size_t n)
{
    snprintf(out, n, "%s/dashboard.png", dir);
    char shot[1300];
    snprintf(shot, sizeof shot, "--screenshot=%s", out);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY); // Chromium's chatter is not ours
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("chromium", "chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--hide-scrollbars", "--window-size=1280,900", "--virtual-time-budget=6000", shot,
               url, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return false;
    return access(out, F_OK) == 0;
}

static void section_snapshot(doc *d, const inputs *in, const char *url)
{
    doc_h(d, 2, "Dashboard snapshot");
    char path[1100] = "";
    if (url[0] && !take_screenshot(d->dir, url, path, sizeof path)) {
        fprintf(stderr, "canopy report: chromium could not take a screenshot of %s\n", url);
        path[0] = 0;
    }
    if (!path[0] && in->screenshot[0]) {
        snprintf(path, sizeof path, "%s/dashboard.png", d->dir);
        uint8_t *data;
        size_t len;
        char err[256];
        if (cn_file_read_all(in->screenshot, 64u << 20, &data, &len, err, sizeof err) == CN_OK) {
            if (strcmp(in->screenshot, path) != 0)
                cn_file_write_atomic(path, data, len, err, sizeof err);
            free(data);
        } else
            path[0] = 0;
    }
    if (!path[0]) {
        doc_missing(d, "no dashboard screenshot",
                    "canopy report --screenshot http://127.0.0.1:8080/training RESULTS -o DIR");
        return;
    }
    cn_buf_printf(&d->md, "![the dashboard](dashboard.png)\n\n");
    cn_buf_printf(&d->html, "<figure><img src=\"dashboard.png\" alt=\"the dashboard\" "
                            "width=\"960\"><figcaption>The dashboard</figcaption></figure>\n");
}

static void cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            snprintf(out, n, "%s", strchr(line, ':') + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    if (f)
        fclose(f);
}

static void section_provenance(doc *d, const inputs *in)
{
    doc_h(d, 2, "How each figure was produced");
    struct utsname u;
    uname(&u);
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    doc_p(d,
          "Report written by canopy %s on %s (%s %s, %s, %ld CPUs). Every number above is "
          "read from the files below; nothing was typed in.",
          CANOPY_VERSION, u.nodename, u.sysname, u.release, cpu, sysconf(_SC_NPROCESSORS_ONLN));
    static const char *const head[] = {"source", "kind", "command", "seed", "files"};
    size_t rows = in->n_jobs + in->n_exps + (in->scaling != NULL);
    char(*cells)[96] = calloc(rows * 5 + 1, sizeof *cells);
    if (cells == NULL)
        return;
    size_t r = 0;
    for (size_t i = 0; i < in->n_jobs; i++, r++) {
        const sched_results *j = in->jobs[i];
        char(*c)[96] = &cells[r * 5];
        snprintf(c[0], 96, "%.95s", j->id);
        snprintf(c[1], 96, "%s",
                 j->kind == FIG_SWEEP   ? "sweep"
                 : j->kind == FIG_TRAIN ? "train"
                                        : "train (federated)");
        const char *spec = str(j->job, "spec_name");
        snprintf(c[2], 96, "canopy %s %s", j->kind == FIG_SWEEP ? "tune" : "train",
                 spec[0] ? spec : "spec.json");
        const cJSON *cv = cJSON_GetObjectItemCaseSensitive(j->spec, "cv");
        double seed = isfinite(num(j->spec, "seed")) ? num(j->spec, "seed") : num(cv, "seed");
        snprintf(c[3], 96, isfinite(seed) ? "%.0f" : "-", seed);
        snprintf(c[4], 96, "%.95s", j->dir);
    }
    for (size_t i = 0; i < in->n_exps; i++, r++) {
        char(*c)[96] = &cells[r * 5];
        snprintf(c[0], 96, "%s", str(in->exps[i], "experiment"));
        snprintf(c[1], 96, "experiment");
        const char *cmd = str(in->exps[i], "command");
        snprintf(c[2], 96, "%s", cmd[0] ? cmd : "deploy/experiments/run.sh");
        snprintf(c[3], 96, "in the job files");
        snprintf(c[4], 96, "%.95s", in->exp_paths[i]);
    }
    if (in->scaling) {
        char(*c)[96] = &cells[r * 5];
        snprintf(c[0], 96, "sweep scaling");
        snprintf(c[1], 96, "benchmark");
        snprintf(c[2], 96, "bench/sweep.sh");
        snprintf(c[3], 96, "the sweep's");
        snprintf(c[4], 96, "%.95s", in->scaling_path);
    }
    doc_table(d, 5, head, cells, rows);
    free(cells);
}

static bool write_outputs(doc *d, const char *dir)
{
    char path[1300], err[CN_ERRBUF_LEN];
    cn_buf page;
    cn_buf_init(&page);
    cn_buf_printf(&page,
                  "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<title>canopy report</title><style>body{font-family:sans-serif;max-width:"
                  "70em;margin:2em auto;color:#222;line-height:1.45}table{border-collapse:"
                  "collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.2em .5em;"
                  "font-size:.9em}th{background:#eef}figure{margin:1em 0}.missing{background:"
                  "#fff4e0;padding:.5em}</style></head><body>\n%s</body></html>\n",
                  d->html.data ? d->html.data : "");
    snprintf(path, sizeof path, "%s/index.html", dir);
    bool ok =
        !page.oom && cn_file_write_atomic(path, page.data, page.len, err, sizeof err) == CN_OK;
    cn_buf_fini(&page);
    snprintf(path, sizeof path, "%s/REPORT.md", dir);
    ok = ok && !d->md.oom &&
         cn_file_write_atomic(path, d->md.data, d->md.len, err, sizeof err) == CN_OK;
    if (!ok)
        fprintf(stderr, "canopy report: cannot write the report in %s: %s\n", dir, err);
    return ok;
}

int cmd_report(int argc, char **argv)
{
    char out[CN_OPT_STRLEN] = "report", shot[CN_OPT_STRLEN] = "";
    cn_opt opts[] = {
        {"out", CN_OPT_STRING, out, "output directory (also -o DIR)", 0, 0, NULL},
        {"screenshot", CN_OPT_STRING, shot,
         "a dashboard URL to photograph with headless Chromium for the snapshot section", 0, 0,
         NULL},
        CN_OPT_END,
    };
    // -o DIR, the usual spelling, is --out DIR.
    char **av = calloc((size_t)argc + 1, sizeof *av);
    if (av == NULL)
        return CLI_EXIT_FAILURE;
    static char long_out[] = "--out";
    for (int i = 0; i < argc; i++)
        av[i] = strcmp(argv[i], "-o") == 0 ? long_out : argv[i];
    cn_args args;
    bool done;
    int rc = cli_parse("report", "report RESULTS... [-o DIR] [--screenshot URL]", opts, argc, av,
                       &args, &done);
    free(av);
    if (done)
        return rc;
    if (args.npos == 0)
        return cli_usage_error("report", "give at least one RESULTS directory or file");
    char err[CN_ERRBUF_LEN];
    if (cn_file_mkdirs(out, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy report: %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    inputs *in = calloc(1, sizeof *in);
    if (in == NULL)
        return CLI_EXIT_FAILURE;
    for (int i = 0; i < args.npos && rc == CLI_EXIT_OK; i++)
        rc = scan(in, args.pos[i], 0);
    doc d = {.dir = out};
    cn_buf_init(&d.md);
    cn_buf_init(&d.html);
    bool words_ok = true;
    if (rc == CLI_EXIT_OK) {
        doc_h(&d, 1, "canopy: answers from measurements");
        section_11(&d, in);
        section_12(&d, in);
        words_ok &= section_21(&d, in);
        words_ok &= section_22(&d, in);
        section_training(&d, in);
        section_snapshot(&d, in, shot);
        section_provenance(&d, in);
        if (!write_outputs(&d, out) || d.failed)
            rc = CLI_EXIT_FAILURE;
        else if (!words_ok)
            rc = CLI_EXIT_FAILURE;
        else
            printf("report: %s/index.html and %s/REPORT.md (%d figures, %zu jobs read)\n", out, out,
                   d.nfig, in->n_jobs);
    }
    cn_buf_fini(&d.md);
    cn_buf_fini(&d.html);
    for (size_t i = 0; i < in->n_jobs; i++)
        sched_results_free(in->jobs[i]);
    cJSON_Delete(in->scaling);
    for (size_t i = 0; i < in->n_exps; i++)
        cJSON_Delete(in->exps[i]);
    free(in);
    return rc;
}
