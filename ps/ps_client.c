// ps_client.c: the client side of the ParameterServer service (ps.h).
//
// One rpc_client per shard. An operation on the whole vector (pull, push,
// push-pull, configure) is cut by ps_range into per-shard calls that run in
// parallel: shard 0's on the calling thread, the others on one helper
// thread per shard, started once. Each per-shard call retries on
// UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED and NOT_FOUND
// (a restarted shard that has not been configured again yet) with capped
// exponential backoff until the outage budget runs out; pushes are safe to
// repeat because shards drop a (worker, clock) they already have.
//
// Thread rule: one operation at a time per client (the caller's thread);
// the helper threads only run the per-shard parts of that operation.
#include "ps/ps.h"
#include "ps/ps_impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cn_clock.h"

enum { OP_NONE, OP_PULL, OP_PUSH, OP_PUSHPULL, OP_CONFIGURE, OP_PUSH_UPDATE, OP_CLOSE_ROUND };

typedef struct shard_conn {
    ps_client *c;
    uint32_t k;
    char url[256]; // a copy: the caller's URL array need not outlive open
    uint64_t lo, hi;
    rpc_client *rpc;
    pthread_t th;
    bool th_started;
    // result of the current operation
    cn_err result;
    char err[RPC_DETAIL_LEN + 512]; // "shard K (URL): METHOD CODE: " and the detail
    ps_sync sync;
    bool restored;
    ps_round_close rc; // OP_CLOSE_ROUND
    // OP_PUSHPULL with one shard: the reply whose payload the caller reads
    // (ps_client_push_pull's *params) until the next operation. Released on
    // the thread that made the call, so its buffer becomes that thread's
    // spare for the next request (rpc_reply_fini).
    rpc_reply held;
} shard_conn;

