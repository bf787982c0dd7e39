// ps.h: the parameter server: key ranges, shards, the ParameterServer RPC
// service and its client.
//
// A job's model is one flat float vector of n keys (ml/mlp.h). S shards own
// balanced contiguous ranges of it, remainder included (ps_range). A shard
// (ps_shard) holds the values and optimizer state (ml/optim.h) of its range
// and applies workers' gradients under a consistency mode:
//   BSP     the mean of all W workers' gradients for clock t is applied as one
//           step; pulls for clock t+1 are released after it.
//   ASP     each gradient is applied on arrival; pulls never wait.
//   SSP(s)  applied on arrival; a worker about to compute clock c waits until
//           the slowest worker has pushed clock c - s - 1 (it is at most s
//           clocks ahead).
// A push carries (worker, clock): a repeat of a clock already applied (a
// client retry, a resend after a timeout) is ignored, so every push is
// applied once. Staleness (updates applied between the version a gradient
// was computed on and its application) is kept as a histogram.
//
// Shards checkpoint values, optimizer state and clocks (write, fsync,
// rename) every K updates; a shard restarted and configured again for the
// same job restores the checkpoint and serves on, and workers' pushes for
// later clocks move it forward (docs/ps.md, "Restart").
//
// ps_service serves a shard over RPC (the ParameterServer service of
// proto/ps.proto); ps_client is the worker and scheduler side: it splits a
// flat vector by ranges, issues the per-shard calls in parallel, and retries
// through a shard outage.
#ifndef CANOPY_PS_H
#define CANOPY_PS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "ml/optim.h"
#include "proto/rpc.h"

// ---------------------------------------------------------------- ranges

// ps_range writes the k-th of `shards` balanced contiguous ranges of [0, n)
// into [*lo, *hi): the first n % shards ranges get one extra key, so sizes
// differ by at most one and every key is owned exactly once. shards >= 1,
// k < shards (CN_ASSERT).
void ps_range(uint64_t n, uint32_t shards, uint32_t k, uint64_t *lo, uint64_t *hi);

// ps_range_owner returns the shard owning key (< n).
uint32_t ps_range_owner(uint64_t n, uint32_t shards, uint64_t key);

// ---------------------------------------------------------------- shard

// PS_ROUND is federated mode: the shard's clock is the open round; clients
// push weighted model deltas (ps_shard_push_update), which are folded into
// one streaming weighted sum; closing the round (ps_shard_close_round)
// applies the server optimizer to the negated weighted mean delta (the
// pseudo-gradient of FedOpt) and opens the next round.
typedef enum { PS_BSP = 0, PS_ASP = 1, PS_SSP = 2, PS_ROUND = 3 } ps_mode;

// ps_mode_parse maps "bsp" | "asp" | "ssp" | "round"; CN_EINVAL otherwise.
cn_err ps_mode_parse(const char *name, ps_mode *out);
const char *ps_mode_name(ps_mode m);

#define PS_JOB_ID_LEN 128
#define PS_STALE_BUCKETS 33 // staleness 0..31, then ">= 32"
#define PS_MAX_WORKERS 1024
// Clocks above this are refused: no job runs that many steps, and clock + 1
// must not wrap.
#define PS_MAX_CLOCK (UINT64_C(1) << 40)

// ps_shard_cfg describes one shard of one job. Plain data.
typedef struct ps_shard_cfg {
    char job_id[PS_JOB_ID_LEN]; // [A-Za-z0-9._-], non-empty
    uint32_t shard, shards;     // this shard's index and the count
    uint64_t n_params;          // whole vector
    uint64_t lo, hi;            // owned keys; must equal ps_range(n_params, shards, shard)
    optim_cfg optim;
    ps_mode mode;
    uint32_t staleness;        // SSP bound s
    uint32_t workers;          // 1..PS_MAX_WORKERS
    char checkpoint_dir[1024]; // "" = no checkpoints
    uint32_t checkpoint_every; // updates between checkpoints; 0 = never
} ps_shard_cfg;

// ps_shard_cfg_check validates cfg. CN_OK or CN_EINVAL with err naming the
// field.
cn_err ps_shard_cfg_check(const ps_shard_cfg *cfg, char *err, size_t errlen);

// ps_shard_checkpoint_path writes "<dir>/<job_id>.shard<k>.ckpt" into out.
void ps_shard_checkpoint_path(const ps_shard_cfg *cfg, char *out, size_t n);

