// sweep.h: the Sweep service: distributed hyper-parameter sweeps.
//
// A sweep expands into trials (sweep_spec.h); each trial into `folds` units,
// one per cross-validation fold, so one trial spreads over every worker and
// a lost worker costs one fold. Workers pull units (Sweep/GetWork, a
// long-poll: the scheduler never sends work to a busy worker), fetch the
// data set once by content hash (Sweep/FetchData), and report each unit
// (Sweep/Report). Every finished unit is appended to the sweep's results
// log (JSON lines, fsync per record) in the state directory; a resubmission
// with resume replays the log, so nothing finished is redone and nothing is
// recorded twice. A unit whose worker dies (heartbeats lapse) or that runs
// past its timeout is re-queued, up to the sweep's retry limit.
//
// Per unit state machine: PENDING -> RUNNING -> DONE, or RUNNING -> PENDING
// (lost, timed out, failed with retries left) or -> FAILED.
// Thread rule: all state behind one mutex; handlers and the ticker thread
// take it briefly; fsync of a record happens under it (records are small).
#ifndef CANOPY_SWEEP_H
#define CANOPY_SWEEP_H

#include "common/cn_err.h"
#include "proto/rpc.h"
#include "scheduler/sched_members.h"

typedef struct sweep_svc sweep_svc;

// sweep_svc_new registers the Sweep service on server (before it starts)
// and keeps sweeps under state_dir/sweeps and data under state_dir/data.
// members is borrowed (for live-worker counts and death notifications).
cn_err sweep_svc_new(sweep_svc **out, rpc_server *server, sched_members *members,
                     const char *state_dir, char *err, size_t errlen);

// sweep_svc_stop answers every held long-poll (no work, shutdown) and makes
// new ones return at once. Call before closing the server, so no call is
// left pending. Accepts NULL.
void sweep_svc_stop(sweep_svc *s);

// sweep_svc_free frees everything. Call after the server is closed.
// Accepts NULL.
void sweep_svc_free(sweep_svc *s);

#endif
