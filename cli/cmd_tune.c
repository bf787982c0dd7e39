// cmd_tune.c: `canopy tune SWEEP.json`: submit a sweep and follow it.
//
// The sweep is validated here first (nothing is sent if it is invalid), the
// data file is sent to the scheduler's Data service only if it does not
// hold it already (by SHA-256), and progress is shown as a bar with ETA on
// a terminal or a line every few seconds otherwise. At the end: a table of
// the top trials with the default's row, the best parameters as JSON and
// all trials as CSV.
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "cli/cli_job.h"
#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "scheduler/sched_figures.h"
#include "scheduler/sweep_spec.h"

// resolve_data finds the data file: as given (absolute or relative to the
// working directory), else relative to the sweep file's directory.
static int resolve_data(const char *sweep_path, const char *data, char *out, size_t n)
{
    if (data[0] == '/' || access(data, R_OK) == 0) {
        snprintf(out, n, "%s", data);
        return access(out, R_OK) == 0;
    }
    char *copy = strdup(sweep_path);
    if (copy == NULL)
        return 0;
    snprintf(out, n, "%s/%s", dirname(copy), data);
    free(copy);
    return access(out, R_OK) == 0;
}

static int cmp_trials(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    // A finished score ranks above any partial one (a trial ASHA stopped).
    bool fx = sched_trial_full_score(x), fy = sched_trial_full_score(y);
    if (fx != fy)
        return fx ? -1 : 1;
    double ax = cli_num(x, "mean_accuracy"), ay = cli_num(y, "mean_accuracy");
    if (ax != ay)
        return ax > ay ? -1 : 1;
    return cli_num(x, "trial") < cli_num(y, "trial") ? -1 : 1;
}

static char *params_text(const cJSON *t)
{
    return cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(t, "params"));
}

static void print_row(const cJSON *t, const char *tag)
{
    char *p = params_text(t);
    printf("%5.0f%-2s %.4f +- %.4f  %.4f  %7.1fs  %s\n", cli_num(t, "trial"), tag,
           cli_num(t, "mean_accuracy"), cli_num(t, "std_accuracy"),
           cli_num(t, "mean_balanced_accuracy"), cli_num(t, "seconds"), p ? p : "{}");
    free(p);
}

// write_outputs writes the best trial's parameters (JSON) and every trial
// (CSV) where the user asked for them.
static int write_outputs(const cJSON *trials, const cJSON *best, const char *best_out,
                         const char *csv_out)
{
    char err[CN_ERRBUF_LEN];
    int rc = 0;
    if (best && best_out[0]) {
        char *text = cJSON_Print(cJSON_GetObjectItemCaseSensitive(best, "params"));
        cn_buf line;
        cn_buf_init(&line);
        if (text)
            cn_buf_printf(&line, "%s\n", text);
        if (text == NULL || line.oom ||
            cn_file_write_atomic(best_out, line.data, line.len, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canopy tune: %s\n", text ? err : "cannot format parameters");
            rc = 1;
        }
        cn_buf_fini(&line);
        free(text);
    }
    if (csv_out[0]) {
        cn_buf b;
        cn_buf_init(&b);
        cn_buf_printf(&b, "trial,params,folds_done,rung,stopped,mean_accuracy,std_accuracy,"
                          "mean_balanced_accuracy,mean_macro_f1,seconds,failed\n");
        const cJSON *t;
        cJSON_ArrayForEach(t, trials)
        {
            char *p = params_text(t);
            cn_buf_printf(&b, "%.0f,\"", cli_num(t, "trial"));
            for (const char *c = p ? p : "{}"; *c; c++)
                cn_buf_printf(&b, *c == '"' ? "\"\"" : "%c", *c);
            cn_buf_printf(
                &b, "\",%.0f,%.0f,%d,%.6f,%.6f,%.6f,%.6f,%.3f,%d\n", cli_num(t, "folds_done"),
                cli_num(t, "rung"), cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "stopped")),
                cli_num(t, "mean_accuracy"), cli_num(t, "std_accuracy"),
                cli_num(t, "mean_balanced_accuracy"), cli_num(t, "mean_macro_f1"),
                cli_num(t, "seconds"), cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "failed")));
            free(p);
        }
        if (b.oom || cn_file_write_atomic(csv_out, b.data, b.len, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canopy tune: %s\n", b.oom ? "out of memory" : err);
            rc = 1;
        }
        cn_buf_fini(&b);
    }
    return rc;
}

typedef struct progress {
    bool tty, warned_no_workers;
    uint64_t last_line, t0;
    const char *scheduler;
} progress;

