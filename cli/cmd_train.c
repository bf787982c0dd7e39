// cmd_train.c: `canopy train JOB.json`: submit a data-parallel training job
// and follow it.
//
// The job file is validated here first (nothing is sent if it is invalid);
// its four IDX files are sent to the scheduler's Data service unless it
// holds them already (by SHA-256), so no worker needs them at any path.
// Progress is one line per new evaluation or every few seconds: epoch,
// step, training loss, test accuracy, samples/s. At the end: final
// accuracy, throughput, the compute-to-communication ratio, the staleness
// the shards saw, and where the results and the model are.
// `--resume JOB.json` reattaches to the newest unfinished job of the same
// file (after Ctrl-C or a scheduler restart).
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "cli/cli_job.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "scheduler/train_spec.h"

// resolve finds a data file as given, else beside the job file.
static void resolve(const char *job_path, const char *file, char *out, size_t n)
{
    snprintf(out, n, "%s", file);
    if (file[0] == '/' || access(file, R_OK) == 0)
        return;
    char *copy = strdup(job_path);
    if (copy == NULL)
        return;
    char beside[4096];
    snprintf(beside, sizeof beside, "%s/%s", dirname(copy), file);
    free(copy);
    if (access(beside, R_OK) == 0)
        snprintf(out, n, "%s", beside);
}

typedef struct progress {
    int evals_seen, rounds_seen;
    uint64_t last_print;
    bool quiet;
} progress;

// show_rounds prints one line per round closed since the last call.
static void show_rounds(const cJSON *st, progress *p)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(st, "round_history");
    int n = cJSON_GetArraySize(rs);
    for (; p->rounds_seen < n; p->rounds_seen++) {
        const cJSON *r = cJSON_GetArrayItem(rs, p->rounds_seen);
        printf("round %.0f/%.0f  acc %.4f  loss %.4f  clients %.0f/%.0f (%.0f dropped, %.0f late)  "
               "%.1f MB  %.2f s  [%.1f s]\n",
               cli_num(r, "round") + 1, cli_num(st, "rounds"), cli_num(r, "accuracy"),
               cli_num(r, "loss"), cli_num(r, "finished"), cli_num(r, "selected"),
               cli_num(r, "dropped"), cli_num(r, "late"), cli_num(r, "bytes") / 1e6,
               cli_num(r, "seconds"), cli_num(r, "t"));
    }
    fflush(stdout);
}

static void show(const cJSON *st, void *arg)
{
    progress *p = arg;
    if (strcmp(cli_str(st, "mode"), "federated") == 0) {
        if (!p->quiet)
            show_rounds(st, p);
        return;
    }
    int evals = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "evals"));
    uint64_t now = cn_now_ms();
    double steps = cli_num(st, "steps");
    if (p->quiet || strcmp(cli_str(st, "state"), "running") != 0 || steps == 0 ||
        (evals <= p->evals_seen && now - p->last_print < 5000))
        return;
    char acc[16] = "-", loss[16] = "-";
    if (cli_num(st, "accuracy") >= 0 && evals > 0)
        snprintf(acc, sizeof acc, "%.4f", cli_num(st, "accuracy"));
    if (cli_num(st, "step") > 0)
        snprintf(loss, sizeof loss, "%.4f", cli_num(st, "loss"));
    double epoch = cli_num(st, "epoch"), epochs = cli_num(st, "epochs");
    printf("epoch %.0f/%.0f  step %.0f/%.0f  loss %s  acc %s  %.0f samples/s  [%.1f s]\n",
           epoch + (epoch < epochs ? 1 : 0), epochs, cli_num(st, "step"), steps, loss, acc,
           cli_num(st, "samples_per_s"), cli_num(st, "elapsed_seconds"));
    fflush(stdout);
    p->evals_seen = evals;
    p->last_print = now;
}

static void print_done(const cJSON *st, progress *p)
{
    if (strcmp(cli_str(st, "mode"), "federated") == 0) {
        if (!p->quiet)
            show_rounds(st, p);
        printf("done: test accuracy %.4f, loss %.4f after %.0f rounds (%s) over %.1f s "
               "(%.0f parameters)\n",
               cli_num(st, "accuracy"), cli_num(st, "test_loss"), cli_num(st, "round"),
               cli_str(st, "strategy"), cli_num(st, "elapsed_seconds"), cli_num(st, "n_params"));
        printf("results: %s\nmodel: %s\n", cli_str(st, "results_dir"),
               cli_str(st, "model_path"));
        return;
    }
    printf("done: test accuracy %.4f, loss %.4f, %.0f samples/s over %.1f s (%.0f parameters)\n",
           cli_num(st, "accuracy"), cli_num(st, "test_loss"), cli_num(st, "samples_per_s"),
           cli_num(st, "elapsed_seconds"), cli_num(st, "n_params"));
    printf("compute/communication %.2f, shard restarts %.0f\n", cli_num(st, "compute_comm_ratio"),
           cli_num(st, "shard_restarts"));
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(st, "staleness");
    int n = cJSON_GetArraySize(h);
    if (n > 0) {
        printf("staleness histogram:");
        for (int i = 0; i < n; i++) {
            double v = cJSON_GetArrayItem(h, i)->valuedouble;
            if (v > 0)
                printf(" %s%d:%.0f", i + 1 == n ? ">=" : "", i, v);
        }
        printf("\n");
    }
    printf("results: %s\nmodel: %s\n", cli_str(st, "results_dir"), cli_str(st, "model_path"));
}

