// sched_job.c: the job kernel (see sched_job.h): job store and restore,
// results logs, the work queue with leases and retries, the ticker, and the
// Jobs and Work services.
#include "scheduler/sched_job.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "common/cn_jsonl.h"
#include "common/cn_log.h"
#include "jobs.pb-c.h"
#include "scheduler/sched_data.h"
#include "work.pb-c.h"

#define TICK_MS 50
#define MAX_WAIT_MS 30000

typedef struct item {
    item_state state;
    uint32_t attempts;     // leases handed out so far
    uint64_t node;         // holder while LEASED
    uint64_t lease_end_ms; // monotonic
} item;

struct sched_job {
    sched_jobs *k;
    const sched_kind *kind;
    void *impl;
    char id[SCHED_ID_LEN];
    char dir[1400];
    char name[128];
    char spec_name[256];
    char spec_sha[SCHED_SHA_LEN];
    job_state state;
    char error[1024];
    uint64_t created_unix_ms, started_unix_ms, finished_unix_ms;
    sched_data_ref *data;
    size_t n_data;
    item *items;
    size_t n_items, items_cap;
    size_t *queue; // ring of item indices that may be pending
    size_t q_head, q_len, q_cap;
    size_t n_leased, n_done, n_failed;
    uint32_t lease_ms, retries, max_concurrent;
    uint64_t hold_until_ms; // restored: dispatch waits for reattaching workers
    cn_jsonl *log;
    double overhead_ms_sum;
    size_t overhead_n;
    bool restored, kind_started;
    struct sched_job *next;
};

typedef struct waiter {
    rpc_call *call;
    uint64_t node;
    uint64_t deadline_ms;
} waiter;

struct sched_jobs {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sched_members *members;
    char state_dir[1024];
    char token[256];
    rpc_tls tls;
    uint32_t grace_ms;
    const sched_kind *const *kinds;
    size_t n_kinds;
    sched_job *jobs; // oldest first
    waiter *waiters;
    size_t nw, wcap;
    bool stopping, ticker_started, subscribed;
    pthread_t ticker;
};

