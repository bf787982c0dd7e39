// wk_loop.h: the background loop every worker role runs (sweep units,
// training assignments): its own RPC client to the scheduler, carrying the
// node's identity, a thread, and a stop flag the loop polls between units.
#ifndef CANOPY_WK_LOOP_H
#define CANOPY_WK_LOOP_H

#include <pthread.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "proto/rpc.h"

// Embedded in its owner. Thread rule: started and stopped by one thread;
// `stopping` is read by the loop thread.
typedef struct wk_loop {
    rpc_client *client; // to the scheduler, owned
    pthread_t thread;
    _Atomic int stopping;
} wk_loop;

// wk_loop_start opens the client (url, token, tls, node_id) and starts fn(arg)
// on a new thread; `what` names the loop in errors ("sweep"). On error
// nothing is left running. Errors: those of rpc_client_open, CN_ENOMEM.
cn_err wk_loop_start(wk_loop *l, const char *url, const char *token, rpc_tls tls, uint64_t node_id,
                     void *(*fn)(void *), void *arg, const char *what, char *err, size_t errlen);

// wk_loop_stop asks the loop to stop, waits for it (the unit in progress
// finishes first) and closes the client.
void wk_loop_stop(wk_loop *l);

#endif
