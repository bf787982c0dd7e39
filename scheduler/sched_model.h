// sched_model.h: a job's model on the parameter-server shards, seen from the
// scheduler: choose the shards, configure them with their key ranges (or
// have them restore their checkpoints), notice a shard that lost the job
// (restarted) and configure it again, evaluate the global model on a test
// set, save it, and sum the shards' statistics. Training uses it now; the
// federated round driver uses the same object.
// Thread rule: one thread at a time per sched_model (the job's own thread);
// it makes blocking RPC calls, so never hold the kernel lock around it.
#ifndef CANOPY_SCHED_MODEL_H
#define CANOPY_SCHED_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "ml/ds.h"
#include "ml/mlp.h"
#include "ps/ps.h"
#include "scheduler/sched_members.h"

#define SCHED_MODEL_MAX_SHARDS 64

// sched_model_pick_shards writes the RPC URLs of the n live ps nodes with
// the lowest ranks into urls. Errors: CN_EUNAVAIL when fewer are alive; err
// says how many and what to do.
cn_err sched_model_pick_shards(sched_members *members, uint32_t n, char (*urls)[256], char *err,
                               size_t errlen);

typedef struct sched_model sched_model;

typedef struct sched_model_opts {
    const char *const *urls; // (cfg->shards) shard URLs
    const ps_shard_cfg *cfg; // job id, optimizer, mode, checkpoints (shard index unused)
    const mlp_shape *shape;  // the model
    const char *token;
    rpc_tls tls;
} sched_model_opts;

// sched_model_open connects to the shards (no call is made yet).
// Errors: those of ps_client_open, CN_ENOMEM.
cn_err sched_model_open(sched_model **out, const sched_model_opts *opts, char *err, size_t errlen);

// sched_model_configure gives every shard its range of init (the full
// parameter vector, (n_params)), or, with restore, has shards restore their
// checkpoints where they have one (*restored, may be NULL, says whether
// any did). Errors: those of ps_client_configure.
cn_err sched_model_configure(sched_model *m, const float *init, bool restore, bool *restored,
                             char *err, size_t errlen);

// sched_model_lost reports whether a shard no longer holds the job (it
// restarted). Errors are treated as "not lost" (a shard that does not
// answer is waited for by its clients).
bool sched_model_lost(sched_model *m);

// sched_model_pull copies the current global model into params (n_params);
// *clock (may be NULL) receives the shards' clock (the open round of a
// federated job).
cn_err sched_model_pull(sched_model *m, float *params, uint64_t *clock, char *err, size_t errlen);

// sched_model_close_round closes a federated round on every shard (see
// ps_client_close_round).
cn_err sched_model_close_round(sched_model *m, uint64_t round, bool apply, ps_round_close *out,
                               char *err, size_t errlen);

// sched_model_evaluate pulls the global model into params and scores it on
// test (ws sized for test's rows in batches). acc and loss receive the
// accuracy and the mean cross-entropy.
cn_err sched_model_evaluate(sched_model *m, const ds_dataset *test, mlp_ws *ws, float *params,
                            double *acc, double *loss, char *err, size_t errlen);

// The shards' statistics summed.
typedef struct sched_model_stats {
    uint64_t staleness[PS_STALE_BUCKETS];
    uint64_t checkpoints, duplicates;
    double apply_seconds, wait_seconds;
    uint32_t answered; // shards that answered
} sched_model_stats;

void sched_model_stats_sum(sched_model *m, sched_model_stats *out);

// sched_model_close closes the connections. Accepts NULL.
void sched_model_close(sched_model *m);

#endif