static void show(const cJSON *st, void *arg)
{
    progress *p = arg;
    double units = cli_num(st, "units"), done = cli_num(st, "units_done");
    double failed = cli_num(st, "units_failed"), eta = cli_num(st, "eta_seconds");
    double frac = units > 0 ? (done + failed) / units : 1, best = cli_num(st, "best_accuracy");
    char eta_s[32] = "?", best_s[16] = "-";
    if (eta >= 0)
        snprintf(eta_s, sizeof eta_s, "%.0fs", eta);
    if (best >= 0)
        snprintf(best_s, sizeof best_s, "%.4f", best);
    double workers = cli_num(st, "workers");
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr,
                "\r[%s] %5.1f%% %.0f/%.0f units, %.0f running, %.0f workers, best %s, %.0fs, "
                "ETA %s   ",
                bar, frac * 100, done, units, cli_num(st, "units_running"), workers, best_s,
                cli_num(st, "elapsed_seconds"), eta_s);
    } else if (cn_now_ms() - p->last_line >= 5000) {
        fprintf(stderr,
                "canopy tune: %.0f/%.0f units (%.1f%%), %.0f running, %.0f workers, best %s, "
                "%.1fs elapsed, ETA %s\n",
                done, units, frac * 100, cli_num(st, "units_running"), workers, best_s,
                cli_num(st, "elapsed_seconds"), eta_s);
        p->last_line = cn_now_ms();
    }
    if (workers == 0 && cn_now_ms() - p->t0 > 3000 && !p->warned_no_workers) {
        fprintf(stderr,
                "%scanopy tune: no live workers: start some with `canopy worker "
                "--scheduler %s`\n",
                p->tty ? "\n" : "", p->scheduler);
        p->warned_no_workers = true;
    }
}

static void print_json_summary(const cJSON *st, const cJSON *best, const cJSON *def)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sweep_id", cli_str(st, "job_id"));
    cJSON_AddStringToObject(o, "state", cli_str(st, "state"));
    cJSON_AddNumberToObject(o, "elapsed_seconds", cli_num(st, "elapsed_seconds"));
    cJSON_AddNumberToObject(o, "units", cli_num(st, "units"));
    cJSON_AddNumberToObject(o, "units_failed", cli_num(st, "units_failed"));
    cJSON_AddNumberToObject(o, "workers", cli_num(st, "workers"));
    cJSON_AddNumberToObject(o, "dispatch_overhead_ms", cli_num(st, "dispatch_overhead_ms"));
    cJSON_AddNumberToObject(o, "record_write_ms", cli_num(st, "record_write_ms"));
    if (def)
        cJSON_AddNumberToObject(o, "default_cv_acc", cli_num(def, "mean_accuracy"));
    if (best) {
        cJSON_AddNumberToObject(o, "best_cv_acc", cli_num(best, "mean_accuracy"));
        cJSON_AddItemToObject(o, "best_params",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(best, "params"), 1));
    }
    cJSON_AddStringToObject(o, "results_dir", cli_str(st, "results_dir"));
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text ? text : "{}");
    free(text);
    cJSON_Delete(o);
}

// print_table prints the top trials, the default's row and the comparison.
static void print_table(const cJSON *st, const cJSON **sorted, size_t n, const cJSON *def,
                        int64_t top, const char *best_out, const char *csv_out)
{
    printf("sweep %s: %s in %.1f s on %.0f workers (%.0f units, %.0f failed; scheduler "
           "overhead %.2f ms/unit, plus %.2f ms/unit to write each result durably)\n",
           cli_str(st, "job_id"), cli_str(st, "state"), cli_num(st, "elapsed_seconds"),
           cli_num(st, "workers"), cli_num(st, "units"), cli_num(st, "units_failed"),
           cli_num(st, "dispatch_overhead_ms"), cli_num(st, "record_write_ms"));
    printf("%7s %-17s  %-6s  %8s  %s\n", "trial", "accuracy (mean+-sd)", "bal.acc", "time",
           "parameters");
    bool def_shown = false;
    for (size_t i = 0; i < n && i < (size_t)top; i++) {
        bool is_def = cli_num(sorted[i], "trial") == 0;
        print_row(sorted[i], is_def ? " d" : "");
        def_shown |= is_def;
    }
    if (def && !def_shown)
        print_row(def, " d");
    if (def && n)
        printf("best %.4f vs default %.4f (%+.4f); d = default parameters\n",
               cli_num(sorted[0], "mean_accuracy"), cli_num(def, "mean_accuracy"),
               cli_num(sorted[0], "mean_accuracy") - cli_num(def, "mean_accuracy"));
    printf("results: %s; best parameters in %s, all trials in %s\n", cli_str(st, "results_dir"),
           best_out, csv_out);
}