struct ps_client {
    ps_client_opts o;
    char job_id[PS_JOB_ID_LEN];
    shard_conn *sh;
    // the current operation
    int op;
    uint64_t clock, base_version;
    bool consistent, restore, apply;
    double weight;   // OP_PUSH_UPDATE
    const float *in; // grad, init or delta (n_params)
    float *out;      // params (n_params); NULL: OP_PUSHPULL with one shard keeps the reply
    float *gathered; // OP_PUSHPULL with several shards: the values (n_params), made on first use
    const ps_shard_cfg *cfg;
    // dispatch to helper threads
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    uint64_t gen;
    uint32_t pending;
    bool stopping;
    _Atomic uint64_t sent, received;
    _Atomic uint64_t retries;
    char last_retry[RPC_DETAIL_LEN + 64]; // what the last retried attempt got; under mu
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool retryable(rpc_code code)
{
    return code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED || code == RPC_ABORTED ||
           code == RPC_RESOURCE_EXHAUSTED || code == RPC_NOT_FOUND;
}

// call_retry performs method on shard sc until OK, a non-retryable status,
// or the outage budget is spent. On RPC_OK the caller owns rep.
static rpc_code call_retry(shard_conn *sc, const char *method, const ProtobufCMessage *body,
                           const void *payload, size_t plen, rpc_reply *rep)
{
    ps_client *c = sc->c;
    uint64_t start = cn_now_ms();
    int backoff = 20;
    for (;;) {
        rpc_request r = {.service = "ParameterServer",
                         .method = method,
                         .body = body,
                         .payload = payload,
                         .payload_len = plen,
                         .deadline_ms = c->o.call_timeout_ms,
                         .flags = RPC_IDEMPOTENT};
        memset(rep, 0, sizeof *rep);
        rpc_code code = rpc_client_call(sc->rpc, &r, rep);
        if (code == RPC_OK)
            return code;
        if (!retryable(code) || cn_now_ms() - start >= (uint64_t)c->o.outage_ms) {
            snprintf(sc->err, sizeof sc->err, "shard %u (%.200s): %s %s: %s", sc->k, sc->url,
                     method, rpc_code_name(code), rep->detail);
            rpc_reply_fini(rep);
            return code;
        }
        atomic_fetch_add(&c->retries, 1);
        pthread_mutex_lock(&c->mu); // shards' threads retry at once
        snprintf(c->last_retry, sizeof c->last_retry, "%s %s: %.200s", method, rpc_code_name(code),
                 rep->detail);
        pthread_mutex_unlock(&c->mu);
        rpc_reply_fini(rep);
        sleep_ms(backoff);
        backoff = backoff * 2 > 500 ? 500 : backoff * 2;
    }
}

static cn_err fail(shard_conn *sc, cn_err e, const char *what)
{
    snprintf(sc->err, sizeof sc->err, "shard %u: %s", sc->k, what);
    return e;
}

// take_values copies the values of rep into the caller's vector or, when
// there is none (a push-pull with one shard), keeps rep itself as the
// vector the caller reads: rep is then cleared so the caller's
// rpc_reply_fini leaves it alone.
static cn_err take_values(shard_conn *sc, rpc_reply *rep)
{
    size_t want = (size_t)(sc->hi - sc->lo) * sizeof(float);
    if (rep->payload_len != want)
        return fail(sc, CN_EPROTO, "reply payload does not match the range");
    if (sc->c->out) {
        memcpy(sc->c->out + sc->lo, rep->payload, want);
    } else {
        sc->held = *rep;
        memset(rep, 0, sizeof *rep);
    }
    atomic_fetch_add(&sc->c->received, want);
    return CN_OK;
}

static cn_err do_pull(shard_conn *sc)
{
    ps_client *c = sc->c;
    Canopy__Ps__PullRequest req = CANOPY__PS__PULL_REQUEST__INIT;
    req.job_id = c->job_id;
    req.lo = sc->lo;
    req.hi = sc->hi;
    req.worker = c->o.worker;
    req.clock = c->clock;
    req.wait = c->consistent;
    rpc_reply rep;
    rpc_code code = call_retry(sc, "Pull", &req.base, NULL, 0, &rep);
    if (code != RPC_OK)
        return CN_EUNAVAIL;
    Canopy__Ps__PullReply *pr =
        (Canopy__Ps__PullReply *)rpc_reply_unpack(&rep, &canopy__ps__pull_reply__descriptor);
    cn_err e = pr ? take_values(sc, &rep) : fail(sc, CN_EPROTO, "malformed reply");
    if (pr) {
        sc->sync.clock = pr->clock;
        sc->sync.version = pr->version;
        sc->sync.worker_clock = pr->worker_clock;
        protobuf_c_message_free_unpacked(&pr->base, NULL);
    }
    rpc_reply_fini(&rep);
    return e;
}

static cn_err do_push(shard_conn *sc, bool then_pull)
{
    ps_client *c = sc->c;
    Canopy__Ps__PushRequest req = CANOPY__PS__PUSH_REQUEST__INIT;
    req.job_id = c->job_id;
    req.lo = sc->lo;
    req.hi = sc->hi;
    req.worker = c->o.worker;
    req.clock = c->clock;
    req.base_version = c->base_version;
    size_t plen = (size_t)(sc->hi - sc->lo) * sizeof(float);
    rpc_reply rep;
    rpc_code code =
        call_retry(sc, then_pull ? "PushPull" : "Push", &req.base, c->in + sc->lo, plen, &rep);
    if (code != RPC_OK)
        return CN_EUNAVAIL;
    atomic_fetch_add(&c->sent, plen);
    Canopy__Ps__PushReply *pr =
        (Canopy__Ps__PushReply *)rpc_reply_unpack(&rep, &canopy__ps__push_reply__descriptor);
    cn_err e = CN_OK;
    if (pr == NULL)
        e = fail(sc, CN_EPROTO, "malformed reply");
    else if (then_pull)
        e = take_values(sc, &rep);
    if (pr) {
        sc->sync.clock = pr->clock;
        sc->sync.version = pr->version;
        sc->sync.duplicate = pr->duplicate;
        protobuf_c_message_free_unpacked(&pr->base, NULL);
    }
    rpc_reply_fini(&rep);
    return e;
}

static cn_err do_configure(shard_conn *sc)
{
    ps_client *c = sc->c;
    const ps_shard_cfg *cfg = c->cfg;
    Canopy__Ps__ConfigureRequest req = CANOPY__PS__CONFIGURE_REQUEST__INIT;
    Canopy__Ps__OptimizerConfig oc = CANOPY__PS__OPTIMIZER_CONFIG__INIT;
    ps_wire_optim_to_pb(&cfg->optim, &oc);
    req.job_id = c->job_id;
    req.shard = sc->k;
    req.shards = c->o.shards;
    req.n_params = c->o.n_params;
    req.lo = sc->lo;
    req.hi = sc->hi;
    req.optimizer = &oc;
    req.consistency = cfg->mode == PS_BSP     ? CANOPY__PS__CONSISTENCY__BSP
                      : cfg->mode == PS_ASP   ? CANOPY__PS__CONSISTENCY__ASP
                      : cfg->mode == PS_ROUND ? CANOPY__PS__CONSISTENCY__ROUND
                                              : CANOPY__PS__CONSISTENCY__SSP;
    req.staleness = cfg->staleness;
    req.workers = cfg->workers;
    req.checkpoint_dir = (char *)cfg->checkpoint_dir;
    req.checkpoint_every = cfg->checkpoint_every;
    req.restore = c->restore;
    size_t plen = (size_t)(sc->hi - sc->lo) * sizeof(float);
    rpc_reply rep;
    rpc_code code = call_retry(sc, "Configure", &req.base, c->in + sc->lo, plen, &rep);
    if (code != RPC_OK)
        return code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED ? CN_EUNAVAIL : CN_EINVAL;
    Canopy__Ps__ConfigureReply *cr = (Canopy__Ps__ConfigureReply *)rpc_reply_unpack(
        &rep, &canopy__ps__configure_reply__descriptor);
    cn_err e = CN_OK;
    if (cr == NULL) {
        e = fail(sc, CN_EPROTO, "malformed reply");
    } else {
        sc->sync.clock = cr->clock;
        sc->sync.version = cr->version;
        sc->restored = cr->restored;
        protobuf_c_message_free_unpacked(&cr->base, NULL);
    }
    rpc_reply_fini(&rep);
    return e;
}

// do_push_update sends a federated client's update; a refused late update
// is CN_ESTATE.
static cn_err do_push_update(shard_conn *sc)
{
    ps_client *c = sc->c;
    Canopy__Ps__PushUpdateRequest req = CANOPY__PS__PUSH_UPDATE_REQUEST__INIT;
    req.job_id = c->job_id;
    req.lo = sc->lo;
    req.hi = sc->hi;
    req.client = c->o.worker;
    req.round = c->clock;
    req.weight = c->weight;
    size_t plen = (size_t)(sc->hi - sc->lo) * sizeof(float);
    rpc_reply rep;
    rpc_code code = call_retry(sc, "PushUpdate", &req.base, c->in + sc->lo, plen, &rep);
    if (code != RPC_OK)
        return code == RPC_FAILED_PRECONDITION ? CN_ESTATE : CN_EUNAVAIL;
    atomic_fetch_add(&c->sent, plen);
    Canopy__Ps__PushUpdateReply *pr = (Canopy__Ps__PushUpdateReply *)rpc_reply_unpack(
        &rep, &canopy__ps__push_update_reply__descriptor);
    cn_err e = pr ? CN_OK : fail(sc, CN_EPROTO, "malformed reply");
    if (pr) {
        sc->sync.clock = pr->round;
        sc->sync.duplicate = pr->duplicate;
        protobuf_c_message_free_unpacked(&pr->base, NULL);
    }
    rpc_reply_fini(&rep);
    return e;
}

static cn_err do_close_round(shard_conn *sc)
{
    ps_client *c = sc->c;
    Canopy__Ps__CloseRoundRequest req = CANOPY__PS__CLOSE_ROUND_REQUEST__INIT;
    req.job_id = c->job_id;
    req.round = c->clock;
    req.apply = c->apply;
    rpc_reply rep;
    rpc_code code = call_retry(sc, "CloseRound", &req.base, NULL, 0, &rep);
    if (code != RPC_OK)
        return code == RPC_FAILED_PRECONDITION ? CN_ESTATE : CN_EUNAVAIL;
    Canopy__Ps__CloseRoundReply *cr = (Canopy__Ps__CloseRoundReply *)rpc_reply_unpack(
        &rep, &canopy__ps__close_round_reply__descriptor);
    cn_err e = cr ? CN_OK : fail(sc, CN_EPROTO, "malformed reply");
    if (cr) {
        sc->rc = (ps_round_close){.round = cr->round,
                                  .version = cr->version,
                                  .updates = cr->updates,
                                  .weight = cr->weight,
                                  .already_closed = cr->already_closed,
                                  .apply_seconds = cr->apply_seconds};
        sc->sync.clock = cr->round;
        protobuf_c_message_free_unpacked(&cr->base, NULL);
    }
    rpc_reply_fini(&rep);
    return e;
}

static void run_op(shard_conn *sc)
{
    // Any operation ends the caller's view of the last push-pull's values.
    rpc_reply_fini(&sc->held);
    memset(&sc->sync, 0, sizeof sc->sync);
    sc->err[0] = 0;
    sc->restored = false;
    switch (sc->c->op) {
    case OP_PULL:
        sc->result = do_pull(sc);
        break;
    case OP_PUSH:
        sc->result = do_push(sc, false);
        break;
    case OP_PUSHPULL:
        sc->result = do_push(sc, true);
        break;
    case OP_CONFIGURE:
        sc->result = do_configure(sc);
        break;
    case OP_PUSH_UPDATE:
        sc->result = do_push_update(sc);
        break;
    case OP_CLOSE_ROUND:
        sc->result = do_close_round(sc);
        break;
    default:
        sc->result = CN_EINTERNAL;
    }
}

static void *helper_main(void *arg)
{
    shard_conn *sc = arg;
    ps_client *c = sc->c;
    uint64_t seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stopping && c->gen == seen)
            pthread_cond_wait(&c->start_cv, &c->mu);
        if (c->stopping)
            break;
        seen = c->gen;
        pthread_mutex_unlock(&c->mu);
        run_op(sc);
        pthread_mutex_lock(&c->mu);
        if (--c->pending == 0)
            pthread_cond_broadcast(&c->done_cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

// run_all runs the current operation on every shard and returns the first
// failure, with err set.
static cn_err run_all(ps_client *c, char *err, size_t errlen)
{
    uint32_t S = c->o.shards;
    if (S > 1) {
        pthread_mutex_lock(&c->mu);
        c->pending = S - 1;
        c->gen++;
        pthread_cond_broadcast(&c->start_cv);
        pthread_mutex_unlock(&c->mu);
    }
    run_op(&c->sh[0]);
    if (S > 1) {
        pthread_mutex_lock(&c->mu);
        while (c->pending > 0)
            pthread_cond_wait(&c->done_cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
    }
    for (uint32_t k = 0; k < S; k++)
        if (c->sh[k].result != CN_OK)
            return cn_errf(err, errlen, c->sh[k].result, "%s", c->sh[k].err);
    return CN_OK;
}

cn_err ps_client_open(ps_client **out, const ps_client_opts *o, char *err, size_t errlen)
{
    *out = NULL;
    if (o->shards < 1 || o->n_params < o->shards || o->job_id == NULL ||
        strlen(o->job_id) >= PS_JOB_ID_LEN)
        return cn_errf(err, errlen, CN_EINVAL,
                       "ps client: need shards >= 1, n_params >= shards and a job id");
    ps_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    c->o = *o;
    // nothing the caller points to is kept: the URLs and the job id are
    // copied below, the token and TLS files are read by rpc_client_open
    c->o.urls = NULL;
    c->o.job_id = NULL;
    c->o.token = NULL;
    c->o.tls = (rpc_tls){0};
    if (c->o.call_timeout_ms <= 0)
        c->o.call_timeout_ms = 30000;
    if (c->o.outage_ms <= 0)
        c->o.outage_ms = 120000;
    snprintf(c->job_id, sizeof c->job_id, "%s", o->job_id);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->start_cv, NULL);
    pthread_cond_init(&c->done_cv, NULL);
    c->sh = calloc(o->shards, sizeof *c->sh);
    if (c->sh == NULL) {
        ps_client_close(c);
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    }
    cn_err e = CN_OK;
    for (uint32_t k = 0; k < o->shards; k++) {
        shard_conn *sc = &c->sh[k];
        sc->c = c;
        sc->k = k;
        ps_range(o->n_params, o->shards, k, &sc->lo, &sc->hi);
        if (snprintf(sc->url, sizeof sc->url, "%s", o->urls[k]) >= (int)sizeof sc->url) {
            ps_client_close(c);
            return cn_errf(err, errlen, CN_EINVAL,
                           "shard %u: URL \"%.60s...\" is longer than %zu bytes", k, o->urls[k],
                           sizeof sc->url - 1);
        }
        rpc_client_opts ro = {.url = o->urls[k],
                              .token = o->token,
                              .tls = o->tls,
                              .default_deadline_ms = c->o.call_timeout_ms,
                              .max_retries = 1,
                              .max_msg_bytes =
                                  (size_t)(sc->hi - sc->lo) * sizeof(float) + (1u << 20)};
        char e2[CN_ERRBUF_LEN];
        if ((e = rpc_client_open(&sc->rpc, &ro, e2, sizeof e2)) != CN_OK) {
            cn_errf(err, errlen, e, "shard %u: %s", k, e2);
            ps_client_close(c);
            return e;
        }
        if (k > 0) {
            if (pthread_create(&sc->th, NULL, helper_main, sc) != 0) {
                ps_client_close(c);
                return cn_errf(err, errlen, CN_ENOMEM, "cannot start a client thread");
            }
            sc->th_started = true;
        }
    }
    *out = c;
    return CN_OK;
}

void ps_client_close(ps_client *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->start_cv);
    pthread_mutex_unlock(&c->mu);
    for (uint32_t k = 0; c->sh && k < c->o.shards; k++) {
        if (c->sh[k].th_started)
            pthread_join(c->sh[k].th, NULL);
        rpc_reply_fini(&c->sh[k].held);
        rpc_client_close(c->sh[k].rpc);
    }
    free(c->sh);
    free(c->gathered);
    pthread_cond_destroy(&c->start_cv);
    pthread_cond_destroy(&c->done_cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

// merge_sync combines per-shard clocks: the smallest clock, version and
// worker clock (a worker that died between its pushes to two shards must
// be resumed at the clock the behind shard still needs); with largest_clock
// the largest clock instead.
static void merge_sync(const ps_client *c, ps_sync *out, bool largest_clock)
{
    if (out == NULL)
        return;
    *out = c->sh[0].sync;
    for (uint32_t k = 1; k < c->o.shards; k++) {
        const ps_sync *s = &c->sh[k].sync;
        if (largest_clock ? s->clock > out->clock : s->clock < out->clock)
            out->clock = s->clock;
        if (s->version < out->version)
            out->version = s->version;
        if (s->worker_clock < out->worker_clock)
            out->worker_clock = s->worker_clock;
        out->duplicate = out->duplicate || s->duplicate;
    }
}

cn_err ps_client_configure(ps_client *c, const ps_shard_cfg *cfg, const float *init, bool restore,
                           bool *restored, char *err, size_t errlen)
{
    c->op = OP_CONFIGURE;
    c->cfg = cfg;
    c->in = init;
    c->restore = restore;
    cn_err e = run_all(c, err, errlen);
    if (restored) {
        *restored = false;
        for (uint32_t k = 0; k < c->o.shards; k++)
            *restored = *restored || c->sh[k].restored;
    }
    return e;
}

cn_err ps_client_pull(ps_client *c, uint64_t clock, bool consistent, float *params, ps_sync *sync,
                      char *err, size_t errlen)
{
    c->op = OP_PULL;
    c->clock = clock;
    c->consistent = consistent;
    c->out = params;
    cn_err e = run_all(c, err, errlen);
    merge_sync(c, sync, false);
    return e;
}

cn_err ps_client_push_pull(ps_client *c, uint64_t clock, uint64_t base_version, const float *grad,
                           const float **params, ps_sync *sync, char *err, size_t errlen)
{
    *params = NULL;
    if (c->o.shards > 1 && c->gathered == NULL) {
        c->gathered = malloc(c->o.n_params * sizeof *c->gathered);
        if (c->gathered == NULL)
            return cn_errf(err, errlen, CN_ENOMEM, "out of memory for %llu parameters",
                           (unsigned long long)c->o.n_params);
    }
    c->op = OP_PUSHPULL;
    c->clock = clock;
    c->base_version = base_version;
    c->in = grad;
    c->out = c->gathered; // NULL with one shard: the reply is the vector
    cn_err e = run_all(c, err, errlen);
    merge_sync(c, sync, true);
    if (e == CN_OK)
        *params = c->out ? c->out : (const float *)c->sh[0].held.payload;
    return e;
}

cn_err ps_client_push(ps_client *c, uint64_t clock, uint64_t base_version, const float *grad,
                      ps_sync *sync, char *err, size_t errlen)
{
    c->op = OP_PUSH;
    c->clock = clock;
    c->base_version = base_version;
    c->in = grad;
    cn_err e = run_all(c, err, errlen);
    merge_sync(c, sync, true);
    return e;
}

rpc_code ps_client_stats(ps_client *c, uint32_t k, ps_stats *out, char *err, size_t errlen)
{
    if (k >= c->o.shards) {
        cn_errf(err, errlen, CN_EINVAL, "no shard %u", k);
        return RPC_INVALID_ARGUMENT;
    }
    Canopy__Ps__StatsRequest req = CANOPY__PS__STATS_REQUEST__INIT;
    req.job_id = c->job_id;
    rpc_request r = {.service = "ParameterServer",
                     .method = "Stats",
                     .body = &req.base,
                     .deadline_ms = 5000,
                     .flags = RPC_IDEMPOTENT};
    rpc_reply rep;
    memset(&rep, 0, sizeof rep);
    rpc_code code = rpc_client_call(c->sh[k].rpc, &r, &rep);
    if (code == RPC_OK) {
        Canopy__Ps__StatsReply *sr =
            (Canopy__Ps__StatsReply *)rpc_reply_unpack(&rep, &canopy__ps__stats_reply__descriptor);
        if (sr == NULL) {
            code = RPC_INTERNAL;
            cn_errf(err, errlen, CN_EPROTO, "shard %u: malformed Stats reply", k);
        } else {
            ps_wire_stats_from_pb(sr, out);
            protobuf_c_message_free_unpacked(&sr->base, NULL);
        }
    } else {
        cn_errf(err, errlen, CN_EUNAVAIL, "shard %u: Stats %s: %s", k, rpc_code_name(code),
                rep.detail);
    }
    rpc_reply_fini(&rep);
    return code;
}

cn_err ps_client_push_update(ps_client *c, uint64_t round, double weight, const float *delta,
                             ps_sync *sync, char *err, size_t errlen)
{
    c->op = OP_PUSH_UPDATE;
    c->clock = round;
    c->weight = weight;
    c->in = delta;
    cn_err e = run_all(c, err, errlen);
    merge_sync(c, sync, true);
    return e;
}

cn_err ps_client_close_round(ps_client *c, uint64_t round, bool apply, ps_round_close *out,
                             char *err, size_t errlen)
{
    c->op = OP_CLOSE_ROUND;
    c->clock = round;
    c->apply = apply;
    cn_err e = run_all(c, err, errlen);
    memset(out, 0, sizeof *out);
    out->round = UINT64_MAX;
    out->updates = UINT32_MAX;
    for (uint32_t k = 0; k < c->o.shards; k++) {
        const ps_round_close *rc = &c->sh[k].rc;
        out->round = rc->round < out->round ? rc->round : out->round;
        out->updates = rc->updates < out->updates ? rc->updates : out->updates;
        out->weight = k == 0 || rc->weight < out->weight ? rc->weight : out->weight;
        out->version = rc->version > out->version ? rc->version : out->version;
        out->already_closed |= rc->already_closed;
        out->apply_seconds =
            rc->apply_seconds > out->apply_seconds ? rc->apply_seconds : out->apply_seconds;
    }
    return e;
}

uint64_t ps_client_retries(const ps_client *c, char *last, size_t n)
{
    if (last) {
        // mu is not part of c's value: locking it does not change c.
        pthread_mutex_t *mu = (pthread_mutex_t *)&c->mu;
        pthread_mutex_lock(mu);
        snprintf(last, n, "%s", c->last_retry);
        pthread_mutex_unlock(mu);
    }
    return atomic_load(&c->retries);
}

void ps_client_bytes(const ps_client *c, uint64_t *sent, uint64_t *received)
{
    *sent = atomic_load(&c->sent);
    *received = atomic_load(&c->received);
}