const char *job_state_name(job_state s)
{
    static const char *n[] = {"queued", "running", "done", "failed", "cancelled"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

static bool job_state_parse(const char *s, job_state *out)
{
    for (int i = JOB_QUEUED; i <= JOB_CANCELLED; i++)
        if (s && strcmp(s, job_state_name((job_state)i)) == 0) {
            *out = (job_state)i;
            return true;
        }
    return false;
}

static bool ended(const sched_job *j)
{
    return j->state == JOB_DONE || j->state == JOB_FAILED || j->state == JOB_CANCELLED;
}

// ------------------------------------------------------------ accessors

void sched_jobs_lock(sched_jobs *k)
{
    pthread_mutex_lock(&k->mu);
}
void sched_jobs_unlock(sched_jobs *k)
{
    pthread_mutex_unlock(&k->mu);
}
bool sched_jobs_stopping(const sched_jobs *k)
{
    return k->stopping;
}
void sched_jobs_wait_ms(sched_jobs *k, uint64_t ms)
{
    cn_cond_wait_ms(&k->cv, &k->mu, ms);
}
const char *sched_jobs_state_dir(const sched_jobs *k)
{
    return k->state_dir;
}
sched_members *sched_jobs_members(sched_jobs *k)
{
    return k->members;
}
const char *sched_jobs_token(const sched_jobs *k)
{
    return k->token;
}
rpc_tls sched_jobs_tls(const sched_jobs *k)
{
    return k->tls;
}
void sched_jobs_data_path(const sched_jobs *k, const char *sha, char *out, size_t n)
{
    sched_data_path(k->state_dir, sha, out, n);
}
void *sched_job_impl(sched_job *j)
{
    return j->impl;
}
sched_jobs *sched_job_kernel(sched_job *j)
{
    return j->k;
}
const char *sched_job_id(const sched_job *j)
{
    return j->id;
}
const char *sched_job_dir(const sched_job *j)
{
    return j->dir;
}
job_state sched_job_state(const sched_job *j)
{
    return j->state;
}
bool sched_job_restored(const sched_job *j)
{
    return j->restored;
}

const sched_data_ref *sched_job_data(const sched_job *j, const char *role)
{
    for (size_t i = 0; i < j->n_data; i++)
        if (strcmp(j->data[i].role, role) == 0)
            return &j->data[i];
    return NULL;
}

double sched_job_elapsed_s(const sched_job *j)
{
    // Wall time, so that a job restored after a scheduler restart goes on
    // counting from its first start.
    if (j->started_unix_ms == 0)
        return 0;
    uint64_t end = j->finished_unix_ms ? j->finished_unix_ms : cn_wall_ms();
    return end > j->started_unix_ms ? (double)(end - j->started_unix_ms) / 1000.0 : 0;
}

double sched_job_overhead_ms(const sched_job *j)
{
    return j->overhead_n ? j->overhead_ms_sum / (double)j->overhead_n : 0;
}

void sched_job_set_policy(sched_job *j, uint32_t lease_ms, uint32_t retries,
                          uint32_t max_concurrent)
{
    j->lease_ms = lease_ms ? lease_ms : 30000;
    j->retries = retries;
    j->max_concurrent = max_concurrent;
}

// ------------------------------------------------------------ items

static void queue_push(sched_job *j, size_t u)
{
    if (j->q_len == j->q_cap) {
        size_t cap = j->q_cap ? j->q_cap * 2 : 64;
        size_t *nq = malloc(cap * sizeof *nq);
        CN_ASSERT(nq != NULL);
        for (size_t i = 0; i < j->q_len; i++)
            nq[i] = j->queue[(j->q_head + i) % j->q_cap];
        free(j->queue);
        j->queue = nq;
        j->q_head = 0;
        j->q_cap = cap;
    }
    j->queue[(j->q_head + j->q_len) % j->q_cap] = u;
    j->q_len++;
}

// queue_pop returns the next item that is still pending.
static bool queue_pop(sched_job *j, size_t *u)
{
    while (j->q_len > 0) {
        *u = j->queue[j->q_head];
        j->q_head = (j->q_head + 1) % j->q_cap;
        j->q_len--;
        if (j->items[*u].state == ITEM_PENDING)
            return true;
    }
    return false;
}

cn_err sched_job_add_items(sched_job *j, size_t n)
{
    if (j->n_items + n > j->items_cap) {
        size_t cap = j->n_items + n;
        item *v = realloc(j->items, cap * sizeof *v);
        if (v == NULL)
            return CN_ENOMEM;
        j->items = v;
        j->items_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        j->items[j->n_items] = (item){.state = ITEM_PENDING};
        queue_push(j, j->n_items);
        j->n_items++;
    }
    return CN_OK;
}

bool sched_job_item_settle(sched_job *j, uint64_t u)
{
    if (u >= j->n_items || j->items[u].state != ITEM_PENDING)
        return false;
    j->items[u].state = ITEM_DONE;
    j->n_done++;
    return true;
}

void sched_job_item_info(const sched_job *j, uint64_t u, item_state *state, uint32_t *attempts,
                         uint64_t *node)
{
    const item *x = u < j->n_items ? &j->items[u] : NULL;
    if (state)
        *state = x ? x->state : ITEM_FAILED;
    if (attempts)
        *attempts = x ? x->attempts : 0;
    if (node)
        *node = x && x->state == ITEM_LEASED ? x->node : 0;
}

void sched_job_items(const sched_job *j, size_t *total, size_t *pending, size_t *leased,
                     size_t *done, size_t *failed)
{
    if (total)
        *total = j->n_items;
    if (pending)
        *pending = j->n_items - j->n_leased - j->n_done - j->n_failed;
    if (leased)
        *leased = j->n_leased;
    if (done)
        *done = j->n_done;
    if (failed)
        *failed = j->n_failed;
}

// ------------------------------------------------------------ records

cn_err sched_job_log(sched_job *j, const cJSON *rec)
{
    cn_err e = cn_jsonl_append(j->log, rec);
    if (e != CN_OK)
        CN_ERROR("job %s: cannot append to %s/results.jsonl: %s", j->id, j->dir, cn_strerror(e));
    return e;
}

void sched_job_write_json(sched_job *j, const char *name, const cJSON *o)
{
    char *text = cJSON_Print(o);
    char path[1600], err[CN_ERRBUF_LEN];
    snprintf(path, sizeof path, "%s/%s", j->dir, name);
    cn_buf b;
    cn_buf_init(&b);
    if (text)
        cn_buf_printf(&b, "%s\n", text);
    if (text == NULL || b.oom || cn_file_write_atomic(path, b.data, b.len, err, sizeof err) != CN_OK)
        CN_ERROR("job %s: cannot write %s: %s", j->id, path, text ? err : "out of memory");
    cn_buf_fini(&b);
    free(text);
}

// write_meta rewrites job.json: what the store needs to restore the job.
static void write_meta(sched_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "kind", j->kind->name);
    cJSON_AddStringToObject(o, "name", j->name);
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddStringToObject(o, "error", j->error);
    cJSON_AddStringToObject(o, "spec_name", j->spec_name);
    cJSON_AddStringToObject(o, "spec_sha256", j->spec_sha);
    cJSON_AddNumberToObject(o, "created_unix_ms", (double)j->created_unix_ms);
    cJSON_AddNumberToObject(o, "started_unix_ms", (double)j->started_unix_ms);
    cJSON_AddNumberToObject(o, "finished_unix_ms", (double)j->finished_unix_ms);
    cJSON *d = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; i < j->n_data; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "role", j->data[i].role);
        cJSON_AddStringToObject(r, "sha256", j->data[i].sha256);
        cJSON_AddNumberToObject(r, "size", (double)j->data[i].size);
        cJSON_AddStringToObject(r, "name", j->data[i].name);
        cJSON_AddItemToArray(d, r);
    }
    sched_job_write_json(j, "job.json", o);
    cJSON_Delete(o);
}

// ------------------------------------------------------------ dispatch

// pick finds the next item to hand out, oldest job first. Lock held.
static bool pick(sched_jobs *k, sched_job **jp, size_t *u)
{
    uint64_t now = cn_now_ms();
    for (sched_job *j = k->jobs; j; j = j->next) {
        if (j->state != JOB_RUNNING || now < j->hold_until_ms)
            continue;
        if (j->max_concurrent && j->n_leased >= j->max_concurrent)
            continue;
        if (queue_pop(j, u)) {
            *jp = j;
            return true;
        }
    }
    return false;
}

static void lease(sched_job *j, size_t u, uint64_t node)
{
    item *x = &j->items[u];
    x->state = ITEM_LEASED;
    x->node = node;
    x->lease_end_ms = cn_now_ms() + j->lease_ms;
    j->n_leased++;
}

// hand_out leases item u of j to node and answers call with it.
static void hand_out(sched_job *j, size_t u, uint64_t node, rpc_call *call, uint64_t t0_ns)
{
    lease(j, u, node);
    item *x = &j->items[u];
    x->attempts++;
    char *task = j->kind->task(j, u, x->attempts);
    Canopy__Work__Item it = CANOPY__WORK__ITEM__INIT;
    it.job_id = j->id;
    it.item = u;
    it.kind = (char *)j->kind->name;
    it.attempt = x->attempts;
    it.task_json = task ? task : (char *)"{}";
    it.lease_ms = j->lease_ms;
    Canopy__Work__GetReply rep = CANOPY__WORK__GET_REPLY__INIT;
    rep.has_work = 1;
    rep.item = &it;
    j->overhead_ms_sum += (double)(cn_now_ns() - t0_ns) / 1e6;
    rpc_call_reply(call, &rep.base, NULL, 0);
    free(task);
}

static void reply_no_work(rpc_call *call, bool shutdown)
{
    Canopy__Work__GetReply rep = CANOPY__WORK__GET_REPLY__INIT;
    rep.shutdown = shutdown;
    rpc_call_reply(call, &rep.base, NULL, 0);
}

