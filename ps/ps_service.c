// ps_service.c: the ParameterServer RPC service over one ps_shard (ps.h).
//
// Handlers run on the RPC server's pool. A pull that must wait for the
// consistency condition is parked in the shard with its rpc_call and
// answered later by the push that releases it (deferred reply), or by the
// ticker when its deadline passes, so no handler thread ever blocks.
//
// Thread rule: `mu` (a read-write lock) guards the current shard pointer:
// calls hold it for reading while they use the shard; Configure takes it for
// writing to replace the shard. The shard has its own lock for its state.
#include "ps/ps.h"
#include "ps/ps_impl.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cn_clock.h"
#include "common/cn_log.h"

#define WAIT_MARGIN_MS 100 // answer a parked pull this long before its caller gives up

struct ps_service {
    pthread_rwlock_t mu;
    ps_shard *shard;      // NULL before the first Configure
    char ckpt_root[1024]; // every checkpoint goes under it ("" = the working directory)
    pthread_mutex_t tick_mu;
    pthread_cond_t tick_cv;
    int stopping;
    int ckpt_pending; // a push found a checkpoint due
    int ticker_started;
    pthread_t ticker;
};

enum { W_PULL, W_PUSHPULL };

// parked is the waiter argument of one call.
typedef struct parked {
    rpc_call *call;
    int kind;
    bool duplicate;
    size_t nbytes; // reply payload: the values of the range asked for
} parked;

static void on_values(void *arg, cn_err code, const float *values, const ps_sync *sync)
{
    parked *p = arg;
    rpc_call *call = p->call;
    if (code != CN_OK) {
        if (code == CN_ETIMEDOUT)
            rpc_call_fail(call, RPC_DEADLINE_EXCEEDED,
                          "consistency wait timed out: a slower worker has not pushed");
        else
            rpc_call_fail(call, RPC_UNAVAILABLE, "the shard's job was replaced or it is stopping");
        free(p);
        return;
    }
    size_t nbytes = p->nbytes;
    void *out;
    if (p->kind == W_PULL) {
        Canopy__Ps__PullReply rep = CANOPY__PS__PULL_REPLY__INIT;
        rep.clock = sync->clock;
        rep.version = sync->version;
        rep.worker_clock = sync->worker_clock;
        if (rpc_call_reply_begin(call, &rep.base, nbytes, &out) == CN_OK) {
            memcpy(out, values, nbytes);
            rpc_call_reply_end(call);
        }
    } else {
        Canopy__Ps__PushReply rep = CANOPY__PS__PUSH_REPLY__INIT;
        rep.clock = sync->clock;
        rep.version = sync->version;
        rep.duplicate = p->duplicate;
        if (rpc_call_reply_begin(call, &rep.base, nbytes, &out) == CN_OK) {
            memcpy(out, values, nbytes);
            rpc_call_reply_end(call);
        }
    }
    free(p);
}

static uint64_t wait_deadline(rpc_call *call)
{
    int64_t left = rpc_call_remaining_ms(call) - WAIT_MARGIN_MS;
    if (left < 0)
        left = 0;
    return cn_now_ms() + (uint64_t)left;
}

// held returns the current shard if it serves job (read lock held on
// success; the caller unlocks), else fails the call and returns NULL.
// Everything an error message needs from the shard is read while the lock
// is held: once it is released a concurrent Configure may free the shard.
static ps_shard *held(ps_service *s, rpc_call *call, const char *job)
{
    pthread_rwlock_rdlock(&s->mu);
    if (s->shard && strcmp(ps_shard_cfg_of(s->shard)->job_id, job) == 0)
        return s->shard;
    char cur[PS_JOB_ID_LEN] = "";
    if (s->shard)
        snprintf(cur, sizeof cur, "%s", ps_shard_cfg_of(s->shard)->job_id);
    pthread_rwlock_unlock(&s->mu);
    if (cur[0])
        rpc_call_fail(call, RPC_NOT_FOUND, "this shard serves job \"%s\", not \"%s\"", cur, job);
    else
        rpc_call_fail(call, RPC_NOT_FOUND,
                      "this shard holds no job (restarted?); job \"%s\" must be configured again",
                      job);
    return NULL;
}