// ps_stats is a snapshot of a shard's counters.
typedef struct ps_stats {
    uint64_t lo, hi, clock, version;
    uint32_t workers;
    ps_mode mode;
    uint64_t worker_clocks[64]; // first min(workers, 64)
    uint64_t staleness[PS_STALE_BUCKETS];
    uint64_t pushes, duplicates, pulls, bytes_in, bytes_out;
    uint64_t checkpoints, checkpoint_version;
    bool restored;
    double apply_seconds, wait_seconds;
    uint64_t late_updates; // PS_ROUND: updates for a round already closed
} ps_stats;

// ps_sync is what a shard reports with values and push results.
typedef struct ps_sync {
    uint64_t clock;        // BSP: steps applied; ASP/SSP: slowest worker's next clock
    uint64_t version;      // updates applied
    uint64_t worker_clock; // next clock expected from the asking worker
    bool duplicate;        // (push) ignored as already applied
} ps_sync;

// ps_shard holds one job's slice. Thread rule: every function is
// thread-safe (one mutex per shard); ps_wait_fn callbacks run with it held.
typedef struct ps_shard ps_shard;

// ps_shard_new creates a shard for cfg with initial values init (hi - lo
// floats, copied). Errors: CN_EINVAL (cfg; err says which), CN_ENOMEM.
cn_err ps_shard_new(ps_shard **out, const ps_shard_cfg *cfg, const float *init, char *err,
                    size_t errlen);

// ps_shard_restore creates a shard from the checkpoint file at path, which
// must belong to a job configured as cfg (same job, range, workers and
// mode; cfg's checkpoint settings are kept). Errors: CN_ENOTFOUND (no file),
// CN_EFORMAT / CN_EVERSION / CN_EIO (bad file: err says what),
// CN_EINVAL (the file is for another job or layout), CN_ENOMEM.
cn_err ps_shard_restore(ps_shard **out, const ps_shard_cfg *cfg, const char *path, char *err,
                        size_t errlen);

// ps_shard_free frees s. Waiters still parked are called with values NULL
// (cancelled) first. Accepts NULL.
void ps_shard_free(ps_shard *s);

// ps_shard_cfg_of returns the shard's configuration (immutable).
const ps_shard_cfg *ps_shard_cfg_of(const ps_shard *s);

// ps_shard_push applies (or, under BSP, accumulates) the gradient g
// (hi - lo floats) of worker for its step clock, computed on values of
// base_version. A clock the shard already has from this worker is a
// duplicate: ignored, with sync->duplicate set. Under BSP a push for a
// later clock than the shard's (only after a restart from an older
// checkpoint) closes the current step with the gradients received and moves
// the shard to that clock; once the shard has closed a step with every
// worker's gradient the workers cannot be ahead, and such a push is refused.
// *ckpt_due is set when a checkpoint should be written (call
// ps_shard_checkpoint, outside any lock of yours). Errors, in which case
// nothing changes: CN_EINVAL (worker >= workers), CN_ERANGE (clock above
// PS_MAX_CLOCK, or a BSP clock ahead of the shard's as above; sync is
// filled so the caller can say where the shard is).
cn_err ps_shard_push(ps_shard *s, uint32_t worker, uint64_t clock, uint64_t base_version,
                     const float *g, ps_sync *sync, bool *ckpt_due);

// ps_shard_push_pull is ps_shard_push of the gradient in io followed, when
// the worker may read the values for clock + 1 at once (ASP; SSP within the
// bound; BSP when this push completes the step; a duplicate whose next
// clock is ready), by writing them over io and setting *answered: the
// update writes the new values to the shard and to io in one pass over
// memory, so the request buffer becomes the reply with no copy. Otherwise
// io is unchanged and the caller waits with ps_shard_wait(clock + 1).
// Errors: CN_EINVAL (worker >= workers), in which case nothing changes.
cn_err ps_shard_push_pull(ps_shard *s, uint32_t worker, uint64_t clock, uint64_t base_version,
                          float *io, ps_sync *sync, bool *ckpt_due, bool *answered);

// ps_wait_fn receives the values of [lo, hi) (absolute keys; values[0] is
// key lo) when a waiter is released, or values NULL when it is dropped
// (shard freed: code CN_ECLOSED; deadline passed: CN_ETIMEDOUT). It runs
// with the shard's lock held and must not call back into the shard.
typedef void (*ps_wait_fn)(void *arg, cn_err code, const float *values, const ps_sync *sync);