// serve_waiters hands pending items to held long-polls. Lock held.
static void serve_waiters(sched_jobs *k)
{
    size_t i = 0;
    while (i < k->nw) {
        if (!sched_members_is_alive(k->members, k->waiters[i].node)) {
            i++;
            continue;
        }
        sched_job *j;
        size_t u;
        if (!pick(k, &j, &u))
            return;
        waiter w = k->waiters[i];
        k->waiters[i] = k->waiters[--k->nw];
        hand_out(j, u, w.node, w.call, cn_now_ns());
    }
}

// release puts a leased item back in the queue, or fails it when its
// retries are used up. Lock held.
static void release(sched_job *j, size_t u, const char *why)
{
    item *x = &j->items[u];
    if (x->state == ITEM_LEASED)
        j->n_leased--;
    x->node = 0;
    if (x->attempts > j->retries) {
        x->state = ITEM_FAILED;
        j->n_failed++;
        CN_WARN("job %s item %zu failed after %u attempts: %s", j->id, u, x->attempts, why);
        j->kind->item_failed(j, u, why);
        return;
    }
    x->state = ITEM_PENDING;
    queue_push(j, u);
}

static void lose(sched_job *j, size_t u, const char *why)
{
    uint64_t node = j->items[u].node;
    CN_INFO("job %s item %zu re-queued (attempt %u): its worker %s", j->id, u,
            j->items[u].attempts, why);
    release(j, u, why);
    if (j->kind->item_lost)
        j->kind->item_lost(j, u, node, why);
}

void sched_job_finish(sched_job *j, job_state final, const char *why)
{
    if (ended(j))
        return;
    j->state = final;
    j->finished_unix_ms = cn_wall_ms();
    snprintf(j->error, sizeof j->error, "%s", why ? why : "");
    if (final == JOB_FAILED)
        CN_ERROR("job %s failed: %s", j->id, j->error);
    else
        CN_INFO("job %s %s%s%s (%.1f s)", j->id, job_state_name(final), why ? ": " : "",
                why ? why : "", sched_job_elapsed_s(j));
    write_meta(j);
    pthread_cond_broadcast(&j->k->cv);
}

// ------------------------------------------------------------ Work service

static void h_work_get(rpc_call *call, void *arg)
{
    sched_jobs *k = arg;
    uint64_t t0 = cn_now_ns();
    Canopy__Work__GetRequest *req =
        (Canopy__Work__GetRequest *)rpc_call_unpack(call, &canopy__work__get_request__descriptor);
    if (req == NULL)
        return;
    uint64_t node = req->node_id;
    uint32_t wait_ms = req->wait_ms > MAX_WAIT_MS ? MAX_WAIT_MS : req->wait_ms;
    canopy__work__get_request__free_unpacked(req, NULL);
    if (!sched_members_is_alive(k->members, node)) {
        rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                      "Work/Get: node %016" PRIx64 " is not a live registered worker; register "
                      "first (Cluster/Register)",
                      node);
        return;
    }
    pthread_mutex_lock(&k->mu);
    sched_job *j;
    size_t u;
    if (k->stopping) {
        reply_no_work(call, true);
    } else if (pick(k, &j, &u)) {
        hand_out(j, u, node, call, t0);
    } else if (wait_ms == 0) {
        reply_no_work(call, false);
    } else {
        if (k->nw == k->wcap) {
            size_t cap = k->wcap ? k->wcap * 2 : 16;
            waiter *v = realloc(k->waiters, cap * sizeof *v);
            if (v == NULL) {
                pthread_mutex_unlock(&k->mu);
                reply_no_work(call, false);
                return;
            }
            k->waiters = v;
            k->wcap = cap;
        }
        // Keep a margin so the reply arrives before the caller's deadline.
        int64_t left = rpc_call_remaining_ms(call) - 200;
        uint64_t hold = left < (int64_t)wait_ms ? (uint64_t)(left > 0 ? left : 0) : wait_ms;
        k->waiters[k->nw++] = (waiter){call, node, cn_now_ms() + hold};
    }
    pthread_mutex_unlock(&k->mu);
}

static sched_job *find_job(sched_jobs *k, const char *id)
{
    for (sched_job *j = k->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

// report applies one Work/Report to item u of j. Lock held.
static void report(sched_jobs *k, sched_job *j, size_t u, const Canopy__Work__ReportRequest *r,
                   const cJSON *result, Canopy__Work__ReportReply *rep)
{
    uint64_t t0 = cn_now_ns();
    item *x = &j->items[u];
    if (x->state == ITEM_DONE || x->state == ITEM_FAILED) {
        rep->duplicate = 1; // another attempt got there first: recorded once
        rep->stop = 1;
        return;
    }
    if (ended(j)) {
        rep->stop = 1;
        return;
    }
    if (x->state == ITEM_LEASED && x->node != r->node_id) {
        rep->stop = 1; // taken over by another worker
        return;
    }
    if (x->state == ITEM_PENDING) {
        // A worker carries on across a scheduler restart or a lapsed lease:
        // it takes its item back if it is still alive.
        if (!r->final && !sched_members_is_alive(k->members, r->node_id))
            return;
        lease(j, u, r->node_id);
        if (r->attempt > x->attempts)
            x->attempts = r->attempt;
        CN_INFO("job %s item %zu taken back by worker %016" PRIx64, j->id, u, r->node_id);
    }
    if (!r->final) {
        x->lease_end_ms = cn_now_ms() + j->lease_ms;
        j->kind->progress(j, u, r->node_id, result);
        rep->stop = j->state != JOB_RUNNING;
        return;
    }
    if (r->ok) {
        x->state = ITEM_DONE;
        x->node = 0;
        j->n_leased--;
        j->n_done++;
        j->kind->item_done(j, u, r->node_id, true, NULL, result);
        rep->recorded = 1;
        j->overhead_ms_sum += (double)(cn_now_ns() - t0) / 1e6;
        j->overhead_n++;
    } else {
        const char *why = r->error && r->error[0] ? r->error : "failed";
        j->kind->item_done(j, u, r->node_id, false, why, result);
        release(j, u, why);
        rep->recorded = 1;
    }
}

static void h_work_report(rpc_call *call, void *arg)
{
    sched_jobs *k = arg;
    Canopy__Work__ReportRequest *r = (Canopy__Work__ReportRequest *)rpc_call_unpack(
        call, &canopy__work__report_request__descriptor);
    if (r == NULL)
        return;
    cJSON *result = cJSON_Parse(r->result_json);
    if (!cJSON_IsObject(result)) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "Work/Report: result_json is not a JSON object (%.60s)", r->result_json);
        goto out;
    }
    pthread_mutex_lock(&k->mu);
    sched_job *j = find_job(k, r->job_id);
    if (j == NULL || r->item >= j->n_items) {
        pthread_mutex_unlock(&k->mu);
        rpc_call_fail(call, RPC_NOT_FOUND, "Work/Report: no item %" PRIu64 " in job %s", r->item,
                      r->job_id);
        goto out;
    }
    Canopy__Work__ReportReply rep = CANOPY__WORK__REPORT_REPLY__INIT;
    report(k, j, (size_t)r->item, r, result, &rep);
    serve_waiters(k);
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    rpc_call_reply(call, &rep.base, NULL, 0);
out:
    cJSON_Delete(result);
    canopy__work__report_request__free_unpacked(r, NULL);
}