static void h_pull(rpc_call *call, void *arg)
{
    ps_service *s = arg;
    Canopy__Ps__PullRequest *r =
        (Canopy__Ps__PullRequest *)rpc_call_unpack(call, &canopy__ps__pull_request__descriptor);
    if (r == NULL)
        return;
    if (r->clock > PS_MAX_CLOCK) {
        rpc_call_fail(call, RPC_OUT_OF_RANGE, "Pull: clock %llu is above the largest, %llu",
                      (unsigned long long)r->clock, (unsigned long long)PS_MAX_CLOCK);
        canopy__ps__pull_request__free_unpacked(r, NULL);
        return;
    }
    ps_shard *sh = held(s, call, r->job_id);
    if (sh) {
        parked *p = calloc(1, sizeof *p);
        cn_err e = CN_ENOMEM;
        if (p) {
            p->call = call;
            p->kind = W_PULL;
            p->nbytes = r->hi > r->lo ? (size_t)(r->hi - r->lo) * sizeof(float) : 0;
            e = ps_shard_wait(sh, r->worker, r->clock, r->wait, r->lo, r->hi, wait_deadline(call),
                              on_values, p);
        }
        // Copies: the shard may be freed once the lock is released.
        const ps_shard_cfg *c = ps_shard_cfg_of(sh);
        uint64_t lo = c->lo, hi = c->hi;
        uint32_t workers = c->workers;
        pthread_rwlock_unlock(&s->mu);
        if (e != CN_OK) {
            free(p);
            rpc_call_fail(call, e == CN_ERANGE ? RPC_OUT_OF_RANGE : rpc_code_from_err(e),
                          "Pull [%llu, %llu) worker %u: %s (shard owns [%llu, %llu), %u workers)",
                          (unsigned long long)r->lo, (unsigned long long)r->hi, r->worker,
                          cn_strerror(e), (unsigned long long)lo, (unsigned long long)hi, workers);
        }
    }
    canopy__ps__pull_request__free_unpacked(r, NULL);
}

