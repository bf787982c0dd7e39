// wk_fed.h: the executor of a federated client's round: pull the global
// model at the round, train locally for local_epochs over the client's own
// data (its part of the job's data set, or the worker's --data files) with
// the local optimizer and, under FedProx, the proximal term, then push the
// model delta with the client's sample count to every shard. An update
// that reaches a shard after the round closed is refused there; the client
// reports it as late and joins a later round.
//
// The task arrives as the train kind's JSON document with "mode":
// "federated"; wk_fed_task_read turns it into a plain struct.
#ifndef CANOPY_WK_FED_H
#define CANOPY_WK_FED_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/cn_err.h"
#include "ml/ds.h"
#include "ml/optim.h"
#include "ml/partition.h"
#include "worker/wk_train.h"

typedef struct wk_fed_task {
    char job_id[PS_JOB_ID_LEN];
    uint32_t client, clients;
    uint64_t round;
    uint32_t n_shards;
    char shard_urls[WK_TRAIN_MAX_SHARDS][256];
    uint64_t n_params;
    int widths[MLP_MAX_LAYERS + 1];
    int n_widths;
    bool local_data;                         // the worker's --data, not a part
    char train_images[65], train_labels[65]; // by hash (partition)
    uint64_t train_rows;
    part_kind partition;
    double alpha;
    uint32_t k_labels;
    uint64_t seed;
    uint32_t local_epochs, local_batch;
    optim_cfg local; // the client's optimizer
    float mu;        // FedProx (0: FedAvg's plain local training)
    double slowdown; // >= 1: this client runs that many times slower (experiments)
    double delay_s;  // and waits this long before sending its update
    double report_every_s;
    int call_timeout_ms;
} wk_fed_task;

// wk_fed_task_read reads a task document. Errors: CN_EINVAL with err naming
// the key.
cn_err wk_fed_task_read(const cJSON *doc, wk_fed_task *out, char *err, size_t errlen);

// wk_fed_run runs the client's round on d (the whole data set of the job,
// of which the client keeps its part, or the worker's own data) and writes
// the result document (samples, loss, compute/upload/download seconds,
// bytes, labels histogram) into *result (caller frees); with "late": true
// when the round had closed (still CN_OK). Progress goes to env->report,
// whose stop ends the round early (no update sent). Errors: CN_EINVAL (the
// task does not fit d), those of ps_client.
cn_err wk_fed_run(const wk_fed_task *t, const ds_dataset *d, const wk_train_env *env,
                  cJSON **result, char *err, size_t errlen);

#endif