// ------------------------------------------------------------ Jobs service

// status_json builds the job's status document. Lock held.
static cJSON *status_json(sched_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job_id", j->id);
    cJSON_AddStringToObject(o, "kind", j->kind->name);
    cJSON_AddStringToObject(o, "name", j->name);
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddStringToObject(o, "error", j->error);
    cJSON_AddStringToObject(o, "results_dir", j->dir);
    cJSON_AddNumberToObject(o, "created_unix_ms", (double)j->created_unix_ms);
    cJSON_AddNumberToObject(o, "elapsed_seconds", sched_job_elapsed_s(j));
    cJSON_AddNumberToObject(o, "progress", j->kind->progress_frac(j));
    cJSON *it = cJSON_AddObjectToObject(o, "items");
    size_t total, pending, leased, done, failed;
    sched_job_items(j, &total, &pending, &leased, &done, &failed);
    cJSON_AddNumberToObject(it, "total", (double)total);
    cJSON_AddNumberToObject(it, "pending", (double)pending);
    cJSON_AddNumberToObject(it, "leased", (double)leased);
    cJSON_AddNumberToObject(it, "done", (double)done);
    cJSON_AddNumberToObject(it, "failed", (double)failed);
    cJSON_AddNumberToObject(o, "dispatch_overhead_ms", sched_job_overhead_ms(j));
    cJSON_AddNumberToObject(o, "workers",
                            (double)sched_members_count(j->k->members, CLUSTER_ROLE_WORKER));
    j->kind->status(j, o);
    return o;
}

static void reply_status(rpc_call *call, sched_job *j)
{
    cJSON *o = status_json(j);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    Canopy__Jobs__StatusReply rep = CANOPY__JOBS__STATUS_REPLY__INIT;
    rep.job_id = j->id;
    rep.kind = (char *)j->kind->name;
    rep.state = (char *)job_state_name(j->state);
    rep.status_json = text ? text : (char *)"{}";
    rpc_call_reply(call, &rep.base, NULL, 0);
    free(text);
}