// do_push handles Push and PushPull. A PushPull the shard can answer at once
// (ps_shard_push_pull) is answered in the request's own buffer: the shard
// reads the gradient and writes the new values over it in one pass, and the
// message goes back with a new header, with no allocation and no copy.
static void do_push(ps_service *s, rpc_call *call, bool then_pull)
{
    size_t plen = 0;
    float *g = rpc_call_payload_mut(call, &plen);
    Canopy__Ps__PushRequest *r =
        (Canopy__Ps__PushRequest *)rpc_call_unpack(call, &canopy__ps__push_request__descriptor);
    if (r == NULL)
        return;
    ps_shard *sh = held(s, call, r->job_id);
    if (sh == NULL) {
        canopy__ps__push_request__free_unpacked(r, NULL);
        return;
    }
    // Copies: the shard may be freed once the lock is released.
    const ps_shard_cfg *c = ps_shard_cfg_of(sh);
    uint64_t lo = c->lo, hi = c->hi;
    uint32_t workers = c->workers;
    if (r->lo != lo || r->hi != hi) {
        pthread_rwlock_unlock(&s->mu);
        rpc_call_fail(call, RPC_OUT_OF_RANGE,
                      "Push [%llu, %llu): a push must cover the shard's range [%llu, %llu)",
                      (unsigned long long)r->lo, (unsigned long long)r->hi, (unsigned long long)lo,
                      (unsigned long long)hi);
        canopy__ps__push_request__free_unpacked(r, NULL);
        return;
    }
    if (g == NULL || plen != (size_t)(hi - lo) * sizeof(float)) {
        pthread_rwlock_unlock(&s->mu);
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "Push: payload has %zu bytes, the range needs %llu floats", plen,
                      (unsigned long long)(hi - lo));
        canopy__ps__push_request__free_unpacked(r, NULL);
        return;
    }
    ps_sync sync;
    bool due = false, answered = false;
    cn_err e = then_pull ? ps_shard_push_pull(sh, r->worker, r->clock, r->base_version, g, &sync,
                                              &due, &answered)
                         : ps_shard_push(sh, r->worker, r->clock, r->base_version, g, &sync, &due);
    if (e == CN_ERANGE) {
        pthread_rwlock_unlock(&s->mu);
        rpc_call_fail(call, RPC_OUT_OF_RANGE,
                      "Push: clock %llu of worker %u is ahead of the shard's clock %llu (only a "
                      "shard restarted behind its workers moves ahead to meet them; the largest "
                      "clock is %llu)",
                      (unsigned long long)r->clock, r->worker, (unsigned long long)sync.clock,
                      (unsigned long long)PS_MAX_CLOCK);
        canopy__ps__push_request__free_unpacked(r, NULL);
        return;
    }
    if (e != CN_OK) {
        pthread_rwlock_unlock(&s->mu);
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "Push: worker %u is not below the %u workers, or the job is federated "
                      "(its shards take PushUpdate)",
                      r->worker, workers);
        canopy__ps__push_request__free_unpacked(r, NULL);
        return;
    }
    if (!then_pull || answered) {
        Canopy__Ps__PushReply rep = CANOPY__PS__PUSH_REPLY__INIT;
        rep.clock = sync.clock;
        rep.version = sync.version;
        rep.duplicate = sync.duplicate;
        if (answered)
            rpc_call_reply_inplace(call, &rep.base);
        else
            rpc_call_reply(call, &rep.base, NULL, 0);
    } else {
        parked *p = calloc(1, sizeof *p);
        e = CN_ENOMEM;
        if (p) {
            p->call = call;
            p->kind = W_PUSHPULL;
            p->duplicate = sync.duplicate;
            p->nbytes = (size_t)(hi - lo) * sizeof(float);
            e = ps_shard_wait(sh, r->worker, r->clock + 1, true, lo, hi, wait_deadline(call),
                              on_values, p);
        }
        if (e != CN_OK) {
            free(p);
            rpc_call_fail(call, rpc_code_from_err(e), "PushPull: %s", cn_strerror(e));
        }
    }
    pthread_rwlock_unlock(&s->mu);
    if (due) {
        // The ticker writes it: a handler never does file I/O.
        pthread_mutex_lock(&s->tick_mu);
        s->ckpt_pending = 1;
        pthread_cond_signal(&s->tick_cv);
        pthread_mutex_unlock(&s->tick_mu);
    }
    canopy__ps__push_request__free_unpacked(r, NULL);
}

static void h_push(rpc_call *call, void *arg)
{
    do_push(arg, call, false);
}

static void h_push_pull(rpc_call *call, void *arg)
{
    do_push(arg, call, true);
}