// report_result prints the final table and writes the output files.
static int report_result(const cJSON *st, bool json, int64_t top, const char *best_out,
                         const char *csv_out)
{
    const cJSON *trials = cJSON_GetObjectItemCaseSensitive(st, "trials");
    size_t n = (size_t)cJSON_GetArraySize(trials);
    const cJSON **sorted = calloc(n + 1, sizeof *sorted);
    if (sorted == NULL)
        return CLI_EXIT_FAILURE;
    size_t m = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, trials)
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "failed")))
            sorted[m++] = t;
    }
    qsort(sorted, m, sizeof *sorted, cmp_trials);
    const cJSON *def = n ? cJSON_GetArrayItem(trials, 0) : NULL;
    if (json)
        print_json_summary(st, m ? sorted[0] : NULL, def);
    else
        print_table(st, sorted, m, def, top, best_out, csv_out);
    int wrc = write_outputs(trials, m ? sorted[0] : NULL, best_out, csv_out);
    free(sorted);
    return wrc;
}

typedef struct tune_opts {
    cli_net net;
    bool resume, fresh, json, follow, cancel_on_interrupt;
    int64_t top;
    char best_out[CN_OPT_STRLEN], csv_out[CN_OPT_STRLEN];
    const char *path;
} tune_opts;

// the sweep file: its text, and what `canopy tune` shows of it.
typedef struct sweep_file {
    uint8_t *text;
    char data_file[2][2048]; // forest: the CSV; mlp: IDX images, labels
    const char *role[2];
    size_t n_data;
    size_t n_trials;
    uint32_t folds;
} sweep_file;