static void h_jobs_status(rpc_call *call, void *arg)
{
    sched_jobs *k = arg;
    Canopy__Jobs__StatusRequest *r = (Canopy__Jobs__StatusRequest *)rpc_call_unpack(
        call, &canopy__jobs__status_request__descriptor);
    if (r == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    sched_job *j = find_job(k, r->job_id);
    if (j == NULL)
        rpc_call_fail(call, RPC_NOT_FOUND,
                      "Jobs/Status: no job \"%s\" on this scheduler (`canopy jobs` lists them)",
                      r->job_id);
    else
        reply_status(call, j);
    pthread_mutex_unlock(&k->mu);
    canopy__jobs__status_request__free_unpacked(r, NULL);
}

static void h_jobs_list(rpc_call *call, void *arg)
{
    sched_jobs *k = arg;
    Canopy__Jobs__ListRequest *r = (Canopy__Jobs__ListRequest *)rpc_call_unpack(
        call, &canopy__jobs__list_request__descriptor);
    if (r == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    size_t n = 0;
    for (sched_job *j = k->jobs; j; j = j->next)
        n++;
    Canopy__Jobs__JobInfo *v = calloc(n + 1, sizeof *v);
    Canopy__Jobs__JobInfo **vp = calloc(n + 1, sizeof *vp);
    if (v == NULL || vp == NULL) {
        pthread_mutex_unlock(&k->mu);
        free(v);
        free(vp);
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Jobs/List: out of memory");
        canopy__jobs__list_request__free_unpacked(r, NULL);
        return;
    }
    size_t m = 0;
    for (sched_job *j = k->jobs; j; j = j->next) {
        if (r->kind[0] && strcmp(r->kind, j->kind->name) != 0)
            continue;
        Canopy__Jobs__JobInfo init = CANOPY__JOBS__JOB_INFO__INIT;
        v[m] = init;
        v[m].job_id = j->id;
        v[m].kind = (char *)j->kind->name;
        v[m].state = (char *)job_state_name(j->state);
        v[m].progress = j->kind->progress_frac(j);
        v[m].created_unix_ms = j->created_unix_ms;
        v[m].elapsed_seconds = sched_job_elapsed_s(j);
        v[m].results_dir = j->dir;
        v[m].error = j->error;
        v[m].name = j->name;
        vp[m] = &v[m];
        m++;
    }
    Canopy__Jobs__ListReply rep = CANOPY__JOBS__LIST_REPLY__INIT;
    rep.n_jobs = m;
    rep.jobs = vp;
    rpc_call_reply(call, &rep.base, NULL, 0);
    pthread_mutex_unlock(&k->mu);
    free(v);
    free(vp);
    canopy__jobs__list_request__free_unpacked(r, NULL);
}

static void h_jobs_cancel(rpc_call *call, void *arg)
{
    sched_jobs *k = arg;
    Canopy__Jobs__CancelRequest *r = (Canopy__Jobs__CancelRequest *)rpc_call_unpack(
        call, &canopy__jobs__cancel_request__descriptor);
    if (r == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    sched_job *j = find_job(k, r->job_id);
    if (j == NULL) {
        rpc_call_fail(call, RPC_NOT_FOUND, "Jobs/Cancel: no job \"%s\" on this scheduler",
                      r->job_id);
    } else if (ended(j)) {
        rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                      "Jobs/Cancel: job %s has already ended (%s)", j->id,
                      job_state_name(j->state));
    } else {
        char why[600];
        snprintf(why, sizeof why, "cancelled%s%.500s", r->reason[0] ? ": " : "", r->reason);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "cancelled");
        cJSON_AddNumberToObject(o, "t", sched_job_elapsed_s(j));
        cJSON_AddStringToObject(o, "reason", r->reason);
        size_t leased;
        sched_job_items(j, NULL, NULL, &leased, NULL, NULL);
        cJSON_AddNumberToObject(o, "items_stopped", (double)leased);
        sched_job_log(j, o);
        cJSON_Delete(o);
        sched_job_finish(j, JOB_CANCELLED, why);
        Canopy__Jobs__CancelReply rep = CANOPY__JOBS__CANCEL_REPLY__INIT;
        rep.state = (char *)job_state_name(j->state);
        rpc_call_reply(call, &rep.base, NULL, 0);
    }
    pthread_mutex_unlock(&k->mu);
    canopy__jobs__cancel_request__free_unpacked(r, NULL);
}

// ------------------------------------------------------------ job lifecycle

static const sched_kind *find_kind(const sched_jobs *k, const char *name)
{
    for (size_t i = 0; i < k->n_kinds; i++)
        if (strcmp(k->kinds[i]->name, name) == 0)
            return k->kinds[i];
    return NULL;
}

static void job_free(sched_job *j)
{
    if (j == NULL)
        return;
    if (j->kind && j->kind->free)
        j->kind->free(j->impl);
    cn_jsonl_close(j->log);
    free(j->data);
    free(j->items);
    free(j->queue);
    free(j);
}

static void warn_log(const char *msg, void *arg)
{
    (void)arg;
    CN_WARN("%s", msg);
}

static void replay_one(const cJSON *rec, size_t lineno, void *arg)
{
    (void)lineno;
    sched_job *j = arg;
    if (j->kind->replay)
        j->kind->replay(j, rec);
}

// spec_digest: what identifies a job's definition (kind, spec, data).
static void spec_digest(const char *kind, const sched_job_input *in, char out[SCHED_SHA_LEN])
{
    cn_buf b;
    cn_buf_init(&b);
    cn_buf_printf(&b, "%s\n%s", kind, in->spec_json);
    for (size_t i = 0; i < in->n_data; i++)
        cn_buf_printf(&b, "\n%s=%s", in->data[i].role, in->data[i].sha256);
    cn_file_sha256_hex(b.data ? b.data : "", b.len, out);
    cn_buf_fini(&b);
}

// job_new builds a job around impl (taking it) with its directory and
// results log opened and replayed. Not linked into the list.
static cn_err job_new(sched_jobs *k, const sched_kind *kind, void *impl, const char *id,
                      const sched_job_input *in, sched_job **out, char *err, size_t errlen)
{
    *out = NULL;
    sched_job *j = calloc(1, sizeof *j);
    sched_data_ref *refs = calloc(in->n_data + 1, sizeof *refs);
    if (j == NULL || refs == NULL) {
        free(j);
        free(refs);
        kind->free(impl);
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    }
    j->k = k;
    j->kind = kind;
    j->impl = impl;
    j->lease_ms = 30000;
    j->retries = 2;
    memcpy(refs, in->data, in->n_data * sizeof *refs);
    j->data = refs;
    j->n_data = in->n_data;
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->dir, sizeof j->dir, "%s/%s/%s", k->state_dir, kind->dir, id);
    snprintf(j->spec_name, sizeof j->spec_name, "%s", in->spec_name ? in->spec_name : "job");
    spec_digest(kind->name, in, j->spec_sha);
    const char *dash = strrchr(id, '-');
    snprintf(j->name, sizeof j->name, "%.*s", dash ? (int)(dash - id) : (int)strlen(id), id);
    j->created_unix_ms = cn_wall_ms();
    char path[1600];
    cn_err e = cn_file_mkdirs(j->dir, err, errlen);
    if (e == CN_OK && !in->restoring) {
        snprintf(path, sizeof path, "%s/spec.json", j->dir);
        e = cn_file_write_atomic(path, in->spec_json, strlen(in->spec_json), err, errlen);
    }
    if (e == CN_OK) {
        snprintf(path, sizeof path, "%s/results.jsonl", j->dir);
        e = cn_jsonl_open(&j->log, path, replay_one, j, warn_log, err, errlen);
    }
    if (e != CN_OK) {
        job_free(j);
        return e;
    }
    *out = j;
    return CN_OK;
}

// job_begin makes j RUNNING and starts its kind. Lock held.
static void job_begin(sched_jobs *k, sched_job *j)
{
    j->state = JOB_RUNNING;
    j->finished_unix_ms = 0;
    if (!j->restored || !j->started_unix_ms)
        j->started_unix_ms = cn_wall_ms();
    if (j->restored)
        j->hold_until_ms = cn_now_ms() + k->grace_ms;
    write_meta(j);
    char err[CN_ERRBUF_LEN] = "";
    j->kind_started = true;
    if (j->kind->start(j, err, sizeof err) != CN_OK)
        sched_job_finish(j, JOB_FAILED, err);
    serve_waiters(k);
}