// h_push_update folds a federated client's update into the open round.
static void h_push_update(rpc_call *call, void *arg)
{
    ps_service *s = arg;
    size_t plen = 0;
    const float *delta = rpc_call_payload(call, &plen);
    Canopy__Ps__PushUpdateRequest *r = (Canopy__Ps__PushUpdateRequest *)rpc_call_unpack(
        call, &canopy__ps__push_update_request__descriptor);
    if (r == NULL)
        return;
    ps_shard *sh = held(s, call, r->job_id);
    if (sh == NULL) {
        canopy__ps__push_update_request__free_unpacked(r, NULL);
        return;
    }
    const ps_shard_cfg *c = ps_shard_cfg_of(sh);
    uint64_t lo = c->lo, hi = c->hi;
    uint32_t clients = c->workers;
    bool round_mode = c->mode == PS_ROUND;
    ps_sync sync;
    uint32_t updates = 0;
    cn_err e = CN_EINVAL;
    if (r->lo != lo || r->hi != hi || delta == NULL || plen != (size_t)(hi - lo) * sizeof(float))
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "PushUpdate: [%llu, %llu) with %zu payload bytes: an update covers the "
                      "shard's range [%llu, %llu) with one float per key",
                      (unsigned long long)r->lo, (unsigned long long)r->hi, plen,
                      (unsigned long long)lo, (unsigned long long)hi);
    else if ((e = ps_shard_push_update(sh, r->client, r->round, r->weight, delta, &sync,
                                       &updates)) == CN_ESTATE)
        rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                      "PushUpdate: the update of client %u is for round %llu, but the shard is "
                      "at round %llu (round %llu is closed); join the next round",
                      r->client, (unsigned long long)r->round, (unsigned long long)sync.clock,
                      (unsigned long long)r->round);
    else if (e != CN_OK)
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "PushUpdate: %s (client %u of %u, weight %g)",
                      round_mode ? "bad client or weight" : "the shard's job is not federated",
                      r->client, clients, r->weight);
    if (e == CN_OK) {
        Canopy__Ps__PushUpdateReply rep = CANOPY__PS__PUSH_UPDATE_REPLY__INIT;
        rep.round = sync.clock;
        rep.duplicate = sync.duplicate;
        rep.updates = updates;
        rpc_call_reply(call, &rep.base, NULL, 0);
    }
    pthread_rwlock_unlock(&s->mu);
    canopy__ps__push_update_request__free_unpacked(r, NULL);
}

// h_close_round closes a federated round. The new model is checkpointed
// before the reply, so a shard killed between rounds comes back at the
// right round with the right model (rounds are seconds apart).
static void h_close_round(rpc_call *call, void *arg)
{
    ps_service *s = arg;
    Canopy__Ps__CloseRoundRequest *r = (Canopy__Ps__CloseRoundRequest *)rpc_call_unpack(
        call, &canopy__ps__close_round_request__descriptor);
    if (r == NULL)
        return;
    ps_shard *sh = held(s, call, r->job_id);
    if (sh == NULL) {
        canopy__ps__close_round_request__free_unpacked(r, NULL);
        return;
    }
    ps_round_close rc;
    bool due = false;
    cn_err e = ps_shard_close_round(sh, r->round, r->apply, &rc, &due);
    char err[CN_ERRBUF_LEN];
    uint64_t v;
    if (e == CN_OK && due && ps_shard_checkpoint(sh, &v, err, sizeof err) != CN_OK)
        CN_WARN("checkpoint after round %llu failed: %s", (unsigned long long)r->round, err);
    if (e == CN_ESTATE) {
        rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                      "CloseRound: round %llu is not open; the shard is at round %llu",
                      (unsigned long long)r->round, (unsigned long long)rc.round);
    } else if (e != CN_OK) {
        rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                      "CloseRound: the shard's job is not federated (consistency is not round)");
    } else {
        Canopy__Ps__CloseRoundReply rep = CANOPY__PS__CLOSE_ROUND_REPLY__INIT;
        rep.round = rc.round;
        rep.version = rc.version;
        rep.updates = rc.updates;
        rep.weight = rc.weight;
        rep.already_closed = rc.already_closed;
        rep.apply_seconds = rc.apply_seconds;
        rpc_call_reply(call, &rep.base, NULL, 0);
    }
    pthread_rwlock_unlock(&s->mu);
    canopy__ps__close_round_request__free_unpacked(r, NULL);
}

// confine_dir writes into out (n bytes) the directory that name, from a
// Configure, stands for under root: name is a relative name under root
// (a leading '/' does not leave it: "/srv/x" is root/srv/x), and a ".."
// component is refused, so a caller cannot make the shard write elsewhere.
// Errors: CN_EINVAL (".."), CN_ERANGE (too long), with err set.
static cn_err confine_dir(const char *root, const char *name, char *out, size_t n, char *err,
                          size_t errlen)
{
    int w = snprintf(out, n, "%s", root[0] ? root : ".");
    size_t len = w > 0 ? (size_t)w : 0;
    for (const char *p = name; *p;) {
        while (*p == '/')
            p++;
        size_t k = strcspn(p, "/");
        if (k == 0)
            break;
        if (k == 2 && p[0] == '.' && p[1] == '.')
            return cn_errf(err, errlen, CN_EINVAL,
                           "checkpoint_dir \"%s\" has a \"..\" component: it must be a name "
                           "under the shard's checkpoint root %s",
                           name, root[0] ? root : "(its working directory)");
        if (!(k == 1 && p[0] == '.')) {
            if (len + 1 + k >= n)
                return cn_errf(err, errlen, CN_ERANGE, "checkpoint_dir \"%.200s\" is too long",
                               name);
            out[len++] = '/';
            memcpy(out + len, p, k);
            len += k;
            out[len] = 0;
        }
        p += k;
    }
    return CN_OK;
}

