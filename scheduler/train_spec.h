// train_spec.h: the training job file: model, optimizer, data, consistency
// and the cluster it wants, validated with defaults for absent keys.
#ifndef CANOPY_TRAIN_SPEC_H
#define CANOPY_TRAIN_SPEC_H

#include <stdint.h>

#include "common/cn_err.h"
#include "ml/optim.h"
#include "ml/partition.h"
#include "ps/ps.h"

#define TRAIN_MAX_HIDDEN 8
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
