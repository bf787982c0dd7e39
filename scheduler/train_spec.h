// train_spec.h: the training job file: model, optimizer, data, consistency
// and the cluster it wants, validated with defaults for absent keys.
#ifndef CANOPY_TRAIN_SPEC_H
#define CANOPY_TRAIN_SPEC_H

#include <stdint.h>

#include "common/cn_err.h"
#include "federated/fed.h"
#include "ml/optim.h"
#include "ml/partition.h"
#include "ps/ps.h"

#define TRAIN_MAX_HIDDEN 8
#define TRAIN_MAX_SLOW 64

// train_fed holds the keys of "mode": "federated" (docs/federated.md).
typedef struct train_fed {
    bool on;                  // mode federated (else the parameter-server mode)
    uint32_t rounds;          // (10)
    uint32_t clients;         // clients, each a part of the data (default: workers)
    double clients_per_round; // a count >= 1, or a fraction of clients in (0, 1); 0 = all
    uint32_t min_clients;     // at least this many selected (1)
    uint32_t local_epochs;    // (1)
    uint32_t local_batch;     // (32)
    optim_cfg local;          // the clients' optimizer (sgd, lr 0.05)
    double round_deadline_s;  // a round closes this long after it opens; 0 = no deadline
    uint32_t min_updates;     // a round closes once this many updates are in; 0 = all
    fed_server server;        // strategy and its server optimizer
    double mu;                // FedProx (0.01)
    double dropout;           // probability that a selected client drops out of a round
    bool local_data;          // "client_data": "local": each worker's --data DIR
    uint32_t slow[TRAIN_MAX_SLOW]; // clients that run `slowdown` times slower
    uint32_t n_slow;
    double slowdown; // (1)
    double delay_s;  // slow clients also wait this long before sending their update (0)
} train_fed;
#define TRAIN_PATH_LEN 1024

// train_spec is a validated job file. Plain data. The four IDX paths are
// read on the machine that submits the job (`canopy train` uploads the
// files to the scheduler's Data service); the cluster names them by hash.
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
    double admission_timeout_s; // BSP/SSP: how long to wait for every rank's worker
    train_fed fed;              // "mode": "federated"
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

#endif