static void h_configure(rpc_call *call, void *arg)
{
    ps_service *s = arg;
    size_t plen = 0;
    const float *init = rpc_call_payload(call, &plen);
    Canopy__Ps__ConfigureRequest *r = (Canopy__Ps__ConfigureRequest *)rpc_call_unpack(
        call, &canopy__ps__configure_request__descriptor);
    if (r == NULL)
        return;
    char err[CN_ERRBUF_LEN] = "";
    ps_shard_cfg cfg;
    cn_err e = ps_wire_cfg_from_pb(r, &cfg, err, sizeof err);
    // The job names a directory; the daemon decides where it is. With no
    // name and no root of its own, the shard keeps no checkpoints.
    if (e == CN_OK && (cfg.checkpoint_dir[0] || s->ckpt_root[0])) {
        char name[sizeof cfg.checkpoint_dir];
        memcpy(name, cfg.checkpoint_dir, sizeof name);
        e = confine_dir(s->ckpt_root, name, cfg.checkpoint_dir, sizeof cfg.checkpoint_dir, err,
                        sizeof err);
    }
    if (e == CN_OK)
        e = ps_shard_cfg_check(&cfg, err, sizeof err);
    if (e != CN_OK) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT, "Configure: %s", err);
        canopy__ps__configure_request__free_unpacked(r, NULL);
        return;
    }
    bool restore = r->restore;
    canopy__ps__configure_request__free_unpacked(r, NULL);

    Canopy__Ps__ConfigureReply rep = CANOPY__PS__CONFIGURE_REPLY__INIT;
    pthread_rwlock_rdlock(&s->mu);
    ps_shard *cur = s->shard;
    if (cur) {
        const ps_shard_cfg *cc = ps_shard_cfg_of(cur);
        if (strcmp(cc->job_id, cfg.job_id) == 0 && cc->shard == cfg.shard && cc->lo == cfg.lo &&
            cc->hi == cfg.hi && cc->workers == cfg.workers) {
            ps_stats st;
            ps_shard_stats(cur, &st);
            pthread_rwlock_unlock(&s->mu);
            rep.clock = st.clock;
            rep.version = st.version;
            rep.restored = st.restored;
            rep.unchanged = true;
            rpc_call_reply(call, &rep.base, NULL, 0);
            return;
        }
    }
    pthread_rwlock_unlock(&s->mu);
    // Build the new shard (reading a checkpoint perhaps) without holding
    // the lock the data path takes.
    ps_shard *ns = NULL;
    if (restore && cfg.checkpoint_dir[0]) {
        char path[1400];
        ps_shard_checkpoint_path(&cfg, path, sizeof path);
        e = ps_shard_restore(&ns, &cfg, path, err, sizeof err);
        if (e == CN_OK)
            CN_INFO("job %s: shard %u restored from %s", cfg.job_id, cfg.shard, path);
        else if (e != CN_ENOTFOUND)
            CN_WARN("job %s: cannot restore shard %u: %s", cfg.job_id, cfg.shard, err);
    }
    if (ns == NULL) {
        if (init == NULL || plen != (size_t)(cfg.hi - cfg.lo) * sizeof(float)) {
            rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                          "Configure: no checkpoint to restore and the payload has %zu bytes, not "
                          "the %llu initial values of [%llu, %llu)",
                          plen, (unsigned long long)(cfg.hi - cfg.lo), (unsigned long long)cfg.lo,
                          (unsigned long long)cfg.hi);
            return;
        }
        e = ps_shard_new(&ns, &cfg, init, err, sizeof err);
        if (e != CN_OK) {
            rpc_call_fail(call, rpc_code_from_err(e), "Configure: %s", err);
            return;
        }
    }
    pthread_rwlock_wrlock(&s->mu);
    cur = s->shard;
    s->shard = ns;
    ps_stats st;
    ps_shard_stats(ns, &st);
    pthread_rwlock_unlock(&s->mu);
    CN_INFO("job %s: shard %u/%u owns [%llu, %llu) of %llu, %s, %u workers%s", cfg.job_id,
            cfg.shard, cfg.shards, (unsigned long long)cfg.lo, (unsigned long long)cfg.hi,
            (unsigned long long)cfg.n_params, ps_mode_name(cfg.mode), cfg.workers,
            st.restored ? ", restored" : "");
    ps_shard_free(cur); // parked calls of the old job get UNAVAILABLE
    rep.clock = st.clock;
    rep.version = st.version;
    rep.restored = st.restored;
    rpc_call_reply(call, &rep.base, NULL, 0);
}