// ps_shard_wait calls fn once [lo, hi) may be read by worker about to
// compute clock (see the modes above); at once, inside this call, if it
// already may or if !consistent. Otherwise the waiter is parked until a
// push releases it or ps_shard_expire drops it after deadline_ms
// (monotonic ms). Errors (fn not called): CN_ERANGE ([lo, hi) not inside
// the shard's range, or empty), CN_EINVAL (worker >= workers while
// consistent), CN_ENOMEM.
cn_err ps_shard_wait(ps_shard *s, uint32_t worker, uint64_t clock, bool consistent, uint64_t lo,
                     uint64_t hi, uint64_t deadline_ms, ps_wait_fn fn, void *arg);

// ps_shard_pull copies [lo, hi) into out at once, whatever the clocks.
// Errors: CN_ERANGE (out left unchanged).
cn_err ps_shard_pull(ps_shard *s, uint64_t lo, uint64_t hi, float *out, ps_sync *sync);

// ps_shard_expire drops waiters whose deadline is <= now_ms (their fn gets
// CN_ETIMEDOUT). Returns how many.
size_t ps_shard_expire(ps_shard *s, uint64_t now_ms);

// ps_shard_checkpoint writes the shard's state to its checkpoint path if it
// changed since the last one. *version receives the version saved (or
// already on disk). Errors: CN_ESTATE (no checkpoint dir), CN_EIO, CN_ENOMEM.
cn_err ps_shard_checkpoint(ps_shard *s, uint64_t *version, char *err, size_t errlen);

// ps_shard_stats fills out.
void ps_shard_stats(ps_shard *s, ps_stats *out);

// ps_shard_push_update folds client's update for round into the round's
// weighted sum: acc += weight * delta (hi - lo floats). A second update of
// the same client for the same round is a duplicate (sync->duplicate, not
// folded). *updates (may be NULL) receives the round's count.
// Errors, in which case nothing changes: CN_EINVAL (the shard is not in
// round mode, client >= workers, weight not finite and > 0), CN_ESTATE (round
// is not the shard's open round: a late update; sync->clock says which round
// is open, and the shard counts it).
cn_err ps_shard_push_update(ps_shard *s, uint32_t client, uint64_t round, double weight,
                            const float *delta, ps_sync *sync, uint32_t *updates);

// ps_round_close is what closing a round did.
typedef struct ps_round_close {
    uint64_t round; // the open round afterwards
    uint64_t version;
    uint32_t updates;     // updates the closed round held
    double weight;        // their total weight
    bool already_closed;  // the round was closed before: nothing done
    double apply_seconds; // time in the server step
} ps_round_close;

// ps_shard_close_round closes round: with apply, the values take the server
// optimizer's step on g = -(acc / weight) (nothing when no update came in),
// the round's sum is cleared and round + 1 opens; without apply the sum is
// discarded and the same round stays open (to be run again). A round below
// the open one was closed already: CN_OK with out->already_closed.
// *ckpt_due is set when a checkpoint should be written.
// Errors: CN_EINVAL (not round mode), CN_ESTATE (round is above the open
// round).
cn_err ps_shard_close_round(ps_shard *s, uint64_t round, bool apply, ps_round_close *out,
                            bool *ckpt_due);

// ---------------------------------------------------------------- service

typedef struct ps_service ps_service;

// ps_tune_allocator keeps freed model-sized buffers in the process instead
// of handing them back to the kernel (glibc: a fixed mmap threshold of
// 32 MiB and a trim threshold of 256 MiB). Every push and pull allocates
// and frees a message as large as the model; with glibc's defaults the
// heap is trimmed and the next message faults its pages in again, zeroed
// by the kernel (up to a fault per 4 KiB page, docs/performance.md). For a
// process's main function, once, at start-up: it changes the whole
// process's allocator, which then keeps up to 256 MiB of free heap.
void ps_tune_allocator(void);

// ps_service_new registers the ParameterServer service on server (before
// it starts). checkpoint_dir is the root every checkpoint goes under (NULL
// or "": the working directory); the directory a Configure names is a
// relative name under it (a leading '/' stays inside; ".." is refused with
// INVALID_ARGUMENT). With no root and no name a job keeps no checkpoints. The service holds one job
// at a time: a Configure for another job replaces the current one.
cn_err ps_service_new(ps_service **out, rpc_server *server, const char *checkpoint_dir, char *err,
                      size_t errlen);

// ps_service_stop answers every parked pull (UNAVAILABLE) and stops the
// expiry ticker. Call before closing the server. Accepts NULL.
void ps_service_stop(ps_service *s);

// ps_service_free frees everything; call after the server is closed.
// Accepts NULL.
void ps_service_free(ps_service *s);

