// wk_exec.c: the worker's slots and the dispatch of work items to the
// executors of their kinds (see wk_exec.h).
#include "worker/wk_exec.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_clock.h"
#include "common/cn_log.h"
#include "proto/sched_client.h"
#include "worker/wk_data.h"
#include "worker/wk_fed.h"
#include "worker/wk_fold.h"
#include "worker/wk_mlp_trial.h"
#include "worker/wk_train.h"

typedef struct slot {
    wk_exec *x;
    int index;
    pthread_t thread;
    bool started;
} slot;

struct wk_exec {
    wk_exec_opts o;
    char name[128];
    rpc_client *client;
    wk_data *data;
    int threads_per_slot;
    slot *slots;
    atomic_int stopping;
};

// A running item, as the report callbacks see it.
typedef struct running {
    wk_exec *x;
    const sched_work_item *it;
} running;

static void set_status(wk_exec *x, const char *text)
{
    if (x->o.agent)
        cluster_agent_set_status(x->o.agent, text);
}

// send_report sends a report; returns the scheduler's stop flag (true when
// the report could not be delivered: the item may have gone elsewhere).
static bool send_report(running *r, bool final, bool ok, const char *error, const cJSON *result)
{
    sched_report rep = {.node = r->x->o.node_id,
                        .job_id = r->it->job_id,
                        .item = r->it->item,
                        .attempt = r->it->attempt,
                        .final = final,
                        .ok = ok,
                        .error = error,
                        .result = result};
    bool stop = false, dup = false;
    char detail[RPC_DETAIL_LEN + 128];
    rpc_code code = sched_work_report(r->x->client, &rep, &stop, &dup, detail, sizeof detail);
    if (code != RPC_OK) {
        CN_WARN("report of %s item %" PRIu64 " failed: %s (the scheduler will hand it out again)",
                r->it->job_id, r->it->item, detail);
        return code == RPC_NOT_FOUND;
    }
    if (dup)
        CN_INFO("%s item %" PRIu64 " was already finished elsewhere", r->it->job_id, r->it->item);
    return stop;
}

static bool train_report(void *arg, const cJSON *progress)
{
    return send_report(arg, false, false, NULL, progress);
}

// train_env is what a training rank or a federated client needs from the
// worker: the cluster's token, its slot's threads, the stop flag, the
// progress reports.
static wk_train_env train_env(running *r)
{
    return (wk_train_env){.token = r->x->o.token,
                          .tls = r->x->o.tls,
                          .threads = r->x->threads_per_slot,
                          .stopping = &r->x->stopping,
                          .report = train_report,
                          .arg = r};
}

// report_failure logs and reports an item that failed with err.
static void report_failure(running *r, const char *err)
{
    CN_ERROR("%s item %" PRIu64 ": %s", r->it->job_id, r->it->item, err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "worker", r->x->name);
    send_report(r, true, false, err, o);
    cJSON_Delete(o);
}

static void run_fold(running *r)
{
    wk_exec *x = r->x;
    char err[CN_ERRBUF_LEN] = "", status[160];
    wk_fold_task t;
    const ds_dataset *d = NULL;
    cJSON *result = NULL;
    double load_s = 0;
    cn_err e = wk_fold_task_read(r->it->task, &t, err, sizeof err);
    if (e == CN_OK) {
        snprintf(status, sizeof status, "sweep trial %u fold %u", t.trial, t.fold);
        set_status(x, status);
        e = wk_data_csv(x->data, t.data_sha256, t.label, t.drop, &d, &load_s, err, sizeof err);
    }
    if (e == CN_OK)
        e = wk_fold_run(&t, d, x->threads_per_slot, &result, err, sizeof err);
    wk_data_release(x->data, d);
    if (e == CN_OK) {
        cJSON_AddNumberToObject(result, "data_load_seconds", load_s);
        cJSON_AddStringToObject(result, "worker", x->name);
        send_report(r, true, true, NULL, result);
    } else {
        report_failure(r, err);
    }
    cJSON_Delete(result);
}

static void run_rank(running *r)
{
    wk_exec *x = r->x;
    char err[CN_ERRBUF_LEN] = "", status[200];
    wk_train_task t;
    const ds_dataset *d = NULL;
    cJSON *result = NULL;
    cn_err e = wk_train_task_read(r->it->task, &t, err, sizeof err);
    if (e == CN_OK) {
        snprintf(status, sizeof status, "training %s rank %u", t.job_id, t.rank);
        set_status(x, status);
        e = wk_data_idx(x->data, t.train_images, t.train_labels, t.train_rows, &d, NULL, err,
                        sizeof err);
    }
    wk_train_env env = train_env(r);
    if (e == CN_OK)
        e = wk_train_run(&t, d, &env, &result, err, sizeof err);
    wk_data_release(x->data, d);
    if (e != CN_OK)
        report_failure(r, err);
    else if (cJSON_IsTrue(cJSON_GetObjectItem(result, "done"))) {
        send_report(r, true, true, NULL, result);
    }
    // A rank stopped before its end (job ended, rank taken over, worker
    // stopping) sends no final report: the scheduler decides what follows.
    cJSON_Delete(result);
}

