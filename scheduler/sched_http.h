// sched_http.h: the scheduler's dashboard, JSON API and /metrics, served
// over HTTP (proto/http_server.h) by `canopy scheduler --http ADDR`.
//
// Read-only: every route is a GET that reads the membership table, the job
// kernel (sched_jobs_status_json) or a job's result files
// (sched_figures.h); nothing on it changes the cluster. The routes:
//   /, /cluster, /jobs, /sweep, /training, /federated   pages (one embedded
//        shell, app.css and app.js; the script polls the API every 2 s)
//   /api/nodes                   the scheduler and every node
//   /api/jobs                    every job's status document
//   /api/jobs/ID                 one job's, with its figure names
//   /api/jobs/ID/records/TYPE    the job's results-log records of TYPE
//                                ("eval", "worker", "round", "fold", ...)
//   /api/jobs/ID/FIGURE.svg      one figure (sched_figures.h)
//   /metrics                     Prometheus text: RPC counters and latency
//                                histograms, node and job gauges
// docs/dashboard.md documents them.
// Thread rule: handlers run on the HTTP server's threads and take the
// kernel's and the membership table's locks only through their accessors.
#ifndef CANOPY_SCHED_HTTP_H
#define CANOPY_SCHED_HTTP_H

#include <stddef.h>

#include "common/cn_err.h"
#include "proto/rpc.h"
#include "scheduler/sched_job.h"
#include "scheduler/sched_members.h"

typedef struct sched_http sched_http;

typedef struct sched_http_opts {
    const char *addr;       // "HOST:PORT"
    const char *token;      // cluster token (required beyond loopback)
    sched_jobs *jobs;       // borrowed
    sched_members *members; // borrowed
    rpc_server *server;     // borrowed: its metrics
} sched_http_opts;

// sched_http_open starts serving. Errors: CN_EINVAL (address, or no token
// beyond loopback), CN_EIO (cannot bind); err says which and how to fix.
cn_err sched_http_open(sched_http **out, const sched_http_opts *opts, char *err, size_t errlen);

// sched_http_url writes "http://HOST:PORT" with the bound port.
void sched_http_url(const sched_http *h, char *buf, size_t n);

// sched_http_close stops serving; call before freeing what opts borrowed.
// Accepts NULL.
void sched_http_close(sched_http *h);

#endif
