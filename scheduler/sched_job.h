// sched_job.h: the job kernel: one store of jobs, one results log per job,
// one queue of work items, for every kind of job the scheduler runs
// (sweeps, training, federated rounds).
//
// A job is a record (id, kind, state, directory, spec.json, job.json) plus
// its kind's own state behind a sched_kind table of callbacks. The kernel
// owns everything the kinds share:
//   - the store: job directories under state_dir/<kind dir>/<id>, with
//     spec.json (as submitted) and job.json (id, kind, state, data, times),
//     rewritten atomically at each state change; jobs are restored from
//     them when the scheduler starts, and unfinished ones continue;
//   - the results log (results.jsonl, cn_jsonl: fsync per record, replay
//     with a torn or zero-filled tail repaired) and the summary writer;
//   - the work queue: a job adds items (a sweep's (trial, fold) units, a
//     training job's ranks); worker slots long-poll Work/Get and are handed
//     the oldest job's next pending item; each lease must be renewed by a
//     progress report within the job's lease time; an item whose worker
//     dies or whose lease lapses goes back to the queue until its retries
//     are used up, then fails; a report for a finished item is a duplicate
//     and records nothing;
//   - one ticker thread (lease expiry, held long-polls, each job's tick),
//     node deaths from the membership table, cancellation;
//   - the Jobs service (Submit, Status, List, Cancel) and the Work service
//     (Get, Report).
//
// Item state machine: PENDING -> LEASED -> DONE | FAILED, or LEASED ->
// PENDING (worker dead, lease lapsed, failed with retries left); an item
// added held starts HELD and becomes PENDING when its kind releases it.
// Job state machine: QUEUED -> RUNNING -> DONE | FAILED | CANCELLED.
//
// After a restart, items that were leased when the scheduler stopped are
// held for a grace period so that their workers, which carry on, can report
// and take them back before anyone else is given them.
//
// Thread rule: one mutex guards the kernel and every job; kind callbacks run
// with it held and must not block (no RPC, no disk but the log). A kind's
// own threads take it with sched_jobs_lock before calling any function
// below marked "Lock held".
#ifndef CANOPY_SCHED_JOB_H
#define CANOPY_SCHED_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/cn_err.h"
#include "proto/rpc.h"
#include "proto/sched_client.h"
#include "scheduler/sched_members.h"

typedef struct sched_jobs sched_jobs;
typedef struct sched_job sched_job;

typedef enum {
    JOB_QUEUED = 0,
    JOB_RUNNING = 1,
    JOB_DONE = 2,
    JOB_FAILED = 3,
    JOB_CANCELLED = 4,
} job_state;

// job_state_name: "queued", "running", "done", "failed", "cancelled".
const char *job_state_name(job_state s);

// ITEM_HELD: added but not yet queued; the kind releases it when it decides
// the work should run (a sweep's successive halving promotes a trial).
typedef enum { ITEM_PENDING = 0, ITEM_LEASED, ITEM_DONE, ITEM_FAILED, ITEM_HELD } item_state;

// Why a leased item went back to the queue (item_lost's why): its worker...
#define SCHED_LOST_DEAD "stopped heartbeating"
#define SCHED_LOST_LEASE "sent no report within its lease"

// What a submission carries, as the kind's create callback sees it.
typedef struct sched_job_input {
    const char *spec_json;
    const char *spec_name;
    const sched_data_ref *data;
    size_t n_data;
    bool restoring; // true when the job comes back from disk at start-up
} sched_job_input;

