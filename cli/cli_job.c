// cli_job.c: uploading, submitting and following jobs (see cli_job.h).
#include "cli/cli_job.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/cn_clock.h"

#define MAX_DATA_BYTES (1024u << 20)

int cli_job_upload(rpc_client *c, const char *cmd, const char *role, const char *path,
                   sched_data_ref *ref)
{
    char err[CN_ERRBUF_LEN];
    bool sent = false;
    cn_err e = sched_data_upload(c, role, path, MAX_DATA_BYTES, ref, &sent, err, sizeof err);
    if (e != CN_OK) {
        fprintf(stderr, "canopy %s: %s\n", cmd, err);
        return e == CN_ENOTFOUND || e == CN_EIO || e == CN_ETOOBIG ? CLI_EXIT_DATA
               : e == CN_EUNAVAIL                                  ? CLI_EXIT_UNAVAILABLE
                                                                   : CLI_EXIT_USAGE;
    }
    if (sent)
        fprintf(stderr, "canopy %s: sent %s (%.1f MB) to the scheduler\n", cmd, ref->name,
                (double)ref->size / 1e6);
    return CLI_EXIT_OK;
}

int cli_job_submit(rpc_client *c, const char *cmd, const sched_submit *sub, sched_submitted *out)
{
    char detail[RPC_DETAIL_LEN + 128];
    rpc_code code = sched_jobs_submit(c, sub, out, detail, sizeof detail);
    if (code == RPC_OK)
        return CLI_EXIT_OK;
    fprintf(stderr, "canopy %s: the scheduler refused the job: %s\n", cmd, detail);
    return cli_exit_for_rpc(code);
}

double cli_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

const char *cli_str(const cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return s ? s : "";
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int interrupted_exit(rpc_client *c, const cli_follow *f)
{
    if (f->cancel_on_interrupt) {
        char state[16] = "", detail[RPC_DETAIL_LEN + 128];
        rpc_code code = sched_jobs_cancel(c, f->job_id, "interrupted by the user", state, detail,
                                          sizeof detail);
        if (code == RPC_OK)
            fprintf(stderr, "\ncanopy %s: job %s cancelled\n", f->cmd, f->job_id);
        else
            fprintf(stderr, "\ncanopy %s: could not cancel job %s: %s\n", f->cmd, f->job_id,
                    detail);
    } else {
        fprintf(stderr,
                "\ncanopy %s: stopped following; job %s goes on. Follow it again with `%s`, "
                "or stop it with `canopy cancel %s`\n",
                f->cmd, f->job_id, f->reattach, f->job_id);
    }
    return CLI_EXIT_INTERRUPTED;
}

int cli_job_follow(rpc_client *c, const cli_follow *f, cJSON **final)
{
    *final = NULL;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    uint64_t start = cn_now_ms(), last_warn = 0;
    int misses = 0, rc = CLI_EXIT_FAILURE;
    for (;;) {
        if (interrupted) {
            rc = interrupted_exit(c, f);
            break;
        }
        char state[16] = "", detail[RPC_DETAIL_LEN + 128];
        cJSON *st = NULL;
        rpc_code code = sched_jobs_status(c, f->job_id, state, &st, detail, sizeof detail);
        if (code == RPC_OK) {
            misses = 0;
            cJSON_Delete(*final);
            *final = st;
            if (strcmp(state, "running") != 0 && strcmp(state, "queued") != 0) {
                rc = strcmp(state, "done") == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
                break;
            }
            if (f->show)
                f->show(st, f->arg);
        } else if (code == RPC_NOT_FOUND || code == RPC_UNAUTHENTICATED) {
            fprintf(stderr, "\ncanopy %s: %s\n", f->cmd, detail);
            rc = cli_exit_for_rpc(code);
            break;
        } else if (++misses > 120) {
            fprintf(stderr, "\ncanopy %s: lost the scheduler: %s; the job may go on: `%s`\n",
                    f->cmd, detail, f->reattach);
            rc = CLI_EXIT_UNAVAILABLE;
            break;
        } else if (cn_now_ms() - last_warn >= 5000) {
            fprintf(stderr, "\ncanopy %s: waiting for the scheduler (%s)\n", f->cmd, detail);
            last_warn = cn_now_ms();
        }
        if (f->timeout_s > 0 && cn_now_ms() - start > (uint64_t)f->timeout_s * 1000) {
            fprintf(stderr, "canopy %s: still running after %d s; stopped following %s\n", f->cmd,
                    f->timeout_s, f->job_id);
            rc = CLI_EXIT_FAILURE;
            break;
        }
        cn_sleep_ms((uint64_t)f->poll_ms);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}