// load_sweep reads and validates the sweep file and finds its data file.
// Returns 0 or an exit code (the error printed).
static int load_sweep(const char *path, sweep_file *f)
{
    char err[CN_ERRBUF_LEN];
    size_t len;
    if (cn_file_read_all(path, 16 << 20, &f->text, &len, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy tune: %s\n", err);
        return CLI_EXIT_DATA;
    }
    sweep_spec *spec = NULL;
    if (sweep_spec_parse((char *)f->text, path, &spec, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy tune: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    int rc = CLI_EXIT_OK;
    bool mlp = strcmp(spec->model, "mlp") == 0;
    const char *given[2] = {mlp ? spec->train_images : spec->data_path, spec->train_labels};
    const char *keys[2] = {mlp ? "train_images" : "path", "train_labels"};
    f->role[0] = mlp ? "train_images" : "data";
    f->role[1] = "train_labels";
    f->n_data = mlp ? 2 : 1;
    for (size_t i = 0; i < f->n_data && rc == CLI_EXIT_OK; i++)
        if (!resolve_data(path, given[i], f->data_file[i], sizeof f->data_file[i])) {
            fprintf(stderr,
                    "canopy tune: %s: data.%s \"%s\" not found (looked in the working directory "
                    "and beside the sweep file)\n",
                    path, keys[i], given[i]);
            rc = CLI_EXIT_DATA;
        }
    f->n_trials = spec->n_trials;
    f->folds = mlp ? 0 : spec->folds;
    sweep_spec_free(spec);
    return rc;
}

// run_sweep sends the data and the sweep, then follows it to its end.
static int run_sweep(rpc_client *c, const tune_opts *o, const sweep_file *f)
{
    sched_data_ref ref[2];
    int rc = CLI_EXIT_OK;
    for (size_t i = 0; i < f->n_data && rc == CLI_EXIT_OK; i++)
        rc = cli_job_upload(c, "tune", f->role[i], f->data_file[i], &ref[i]);
    if (rc != CLI_EXIT_OK)
        return rc;
    sched_submit req = {.kind = "sweep",
                        .spec_json = (const char *)f->text,
                        .spec_name = o->path,
                        .data = ref,
                        .n_data = f->n_data,
                        .resume = o->resume,
                        .fresh = o->fresh};
    sched_submitted sub = {0};
    if ((rc = cli_job_submit(c, "tune", &req, &sub)) != CLI_EXIT_OK)
        return rc;
    if (f->folds)
        fprintf(stderr, "canopy tune: sweep %s: %zu trials x %u folds = %.0f units\n", sub.job_id,
                f->n_trials, f->folds, cli_num(sub.status, "units"));
    else
        fprintf(stderr, "canopy tune: sweep %s: %zu mlp trials = %.0f units\n", sub.job_id,
                f->n_trials, cli_num(sub.status, "units"));
    double already = cli_num(sub.status, "units_done");
    if (already > 0)
        fprintf(stderr, "canopy tune: %.0f units already done (resumed)\n", already);
    cJSON_Delete(sub.status);
    if (!o->follow) {
        printf("%s\n", sub.job_id);
        return CLI_EXIT_OK;
    }
    char reattach[2300];
    snprintf(reattach, sizeof reattach, "canopy tune --resume %s", o->path);
    progress p = {.tty = isatty(2), .t0 = cn_now_ms(), .scheduler = o->net.scheduler};
    cli_follow fl = {.cmd = "tune",
                     .job_id = sub.job_id,
                     .reattach = reattach,
                     .poll_ms = 250,
                     .cancel_on_interrupt = o->cancel_on_interrupt,
                     .show = show,
                     .arg = &p};
    cJSON *st = NULL;
    rc = cli_job_follow(c, &fl, &st);
    if (p.tty)
        fprintf(stderr, "\n");
    if (st && (rc == CLI_EXIT_OK || rc == CLI_EXIT_FAILURE)) {
        int wrc = report_result(st, o->json, o->top, o->best_out, o->csv_out);
        if (rc == CLI_EXIT_OK && wrc != 0)
            rc = CLI_EXIT_FAILURE;
        if (strcmp(cli_str(st, "state"), "done") != 0 && cli_str(st, "error")[0])
            fprintf(stderr, "canopy tune: sweep %s %s: %s\n", sub.job_id, cli_str(st, "state"),
                    cli_str(st, "error"));
    }
    cJSON_Delete(st);
    return rc;
}

int cmd_tune(int argc, char **argv)
{
    tune_opts o = {.follow = true, .top = 10, .best_out = "best.json", .csv_out = "trials.csv"};
    cli_net_defaults(&o.net);
    cn_opt opts[] = {
        {"resume", CN_OPT_BOOL, &o.resume,
         "continue this sweep from the scheduler's results log (after a crash or Ctrl-C)", 0, 0,
         NULL},
        {"fresh", CN_OPT_BOOL, &o.fresh, "discard earlier results of this sweep and start over", 0,
         0, NULL},
        {"follow", CN_OPT_BOOL, &o.follow, "wait for the sweep and show progress", 0, 0, NULL},
        {"cancel-on-interrupt", CN_OPT_BOOL, &o.cancel_on_interrupt,
         "Ctrl-C cancels the sweep (otherwise it goes on without you)", 0, 0, NULL},
        {"top", CN_OPT_INT, &o.top, "trials shown in the final table", 1, 100000, NULL},
        {"best-out", CN_OPT_STRING, o.best_out, "file for the best parameters (JSON)", 0, 0, NULL},
        {"csv", CN_OPT_STRING, o.csv_out, "file for all trials (CSV)", 0, 0, NULL},
        {"json", CN_OPT_BOOL, &o.json, "print the final summary as JSON", 0, 0, NULL},
        CLI_NET_OPTS(&o.net),
        CLI_LOCAL_OPT(&o.net),
        CN_OPT_END,
    };
    cn_args args;
    bool done;
    int rc = cli_parse("tune", "tune SWEEP.json [--resume | --fresh] [options]", opts, argc, argv,
                       &args, &done);
    if (done)
        return rc;
    if (args.npos != 1)
        return cli_usage_error("tune", "expected one sweep file");
    if (o.resume && o.fresh)
        return cli_usage_error("tune", "--resume and --fresh contradict each other");
    if (!cli_net_load(&o.net, "tune"))
        return CLI_EXIT_USAGE;
    o.path = args.pos[0];
    sweep_file f = {0};
    rc = load_sweep(o.path, &f);
    rpc_client *c = rc == CLI_EXIT_OK ? cli_open_scheduler(&o.net, "tune") : NULL;
    if (rc == CLI_EXIT_OK && c == NULL)
        rc = CLI_EXIT_USAGE;
    rpc_code ping = c ? rpc_wait_ready(c, "Cluster", "Ping", 10000) : RPC_OK;
    if (ping != RPC_OK) {
        rc = cli_rpc_fail(&o.net, "tune", ping, "");
    } else if (c) {
        rc = run_sweep(c, &o, &f);
    }
    rpc_client_close(c);
    free(f.text);
    return rc;
}