static void link_job(sched_jobs *k, sched_job *j)
{
    sched_job **tail = &k->jobs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
}

static void unlink_job(sched_jobs *k, sched_job *j)
{
    for (sched_job **pp = &k->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            return;
        }
}

// newest_like finds the newest job of kind with the same definition.
static sched_job *newest_like(sched_jobs *k, const sched_kind *kind, const char *spec_sha)
{
    sched_job *found = NULL;
    for (sched_job *j = k->jobs; j; j = j->next)
        if (j->kind == kind && strcmp(j->spec_sha, spec_sha) == 0)
            found = j;
    return found;
}

// set_aside moves a job directory out of the way (a fresh start).
static cn_err set_aside(const char *dir, char *err, size_t errlen)
{
    char old[1800];
    snprintf(old, sizeof old, "%.1700s.old-%" PRIu64, dir, cn_wall_ms());
    if (rename(dir, old) != 0 && errno != ENOENT)
        return cn_errf(err, errlen, CN_EIO, "cannot move %s aside: %s", dir, strerror(errno));
    CN_INFO("earlier results of %s moved to %s", dir, old);
    return CN_OK;
}

static void reply_submitted(rpc_call *call, sched_job *j, bool existing)
{
    cJSON *o = status_json(j);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    Canopy__Jobs__SubmitReply rep = CANOPY__JOBS__SUBMIT_REPLY__INIT;
    rep.job_id = j->id;
    rep.results_dir = j->dir;
    rep.existing = existing;
    rep.status_json = text ? text : (char *)"{}";
    rpc_call_reply(call, &rep.base, NULL, 0);
    free(text);
}

// check_refs converts and validates the submitted data references.
static rpc_code check_refs(sched_jobs *k, const Canopy__Jobs__SubmitRequest *req,
                           sched_data_ref *refs, char *err, size_t errlen)
{
    for (size_t i = 0; i < req->n_data; i++) {
        const Canopy__Jobs__DataRef *d = req->data[i];
        if (!sched_sha_valid(d->sha256)) {
            snprintf(err, errlen, "Jobs/Submit: data \"%.60s\": \"%.80s\" is not a SHA-256 digest",
                     d->role, d->sha256);
            return RPC_INVALID_ARGUMENT;
        }
        if (!sched_data_has(k->state_dir, d->sha256)) {
            snprintf(err, errlen,
                     "Jobs/Submit: the scheduler does not hold data set %s (%.60s, %.200s); "
                     "upload it first (Data/Put)",
                     d->sha256, d->role, d->name);
            return RPC_FAILED_PRECONDITION;
        }
        snprintf(refs[i].role, sizeof refs[i].role, "%s", d->role);
        snprintf(refs[i].sha256, sizeof refs[i].sha256, "%s", d->sha256);
        refs[i].size = d->size;
        snprintf(refs[i].name, sizeof refs[i].name, "%s", d->name);
    }
    return RPC_OK;
}

// submit_locked finds or creates the job for a submission. Lock held.
// Returns the job to answer with, or NULL after failing the call.
static sched_job *submit_locked(sched_jobs *k, rpc_call *call, const Canopy__Jobs__SubmitRequest *req,
                                const sched_kind *kind, void **impl, const char *id,
                                const sched_job_input *in, bool *existing)
{
    char err[CN_ERRBUF_LEN];
    *existing = false;
    if (k->stopping) {
        rpc_call_fail(call, RPC_UNAVAILABLE, "Jobs/Submit: the scheduler is stopping");
        return NULL;
    }
    sched_job *live = find_job(k, id);
    if (live && !ended(live)) {
        if (req->resume) {
            *existing = true;
            return live;
        }
        rpc_call_fail(call, RPC_ALREADY_EXISTS,
                      "job %s is already running; follow it with --resume or stop it with "
                      "`canopy cancel %s`",
                      id, id);
        return NULL;
    }
    if (live && !req->fresh) {
        *existing = true;
        return live;
    }
    char path[1700];
    snprintf(path, sizeof path, "%s/%s/%s/results.jsonl", k->state_dir, kind->dir, id);
    struct stat st;
    bool has_results = stat(path, &st) == 0 && st.st_size > 0;
    if (has_results && !req->resume && !req->fresh) {
        rpc_call_fail(call, RPC_ALREADY_EXISTS,
                      "job %s already has results in %s/%s/%s; pass --resume to continue it or "
                      "--fresh to start over",
                      id, k->state_dir, kind->dir, id);
        return NULL;
    }
    if (live) { // fresh over an ended job
        unlink_job(k, live);
        job_free(live);
    }
    snprintf(path, sizeof path, "%s/%s/%s", k->state_dir, kind->dir, id);
    if (req->fresh && set_aside(path, err, sizeof err) != CN_OK) {
        rpc_call_fail(call, RPC_INTERNAL, "Jobs/Submit: %s", err);
        return NULL;
    }
    sched_job *j;
    cn_err e = job_new(k, kind, *impl, id, in, &j, err, sizeof err);
    *impl = NULL; // taken by job_new
    if (e != CN_OK) {
        rpc_call_fail(call, RPC_INTERNAL, "Jobs/Submit: %s", err);
        return NULL;
    }
    link_job(k, j);
    job_begin(k, j);
    CN_INFO("job %s (%s) submitted from %s", j->id, kind->name, j->spec_name);
    return j;
}