// A kind's callbacks. All run with the kernel lock held unless said.
typedef struct sched_kind {
    const char *name; // "sweep": the kind in specs, results and Work items
    const char *dir;  // "sweeps": jobs live in state_dir/<dir>/<id>

    // create parses and validates in->spec_json (and its data) into *impl.
    // Runs WITHOUT the lock (it may read files). err: the message a user
    // sees ("job.json: key \"lr\": ...").
    cn_err (*create)(sched_jobs *k, const sched_job_input *in, void **impl, char *err,
                     size_t errlen);
    // make_id writes the new job's id ([A-Za-z0-9._-]). A kind whose id
    // depends only on the spec and data makes resubmission find the job.
    void (*make_id)(const void *impl, const sched_job_input *in, char *id, size_t n);
    // replay receives each record of the job's results log on restore.
    void (*replay)(sched_job *j, const cJSON *rec);
    // start is called once the job is RUNNING (new or restored): add the
    // job's items, start the kind's threads. An error fails the job.
    cn_err (*start)(sched_job *j, char *err, size_t errlen);
    // task returns the task document (JSON, malloc'd) for a leased item.
    char *(*task)(sched_job *j, uint64_t item, uint32_t attempt);
    // progress receives a non-final report (the lease is renewed).
    void (*progress)(sched_job *j, uint64_t item, uint64_t node, const cJSON *result);
    // item_done receives a final report: ok with its result, or a failure
    // (the kernel then re-queues or fails the item). Not called for
    // duplicates.
    void (*item_done)(sched_job *j, uint64_t item, uint64_t node, bool ok, const char *error,
                      const cJSON *result);
    // item_failed: an item used up its retries. The kind decides whether
    // the job goes on (a sweep records a failed trial) or fails.
    void (*item_failed)(sched_job *j, uint64_t item, const char *why);
    // item_lost: a leased item went back to the queue (worker died, lease
    // lapsed). May be NULL.
    void (*item_lost)(sched_job *j, uint64_t item, uint64_t node, const char *why);
    // tick runs every ~50 ms while the job is RUNNING. May be NULL.
    void (*tick)(sched_job *j, uint64_t now_ms);
    // status adds the kind's status fields to out (Jobs/Status, the
    // dashboard).
    void (*status)(sched_job *j, cJSON *out);
    // progress_frac returns 0..1 for `canopy jobs`.
    double (*progress_frac)(sched_job *j);
    // stop joins the kind's threads, which end by themselves once the job
    // is no longer RUNNING or sched_jobs_stopping is true. Runs WITHOUT the
    // lock, when the scheduler stops. May be NULL.
    void (*stop)(sched_job *j);
    // free frees impl. Runs WITHOUT the lock. Accepts NULL.
    void (*free)(void *impl);
} sched_kind;

typedef struct sched_jobs_opts {
    const char *state_dir;
    sched_members *members; // borrowed: liveness and death notifications
    const char *token;      // for the kinds' own calls (shards)
    rpc_tls tls;
    uint32_t reattach_grace_ms; // 0 = 2 x the members' dead-after time
} sched_jobs_opts;

// sched_jobs_new creates the kernel and registers the Jobs and Work
// services on server (before it starts). kinds (borrowed, static) lists the
// job kinds; jobs found under state_dir are restored, and unfinished ones
// resume once sched_jobs_start runs.
// Errors: CN_EIO (state dir), CN_EEXIST (services already registered).
cn_err sched_jobs_new(sched_jobs **out, rpc_server *server, const sched_jobs_opts *opts,
                      const sched_kind *const *kinds, size_t n_kinds, char *err, size_t errlen);

// sched_jobs_start starts the ticker and resumes restored jobs.
cn_err sched_jobs_start(sched_jobs *k, char *err, size_t errlen);

// sched_jobs_stop answers held long-polls (shutdown), stops the kinds'
// threads (running jobs stay "running" on disk, so they resume at the next
// start) and joins the ticker. Accepts NULL.
void sched_jobs_stop(sched_jobs *k);

// sched_jobs_free frees everything; call after the server closed. Accepts NULL.
void sched_jobs_free(sched_jobs *k);

// sched_jobs_lock / unlock take the kernel lock (for kinds' threads).
void sched_jobs_lock(sched_jobs *k);
void sched_jobs_unlock(sched_jobs *k);

// sched_jobs_status_json returns job id's status document (the one
// Jobs/Status sends: the kernel's fields plus its kind's), or, when id is
// NULL, an array of every job's, oldest first; NULL when there is no such
// job or memory ran out. The caller frees it with cJSON_Delete. Takes the
// lock (call it without holding it).
cJSON *sched_jobs_status_json(sched_jobs *k, const char *id);

// sched_jobs_leases_of returns how many work items node holds now, over
// every job (the work slots it has in use). Takes the lock.
size_t sched_jobs_leases_of(sched_jobs *k, uint64_t node);

// sched_jobs_stopping reports whether the scheduler is stopping. Lock held.
bool sched_jobs_stopping(const sched_jobs *k);

// sched_jobs_wait_ms waits on the kernel's condition (signalled at every
// report and state change) for up to ms. Lock held.
void sched_jobs_wait_ms(sched_jobs *k, uint64_t ms);

