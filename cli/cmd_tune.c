// cmd_tune.c: `canopy tune SWEEP.json`: submit a sweep and follow it.
//
// The sweep is validated here first (nothing is sent if it is invalid), the
// data file is sent to the scheduler only if it does not hold it already
// (by SHA-256), and progress is shown as a bar with ETA on a terminal or a
// line every few seconds otherwise. At the end: a table of the top trials
// with the default's row, the best parameters as JSON and all trials as CSV.
#include <cjson/cJSON.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "proto/cluster_client.h"
#include "scheduler/sweep_spec.h"
#include "sweep.pb-c.h"

static int cmp_trials(const void *a, const void *b)
{
    const Canopy__Sweep__TrialSummary *x = *(Canopy__Sweep__TrialSummary *const *)a;
    const Canopy__Sweep__TrialSummary *y = *(Canopy__Sweep__TrialSummary *const *)b;
    if (x->mean_accuracy != y->mean_accuracy)
        return x->mean_accuracy > y->mean_accuracy ? -1 : 1;
    return x->trial < y->trial ? -1 : 1;
}

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

static void print_row(const Canopy__Sweep__TrialSummary *t, const char *tag)
{
    printf("%5u%-2s %.4f +- %.4f  %.4f  %7.1fs  %s\n", t->trial, tag, t->mean_accuracy,
           t->std_accuracy, t->mean_balanced_accuracy, t->seconds, t->params_json);
}

static int write_outputs(const Canopy__Sweep__StatusReply *st, const char *best_out,
                         const char *csv_out)
{
    const Canopy__Sweep__TrialSummary *best = NULL;
    for (size_t i = 0; i < st->n_trials; i++) {
        const Canopy__Sweep__TrialSummary *t = st->trials[i];
        if (!t->failed && (best == NULL || t->mean_accuracy > best->mean_accuracy))
            best = t;
    }
    char err[CN_ERRBUF_LEN];
    int rc = 0;
    if (best && best_out[0]) {
        cJSON *p = cJSON_Parse(best->params_json);
        char *text = p ? cJSON_Print(p) : NULL;
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
        cJSON_Delete(p);
    }
    if (csv_out[0]) {
        cn_buf b;
        cn_buf_init(&b);
        cn_buf_printf(&b, "trial,params,folds_done,mean_accuracy,std_accuracy,"
                          "mean_balanced_accuracy,mean_macro_f1,seconds,failed\n");
        for (size_t i = 0; i < st->n_trials; i++) {
            const Canopy__Sweep__TrialSummary *t = st->trials[i];
            cn_buf_printf(&b, "%u,\"", t->trial);
            for (const char *c = t->params_json; *c; c++)
                cn_buf_printf(&b, *c == '"' ? "\"\"" : "%c", *c);
            cn_buf_printf(&b, "\",%u,%.6f,%.6f,%.6f,%.6f,%.3f,%d\n", t->folds_done,
                          t->mean_accuracy, t->std_accuracy, t->mean_balanced_accuracy,
                          t->mean_macro_f1, t->seconds, t->failed);
        }
        if (cn_file_write_atomic(csv_out, b.data, b.len, err, sizeof err) != CN_OK) {
            fprintf(stderr, "canopy tune: %s\n", err);
            rc = 1;
        }
        cn_buf_fini(&b);
    }
    return rc;
}