// ---------------------------------------------------------------- client

typedef struct ps_client ps_client;

typedef struct ps_client_opts {
    const char *const *urls; // (shards) shard k's RPC URL
    uint32_t shards;
    uint64_t n_params;
    const char *job_id;
    const char *token;
    rpc_tls tls;
    uint32_t worker;     // this worker's rank (pushes and consistent pulls)
    int call_timeout_ms; // one attempt, including a consistency wait; 0 = 30000
    int outage_ms;       // how long to keep retrying an unreachable shard; 0 = 120000
} ps_client_opts;

// ps_client_open connects (in the background) to every shard. It copies
// what it needs from opts: nothing opts points to must outlive the call.
// Errors: CN_EINVAL (bad URL or options), CN_EAUTH (TLS files).
cn_err ps_client_open(ps_client **out, const ps_client_opts *opts, char *err, size_t errlen);

// ps_client_close frees c. Accepts NULL.
void ps_client_close(ps_client *c);

// ps_client_configure sends each shard its Configure: cfg describes the job
// (shard, lo, hi are filled per shard), init holds the whole initial vector
// (n_params floats). restore asks shards to load their checkpoints when
// present. sync (may be NULL) receives shard 0's clocks.
// Errors: CN_EUNAVAIL (a shard unreachable within the outage budget),
// CN_EINVAL (a shard refused the configuration); err says which shard.
cn_err ps_client_configure(ps_client *c, const ps_shard_cfg *cfg, const float *init, bool restore,
                           bool *restored, char *err, size_t errlen);

// ps_client_pull fills params (n_params floats) from every shard. With
// consistent, each shard first applies the consistency wait for clock.
// sync receives the smallest clock, version and worker_clock over shards
// (a rank taken over after its worker died between two shards' pushes
// resumes at the clock the behind shard needs; the other shards drop that
// push as a duplicate). Errors: CN_EUNAVAIL, CN_EPROTO; err says which shard.
cn_err ps_client_pull(ps_client *c, uint64_t clock, bool consistent, float *params, ps_sync *sync,
                      char *err, size_t errlen);

// ps_client_push_pull pushes grad (n_params floats) for clock and points
// *params at the values the worker may use for clock + 1 (fused: one round
// trip per shard). The values stay valid, read-only, until the next call on
// c or ps_client_close: with one shard they are the reply's own buffer (no
// copy), with several the client gathers the shards' replies into a vector
// it owns. grad must not point into the values of the last push-pull.
// base_version is the version the gradient was computed on. sync
// gets the largest clock over shards (BSP: the next clock to compute is
// max(clock + 1, sync->clock)). On an error *params is NULL.
cn_err ps_client_push_pull(ps_client *c, uint64_t clock, uint64_t base_version, const float *grad,
                           const float **params, ps_sync *sync, char *err, size_t errlen);

// ps_client_push pushes without pulling.
cn_err ps_client_push(ps_client *c, uint64_t clock, uint64_t base_version, const float *grad,
                      ps_sync *sync, char *err, size_t errlen);

// ps_client_stats asks shard k for its counters. Returns the RPC status
// (RPC_NOT_FOUND when the shard does not hold the job, e.g. after a restart).
rpc_code ps_client_stats(ps_client *c, uint32_t k, ps_stats *out, char *err, size_t errlen);

// ps_client_retries returns how many per-shard attempts failed and were
// retried so far; last (may be NULL) receives what the latest one got.
uint64_t ps_client_retries(const ps_client *c, char *last, size_t n);

// ps_client_push_update sends a federated client's update for round (delta:
// local minus global model, n_params floats; weight: its sample count) to
// every shard; the client is opts->worker. Errors: CN_ESTATE (a shard has
// closed the round: the update came late; err names both rounds), as
// ps_client_push otherwise. sync->clock: the round the shards are at.
cn_err ps_client_push_update(ps_client *c, uint64_t round, double weight, const float *delta,
                             ps_sync *sync, char *err, size_t errlen);

// ps_client_close_round closes round on every shard (see
// ps_shard_close_round); out merges the shards' answers (the smallest
// round, update count and weight: equal when every client reached every
// shard). Errors: CN_ESTATE (a shard is behind the round), as
// ps_client_push otherwise.
cn_err ps_client_close_round(ps_client *c, uint64_t round, bool apply, ps_round_close *out,
                             char *err, size_t errlen);

// ps_client_bytes returns payload bytes sent and received so far.
void ps_client_bytes(const ps_client *c, uint64_t *sent, uint64_t *received);

#endif
