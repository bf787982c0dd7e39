// wk_exec.h: the worker's one executor: a declared number of slots, each a
// thread that long-polls the scheduler's Work/Get, runs the item it is
// handed with the executor of its kind (wk_fold for a sweep's fold,
// wk_train for a training rank) on the slot's share of the threads, and
// reports the result with Work/Report. A slot runs one item at a time, so a
// worker never runs more items than it declared, and the scheduler never
// sends work to a busy slot. Data sets come by hash through wk_data.
//
// Protobuf and the wire stop in sched_client: executors take plain structs.
// Thread rule: started and stopped by one thread; slots share only the data
// cache (thread-safe) and the client (thread-safe).
#ifndef CANOPY_WK_EXEC_H
#define CANOPY_WK_EXEC_H

#include <stdint.h>

#include "common/cn_err.h"
#include "proto/cluster_client.h"
#include "proto/rpc.h"

typedef struct wk_exec wk_exec;

typedef struct wk_exec_opts {
    const char *scheduler_url;
    const char *token;
    rpc_tls tls;
    uint64_t node_id;      // the worker's registered id
    const char *name;      // worker name, recorded with results
    int slots;             // items run at once (>= 1)
    int threads;           // threads in all; each slot gets threads / slots (at least 1)
    const char *cache_dir; // where fetched data sets are kept
    const char *data_dir;  // the worker's own data (--data), or NULL
    cluster_agent *agent;  // for status text; borrowed, may be NULL
    uint32_t poll_ms;      // long-poll hold asked for; 0 = 1000
} wk_exec_opts;

// wk_exec_start opens the client and the data cache and starts the slots.
// Errors: CN_EINVAL (slots < 1), those of wk_data_open and rpc_client_open,
// CN_ENOMEM. On error nothing is left running.
cn_err wk_exec_start(wk_exec **out, const wk_exec_opts *opts, char *err, size_t errlen);

// wk_exec_stop asks every slot to stop (a training rank stops after its
// current step, a fold finishes), joins them and frees everything.
// Accepts NULL.
void wk_exec_stop(wk_exec *x);

#endif