// sched_jobs_waiting counts the worker slots whose Work/Get is held for
// lack of work (a kind that releases work on demand sizes it by this).
// Lock held.
size_t sched_jobs_waiting(const sched_jobs *k);

// Accessors for the kernel's shared context.
const char *sched_jobs_state_dir(const sched_jobs *k);
sched_members *sched_jobs_members(sched_jobs *k);
const char *sched_jobs_token(const sched_jobs *k);
rpc_tls sched_jobs_tls(const sched_jobs *k);

// sched_jobs_data_path writes the stored path of data set sha (Data service).
void sched_jobs_data_path(const sched_jobs *k, const char *sha, char *out, size_t n);

// ---------------------------------------------------------------- one job
// Unless said otherwise: lock held.

void *sched_job_impl(sched_job *j);
sched_jobs *sched_job_kernel(sched_job *j);
const char *sched_job_id(const sched_job *j);
const char *sched_job_dir(const sched_job *j); // no lock needed: fixed at creation
job_state sched_job_state(const sched_job *j);
bool sched_job_restored(const sched_job *j); // came back from disk at start-up
// sched_job_data finds the data reference with the given role, or NULL.
const sched_data_ref *sched_job_data(const sched_job *j, const char *role);
// sched_job_elapsed_s: seconds since the job started running (to its end).
double sched_job_elapsed_s(const sched_job *j);

// sched_job_set_policy sets the item lease (ms), the retries per item and
// the most items leased at once (0 = no limit). Call in start.
void sched_job_set_policy(sched_job *j, uint32_t lease_ms, uint32_t retries,
                          uint32_t max_concurrent);

// sched_job_add_items adds n PENDING items (indices continue from the
// current count) and queues them. Errors: CN_ENOMEM.
cn_err sched_job_add_items(sched_job *j, size_t n);

// sched_job_add_held_items adds n HELD items (indices continue from the
// current count): they are not handed out until sched_job_item_release
// queues them. A report for a held item is refused (its sender told to
// stop). Errors: CN_ENOMEM.
cn_err sched_job_add_held_items(sched_job *j, size_t n);

// sched_job_item_release queues a HELD item (PENDING). Returns false if it
// was not held.
bool sched_job_item_release(sched_job *j, uint64_t item);

// sched_job_add_item_for adds one PENDING item that only worker node may
// take (node 0: any worker); *index receives its index. A pinned item whose
// worker dies goes back to pending for the same worker (it fails once its
// retries are used up). Errors: CN_ENOMEM.
cn_err sched_job_add_item_for(sched_job *j, uint64_t node, uint64_t *index);

// sched_job_item_cancel ends a PENDING, HELD or LEASED item without a result
// (FAILED, without item_failed): it is not handed out again, and its holder
// is told to stop at its next report. Returns false if it had ended.
bool sched_job_item_cancel(sched_job *j, uint64_t item);

// sched_job_item_settle marks a PENDING or HELD item DONE without running
// it (its result was replayed from the log). Returns false otherwise.
bool sched_job_item_settle(sched_job *j, uint64_t item);

// sched_job_item_info reports an item's state, attempts and holder.
void sched_job_item_info(const sched_job *j, uint64_t item, item_state *state, uint32_t *attempts,
                         uint64_t *node);

// sched_job_items counts items in each state (any pointer may be NULL);
// held items count in total only.
void sched_job_items(const sched_job *j, size_t *total, size_t *pending, size_t *leased,
                     size_t *done, size_t *failed);

// sched_job_log appends rec (borrowed) to the results log, with "type" and
// "t" (seconds since the job started) already in it when the kind set them.
cn_err sched_job_log(sched_job *j, const cJSON *rec);

// sched_job_write_json writes cJSON o (borrowed) pretty-printed and
// atomically to the job's directory as name. Logs failures.
void sched_job_write_json(sched_job *j, const char *name, const cJSON *o);

// sched_job_finish ends a RUNNING job: DONE, or FAILED with why. Pending
// items are dropped; leased ones are told to stop at their next report.
// A no-op when the job has already ended.
void sched_job_finish(sched_job *j, job_state final, const char *why);

// sched_job_overhead_ms: mean scheduler time per item (handing it out and
// taking its result), without the durable write of its record.
double sched_job_overhead_ms(const sched_job *j);

// sched_job_record_ms: mean time per item spent writing and syncing its
// record to the results log (the disk's fdatasync latency, mostly).
double sched_job_record_ms(const sched_job *j);

#endif