static void h_stats(rpc_call *call, void *arg)
{
    ps_service *s = arg;
    Canopy__Ps__StatsRequest *r =
        (Canopy__Ps__StatsRequest *)rpc_call_unpack(call, &canopy__ps__stats_request__descriptor);
    if (r == NULL)
        return;
    ps_shard *sh = held(s, call, r->job_id);
    canopy__ps__stats_request__free_unpacked(r, NULL);
    if (sh == NULL)
        return;
    ps_stats st;
    ps_shard_stats(sh, &st);
    const ps_shard_cfg *c = ps_shard_cfg_of(sh);
    Canopy__Ps__StatsReply rep = CANOPY__PS__STATS_REPLY__INIT;
    uint64_t wc[64];
    uint32_t nwc = st.workers < 64 ? st.workers : 64;
    memcpy(wc, st.worker_clocks, nwc * sizeof *wc);
    rep.job_id = (char *)c->job_id;
    rep.lo = st.lo;
    rep.hi = st.hi;
    rep.clock = st.clock;
    rep.version = st.version;
    rep.n_worker_clocks = nwc;
    rep.worker_clocks = wc;
    rep.n_staleness = PS_STALE_BUCKETS;
    rep.staleness = st.staleness;
    rep.pushes = st.pushes;
    rep.duplicates = st.duplicates;
    rep.pulls = st.pulls;
    rep.bytes_in = st.bytes_in;
    rep.bytes_out = st.bytes_out;
    rep.checkpoints = st.checkpoints;
    rep.checkpoint_version = st.checkpoint_version;
    rep.restored = st.restored;
    rep.apply_seconds = st.apply_seconds;
    rep.wait_seconds = st.wait_seconds;
    rep.consistency = (char *)ps_mode_name(st.mode);
    rep.workers = st.workers;
    rep.late_updates = st.late_updates;
    rpc_call_reply(call, &rep.base, NULL, 0);
    pthread_rwlock_unlock(&s->mu);
}

static void h_checkpoint(rpc_call *call, void *arg)
{
    ps_service *s = arg;
    Canopy__Ps__CheckpointRequest *r = (Canopy__Ps__CheckpointRequest *)rpc_call_unpack(
        call, &canopy__ps__checkpoint_request__descriptor);
    if (r == NULL)
        return;
    ps_shard *sh = held(s, call, r->job_id);
    canopy__ps__checkpoint_request__free_unpacked(r, NULL);
    if (sh == NULL)
        return;
    char err[CN_ERRBUF_LEN], path[1400];
    uint64_t v = 0;
    cn_err e = ps_shard_checkpoint(sh, &v, err, sizeof err);
    ps_shard_checkpoint_path(ps_shard_cfg_of(sh), path, sizeof path);
    if (e != CN_OK) {
        rpc_call_fail(call, e == CN_ESTATE ? RPC_FAILED_PRECONDITION : RPC_INTERNAL,
                      "Checkpoint: %s", err);
    } else {
        Canopy__Ps__CheckpointReply rep = CANOPY__PS__CHECKPOINT_REPLY__INIT;
        rep.path = path;
        rep.version = v;
        rpc_call_reply(call, &rep.base, NULL, 0);
    }
    pthread_rwlock_unlock(&s->mu);
}