static void h_jobs_submit(rpc_call *call, void *arg)
{
    sched_jobs *k = arg;
    Canopy__Jobs__SubmitRequest *req = (Canopy__Jobs__SubmitRequest *)rpc_call_unpack(
        call, &canopy__jobs__submit_request__descriptor);
    if (req == NULL)
        return;
    char err[CN_ERRBUF_LEN];
    void *impl = NULL;
    sched_data_ref *refs = calloc(req->n_data + 1, sizeof *refs);
    const sched_kind *kind = find_kind(k, req->kind);
    if (kind == NULL) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "Jobs/Submit: kind \"%.60s\" is not one of the kinds this scheduler runs",
                      req->kind);
        goto out;
    }
    rpc_code code = refs ? check_refs(k, req, refs, err, sizeof err) : RPC_RESOURCE_EXHAUSTED;
    if (code != RPC_OK) {
        rpc_call_fail(call, code, "%s", refs ? err : "Jobs/Submit: out of memory");
        goto out;
    }
    sched_job_input in = {.spec_json = req->spec_json,
                          .spec_name = req->spec_name[0] ? req->spec_name : "job",
                          .data = refs,
                          .n_data = req->n_data};
    // Resuming finds the newest job of the same definition, running or
    // ended, before the spec is validated again (which may mean reading its
    // data).
    if (req->resume) {
        char sha[SCHED_SHA_LEN];
        spec_digest(kind->name, &in, sha);
        pthread_mutex_lock(&k->mu);
        sched_job *j = newest_like(k, kind, sha);
        if (j)
            reply_submitted(call, j, true);
        pthread_mutex_unlock(&k->mu);
        if (j)
            goto out;
    }
    if (kind->create(k, &in, &impl, err, sizeof err) != CN_OK) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT, "%s", err);
        goto out;
    }
    char id[SCHED_ID_LEN];
    kind->make_id(impl, &in, id, sizeof id);
    pthread_mutex_lock(&k->mu);
    bool existing;
    sched_job *j = submit_locked(k, call, req, kind, &impl, id, &in, &existing);
    if (j)
        reply_submitted(call, j, existing);
    pthread_mutex_unlock(&k->mu);
out:
    if (impl)
        kind->free(impl);
    free(refs);
    canopy__jobs__submit_request__free_unpacked(req, NULL);
}

// ------------------------------------------------------------ restore

static cn_err read_text(const char *path, char **out, char *err, size_t errlen)
{
    uint8_t *t;
    size_t len;
    cn_err e = cn_file_read_all(path, 16 << 20, &t, &len, err, errlen);
    *out = (char *)t;
    return e;
}

// restore_one brings back the job in dir from job.json, spec.json and its
// results log. Jobs that were running resume at sched_jobs_start.
static void restore_one(sched_jobs *k, const sched_kind *kind, const char *dir)
{
    char path[1700], err[CN_ERRBUF_LEN];
    char *meta_text = NULL, *spec = NULL;
    cJSON *meta = NULL;
    sched_data_ref *refs = NULL;
    void *impl = NULL;
    snprintf(path, sizeof path, "%s/job.json", dir);
    if (access(path, R_OK) != 0)
        return; // not a job directory of this version (or set aside)
    if (read_text(path, &meta_text, err, sizeof err) != CN_OK ||
        (meta = cJSON_Parse(meta_text)) == NULL) {
        CN_WARN("%s: unreadable; job not restored", path);
        goto out;
    }
    snprintf(path, sizeof path, "%s/spec.json", dir);
    if (read_text(path, &spec, err, sizeof err) != CN_OK) {
        CN_WARN("job in %s not restored: %s", dir, err);
        goto out;
    }
    const cJSON *data = cJSON_GetObjectItem(meta, "data");
    size_t n = (size_t)cJSON_GetArraySize(data);
    refs = calloc(n + 1, sizeof *refs);
    if (refs == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const cJSON *r = cJSON_GetArrayItem(data, (int)i);
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(r, "role"));
        const char *sha = cJSON_GetStringValue(cJSON_GetObjectItem(r, "sha256"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(r, "name"));
        snprintf(refs[i].role, sizeof refs[i].role, "%s", role ? role : "");
        snprintf(refs[i].sha256, sizeof refs[i].sha256, "%s", sha ? sha : "");
        snprintf(refs[i].name, sizeof refs[i].name, "%s", name ? name : "");
        refs[i].size = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "size"));
    }
    const char *spec_name = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "spec_name"));
    sched_job_input in = {.spec_json = spec,
                          .spec_name = spec_name ? spec_name : "job",
                          .data = refs,
                          .n_data = n,
                          .restoring = true};
    if (kind->create(k, &in, &impl, err, sizeof err) != CN_OK) {
        CN_WARN("job in %s not restored: %s", dir, err);
        goto out;
    }
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "id"));
    job_state st = JOB_FAILED;
    job_state_parse(cJSON_GetStringValue(cJSON_GetObjectItem(meta, "state")), &st);
    sched_job *j;
    if (id == NULL || job_new(k, kind, impl, id, &in, &j, err, sizeof err) != CN_OK) {
        impl = NULL;
        CN_WARN("job in %s not restored: %s", dir, id ? err : "job.json has no id");
        goto out;
    }
    impl = NULL;
    j->state = st;
    j->restored = true;
    j->created_unix_ms = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(meta, "created_unix_ms"));
    j->started_unix_ms = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(meta, "started_unix_ms"));
    j->finished_unix_ms =
        (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(meta, "finished_unix_ms"));
    const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "error"));
    snprintf(j->error, sizeof j->error, "%s", error ? error : "");
    link_job(k, j);
out:
    if (impl)
        kind->free(impl);
    free(refs);
    free(spec);
    free(meta_text);
    cJSON_Delete(meta);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static cn_err restore_all(sched_jobs *k, const sched_kind *kind, char *err, size_t errlen)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/%s", k->state_dir, kind->dir);
    cn_err e = cn_file_mkdirs(dir, err, errlen);
    if (e != CN_OK)
        return e;
    DIR *d = opendir(dir);
    if (d == NULL)
        return cn_errf(err, errlen, CN_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.' || strstr(ent->d_name, ".old-"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(names, cap * sizeof *v);
            if (v == NULL)
                break;
            names = v;
        }
        names[n] = strdup(ent->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[1500];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        restore_one(k, kind, path);
        free(names[i]);
    }
    free(names);
    return CN_OK;
}

