// train.h: the Train service: data-parallel MLP training over parameter-
// server shards.
//
// A job is a JSON spec (train_spec_parse). On Submit the scheduler picks S
// live ps nodes (lowest ranks first), initialises the model from the seed
// and configures each shard with its balanced key range
// (ParameterServer/Configure); workers polling Train/GetAssignment get a
// rank, the shard URLs and their data shard (partition + seed), run
// pull -> gradient -> push, and Report their metrics. A job thread pulls the
// global model every eval_every_s seconds and evaluates it on the test set;
// it also watches the shards and configures a restarted one again (it then
// restores its checkpoint). Everything lands in state_dir/train/<job>/:
// spec.json, results.jsonl (one JSON record per line, fsync each:
// "eval", "worker", "shard_restart", "summary"), summary.json and
// model.cnm (ml's model format).
//
// Per job state machine: CONFIGURING -> RUNNING -> DONE, or -> FAILED (bad
// data, shards unreachable, a worker's error). One job runs at a time
// (shards hold one job).
// Thread rule: service state behind one mutex; each job has its own thread.
#ifndef CANOPY_TRAIN_H
#define CANOPY_TRAIN_H

#include <stdint.h>

#include "common/cn_err.h"
#include "ml/optim.h"
#include "ml/partition.h"
#include "ps/ps.h"
#include "proto/rpc.h"
#include "scheduler/sched_members.h"

#define TRAIN_MAX_HIDDEN 8
#define TRAIN_PATH_LEN 1024

// train_spec is a validated job file. Plain data.
typedef struct train_spec {
    char name[64];
    char train_images[TRAIN_PATH_LEN], train_labels[TRAIN_PATH_LEN];
    char test_images[TRAIN_PATH_LEN], test_labels[TRAIN_PATH_LEN];
    uint64_t train_rows, test_rows; // 0 = all
    int hidden[TRAIN_MAX_HIDDEN];
    int n_hidden;
    optim_cfg optim;
    uint32_t batch, epochs;
    ps_mode mode;
    uint32_t staleness;
    uint32_t shards, workers;
    part_kind partition;
    double alpha;
    uint32_t k_labels;
    uint64_t seed;
    double eval_every_s;
    uint32_t checkpoint_every; // shard updates between checkpoints; 0 = never
    uint32_t threads;          // BLAS threads per worker; 0 = the worker's default
    double target_accuracy;    // for time-to-accuracy in the summary; 0 = none
    double report_every_s;
} train_spec;

// train_spec_parse validates the job JSON text (origin names it in
// messages) into out, with defaults for absent keys (Fashion-MNIST from
// /usr/share/datasets/fashion-mnist, hidden [256, 128], sgd lr 0.05,
// batch 64, 5 epochs, bsp, 1 shard, 1 worker, iid, seed 1, eval every 2 s,
// checkpoint every 100 updates).
// Errors: CN_EINVAL / CN_EFORMAT with err naming the key, the value and
// what is allowed, e.g. `job.json: key "consistency": "sync" is not one of
// bsp|asp|ssp`, and `unknown key "lrr" (did you mean "lr"?)`.
cn_err train_spec_parse(const char *json, const char *origin, train_spec *out, char *err,
                        size_t errlen);

typedef struct train_svc train_svc;

// train_svc_new registers the Train service on server (before it starts),
// keeping jobs under state_dir/train. members is borrowed (ps addresses,
// worker deaths); token and tls are used to call the shards.
cn_err train_svc_new(train_svc **out, rpc_server *server, sched_members *members,
                     const char *state_dir, const char *token, rpc_tls tls, char *err,
                     size_t errlen);

// train_svc_stop stops job threads (running jobs are marked failed:
// "scheduler stopped"). Call before closing the server. Accepts NULL.
void train_svc_stop(train_svc *s);

// train_svc_free frees everything; call after the server is closed.
// Accepts NULL.
void train_svc_free(train_svc *s);

#endif
