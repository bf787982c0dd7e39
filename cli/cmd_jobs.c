// cmd_jobs.c: `canopy jobs` lists the scheduler's jobs (kind, state,
// progress, start time, results directory); `canopy cancel JOB` cancels one
// (its work items stop at their next report and the cancellation is
// recorded in its results log).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "cli/cli_job.h"
#include "proto/sched_client.h"

static void print_jobs(const sched_job_info *v, size_t n)
{
    if (n == 0) {
        printf("no jobs\n");
        return;
    }
    printf("%-44s %-6s %-9s %8s %-20s %9s  %s\n", "job", "kind", "state", "progress",
           "created (UTC)", "elapsed", "results");
    for (size_t i = 0; i < n; i++) {
        time_t t = (time_t)(v[i].created_unix_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        printf("%-44s %-6s %-9s %7.1f%% %-20s %8.1fs  %s\n", v[i].job_id, v[i].kind, v[i].state,
               v[i].progress * 100, when, v[i].elapsed_seconds, v[i].results_dir);
        if (v[i].error[0] && strcmp(v[i].state, "done") != 0)
            printf("    %s\n", v[i].error);
    }
}

int cmd_jobs(int argc, char **argv)
{
    cli_net net;
    cli_net_defaults(&net);
    char kind[CN_OPT_STRLEN] = "";
    cn_opt opts[] = {
        {"kind", CN_OPT_STRING, kind, "only jobs of this kind (sweep, train)", 0, 0, NULL},
        CLI_NET_OPTS(&net),
        CN_OPT_END,
    };
    cn_args args;
    bool done;
    int rc = cli_parse("jobs", "jobs [--kind K] [options]", opts, argc, argv, &args, &done);
    if (done)
        return rc;
    if (args.npos > 0)
        return cli_usage_error("jobs", "takes no arguments");
    if (!cli_net_load(&net, "jobs"))
        return CLI_EXIT_USAGE;
    rpc_client *c = cli_open_scheduler(&net, "jobs");
    if (c == NULL)
        return CLI_EXIT_UNAVAILABLE;
    sched_job_info *v = NULL;
    size_t n = 0;
    char detail[RPC_DETAIL_LEN + 128];
    rpc_code code = sched_jobs_list(c, kind, &v, &n, detail, sizeof detail);
    rpc_client_close(c);
    if (code != RPC_OK)
        return cli_rpc_fail(&net, "jobs", code, detail);
    print_jobs(v, n);
    free(v);
    return CLI_EXIT_OK;
}

int cmd_cancel(int argc, char **argv)
{
    cli_net net;
    cli_net_defaults(&net);
    char reason[CN_OPT_STRLEN] = "";
    cn_opt opts[] = {
        {"reason", CN_OPT_STRING, reason, "recorded in the job's results log", 0, 0, NULL},
        CLI_NET_OPTS(&net),
        CN_OPT_END,
    };
    cn_args args;
    bool done;
    int rc =
        cli_parse("cancel", "cancel JOB [--reason TEXT] [options]", opts, argc, argv, &args, &done);
    if (done)
        return rc;
    if (args.npos != 1)
        return cli_usage_error("cancel", "expected one job id (`canopy jobs` lists them)");
    if (!cli_net_load(&net, "cancel"))
        return CLI_EXIT_USAGE;
    rpc_client *c = cli_open_scheduler(&net, "cancel");
    if (c == NULL)
        return CLI_EXIT_UNAVAILABLE;
    char state[16] = "", detail[RPC_DETAIL_LEN + 128];
    rpc_code code = sched_jobs_cancel(c, args.pos[0], reason[0] ? reason : "cancelled by the user",
                                      state, detail, sizeof detail);
    rpc_client_close(c);
    if (code == RPC_NOT_FOUND || code == RPC_FAILED_PRECONDITION) {
        fprintf(stderr, "canopy cancel: %s\n", detail);
        return CLI_EXIT_FAILURE;
    }
    if (code != RPC_OK)
        return cli_rpc_fail(&net, "cancel", code, detail);
    printf("job %s %s\n", args.pos[0], state);
    return CLI_EXIT_OK;
}
