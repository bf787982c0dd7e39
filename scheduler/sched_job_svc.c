// sched_job_svc.c: the job kernel's services (see sched_job.h): Jobs
// (Submit, Status, List, Cancel) and Work (Get, Report).
#include "scheduler/sched_job_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cn_clock.h"
#include "common/cn_log.h"
#include "jobs.pb-c.h"
#include "scheduler/sched_data.h"
#include "work.pb-c.h"

static sched_job *find_job(sched_jobs *k, const char *id)
{
    for (sched_job *j = k->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static void h_work_get(rpc_call *call, void *arg)
{
    sched_jobs *k = arg;
    uint64_t t0 = cn_now_ns();
    Canopy__Work__GetRequest *req =
        (Canopy__Work__GetRequest *)rpc_call_unpack(call, &canopy__work__get_request__descriptor);
    if (req == NULL)
        return;
    uint64_t node = req->node_id;
    uint32_t wait_ms = req->wait_ms > SCHED_MAX_WAIT_MS ? SCHED_MAX_WAIT_MS : req->wait_ms;
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
        sched_work_reply_empty(call, true);
    } else if (sched_jobs_pick(k, node, &j, &u)) {
        sched_job_hand_out(j, u, node, call, t0);
    } else if (wait_ms == 0) {
        sched_work_reply_empty(call, false);
    } else {
        if (k->nw == k->wcap) {
            size_t cap = k->wcap ? k->wcap * 2 : 16;
            waiter *v = realloc(k->waiters, cap * sizeof *v);
            if (v == NULL) {
                pthread_mutex_unlock(&k->mu);
                sched_work_reply_empty(call, false);
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

// report applies one Work/Report to item u of j. Lock held.
static void report(sched_jobs *k, sched_job *j, size_t u, const Canopy__Work__ReportRequest *r,
                   const cJSON *result, Canopy__Work__ReportReply *rep)
{
    uint64_t t0 = cn_now_ns(), w0 = cn_jsonl_write_ns(j->log);
    item *x = &j->items[u];
    if (x->state == ITEM_DONE || x->state == ITEM_FAILED) {
        rep->duplicate = 1; // another attempt got there first: recorded once
        rep->stop = 1;
        return;
    }
    if (sched_job_ended(j)) {
        rep->stop = 1;
        return;
    }
    if (x->state == ITEM_LEASED && x->node != r->node_id) {
        rep->stop = 1; // taken over by another worker
        return;
    }
    if (x->state == ITEM_HELD) {
        rep->stop = 1; // not released (yet): nobody was given it
        return;
    }
    if (x->state == ITEM_PENDING) {
        // A worker carries on across a scheduler restart or a lapsed lease:
        // it takes its item back if it is still alive.
        if (!r->final && !sched_members_is_alive(k->members, r->node_id))
            return;
        sched_job_lease(j, u, r->node_id);
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
        uint64_t w = cn_jsonl_write_ns(j->log) - w0;
        j->overhead_ms_sum += (double)(cn_now_ns() - t0 - w) / 1e6;
        j->record_ms_sum += (double)w / 1e6;
        j->overhead_n++;
    } else {
        const char *why = r->error && r->error[0] ? r->error : "failed";
        j->kind->item_done(j, u, r->node_id, false, why, result);
        sched_job_release(j, u, why);
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
    if (j != NULL && j->n_items == 0 && !sched_job_ended(j)) {
        // A restored job whose kind has not added its items back yet (a
        // training job configures its shards first): the worker keeps its
        // item and reports again, which reattaches it.
        pthread_mutex_unlock(&k->mu);
        rpc_call_fail(call, RPC_UNAVAILABLE,
                      "Work/Report: job %s is starting and has no items yet; report again",
                      r->job_id);
        goto out;
    }
    if (j == NULL || r->item >= j->n_items) {
        pthread_mutex_unlock(&k->mu);
        rpc_call_fail(call, RPC_NOT_FOUND, "Work/Report: no item %" PRIu64 " in job %s", r->item,
                      r->job_id);
        goto out;
    }
    Canopy__Work__ReportReply rep = CANOPY__WORK__REPORT_REPLY__INIT;
    report(k, j, (size_t)r->item, r, result, &rep);
    sched_jobs_serve_waiters(k);
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    rpc_call_reply(call, &rep.base, NULL, 0);
out:
    cJSON_Delete(result);
    canopy__work__report_request__free_unpacked(r, NULL);
}

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
    cJSON_AddNumberToObject(o, "record_write_ms", sched_job_record_ms(j));
    cJSON_AddNumberToObject(o, "workers",
                            (double)sched_members_count(j->k->members, CLUSTER_ROLE_WORKER));
    j->kind->status(j, o);
    return o;
}

cJSON *sched_jobs_status_json(sched_jobs *k, const char *id)
{
    cJSON *out = NULL;
    pthread_mutex_lock(&k->mu);
    if (id) {
        sched_job *j = find_job(k, id);
        out = j ? status_json(j) : NULL;
    } else if ((out = cJSON_CreateArray()) != NULL) {
        for (sched_job *j = k->jobs; j; j = j->next)
            cJSON_AddItemToArray(out, status_json(j));
    }
    pthread_mutex_unlock(&k->mu);
    return out;
}

size_t sched_jobs_leases_of(sched_jobs *k, uint64_t node)
{
    size_t n = 0;
    pthread_mutex_lock(&k->mu);
    for (sched_job *j = k->jobs; j; j = j->next)
        for (size_t u = 0; u < j->n_items; u++)
            n += j->items[u].state == ITEM_LEASED && j->items[u].node == node;
    pthread_mutex_unlock(&k->mu);
    return n;
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
    Canopy__Jobs__ListRequest *r =
        (Canopy__Jobs__ListRequest *)rpc_call_unpack(call, &canopy__jobs__list_request__descriptor);
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
    } else if (sched_job_ended(j)) {
        rpc_call_fail(call, RPC_FAILED_PRECONDITION, "Jobs/Cancel: job %s has already ended (%s)",
                      j->id, job_state_name(j->state));
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

// newest_like finds the newest job of kind with the same definition.
static sched_job *newest_like(sched_jobs *k, const sched_kind *kind, const char *spec_sha)
{
    sched_job *found = NULL;
    for (sched_job *j = k->jobs; j; j = j->next)
        if (j->kind == kind && strcmp(j->spec_sha, spec_sha) == 0)
            found = j;
    return found;
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
static sched_job *submit_locked(sched_jobs *k, rpc_call *call,
                                const Canopy__Jobs__SubmitRequest *req, const sched_kind *kind,
                                void **impl, const char *id, const sched_job_input *in,
                                bool *existing)
{
    char err[CN_ERRBUF_LEN];
    *existing = false;
    if (k->stopping) {
        rpc_call_fail(call, RPC_UNAVAILABLE, "Jobs/Submit: the scheduler is stopping");
        return NULL;
    }
    sched_job *live = find_job(k, id);
    if (live && !sched_job_ended(live)) {
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
        sched_jobs_unlink(k, live);
        sched_job_free(live);
    }
    snprintf(path, sizeof path, "%s/%s/%s", k->state_dir, kind->dir, id);
    if (req->fresh && sched_job_set_aside(path, err, sizeof err) != CN_OK) {
        rpc_call_fail(call, RPC_INTERNAL, "Jobs/Submit: %s", err);
        return NULL;
    }
    sched_job *j;
    cn_err e = sched_job_new(k, kind, *impl, id, in, &j, err, sizeof err);
    *impl = NULL; // taken by job_new
    if (e != CN_OK) {
        rpc_call_fail(call, RPC_INTERNAL, "Jobs/Submit: %s", err);
        return NULL;
    }
    sched_jobs_link(k, j);
    sched_job_begin(k, j);
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
    const sched_kind *kind = sched_jobs_find_kind(k, req->kind);
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
        sched_job_digest(kind->name, &in, sha);
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

cn_err sched_jobs_serve(sched_jobs *k, rpc_server *server, char *err, size_t errlen)
{
    cn_err e = CN_OK;
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
    return e;
}