// ticker_main drops parked pulls past their deadline every 100 ms and
// writes the checkpoints pushes found due (so no handler does file I/O).
static void *ticker_main(void *arg)
{
    ps_service *s = arg;
    pthread_mutex_lock(&s->tick_mu);
    while (!s->stopping) {
        if (!s->ckpt_pending) {
            cn_cond_wait_ms(&s->tick_cv, &s->tick_mu, 100);
            if (s->stopping)
                break;
        }
        int ckpt = s->ckpt_pending;
        s->ckpt_pending = 0;
        pthread_mutex_unlock(&s->tick_mu);
        pthread_rwlock_rdlock(&s->mu);
        if (s->shard) {
            ps_shard_expire(s->shard, cn_now_ms());
            char err[CN_ERRBUF_LEN];
            uint64_t v;
            if (ckpt && ps_shard_checkpoint(s->shard, &v, err, sizeof err) != CN_OK)
                CN_WARN("checkpoint failed: %s", err);
        }
        pthread_rwlock_unlock(&s->mu);
        pthread_mutex_lock(&s->tick_mu);
    }
    pthread_mutex_unlock(&s->tick_mu);
    return NULL;
}

void ps_tune_allocator(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

cn_err ps_service_new(ps_service **out, rpc_server *server, const char *checkpoint_dir, char *err,
                      size_t errlen)
{
    *out = NULL;
    ps_service *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    pthread_rwlock_init(&s->mu, NULL);
    pthread_mutex_init(&s->tick_mu, NULL);
    cn_cond_init_mono(&s->tick_cv);
    snprintf(s->ckpt_root, sizeof s->ckpt_root, "%s", checkpoint_dir ? checkpoint_dir : "");
    struct {
        const char *m;
        rpc_handler_fn fn;
    } hs[] = {{"Configure", h_configure},    {"Pull", h_pull},          {"Push", h_push},
              {"PushPull", h_push_pull},     {"Stats", h_stats},        {"Checkpoint", h_checkpoint},
              {"PushUpdate", h_push_update}, {"CloseRound", h_close_round}};
    cn_err e;
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if ((e = rpc_server_register(server, "ParameterServer", hs[i].m, hs[i].fn, s, 0)) !=
            CN_OK) {
            ps_service_free(s);
            return cn_errf(err, errlen, e, "cannot register ParameterServer/%s", hs[i].m);
        }
    if (pthread_create(&s->ticker, NULL, ticker_main, s) != 0) {
        ps_service_free(s);
        return cn_errf(err, errlen, CN_ENOMEM, "cannot start the shard ticker");
    }
    s->ticker_started = 1;
    *out = s;
    return CN_OK;
}

void ps_service_stop(ps_service *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->tick_mu);
    int join = s->ticker_started && !s->stopping;
    s->stopping = 1;
    pthread_cond_signal(&s->tick_cv);
    pthread_mutex_unlock(&s->tick_mu);
    if (join)
        pthread_join(s->ticker, NULL);
    // Answer parked pulls now: the shard goes, its waiters are told so.
    pthread_rwlock_wrlock(&s->mu);
    ps_shard *sh = s->shard;
    s->shard = NULL;
    pthread_rwlock_unlock(&s->mu);
    ps_shard_free(sh);
}

void ps_service_free(ps_service *s)
{
    if (s == NULL)
        return;
    ps_service_stop(s);
    pthread_cond_destroy(&s->tick_cv);
    pthread_mutex_destroy(&s->tick_mu);
    pthread_rwlock_destroy(&s->mu);
    free(s);
}
