// scheduler.h: the scheduler daemon: the control plane of a canopy cluster.
//
// It serves the Cluster service (Register, Heartbeat, Status, Ping) over
// RPC, keeps the membership table and owns the state directory where job
// results are kept; the Data service (sched_data.h) and the job kernel
// (sched_job.h: Jobs and Work services, with the sweep and train kinds)
// attach to the same server.
// Thread rule: the sched object is created and closed by one thread; its
// services are thread-safe.
#ifndef CANOPY_SCHEDULER_H
#define CANOPY_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "proto/rpc.h"
#include "scheduler/sched_members.h"

typedef struct sched_opts {
    const char *listen;         // RPC URL, e.g. tcp://0.0.0.0:7070
    const char *token;          // cluster token, "" = none
    rpc_tls tls;                // for tls+tcp://
    const char *state_dir;      // results and job specs live here
    uint32_t heartbeat_ms;      // interval nodes use
    uint32_t dead_after_ms;     // silence after which a node is dead
    size_t max_msg_bytes;       // 0 = default
    int handler_threads;        // 0 = default
    uint32_t reattach_grace_ms; // restored jobs wait this long for their workers; 0 = default
    const char *http;           // dashboard HOST:PORT (sched_http.h); NULL or "" = none
} sched_opts;

typedef struct sched sched;

// sched_open creates the state dir if needed, starts membership and the RPC
// server. Errors: CN_EIO (state dir, listen), CN_EINVAL; err says which.
cn_err sched_open(sched **out, const sched_opts *opts, char *err, size_t errlen);

// sched_url writes the bound RPC URL.
cn_err sched_url(const sched *s, char *buf, size_t n);

// sched_members_of returns the membership table (owned by s).
sched_members *sched_members_of(sched *s);

// sched_server_of returns the RPC server (owned by s), for services that
// attach before sched_start.
rpc_server *sched_server_of(sched *s);

// sched_http_url_of writes the dashboard's URL ("" when there is none).
void sched_http_url_of(const sched *s, char *buf, size_t n);

// sched_start begins serving calls (and the dashboard, when opts->http).
cn_err sched_start(sched *s, char *err, size_t errlen);

// sched_close drains calls and frees everything. Accepts NULL.
void sched_close(sched *s);

#endif