// sort_jobs orders restored jobs by creation time, as they were submitted.
static void sort_jobs(sched_jobs *k)
{
    sched_job *sorted = NULL;
    while (k->jobs) {
        sched_job *j = k->jobs;
        k->jobs = j->next;
        sched_job **pp = &sorted;
        while (*pp && (*pp)->created_unix_ms <= j->created_unix_ms)
            pp = &(*pp)->next;
        j->next = *pp;
        *pp = j;
    }
    k->jobs = sorted;
}

// ------------------------------------------------------------ ticker

// expire_leases re-queues items whose workers stopped reporting. Lock held.
static bool expire_leases(sched_job *j, uint64_t now)
{
    bool any = false;
    for (size_t u = 0; u < j->n_items; u++) {
        item *x = &j->items[u];
        if (x->state == ITEM_LEASED && now > x->lease_end_ms) {
            lose(j, u, SCHED_LOST_LEASE);
            any = true;
        }
    }
    return any;
}

static void *ticker_main(void *arg)
{
    sched_jobs *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stopping) {
        cn_cond_wait_ms(&k->cv, &k->mu, TICK_MS);
        if (k->stopping)
            break;
        uint64_t now = cn_now_ms();
        for (size_t i = 0; i < k->nw;) {
            if (k->waiters[i].deadline_ms <= now) {
                rpc_call *c = k->waiters[i].call;
                k->waiters[i] = k->waiters[--k->nw];
                reply_no_work(c, false);
            } else {
                i++;
            }
        }
        for (sched_job *j = k->jobs; j; j = j->next) {
            if (j->state != JOB_RUNNING)
                continue;
            expire_leases(j, now);
            if (j->state == JOB_RUNNING && j->kind->tick)
                j->kind->tick(j, now);
        }
        serve_waiters(k);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

static void on_dead(uint64_t node, int role, uint32_t rank, void *arg)
{
    (void)rank;
    sched_jobs *k = arg;
    if (role != CLUSTER_ROLE_WORKER)
        return;
    pthread_mutex_lock(&k->mu);
    for (sched_job *j = k->jobs; j; j = j->next)
        for (size_t u = 0; j->state == JOB_RUNNING && u < j->n_items; u++)
            if (j->items[u].state == ITEM_LEASED && j->items[u].node == node)
                lose(j, u, SCHED_LOST_DEAD);
    serve_waiters(k);
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

// ------------------------------------------------------------ lifecycle

cn_err sched_jobs_new(sched_jobs **out, rpc_server *server, const sched_jobs_opts *o,
                      const sched_kind *const *kinds, size_t n_kinds, char *err, size_t errlen)
{
    *out = NULL;
    sched_jobs *k = calloc(1, sizeof *k);
    if (k == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    pthread_mutex_init(&k->mu, NULL);
    cn_cond_init_mono(&k->cv);
    k->members = o->members;
    k->tls = o->tls;
    k->kinds = kinds;
    k->n_kinds = n_kinds;
    k->grace_ms = o->reattach_grace_ms ? o->reattach_grace_ms
                                       : 2 * sched_members_dead_after_ms(o->members);
    snprintf(k->state_dir, sizeof k->state_dir, "%s", o->state_dir);
    snprintf(k->token, sizeof k->token, "%s", o->token ? o->token : "");
    cn_err e = CN_OK;
    for (size_t i = 0; i < n_kinds && e == CN_OK; i++)
        e = restore_all(k, kinds[i], err, errlen);
    sort_jobs(k);
    // Submitting, cancelling and reporting change state: a resent call is
    // answered from the server's duplicate table, not applied twice.
    struct {
        const char *svc, *m;
        rpc_handler_fn fn;
        unsigned flags;
    } hs[] = {{"Jobs", "Submit", h_jobs_submit, RPC_MUTATING},
              {"Jobs", "Status", h_jobs_status, 0},
              {"Jobs", "List", h_jobs_list, 0},
              {"Jobs", "Cancel", h_jobs_cancel, RPC_MUTATING},
              {"Work", "Get", h_work_get, 0},
              {"Work", "Report", h_work_report, RPC_MUTATING}};
    for (size_t i = 0; e == CN_OK && i < sizeof hs / sizeof hs[0]; i++)
        if ((e = rpc_server_register(server, hs[i].svc, hs[i].m, hs[i].fn, k, hs[i].flags)) !=
            CN_OK)
            cn_errf(err, errlen, e, "cannot register %s/%s", hs[i].svc, hs[i].m);
    if (e != CN_OK) {
        sched_jobs_free(k);
        return e;
    }
    sched_members_on_dead(o->members, on_dead, k);
    k->subscribed = true;
    *out = k;
    return CN_OK;
}

cn_err sched_jobs_start(sched_jobs *k, char *err, size_t errlen)
{
    pthread_mutex_lock(&k->mu);
    for (sched_job *j = k->jobs; j; j = j->next)
        if (j->state == JOB_RUNNING || j->state == JOB_QUEUED) {
            CN_INFO("job %s (%s) resumes: %zu records in its results log", j->id, j->kind->name,
                    cn_jsonl_records(j->log));
            job_begin(k, j);
        }
    pthread_mutex_unlock(&k->mu);
    if (pthread_create(&k->ticker, NULL, ticker_main, k) != 0)
        return cn_errf(err, errlen, CN_ENOMEM, "cannot start the job ticker");
    k->ticker_started = true;
    return CN_OK;
}

void sched_jobs_stop(sched_jobs *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    bool first = !k->stopping;
    k->stopping = true;
    for (size_t i = 0; i < k->nw; i++)
        reply_no_work(k->waiters[i].call, true);
    k->nw = 0;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    if (!first)
        return;
    if (k->ticker_started)
        pthread_join(k->ticker, NULL);
    k->ticker_started = false;
    for (sched_job *j = k->jobs; j; j = j->next)
        if (j->kind_started && j->kind->stop)
            j->kind->stop(j);
}

void sched_jobs_free(sched_jobs *k)
{
    if (k == NULL)
        return;
    sched_jobs_stop(k);
    if (k->subscribed)
        sched_members_off_dead(k->members, on_dead, k);
    for (sched_job *j = k->jobs, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    free(k->waiters);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
