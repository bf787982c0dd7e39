// wk_train.h: the executor of a training job's work item: train one rank's
// part of the data against the job's parameter-server shards.
//
// One step at clock t: gather a batch from this rank's rows (a per-epoch
// shuffle seeded by (seed, rank, epoch), cycling when the part is smaller
// than steps_per_epoch * batch), compute the gradient with an mlp_trainer on
// the slot's threads using the values pulled for t, and push it with
// ps_client_push_pull, which returns the values for t + 1 in the same round
// trip. A worker that takes over a rank (the previous holder died) starts
// from the clock the shards expect from that rank, so the job continues.
//
// The task arrives as the train kind's JSON document; wk_train_task_read
// turns it into a plain struct (an unknown partition or consistency name is
// an error, not a default).
#ifndef CANOPY_WK_TRAIN_H
#define CANOPY_WK_TRAIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/cn_err.h"
#include "ml/ds.h"
#include "ml/mlp.h"
#include "ml/partition.h"
#include "proto/rpc.h"
#include "ps/ps.h"

#define WK_TRAIN_MAX_SHARDS 64

typedef struct wk_train_task {
    char job_id[PS_JOB_ID_LEN];
    uint32_t rank, workers;
    uint32_t n_shards;
    char shard_urls[WK_TRAIN_MAX_SHARDS][256];
    uint64_t n_params;
    int widths[MLP_MAX_LAYERS + 1]; // inputs, hidden..., classes
    int n_widths;
    char train_images[65], train_labels[65]; // by hash
    uint64_t train_rows;                     // 0 = all
    part_kind partition;
    double alpha;
    uint32_t k_labels;
    uint64_t seed;
    uint32_t batch, epochs;
    uint64_t steps_per_epoch;
    ps_mode consistency;
    double report_every_s;
    int call_timeout_ms;
} wk_train_task;

// wk_train_task_read reads a task document. Errors: CN_EINVAL with err
// naming the key.
cn_err wk_train_task_read(const cJSON *doc, wk_train_task *out, char *err, size_t errlen);

// wk_train_report_fn receives a progress document (step, epoch, loss,
// samples, seconds, compute_seconds, comm_seconds, bytes_sent,
// bytes_received); returns true when the scheduler says stop.
typedef bool (*wk_train_report_fn)(void *arg, const cJSON *progress);

typedef struct wk_train_env {
    const char *token; // for the shards
    rpc_tls tls;
    int threads;                // gradient threads (BLAS runs single-threaded in each)
    const atomic_int *stopping; // set when the worker shuts down
    wk_train_report_fn report;
    void *arg;
} wk_train_env;

// wk_train_run trains rank t->rank on d (the whole training set; the rank
// keeps its deterministic part) until its steps are done, the scheduler
// says stop, or the worker stops. On CN_OK *result (caller frees) is the
// final progress document with "done" true when every step was made.
// Errors: CN_EINVAL (the task does not fit d), those of ps_client, CN_ENOMEM.
cn_err wk_train_run(const wk_train_task *t, const ds_dataset *d, const wk_train_env *env,
                    cJSON **result, char *err, size_t errlen);

#endif
