// sched_job_impl.h: the job kernel's private parts, shared by its three
// files: sched_job.c (items, the queue, leases, the ticker, lifecycle),
// sched_job_store.c (job directories, job.json, restore) and
// sched_job_svc.c (the Jobs and Work services). Folder-private.
// Thread rule: as sched_job.h; every function here is "Lock held" unless
// it says otherwise.
#ifndef CANOPY_SCHED_JOB_IMPL_H
#define CANOPY_SCHED_JOB_IMPL_H

#include <pthread.h>

#include "common/cn_jsonl.h"
#include "scheduler/sched_job.h"

#define SCHED_MAX_WAIT_MS 30000 // longest Work/Get hold

typedef struct item {
    item_state state;
    uint32_t attempts;     // leases handed out so far
    uint64_t node;         // holder while LEASED
    uint64_t lease_end_ms; // monotonic
    uint64_t pin;          // only this worker may take it; 0 = any
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
    size_t n_leased, n_done, n_failed, n_held;
    size_t n_pinned; // pending pinned items (kept out of the queue)
    uint32_t lease_ms, retries, max_concurrent;
    uint64_t hold_until_ms; // restored: dispatch waits for reattaching workers
    cn_jsonl *log;
    double overhead_ms_sum; // scheduler time per item, without the record's write
    double record_ms_sum;   // the results log's write + fdatasync per item
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

// --- sched_job.c
bool sched_job_ended(const sched_job *j);
// sched_jobs_pick finds the next item to hand out to node, oldest job first.
bool sched_jobs_pick(sched_jobs *k, uint64_t node, sched_job **jp, size_t *u);
// sched_job_lease marks item u leased to node, its lease starting now.
void sched_job_lease(sched_job *j, size_t u, uint64_t node);
// sched_job_hand_out leases item u to node and answers the Work/Get call.
void sched_job_hand_out(sched_job *j, size_t u, uint64_t node, rpc_call *call, uint64_t t0_ns);
// sched_work_reply_empty answers a Work/Get with no item.
void sched_work_reply_empty(rpc_call *call, bool shutdown);
// sched_jobs_serve_waiters hands pending items to held long-polls.
void sched_jobs_serve_waiters(sched_jobs *k);
// sched_job_release puts a leased or failed item back in the queue, or
// fails it when its retries are used up.
void sched_job_release(sched_job *j, size_t u, const char *why);
// sched_job_begin makes j RUNNING and starts its kind.
void sched_job_begin(sched_jobs *k, sched_job *j);

// --- sched_job_store.c (no lock needed before the kernel serves)
void sched_job_write_meta(sched_job *j);
const sched_kind *sched_jobs_find_kind(const sched_jobs *k, const char *name);
// sched_job_digest: what identifies a job's definition (kind, spec, data).
void sched_job_digest(const char *kind, const sched_job_input *in, char out[SCHED_SHA_LEN]);
// sched_job_new builds a job around impl (taking it, also on error) with its
// directory and results log opened and replayed. Not linked.
cn_err sched_job_new(sched_jobs *k, const sched_kind *kind, void *impl, const char *id,
                     const sched_job_input *in, sched_job **out, char *err, size_t errlen);
void sched_job_free(sched_job *j);
void sched_jobs_link(sched_jobs *k, sched_job *j);
void sched_jobs_unlink(sched_jobs *k, sched_job *j);
// sched_job_set_aside moves a job directory out of the way (a fresh start).
cn_err sched_job_set_aside(const char *dir, char *err, size_t errlen);
// sched_jobs_restore brings back every job found under the state directory,
// ordered by creation.
cn_err sched_jobs_restore(sched_jobs *k, char *err, size_t errlen);

// --- sched_job_svc.c
// sched_jobs_serve registers the Jobs and Work services on server.
cn_err sched_jobs_serve(sched_jobs *k, rpc_server *server, char *err, size_t errlen);

#endif
