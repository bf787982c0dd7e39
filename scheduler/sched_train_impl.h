// sched_train_impl.h: what the training kind (sched_train.c: the job, the
// parameter-server driver) shares with its federated round driver
// (sched_fed.c). Folder-private. Thread rule: as sched_job.h; "Lock held"
// where said.
#ifndef CANOPY_SCHED_TRAIN_IMPL_H
#define CANOPY_SCHED_TRAIN_IMPL_H

#include <pthread.h>

#include "ml/ds.h"
#include "ml/mlp.h"
#include "scheduler/sched_job.h"
#include "scheduler/sched_model.h"
#include "scheduler/train_spec.h"

#define MAX_EVALS 4096

extern const char *const SCHED_TRAIN_ROLES[4]; // the data sets a training job names

typedef struct rank_info {
    bool done;
    uint64_t step;
    uint32_t epoch;
    double loss;
    uint64_t samples;
    double seconds, compute_s, comm_s;
    uint64_t bytes_sent, bytes_recv;
} rank_info;

typedef struct eval_point {
    double t, acc, loss, sps;
    uint64_t step;
} eval_point;

typedef struct train_job {
    train_spec spec;
    char sha[4][SCHED_SHA_LEN]; // ROLES order
    // fixed once configured (and replayed from the "configured" record)
    bool configured;
    mlp_shape shape;
    uint64_t steps_per_epoch, steps;
    char (*urls)[256]; // (shards)
    rank_info *ranks;  // (workers)
    eval_point *evals;
    size_t n_evals;
    double acc, test_loss;
    uint32_t shard_restarts;
    uint64_t staleness[PS_STALE_BUCKETS];
    double time_to_target;     // seconds; -1 = not reached
    bool finished;             // a summary was written (or replayed)
    uint64_t waiting_since_ms; // BSP/SSP admission: a rank has had no worker since
    pthread_t thread;
    bool thread_started;
    struct fed_run *fed; // "mode": "federated": the rounds (sched_fed.c)
} train_job;

// The running job's model-side state, owned by the job's thread.
typedef struct run {
    sched_job *j;
    train_job *t;
    sched_jobs *k;
    ds_dataset *test;
    mlp_ws *ws;
    float *params;
    sched_model *model;
    ps_shard_cfg cfg;
    char err[CN_ERRBUF_LEN];
} run;

// sched_train_num reads a number member (0 when absent).
double sched_train_num(const cJSON *o, const char *key);
// sched_train_log appends o to the job's results log and frees it. Lock held.
void sched_train_log(sched_job *j, cJSON *o);
// sched_train_load_shape loads the test set and fixes the model's shape;
// *n_train receives the training rows. No lock.
cn_err sched_train_load_shape(run *r, uint64_t *n_train);
// sched_train_connect loads the test set, fixes the shape, picks the
// shards and configures them (a restored job reconnects and has them
// restore their checkpoints if they lost the job), and records it. No lock.
// *resumed says whether the job was restored from its log.
cn_err sched_train_connect(run *r, bool *resumed);
// sched_train_fill_cfg fills r->cfg (the shards' configuration) from the spec.
void sched_train_fill_cfg(run *r);
// sched_train_log_configured records the shards and the shape. Lock held.
void sched_train_log_configured(run *r, bool restored);
// sched_train_watch_shards configures again a shard that lost the job (it
// restores its checkpoint) and records it; true when one did. No lock.
bool sched_train_watch_shards(run *r);
// sched_train_add_eval records an evaluation at step (or round). Lock held.
void sched_train_add_eval(run *r, double acc, double loss, uint64_t step);
// sched_train_finish evaluates the final model, saves it and writes the
// summary. Called without the lock; returns with it held.
void sched_train_finish(run *r);
// sched_train_sps is the job's throughput (samples/s summed over ranks).
double sched_train_sps(const train_job *t);
uint64_t sched_train_slowest_step(const train_job *t);
// sched_train_bytes: model bytes the workers (or clients) moved so far.
double sched_train_bytes(const train_job *t);

// --- sched_fed.c: the federated round driver ("mode": "federated")
// sched_fed_main is the job thread of a federated job (arg: a run).
void *sched_fed_main(void *arg);
// The kind's callbacks for federated jobs (lock held).
char *sched_fed_task(sched_job *j, uint64_t item, uint32_t attempt);
void sched_fed_item_done(sched_job *j, uint64_t item, bool ok, const char *error,
                         const cJSON *result);
void sched_fed_item_failed(sched_job *j, uint64_t item, const char *why);
void sched_fed_replay(sched_job *j, const cJSON *rec);
void sched_fed_status(sched_job *j, cJSON *out);
double sched_fed_progress(sched_job *j);
void sched_fed_summary(const train_job *t, cJSON *o);
void sched_fed_free(train_job *t);
double sched_fed_bytes(const train_job *t);

#endif
