// sched_job.c: the job kernel's core (see sched_job.h): jobs' items, the
// work queue with leases and retries, the ticker, deaths, and the kernel's
// lifecycle. The store is in sched_job_store.c, the services in
// sched_job_svc.c.
#include "scheduler/sched_job.h"

#include "scheduler/sched_job_impl.h"

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

const char *job_state_name(job_state s)
{
    static const char *n[] = {"queued", "running", "done", "failed", "cancelled"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

bool sched_job_ended(const sched_job *j)
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
size_t sched_jobs_waiting(const sched_jobs *k)
{
    return k->nw;
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

double sched_job_record_ms(const sched_job *j)
{
    return j->overhead_n ? j->record_ms_sum / (double)j->overhead_n : 0;
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

// queue_pop returns the next item that is still pending and not pinned.
static bool queue_pop(sched_job *j, size_t *u)
{
    while (j->q_len > 0) {
        *u = j->queue[j->q_head];
        j->q_head = (j->q_head + 1) % j->q_cap;
        j->q_len--;
        if (j->items[*u].state == ITEM_PENDING && j->items[*u].pin == 0)
            return true;
    }
    return false;
}

static cn_err add_items(sched_job *j, size_t n, bool held)
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
        j->items[j->n_items] = (item){.state = held ? ITEM_HELD : ITEM_PENDING};
        if (!held)
            queue_push(j, j->n_items);
        j->n_items++;
    }
    if (held)
        j->n_held += n;
    return CN_OK;
}

cn_err sched_job_add_items(sched_job *j, size_t n)
{
    return add_items(j, n, false);
}

cn_err sched_job_add_held_items(sched_job *j, size_t n)
{
    return add_items(j, n, true);
}

bool sched_job_item_release(sched_job *j, uint64_t u)
{
    if (u >= j->n_items || j->items[u].state != ITEM_HELD)
        return false;
    j->items[u].state = ITEM_PENDING;
    j->n_held--;
    queue_push(j, u);
    return true;
}

cn_err sched_job_add_item_for(sched_job *j, uint64_t node, uint64_t *index)
{
    size_t before = j->n_items;
    // Added like any item, then taken out of the queue: queue_pop skips
    // entries that are no longer pending-and-unpinned.
    cn_err e = sched_job_add_items(j, 1);
    if (e != CN_OK)
        return e;
    j->items[before].pin = node;
    if (node)
        j->n_pinned++;
    *index = before;
    return CN_OK;
}

bool sched_job_item_cancel(sched_job *j, uint64_t u)
{
    if (u >= j->n_items)
        return false;
    item *x = &j->items[u];
    if (x->state == ITEM_DONE || x->state == ITEM_FAILED)
        return false;
    if (x->state == ITEM_LEASED)
        j->n_leased--;
    else if (x->state == ITEM_HELD)
        j->n_held--;
    else if (x->pin)
        j->n_pinned--;
    x->state = ITEM_FAILED;
    x->node = 0;
    j->n_failed++;
    return true;
}

bool sched_job_item_settle(sched_job *j, uint64_t u)
{
    if (u >= j->n_items || (j->items[u].state != ITEM_PENDING && j->items[u].state != ITEM_HELD))
        return false;
    if (j->items[u].state == ITEM_HELD)
        j->n_held--;
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
        *pending = j->n_items - j->n_leased - j->n_done - j->n_failed - j->n_held;
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
    if (text == NULL || b.oom ||
        cn_file_write_atomic(path, b.data, b.len, err, sizeof err) != CN_OK)
        CN_ERROR("job %s: cannot write %s: %s", j->id, path, text ? err : "out of memory");
    cn_buf_fini(&b);
    free(text);
}

// ------------------------------------------------------------ dispatch

// pick finds the next item to hand out, oldest job first. Lock held.
// pinned_for finds a pending item pinned to node.
static bool pinned_for(const sched_job *j, uint64_t node, size_t *u)
{
    for (size_t i = 0; j->n_pinned > 0 && i < j->n_items; i++)
        if (j->items[i].pin == node && j->items[i].state == ITEM_PENDING) {
            *u = i;
            return true;
        }
    return false;
}

bool sched_jobs_pick(sched_jobs *k, uint64_t node, sched_job **jp, size_t *u)
{
    uint64_t now = cn_now_ms();
    for (sched_job *j = k->jobs; j; j = j->next) {
        if (j->state != JOB_RUNNING || now < j->hold_until_ms)
            continue;
        if (j->max_concurrent && j->n_leased >= j->max_concurrent)
            continue;
        if (pinned_for(j, node, u) || queue_pop(j, u)) {
            *jp = j;
            return true;
        }
    }
    return false;
}

void sched_job_lease(sched_job *j, size_t u, uint64_t node)
{
    item *x = &j->items[u];
    if (x->pin && x->state == ITEM_PENDING)
        j->n_pinned--;
    x->state = ITEM_LEASED;
    x->node = node;
    x->lease_end_ms = cn_now_ms() + j->lease_ms;
    j->n_leased++;
}

// hand_out leases item u of j to node and answers call with it.
void sched_job_hand_out(sched_job *j, size_t u, uint64_t node, rpc_call *call, uint64_t t0_ns)
{
    sched_job_lease(j, u, node);
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

void sched_work_reply_empty(rpc_call *call, bool shutdown)
{
    Canopy__Work__GetReply rep = CANOPY__WORK__GET_REPLY__INIT;
    rep.shutdown = shutdown;
    rpc_call_reply(call, &rep.base, NULL, 0);
}

// serve_waiters hands pending items to held long-polls. Lock held.
void sched_jobs_serve_waiters(sched_jobs *k)
{
    size_t i = 0;
    while (i < k->nw) {
        if (!sched_members_is_alive(k->members, k->waiters[i].node)) {
            i++;
            continue;
        }
        sched_job *j;
        size_t u;
        if (!sched_jobs_pick(k, k->waiters[i].node, &j, &u)) {
            i++; // nothing for this worker (pinned items may be another's)
            continue;
        }
        waiter w = k->waiters[i];
        k->waiters[i] = k->waiters[--k->nw];
        sched_job_hand_out(j, u, w.node, w.call, cn_now_ns());
    }
}

// release puts a leased item back in the queue, or fails it when its
// retries are used up. Lock held.
void sched_job_release(sched_job *j, size_t u, const char *why)
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
    if (x->pin)
        j->n_pinned++;
    else
        queue_push(j, u);
}

static void lose(sched_job *j, size_t u, const char *why)
{
    uint64_t node = j->items[u].node;
    CN_INFO("job %s item %zu re-queued (attempt %u): its worker %s", j->id, u, j->items[u].attempts,
            why);
    sched_job_release(j, u, why);
    if (j->kind->item_lost)
        j->kind->item_lost(j, u, node, why);
}

void sched_job_finish(sched_job *j, job_state final, const char *why)
{
    if (sched_job_ended(j))
        return;
    j->state = final;
    j->finished_unix_ms = cn_wall_ms();
    snprintf(j->error, sizeof j->error, "%s", why ? why : "");
    if (final == JOB_FAILED)
        CN_ERROR("job %s failed: %s", j->id, j->error);
    else
        CN_INFO("job %s %s%s%s (%.1f s)", j->id, job_state_name(final), why ? ": " : "",
                why ? why : "", sched_job_elapsed_s(j));
    sched_job_write_meta(j);
    pthread_cond_broadcast(&j->k->cv);
}

// ------------------------------------------------------------ Work service

// ------------------------------------------------------------ Jobs service

// ------------------------------------------------------------ job lifecycle

// job_begin makes j RUNNING and starts its kind. Lock held.
void sched_job_begin(sched_jobs *k, sched_job *j)
{
    j->state = JOB_RUNNING;
    j->finished_unix_ms = 0;
    if (!j->restored || !j->started_unix_ms)
        j->started_unix_ms = cn_wall_ms();
    if (j->restored)
        j->hold_until_ms = cn_now_ms() + k->grace_ms;
    sched_job_write_meta(j);
    char err[CN_ERRBUF_LEN] = "";
    j->kind_started = true;
    if (j->kind->start(j, err, sizeof err) != CN_OK)
        sched_job_finish(j, JOB_FAILED, err);
    sched_jobs_serve_waiters(k);
}

// ------------------------------------------------------------ restore

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
                sched_work_reply_empty(c, false);
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
        sched_jobs_serve_waiters(k);
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
    sched_jobs_serve_waiters(k);
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
    k->grace_ms =
        o->reattach_grace_ms ? o->reattach_grace_ms : 2 * sched_members_dead_after_ms(o->members);
    snprintf(k->state_dir, sizeof k->state_dir, "%s", o->state_dir);
    snprintf(k->token, sizeof k->token, "%s", o->token ? o->token : "");
    cn_err e = sched_jobs_restore(k, err, errlen);
    if (e == CN_OK)
        e = sched_jobs_serve(k, server, err, errlen);
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
            sched_job_begin(k, j);
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
        sched_work_reply_empty(k->waiters[i].call, true);
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
        sched_job_free(j);
    }
    free(k->waiters);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
