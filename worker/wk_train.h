// wk_train.h: the worker's training loop: take a rank in a training job from
// the scheduler (Train/GetAssignment), load the training data and keep this
// rank's deterministic part of it, then pull -> gradient -> push-pull
// against the job's parameter-server shards, reporting loss and throughput
// (Train/Report) every report_every_s seconds and at the end.
//
// A worker that takes over a rank (the previous holder died) starts from the
// clock the shards expect from that rank, so the job continues. Runs on its
// own thread, beside the sweep loop.
#ifndef CANOPY_WK_TRAIN_H
#define CANOPY_WK_TRAIN_H

#include <stdint.h>

#include "common/cn_err.h"
#include "proto/cluster_client.h"
#include "proto/rpc.h"

typedef struct wk_train wk_train;

typedef struct wk_train_opts {
    const char *scheduler_url;
    const char *token;
    rpc_tls tls;
    uint64_t node_id;     // the worker's registered id
    const char *name;     // worker name
    int threads;          // gradient threads (mlp_trainer); BLAS runs single-threaded
    int poll_ms;          // how often to ask for an assignment; 0 = 200
    cluster_agent *agent; // for status text; borrowed, may be NULL
} wk_train_opts;

// wk_train_start starts the loop thread. Errors: CN_EINVAL, CN_ENOMEM.
cn_err wk_train_start(wk_train **out, const wk_train_opts *opts, char *err, size_t errlen);

// wk_train_stop asks the loop to stop (a running job stops after its
// current step) and joins it. Accepts NULL.
void wk_train_stop(wk_train *w);

#endif