// upload_all sends the four IDX files the spec names.
static int upload_all(rpc_client *c, const char *path, const train_spec *spec,
                      sched_data_ref refs[4])
{
    const char *roles[4] = {"train_images", "train_labels", "test_images", "test_labels"};
    const char *files[4] = {spec->train_images, spec->train_labels, spec->test_images,
                            spec->test_labels};
    for (int i = 0; i < 4; i++) {
        char file[4096];
        resolve(path, files[i], file, sizeof file);
        int rc = cli_job_upload(c, "train", roles[i], file, &refs[i]);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    return CLI_EXIT_OK;
}

int cmd_train_job(int argc, char **argv)
{
    cli_net net;
    cli_net_defaults(&net);
    int64_t poll_ms = 500, timeout_s = 0;
    bool quiet = false, resume = false, cancel_on_interrupt = false;
    cn_opt opts[] = {
        {"resume", CN_OPT_BOOL, &resume,
         "follow the newest unfinished job of this file instead of starting one", 0, 0, NULL},
        {"cancel-on-interrupt", CN_OPT_BOOL, &cancel_on_interrupt,
         "Ctrl-C cancels the job (otherwise it goes on without you)", 0, 0, NULL},
        {"poll-ms", CN_OPT_INT, &poll_ms, "how often to ask for progress", 50, 60000, NULL},
        {"timeout-s", CN_OPT_INT, &timeout_s, "give up following after this long (0 = never)", 0,
         1e9, NULL},
        {"quiet", CN_OPT_BOOL, &quiet, "print only the final summary", 0, 0, NULL},
        CLI_NET_OPTS(&net),
        CN_OPT_END,
    };
    cn_args args;
    bool done;
    int rc = cli_parse("train", "train [options] JOB.json", opts, argc, argv, &args, &done);
    if (done)
        return rc;
    if (args.npos != 1)
        return cli_usage_error("train", "expected exactly one job file");
    if (!cli_net_load(&net, "train"))
        return CLI_EXIT_USAGE;
    const char *path = args.pos[0];
    char err[CN_ERRBUF_LEN];
    uint8_t *text = NULL;
    size_t len = 0;
    if (cn_file_read_all(path, 1 << 20, &text, &len, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy train: %s\n", err);
        return CLI_EXIT_DATA;
    }
    train_spec spec;
    if (train_spec_parse((const char *)text, path, &spec, err, sizeof err) != CN_OK) {
        fprintf(stderr, "canopy train: %s\n", err);
        free(text);
        return CLI_EXIT_USAGE;
    }
    rpc_client *c = cli_open_scheduler(&net, "train");
    cJSON *st = NULL;
    sched_submitted sub = {0};
    int exit_code = CLI_EXIT_UNAVAILABLE;
    sched_data_ref refs[4];
    if (c == NULL || (exit_code = upload_all(c, path, &spec, refs)) != CLI_EXIT_OK)
        goto out;
    sched_submit req = {.kind = "train",
                        .spec_json = (const char *)text,
                        .spec_name = path,
                        .data = refs,
                        .n_data = 4,
                        .resume = resume};
    if ((exit_code = cli_job_submit(c, "train", &req, &sub)) != CLI_EXIT_OK)
        goto out;
    if (spec.fed.on)
        printf("job %s %s: federated, %s, %u shard%s, %u client%s, %u round%s of %u local "
               "epoch%s\n",
               sub.job_id, sub.existing ? "reattached" : "submitted",
               fed_strategy_name(spec.fed.server.strategy), spec.shards,
               spec.shards == 1 ? "" : "s", spec.fed.clients, spec.fed.clients == 1 ? "" : "s",
               spec.fed.rounds, spec.fed.rounds == 1 ? "" : "s", spec.fed.local_epochs,
               spec.fed.local_epochs == 1 ? "" : "s");
    else
        printf("job %s %s: %s, %u shard%s, %u worker%s, batch %u, %u epoch%s\n", sub.job_id,
               sub.existing ? "reattached" : "submitted", ps_mode_name(spec.mode), spec.shards,
               spec.shards == 1 ? "" : "s", spec.workers, spec.workers == 1 ? "" : "s",
               spec.batch, spec.epochs, spec.epochs == 1 ? "" : "s");
    fflush(stdout);
    char reattach[1200];
    snprintf(reattach, sizeof reattach, "canopy train --resume %s", path);
    progress p = {.quiet = quiet};
    cli_follow f = {.cmd = "train",
                    .job_id = sub.job_id,
                    .reattach = reattach,
                    .poll_ms = (int)poll_ms,
                    .timeout_s = (int)timeout_s,
                    .cancel_on_interrupt = cancel_on_interrupt,
                    .show = show,
                    .arg = &p};
    exit_code = cli_job_follow(c, &f, &st);
    if (st && exit_code == CLI_EXIT_OK)
        print_done(st, &p);
    else if (st && exit_code == CLI_EXIT_FAILURE && strcmp(cli_str(st, "state"), "running"))
        fprintf(stderr, "canopy train: job %s %s: %s\n", sub.job_id, cli_str(st, "state"),
                cli_str(st, "error"));
out:
    cJSON_Delete(st);
    cJSON_Delete(sub.status);
    rpc_client_close(c);
    free(text);
    return exit_code;
}
