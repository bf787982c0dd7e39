// cli_job.h: what `canopy tune` and `canopy train` share: sending a job's
// data sets and spec to the scheduler, following the job until it ends, and
// what Ctrl-C means while following (the job goes on; say how to reattach
// or cancel, or cancel it when the user asked for that).
#ifndef CANOPY_CLI_JOB_H
#define CANOPY_CLI_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "proto/rpc.h"
#include "proto/sched_client.h"

// cli_job_upload sends the file at path (role in the job) unless the
// scheduler holds it; prints what it sends. Returns 0 or an exit code
// (errors printed as "canopy <cmd>: ...").
int cli_job_upload(rpc_client *c, const char *cmd, const char *role, const char *path,
                   sched_data_ref *ref);

// cli_job_submit submits; prints errors. Returns 0 or an exit code.
int cli_job_submit(rpc_client *c, const char *cmd, const sched_submit *sub, sched_submitted *out);

// cli_job_show_fn shows one status document while the job runs.
typedef void (*cli_job_show_fn)(const cJSON *status, void *arg);

typedef struct cli_follow {
    const char *cmd; // "tune"
    const char *job_id;
    const char *reattach;     // how to follow again, e.g. "canopy tune --resume sweep.json"
    int poll_ms;              // between status calls
    int timeout_s;            // stop following after this long (0 = never)
    bool cancel_on_interrupt; // Ctrl-C cancels the job instead of leaving it running
    cli_job_show_fn show;
    void *arg;
} cli_follow;

// cli_job_follow polls the job's status until it leaves "running" (or
// "queued"); *final (caller frees) receives the last status document.
// Returns 0 when the job is done, 1 when it failed or was cancelled, 4 when
// the scheduler was lost, 130 on Ctrl-C (after saying the job goes on, or
// cancelling it).
int cli_job_follow(rpc_client *c, const cli_follow *f, cJSON **final);

// Small readers for status documents: a number (0 when absent), a string
// ("" when absent).
double cli_num(const cJSON *o, const char *key);
const char *cli_str(const cJSON *o, const char *key);

#endif
