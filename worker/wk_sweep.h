// wk_sweep.h: the worker's sweep loop: pull a (trial, fold) unit from the
// scheduler, make sure the data set is local (fetched once by content hash
// and cached on disk and in memory), fit and score the fold, report.
//
// Runs on its own thread; one unit at a time, each fit using the worker's
// threads, so a worker is never handed work while busy.
#ifndef CANOPY_WK_SWEEP_H
#define CANOPY_WK_SWEEP_H

#include <stdint.h>

#include "common/cn_err.h"
#include "proto/cluster_client.h"
#include "proto/rpc.h"

typedef struct wk_sweep wk_sweep;

typedef struct wk_sweep_opts {
    const char *scheduler_url;
    const char *token;
    rpc_tls tls;
    uint64_t node_id;      // the worker's registered id
    const char *name;      // worker name, recorded with results
    int threads;           // threads per fit
    const char *cache_dir; // where fetched data sets are kept
    cluster_agent *agent;  // for status text; borrowed
} wk_sweep_opts;

// wk_sweep_start starts the loop thread. Errors: CN_EIO (cache dir),
// CN_EINVAL.
cn_err wk_sweep_start(wk_sweep **out, const wk_sweep_opts *opts, char *err, size_t errlen);

// wk_sweep_stop asks the loop to stop after the current unit and joins it.
// Accepts NULL.
void wk_sweep_stop(wk_sweep *w);

#endif