// run_client runs a federated client's round.
static void run_client(running *r)
{
    wk_exec *x = r->x;
    char err[CN_ERRBUF_LEN] = "", status[200];
    wk_fed_task t;
    const ds_dataset *d = NULL;
    cJSON *result = NULL;
    cn_err e = wk_fed_task_read(r->it->task, &t, err, sizeof err);
    if (e == CN_OK) {
        snprintf(status, sizeof status, "federated %s round %" PRIu64 " client %u", t.job_id,
                 t.round, t.client);
        set_status(x, status);
        e = t.local_data ? wk_data_local(x->data, t.train_rows, &d, err, sizeof err)
                         : wk_data_idx(x->data, t.train_images, t.train_labels, t.train_rows, &d,
                                       NULL, err, sizeof err);
    }
    wk_train_env env = train_env(r);
    if (e == CN_OK)
        e = wk_fed_run(&t, d, &env, &result, err, sizeof err);
    wk_data_release(x->data, d);
    if (e != CN_OK) {
        report_failure(r, err);
    } else if (result) {
        bool late = cJSON_IsTrue(cJSON_GetObjectItem(result, "late"));
        if (late)
            CN_INFO("job %s client %u: %s", t.job_id, t.client, err);
        send_report(r, true, !late, late ? err : NULL, result);
    }
    cJSON_Delete(result);
}

static void run_item(wk_exec *x, const sched_work_item *it)
{
    running r = {x, it};
    const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(it->task, "mode"));
    if (strcmp(it->kind, "sweep") == 0 && wk_mlp_trial_is(it->task)) {
        char err[CN_ERRBUF_LEN] = "";
        cJSON *res = NULL;
        set_status(x, "sweep: an mlp trial");
        cn_err e = wk_mlp_trial_exec(it->task, x->data, x->threads_per_slot, &res, err, sizeof err);
        res = res ? res : cJSON_CreateObject();
        cJSON_AddStringToObject(res, "worker", x->name);
        send_report(&r, true, e == CN_OK, e == CN_OK ? NULL : err, res);
        cJSON_Delete(res);
    } else if (strcmp(it->kind, "sweep") == 0) {
        run_fold(&r);
    } else if (strcmp(it->kind, "train") == 0 && mode && strcmp(mode, "federated") == 0) {
        run_client(&r);
    } else if (strcmp(it->kind, "train") == 0) {
        run_rank(&r);
    } else {
        char err[128];
        snprintf(err, sizeof err, "this worker has no executor for \"%.40s\" items", it->kind);
        cJSON *o = cJSON_CreateObject();
        send_report(&r, true, false, err, o);
        cJSON_Delete(o);
    }
    set_status(x, "idle");
}

static void *slot_main(void *arg)
{
    slot *s = arg;
    wk_exec *x = s->x;
    uint32_t backoff_ms = 50;
    uint32_t wait = x->o.poll_ms ? x->o.poll_ms : 1000;
    while (!atomic_load(&x->stopping)) {
        sched_work_item it;
        bool got = false, shutdown = false;
        char detail[RPC_DETAIL_LEN + 128];
        rpc_code code = sched_work_get(x->client, x->o.node_id, (uint32_t)s->index, wait, &it, &got,
                                       &shutdown, detail, sizeof detail);
        if (code != RPC_OK) {
            // Not registered yet, or the scheduler is away: wait and retry.
            cn_sleep_ms(backoff_ms);
            backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
            continue;
        }
        backoff_ms = 50;
        if (got)
            run_item(x, &it);
        sched_work_item_fini(&it);
        if (shutdown && !got)
            cn_sleep_ms(200); // the scheduler is stopping; a new one may come
    }
    return NULL;
}

cn_err wk_exec_start(wk_exec **out, const wk_exec_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    if (o->slots < 1)
        return cn_errf(err, errlen, CN_EINVAL, "--slots must be at least 1");
    wk_exec *x = calloc(1, sizeof *x);
    if (x == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    x->o = *o;
    snprintf(x->name, sizeof x->name, "%s", o->name ? o->name : "");
    x->o.name = x->name;
    x->threads_per_slot = o->threads / o->slots > 0 ? o->threads / o->slots : 1;
    rpc_client_opts co = {
        .url = o->scheduler_url, .token = o->token, .node_id = o->node_id, .tls = o->tls};
    cn_err e = rpc_client_open(&x->client, &co, err, errlen);
    if (e == CN_OK)
        e = wk_data_open(&x->data, o->cache_dir, o->data_dir, x->client, err, errlen);
    x->slots = e == CN_OK ? calloc((size_t)o->slots, sizeof *x->slots) : NULL;
    if (e == CN_OK && x->slots == NULL)
        e = cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    for (int i = 0; e == CN_OK && i < o->slots; i++) {
        x->slots[i] = (slot){.x = x, .index = i};
        if (pthread_create(&x->slots[i].thread, NULL, slot_main, &x->slots[i]) != 0)
            e = cn_errf(err, errlen, CN_ENOMEM, "cannot start slot %d", i);
        else
            x->slots[i].started = true;
    }
    if (e != CN_OK) {
        wk_exec_stop(x);
        return e;
    }
    CN_INFO("%d slot%s of %d thread%s each", o->slots, o->slots == 1 ? "" : "s",
            x->threads_per_slot, x->threads_per_slot == 1 ? "" : "s");
    *out = x;
    return CN_OK;
}

void wk_exec_stop(wk_exec *x)
{
    if (x == NULL)
        return;
    atomic_store(&x->stopping, 1);
    for (int i = 0; x->slots && i < x->o.slots; i++)
        if (x->slots[i].started)
            pthread_join(x->slots[i].thread, NULL);
    free(x->slots);
    wk_data_close(x->data);
    rpc_client_close(x->client);
    free(x);
}
