// sched_client.h: typed clients for the scheduler's job services, used by
// the CLI and by workers, as ps_client is for the shards:
//   Data: a content-addressed store of data sets (has, put, fetch);
//   Jobs: submit, status, list and cancel jobs of any kind;
//   Work: the queue worker slots take items from and report to.
// Job specs, task and result documents are JSON: this module moves them
// and knows nothing of what they say (trials, gradients). No protobuf type
// appears in this header.
// Thread-safety: every function may be called concurrently on one client.
#ifndef CANOPY_SCHED_CLIENT_H
#define CANOPY_SCHED_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/cn_err.h"
#include "proto/rpc.h"

#define SCHED_ID_LEN 160
#define SCHED_SHA_LEN 65

// ---------------------------------------------------------------- Data

// A data set as a job names it.
typedef struct sched_data_ref {
    char role[64]; // "data", "train_images", ...
    char sha256[SCHED_SHA_LEN];
    uint64_t size;  // bytes
    char name[256]; // the file's base name
} sched_data_ref;

// sched_data_upload hashes the file at path and sends its bytes to the
// scheduler unless it holds them already; ref is filled either way.
// *uploaded (may be NULL) says whether bytes were sent.
// Errors: CN_ENOTFOUND/CN_EIO (the file), CN_ETOOBIG (over max_bytes),
// CN_EUNAVAIL (the scheduler), CN_EINVAL (refused); err says which.
cn_err sched_data_upload(rpc_client *c, const char *role, const char *path, size_t max_bytes,
                         sched_data_ref *ref, bool *uploaded, char *err, size_t errlen);

// sched_data_fetch downloads data set sha in chunks into *bytes (malloc'd,
// caller frees; *len bytes) and verifies its hash.
// Errors: CN_EINVAL (sha is not a SHA-256 hex digest), CN_EUNAVAIL (RPC
// failure), CN_ENOTFOUND (the scheduler does not hold it), CN_EFORMAT (the
// bytes do not hash to sha), CN_ETOOBIG (over max_bytes), CN_ENOMEM.
cn_err sched_data_fetch(rpc_client *c, const char *sha, size_t max_bytes, uint8_t **bytes,
                        size_t *len, char *err, size_t errlen);

// sched_sha_valid reports whether s is 64 lowercase hex digits.
bool sched_sha_valid(const char *s);

// ---------------------------------------------------------------- Jobs

typedef struct sched_submit {
    const char *kind;      // "sweep" | "train"
    const char *spec_json; // the job file's text
    const char *spec_name; // its name, for messages
    const sched_data_ref *data;
    size_t n_data;
    bool resume, fresh;
} sched_submit;

typedef struct sched_submitted {
    char job_id[SCHED_ID_LEN];
    char results_dir[1024];
    bool existing; // an existing job was returned (resume)
    cJSON *status; // the job's status document; caller frees (cJSON_Delete)
} sched_submitted;

// sched_jobs_submit submits a job. On RPC_OK out is filled. detail receives
// the status detail otherwise (INVALID_ARGUMENT: the spec or data is bad;
// ALREADY_EXISTS: the same job runs or has results; FAILED_PRECONDITION).
rpc_code sched_jobs_submit(rpc_client *c, const sched_submit *sub, sched_submitted *out,
                           char *detail, size_t detail_len);

// sched_jobs_status fetches a job's state ("running", ...) and its status
// document (*status, caller frees).
rpc_code sched_jobs_status(rpc_client *c, const char *job_id, char state[16], cJSON **status,
                           char *detail, size_t detail_len);

// One row of `canopy jobs`.
typedef struct sched_job_info {
    char job_id[SCHED_ID_LEN];
    char kind[16];
    char state[16];
    char name[128];
    double progress; // 0..1
    uint64_t created_unix_ms;
    double elapsed_seconds;
    char results_dir[1024];
    char error[512];
} sched_job_info;

// sched_jobs_list lists jobs (of kind, or all when kind is NULL or ""),
// oldest first, into *jobs (malloc'd, caller frees).
rpc_code sched_jobs_list(rpc_client *c, const char *kind, sched_job_info **jobs, size_t *n,
                         char *detail, size_t detail_len);

// sched_jobs_cancel cancels a job; state receives its state afterwards.
// NOT_FOUND: no such job; FAILED_PRECONDITION: it had already ended.
rpc_code sched_jobs_cancel(rpc_client *c, const char *job_id, const char *reason, char state[16],
                           char *detail, size_t detail_len);

// ---------------------------------------------------------------- Work

typedef struct sched_work_item {
    char job_id[SCHED_ID_LEN];
    uint64_t item;
    char kind[16];
    uint32_t attempt;
    uint32_t lease_ms;
    cJSON *task; // the task document; freed by sched_work_item_fini
} sched_work_item;

// sched_work_get asks for one item for slot, holding the call up to wait_ms
// when there is none. *got says whether item was filled; *shutdown that the
// scheduler is stopping. A task that is not a JSON object is INTERNAL.
rpc_code sched_work_get(rpc_client *c, uint64_t node, uint32_t slot, uint32_t wait_ms,
                        sched_work_item *item, bool *got, bool *shutdown, char *detail,
                        size_t detail_len);

// sched_work_item_fini frees the item's task. Accepts a zeroed item.
void sched_work_item_fini(sched_work_item *item);

typedef struct sched_report {
    uint64_t node;
    const char *job_id;
    uint64_t item;
    uint32_t attempt;
    bool final;          // false: progress, which renews the lease
    bool ok;             // with final
    const char *error;   // with final && !ok
    const cJSON *result; // the kind's result or progress document; may be NULL
} sched_report;

// sched_work_report sends a report. *stop (may be NULL) is set when the
// worker should stop working on the item; *duplicate when the item had
// already been finished by another attempt.
rpc_code sched_work_report(rpc_client *c, const sched_report *r, bool *stop, bool *duplicate,
                           char *detail, size_t detail_len);

#endif