int cmd_tune(int argc, char **argv)
{
    cli_net net;
    cli_net_defaults(&net);
    bool resume = false, fresh = false, json = false, follow = true;
    int64_t top = 10;
    char best_out[CN_OPT_STRLEN] = "best.json", csv_out[CN_OPT_STRLEN] = "trials.csv";
    cn_opt opts[] = {
        {"resume", CN_OPT_BOOL, &resume,
         "continue this sweep from the scheduler's results log (after a crash or Ctrl-C)", 0, 0,
         NULL},
        {"fresh", CN_OPT_BOOL, &fresh, "discard earlier results of this sweep and start over", 0, 0,
         NULL},
        {"follow", CN_OPT_BOOL, &follow, "wait for the sweep and show progress", 0, 0, NULL},
        {"top", CN_OPT_INT, &top, "trials shown in the final table", 1, 100000, NULL},
        {"best-out", CN_OPT_STRING, best_out, "file for the best parameters (JSON)", 0, 0, NULL},
        {"csv", CN_OPT_STRING, csv_out, "file for all trials (CSV)", 0, 0, NULL},
        {"json", CN_OPT_BOOL, &json, "print the final summary as JSON", 0, 0, NULL},
        CLI_NET_OPTS(&net),
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
    if (resume && fresh)
        return cli_usage_error("tune", "--resume and --fresh contradict each other");
    if (!cli_net_load(&net, "tune"))
        return CLI_EXIT_USAGE;
    const char *path = args.pos[0];
    char err[CN_ERRBUF_LEN];
    uint8_t *spec_text = NULL;
    size_t spec_len;
    if (cn_file_read_all(path, 16 << 20, &spec_text, &spec_len, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy tune: %s\n", err);
        return CLI_EXIT_DATA;
    }
    sweep_spec *spec = NULL;
    if (sweep_spec_parse((char *)spec_text, path, &spec, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy tune: %s\n", err);
        free(spec_text);
        return CLI_EXIT_USAGE;
    }
    char data_file[2048];
    if (!resolve_data(path, spec->data_path, data_file, sizeof data_file)) {
        fprintf(stderr,
                "canopy tune: %s: data.path \"%s\" not found (looked in the working directory "
                "and beside the sweep file)\n",
                path, spec->data_path);
        sweep_spec_free(spec);
        free(spec_text);
        return CLI_EXIT_DATA;
    }
    // Send the file's bytes as they are (gzip stays gzip); workers fetch them.
    FILE *f = fopen(data_file, "rb");
    cn_buf data;
    cn_buf_init(&data);
    if (f) {
        char chunk[1 << 16];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            cn_buf_append(&data, chunk, n);
        fclose(f);
    }
    if (f == NULL || data.oom) {
        fprintf(stderr, "canopy tune: cannot read %s\n", data_file);
        cn_buf_fini(&data);
        sweep_spec_free(spec);
        free(spec_text);
        return CLI_EXIT_DATA;
    }
    char sha[65];
    cn_file_sha256_hex(data.data ? data.data : "", data.len, sha);
    size_t n_trials = spec->n_trials;
    uint32_t folds = spec->folds;
    sweep_spec_free(spec);

    rpc_client *c = cli_open_scheduler(&net, "tune");
    int exit_code = CLI_EXIT_FAILURE;
    char *sweep_id = NULL;
    if (c == NULL) {
        exit_code = CLI_EXIT_USAGE;
        goto out;
    }
    if (rpc_wait_ready(c, "Cluster", "Ping", 10000) != RPC_OK) {
        fprintf(stderr, "canopy tune: the scheduler at %s does not answer\n", net.scheduler);
        exit_code = CLI_EXIT_UNAVAILABLE;
        goto out;
    }
    Canopy__Sweep__HasDataRequest hreq = CANOPY__SWEEP__HAS_DATA_REQUEST__INIT;
    hreq.sha256 = sha;
    ProtobufCMessage *hout = NULL;
    int present = 0;
    if (cluster_call(c, "Sweep", "HasData", &hreq.base, RPC_IDEMPOTENT, 0,
                     &canopy__sweep__has_data_reply__descriptor, &hout, NULL, 0) == RPC_OK) {
        present = ((Canopy__Sweep__HasDataReply *)hout)->present;
        protobuf_c_message_free_unpacked(hout, NULL);
    }
    Canopy__Sweep__SubmitRequest sreq = CANOPY__SWEEP__SUBMIT_REQUEST__INIT;
    sreq.spec_json = (char *)spec_text;
    char *dcopy = strdup(data_file);
    sreq.data_name = dcopy ? basename(dcopy) : (char *)"data";
    sreq.data_sha256 = sha;
    sreq.resume = resume;
    sreq.fresh = fresh;
    rpc_request r = {.service = "Sweep",
                     .method = "Submit",
                     .body = &sreq.base,
                     .payload = present ? NULL : data.data,
                     .payload_len = present ? 0 : data.len,
                     .deadline_ms = 120000,
                     .flags = RPC_IDEMPOTENT};
    rpc_reply rep;
    memset(&rep, 0, sizeof rep);
    rpc_code code = rpc_client_call(c, &r, &rep);
    free(dcopy);
    if (code != RPC_OK) {
        fprintf(stderr, "canopy tune: the scheduler refused the sweep: %s: %s\n",
                rpc_code_name(code), rep.detail);
        rpc_reply_fini(&rep);
        exit_code = code == RPC_INVALID_ARGUMENT || code == RPC_ALREADY_EXISTS ? CLI_EXIT_USAGE
                    : code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED
                        ? CLI_EXIT_UNAVAILABLE
                        : CLI_EXIT_FAILURE;
        goto out;
    }
    Canopy__Sweep__SubmitReply *sr = (Canopy__Sweep__SubmitReply *)rpc_reply_unpack(
        &rep, &canopy__sweep__submit_reply__descriptor);
    rpc_reply_fini(&rep);
    if (sr == NULL) {
        fprintf(stderr, "canopy tune: malformed reply to Submit\n");
        goto out;
    }
    sweep_id = strdup(sr->sweep_id);
    fprintf(stderr, "canopy tune: sweep %s: %zu trials x %u folds = %u units\n", sweep_id, n_trials,
            folds, sr->units);
    if (sr->units_done)
        fprintf(stderr, "canopy tune: %u units already done (resumed)\n", sr->units_done);
    protobuf_c_message_free_unpacked(&sr->base, NULL);
    if (!follow) {
        printf("%s\n", sweep_id);
        exit_code = CLI_EXIT_OK;
        goto out;
    }

    int tty = isatty(2), warned_no_workers = 0;
    uint64_t last_line = 0, t0 = cn_now_ms();
    Canopy__Sweep__StatusReply *st = NULL;
    for (;;) {
        Canopy__Sweep__StatusRequest q = CANOPY__SWEEP__STATUS_REQUEST__INIT;
        q.sweep_id = sweep_id;
        ProtobufCMessage *out = NULL;
        char detail[RPC_DETAIL_LEN + 64];
        code = cluster_call(c, "Sweep", "Status", &q.base, RPC_IDEMPOTENT, 10000,
                            &canopy__sweep__status_reply__descriptor, &out, detail, sizeof detail);
        if (code == RPC_OK) {
            if (st)
                protobuf_c_message_free_unpacked(&st->base, NULL);
            st = (Canopy__Sweep__StatusReply *)out;
            double frac = st->units ? (double)(st->units_done + st->units_failed) / st->units : 1;
            double best = 0;
            for (size_t i = 0; i < st->n_trials; i++)
                if (st->trials[i]->folds_done == folds && st->trials[i]->mean_accuracy > best)
                    best = st->trials[i]->mean_accuracy;
            char eta[32] = "?";
            if (st->eta_seconds >= 0)
                snprintf(eta, sizeof eta, "%.0fs", st->eta_seconds);
            if (tty) {
                char bar[31];
                int fill = (int)(frac * 30);
                for (int i = 0; i < 30; i++)
                    bar[i] = i < fill ? '#' : '.';
                bar[30] = 0;
                fprintf(stderr,
                        "\r[%s] %5.1f%% %u/%u units, %u running, %u workers, best %.4f, "
                        "%.0fs, ETA %s   ",
                        bar, frac * 100, st->units_done, st->units, st->units_running, st->workers,
                        best, st->elapsed_seconds, eta);
            } else if (cn_now_ms() - last_line >= 5000 || strcmp(st->state, "running") != 0) {
                fprintf(stderr,
                        "canopy tune: %u/%u units (%.1f%%), %u running, %u workers, best %.4f, "
                        "%.1fs elapsed, ETA %s\n",
                        st->units_done, st->units, frac * 100, st->units_running, st->workers, best,
                        st->elapsed_seconds, eta);
                last_line = cn_now_ms();
            }
            if (strcmp(st->state, "running") != 0)
                break;
            if (st->workers == 0 && cn_now_ms() - t0 > 3000 && !warned_no_workers) {
                fprintf(stderr, "%scanopy tune: no live workers: start some with `canopy worker "
                                "--scheduler %s`\n",
                        tty ? "\n" : "", net.scheduler);
                warned_no_workers = 1;
            }
        } else if (code == RPC_NOT_FOUND || code == RPC_UNAUTHENTICATED) {
            fprintf(stderr, "\ncanopy tune: %s\n", detail);
            exit_code = CLI_EXIT_FAILURE;
            goto out_st;
        } else if (cn_now_ms() - t0 > 5000 && cn_now_ms() - last_line >= 5000) {
            fprintf(stderr, "\ncanopy tune: waiting for the scheduler (%s)\n", detail);
            last_line = cn_now_ms();
        }
        struct timespec ts = {0, 250 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (tty)
        fprintf(stderr, "\n");
    Canopy__Sweep__TrialSummary **sorted =
        malloc((st->n_trials ? st->n_trials : 1) * sizeof *sorted);
    if (sorted == NULL)
        goto out_st;
    memcpy(sorted, st->trials, st->n_trials * sizeof *sorted);
    qsort(sorted, st->n_trials, sizeof *sorted, cmp_trials);
    const Canopy__Sweep__TrialSummary *def = st->n_trials ? st->trials[0] : NULL;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "sweep_id", st->sweep_id);
        cJSON_AddStringToObject(o, "state", st->state);
        cJSON_AddNumberToObject(o, "elapsed_seconds", st->elapsed_seconds);
        cJSON_AddNumberToObject(o, "units", st->units);
        cJSON_AddNumberToObject(o, "units_failed", st->units_failed);
        cJSON_AddNumberToObject(o, "workers", st->workers);
        cJSON_AddNumberToObject(o, "dispatch_overhead_ms", st->dispatch_overhead_ms);
        if (def)
            cJSON_AddNumberToObject(o, "default_cv_acc", def->mean_accuracy);
        if (st->n_trials) {
            cJSON_AddNumberToObject(o, "best_cv_acc", sorted[0]->mean_accuracy);
            cJSON_AddItemToObject(o, "best_params", cJSON_Parse(sorted[0]->params_json));
        }
        cJSON_AddStringToObject(o, "results_dir", st->results_dir);
        char *text = cJSON_PrintUnformatted(o);
        printf("%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(o);
    } else {
        printf("sweep %s: %s in %.1f s on %u workers (%u units, %u failed; scheduler overhead "
               "%.2f ms/unit)\n",
               st->sweep_id, st->state, st->elapsed_seconds, st->workers, st->units,
               st->units_failed, st->dispatch_overhead_ms);
        printf("%7s %-17s  %-6s  %8s  %s\n", "trial", "accuracy (mean+-sd)", "bal.acc", "time",
               "parameters");
        size_t shown = 0;
        int def_shown = 0;
        for (size_t i = 0; i < st->n_trials && shown < (size_t)top; i++, shown++) {
            print_row(sorted[i], sorted[i]->trial == 0 ? " d" : "");
            def_shown |= sorted[i]->trial == 0;
        }
        if (def && !def_shown)
            print_row(def, " d");
        if (def && st->n_trials)
            printf("best %.4f vs default %.4f (%+.4f); d = default parameters\n",
                   sorted[0]->mean_accuracy, def->mean_accuracy,
                   sorted[0]->mean_accuracy - def->mean_accuracy);
        printf("results: %s; best parameters in %s, all trials in %s\n", st->results_dir, best_out,
               csv_out);
    }
    int wrc = write_outputs(st, best_out, csv_out);
    free(sorted);
    exit_code = (strcmp(st->state, "done") == 0 && wrc == 0) ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
out_st:
    if (st)
        protobuf_c_message_free_unpacked(&st->base, NULL);
out:
    free(sweep_id);
    rpc_client_close(c);
    cn_buf_fini(&data);
    free(spec_text);
    return exit_code;
}
