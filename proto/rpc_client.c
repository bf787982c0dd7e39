// rpc_client.c: the RPC client. One nng req0 socket whose dialer connects in
// the background and redials (10 ms .. 1 s) after the server goes away; a
// bounded pool of req contexts, created on demand and then kept, so that
// concurrent rpc_client_call's never share one. nng's own request resend is
// disabled: retries are ours, with exponential backoff and full jitter, for
// RPC_IDEMPOTENT calls only, inside the call's overall deadline, and a call
// keeps its (caller, seq) and request id across attempts so the duplicate
// table of a server whose method is mutating recognises it.
//
// Closing. nng 1.5.2 can hang nng_close for ever when a message arrives on
// the connection while it is being closed (see rpc_socket_close_bounded in
// rpc_impl.h). For a client with no call in progress the only such message
// is the late reply to an attempt that gave up on its deadline. canopy
// servers never send a reply after the deadline carried in the request, so
// the client remembers until when a late reply could still be on its way
// (quiet_ns: the attempt's deadline plus RPC_LATE_GRACE_MS) and
// rpc_client_close waits for that moment (at most CL_QUIET_MAX_MS) before
// it closes the socket, with a bound on the close itself.
//
// Thread rule: the pool, the active-call count, quiet_ns and the close flag
// are guarded by mu; ids are atomics; everything else is immutable after
// open.
#include "proto/rpc.h"
#include "proto/rpc_impl.h"

#include <pthread.h>
#include <sys/random.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/protocol/reqrep0/req.h>

#include "common/cn_clock.h"
#include "common/cn_rand.h"

#define CL_POOL 64
#define CL_QUIET_MAX_MS 300 // longest wait for late replies in rpc_client_close

typedef struct cl_slot {
    nng_ctx ctx;
    nng_aio *aio;
    bool dead; // ctx could not be reopened; never used again
} cl_slot;

struct rpc_client {
    char url[512];
    char token[256];
    uint64_t node;
    size_t max_msg;
    int deadline_ms, max_retries, backoff_base_ms, backoff_max_ms;
    nng_socket sock;
    nng_dialer d;
    nng_tls_config *tls;
    bool sock_open;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    cl_slot slots[CL_POOL];
    int nslots;
    int free_idx[CL_POOL];
    int nfree;
    int active;
    uint64_t quiet_ns; // no late reply can arrive after this (cn_now_ns)
    bool closing;
    atomic_bool aclosing; // mirror of closing, read without mu
    cn_rng rng;           // jitter; under mu

    atomic_uint_fast64_t next_id;
    atomic_uint_fast64_t next_seq;
    uint64_t caller; // random, non-zero: the duplicate table's key for this client
};

// Each thread keeps the last large reply it released (rpc_reply_fini) as a
// spare for its next large request: nng zeroed the reply's buffer when it
// allocated it, and rpc_wire_pack writes the request into that buffer
// instead of a new one, zeroed again (a push-and-pull of a model then
// allocates nothing on the client). A thread holds at most one spare of at
// most RPC_SPARE_MAX bytes, freed when the thread exits.
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static bool spare_ok;

static void spare_free(void *m)
{
    nng_msg_free(m);
}

static void spare_init(void)
{
    spare_ok = pthread_key_create(&spare_key, spare_free) == 0;
}

static nng_msg *spare_take(void)
{
    pthread_once(&spare_once, spare_init);
    if (!spare_ok)
        return NULL;
    nng_msg *m = pthread_getspecific(spare_key);
    if (m)
        pthread_setspecific(spare_key, NULL);
    return m;
}

static void spare_put(nng_msg *m)
{
    pthread_once(&spare_once, spare_init);
    if (!spare_ok) {
        nng_msg_free(m);
        return;
    }
    nng_msg *cur = pthread_getspecific(spare_key);
    rpc_wire_spare_keep(&cur, m);
    if (pthread_setspecific(spare_key, cur) != 0 && cur)
        nng_msg_free(cur);
}

static void abs_time(struct timespec *ts, uint64_t deadline_ns)
{
    // c->cv waits on the monotonic clock (cn_cond_init_mono), so a step of
    // the wall clock neither stretches nor cuts a call's deadline.
    uint64_t now = cn_now_ns();
    uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(left / 1000000000ull);
    ts->tv_nsec += (long)(left % 1000000000ull);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

cn_err rpc_client_open(rpc_client **out, const rpc_client_opts *opts, char *err, size_t errlen)
{
    *out = NULL;
    if (!opts || !opts->url || !opts->url[0])
        return cn_errf(err, errlen, CN_EINVAL, "rpc client: url is required");
    if (strlen(opts->url) >= sizeof((rpc_client *)0)->url)
        return cn_errf(err, errlen, CN_EINVAL, "rpc client: url too long");
    if (opts->token && strlen(opts->token) > 255)
        return cn_errf(err, errlen, CN_EINVAL, "rpc client: token longer than 255 bytes");
    rpc_client *c = calloc(1, sizeof *c);
    if (!c)
        return CN_ENOMEM;
    snprintf(c->url, sizeof c->url, "%s", opts->url);
    snprintf(c->token, sizeof c->token, "%s", opts->token ? opts->token : "");
    c->max_msg = opts->max_msg_bytes ? opts->max_msg_bytes : RPC_DEFAULT_MAX_MSG;
    c->deadline_ms = opts->default_deadline_ms > 0 ? opts->default_deadline_ms : 30000;
    c->max_retries = opts->max_retries > 0 ? opts->max_retries : 5;
    c->backoff_base_ms = opts->backoff_base_ms > 0 ? opts->backoff_base_ms : 50;
    c->backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 2000;
    uint64_t seed = cn_now_ns() ^ ((uint64_t)(uintptr_t)c << 16);
    cn_rng_seed(&c->rng, seed, 0x7270);
    c->node = opts->node_id;
    while (c->node == 0)
        c->node = cn_rng_next(&c->rng);
    // The duplicate table's key: unpredictable, so no other caller can fill
    // or poison this client's entries (the node id is public: see
    // Cluster/Status).
    while (c->caller == 0)
        if (getrandom(&c->caller, sizeof c->caller, 0) != (ssize_t)sizeof c->caller)
            c->caller = cn_rng_next(&c->rng) ^ cn_now_ns();
    atomic_init(&c->next_id, cn_rng_next(&c->rng) >> 16);
    atomic_init(&c->next_seq, 1);
    pthread_mutex_init(&c->mu, NULL);
    cn_cond_init_mono(&c->cv);

    cn_err rc;
    int rv = nng_req0_open(&c->sock);
    if (rv != 0) {
        rc = cn_errf(err, errlen, CN_EIO, "rpc client: cannot open socket: %s", nng_strerror(rv));
        goto fail;
    }
    c->sock_open = true;
    // Must be set before any context exists: contexts copy it when opened.
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 10);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 1000);
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->max_msg);
    rv = nng_dialer_create(&c->d, c->sock, c->url);
    if (rv != 0) {
        rc =
            cn_errf(err, errlen, CN_EINVAL, "rpc client: bad url %s: %s", c->url, nng_strerror(rv));
        goto fail;
    }
    nng_dialer_set_size(c->d, NNG_OPT_RECVMAXSZ, c->max_msg);
    if (rpc_url_is_tls(c->url)) {
        // The certificate must name the host dialled, unless told otherwise:
        // without a server name the TLS library checks the chain only, and
        // any node's certificate would pass for any other.
        rpc_tls t = opts->tls;
        char host[256];
        if (!t.server_name || !t.server_name[0]) {
            if (rpc_url_host(c->url, host, sizeof host) != CN_OK) {
                rc = cn_errf(err, errlen, CN_EINVAL, "rpc client: no host in %s", c->url);
                goto fail;
            }
            t.server_name = host;
        }
        rc = rpc_tls_setup(&c->tls, &t, false, err, errlen);
        if (rc != CN_OK)
            goto fail;
        rv = nng_dialer_set_ptr(c->d, NNG_OPT_TLS_CONFIG, c->tls);
        if (rv != 0) {
            rc = cn_errf(err, errlen, CN_EAUTH, "rpc client: cannot apply TLS config: %s",
                         nng_strerror(rv));
            goto fail;
        }
    }
    rv = nng_dialer_start(c->d, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        rc = cn_errf(err, errlen, CN_EINVAL, "rpc client: cannot dial %s: %s", c->url,
                     nng_strerror(rv));
        goto fail;
    }
    *out = c;
    return CN_OK;
fail:
    rpc_client_close(c);
    return rc;
}

void rpc_client_close(rpc_client *c)
{
    if (!c)
        return;
    // Abort the calls in progress (they return CANCELLED) and wait for
    // them to leave; re-cancel periodically in case a call was between two
    // operations. Then let late replies to abandoned attempts arrive (or
    // their deadline pass), stop every aio and close every context, and
    // only then close the socket, with a bound.
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    atomic_store(&c->aclosing, true);
    pthread_cond_broadcast(&c->cv);
    while (c->active > 0) {
        for (int i = 0; i < c->nslots; i++)
            nng_aio_cancel(c->slots[i].aio);
        struct timespec ts;
        abs_time(&ts, cn_now_ns() + 10000000ull);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    uint64_t quiet = c->quiet_ns;
    pthread_mutex_unlock(&c->mu);
    uint64_t cap = cn_now_ns() + (uint64_t)CL_QUIET_MAX_MS * 1000000ull;
    if (quiet > cap)
        quiet = cap;
    for (uint64_t now = cn_now_ns(); now < quiet; now = cn_now_ns()) {
        uint64_t left = quiet - now;
        struct timespec ts = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < c->nslots; i++) {
        nng_aio_stop(c->slots[i].aio);
        if (!c->slots[i].dead)
            nng_ctx_close(c->slots[i].ctx);
    }
    if (c->sock_open)
        rpc_socket_close_bounded(c->sock, RPC_CLOSE_TIMEOUT_MS);
    for (int i = 0; i < c->nslots; i++)
        nng_aio_free(c->slots[i].aio);
    if (c->tls)
        nng_tls_config_free(c->tls);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

uint64_t rpc_client_node(const rpc_client *c)
{
    return c->node;
}

// slot_get takes a context from the pool, creating one while under CL_POOL,
// else waiting until deadline_ns. Returns the index or -1 (closing, timeout,
// or nng failure: *code says which).
static int slot_get(rpc_client *c, uint64_t deadline_ns, rpc_code *code)
{
    int idx = -1;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->closing) {
            *code = RPC_CANCELLED;
            break;
        }
        if (c->nfree > 0) {
            idx = c->free_idx[--c->nfree];
            break;
        }
        if (c->nslots < CL_POOL) {
            cl_slot *s = &c->slots[c->nslots];
            if (nng_aio_alloc(&s->aio, NULL, NULL) != 0) {
                *code = RPC_RESOURCE_EXHAUSTED;
                break;
            }
            if (nng_ctx_open(&s->ctx, c->sock) != 0) {
                nng_aio_free(s->aio);
                s->aio = NULL;
                *code = RPC_UNAVAILABLE;
                break;
            }
            idx = c->nslots++;
            break;
        }
        if (cn_now_ns() >= deadline_ns) {
            *code = RPC_DEADLINE_EXCEEDED;
            break;
        }
        struct timespec ts;
        abs_time(&ts, deadline_ns);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return idx;
}

static void slot_put(rpc_client *c, int idx)
{
    pthread_mutex_lock(&c->mu);
    if (!c->slots[idx].dead)
        c->free_idx[c->nfree++] = idx;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

__attribute__((format(printf, 3, 4))) static rpc_code set_fail(rpc_reply *rep, rpc_code code,
                                                               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->detail, sizeof rep->detail, fmt, ap);
    va_end(ap);
    rep->code = code;
    return code;
}

static rpc_code nng_fail(rpc_reply *rep, int rv, bool sending)
{
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return set_fail(rep, RPC_CANCELLED, "%s", "client closed during the call");
    if (rv == NNG_ETIMEDOUT)
        return sending ? set_fail(rep, RPC_UNAVAILABLE, "%s",
                                  "no connection to the server before the attempt's deadline")
                       : set_fail(rep, RPC_DEADLINE_EXCEEDED, "%s", "no reply before the deadline");
    return set_fail(rep, RPC_UNAVAILABLE, "transport error: %s", nng_strerror(rv));
}

// attempt sends msg (taken) on slot s and waits up to timeout_ms for the
// reply; fills rep (which then owns the reply message). When the request
// went out but no reply came back, *late_ns is set to the time until which
// the server may still send one (its deadline for the attempt plus
// RPC_LATE_GRACE_MS); otherwise it is left unchanged.
static rpc_code attempt(const atomic_bool *closing, cl_slot *s, nng_msg *msg, uint64_t request_id,
                        int timeout_ms, rpc_reply *rep, uint64_t *late_ns)
{
    uint64_t until = cn_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    if (atomic_load(closing)) {
        nng_msg_free(msg);
        return set_fail(rep, RPC_CANCELLED, "%s", "client closed during the call");
    }
    nng_aio_set_msg(s->aio, msg);
    nng_aio_set_timeout(s->aio, timeout_ms);
    nng_ctx_send(s->ctx, s->aio);
    nng_aio_wait(s->aio);
    int rv = nng_aio_result(s->aio);
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(s->aio));
        nng_aio_set_msg(s->aio, NULL);
        return nng_fail(rep, rv, true);
    }
    // The server counts the deadline from when it receives the request,
    // which is no earlier than now.
    uint64_t now = cn_now_ns();
    *late_ns = now + (uint64_t)(timeout_ms + RPC_LATE_GRACE_MS) * 1000000ull;
    if (atomic_load(closing))
        return set_fail(rep, RPC_CANCELLED, "%s", "client closed during the call");
    int left = now < until ? (int)((until - now + 999999) / 1000000) : 1;
    nng_aio_set_timeout(s->aio, left);
    nng_ctx_recv(s->ctx, s->aio);
    nng_aio_wait(s->aio);
    rv = nng_aio_result(s->aio);
    if (rv != 0)
        return nng_fail(rep, rv, false);
    nng_msg *r = nng_aio_get_msg(s->aio);
    nng_aio_set_msg(s->aio, NULL);

    char err[RPC_DETAIL_LEN];
    rpc_frame f;
    Canopy__Rpc__RpcReply *h = NULL;
    if (rpc_wire_decode_reply(nng_msg_body(r), nng_msg_len(r), NULL, &h, &f, err, sizeof err) !=
            CN_OK ||
        rpc_wire_align_payload(r, &f) != CN_OK) {
        nng_msg_free(r);
        if (h)
            canopy__rpc__rpc_reply__free_unpacked(h, NULL);
        return set_fail(rep, RPC_INTERNAL, "malformed reply: %.200s", err);
    }
    rpc_code code = h->code >= 0 && h->code < RPC_NCODES ? (rpc_code)h->code : RPC_UNKNOWN;
    if (h->request_id != request_id) {
        canopy__rpc__rpc_reply__free_unpacked(h, NULL);
        nng_msg_free(r);
        return set_fail(rep, RPC_INTERNAL, "%s", "reply carries another request id");
    }
    rep->code = code;
    if (code != RPC_OK)
        snprintf(rep->detail, sizeof rep->detail, "%s",
                 h->detail && h->detail[0] ? h->detail : rpc_code_name(code));
    canopy__rpc__rpc_reply__free_unpacked(h, NULL);
    const uint8_t *b = nng_msg_body(r);
    rep->msg_ = r;
    rep->body = b + f.body_off;
    rep->body_len = f.body_len;
    rep->payload = f.payload_len ? b + f.payload_off : NULL;
    rep->payload_len = f.payload_len;
    return code;
}

// backoff_wait sleeps a full-jitter delay for retry number n (0-based),
// never past deadline_ns; returns false if the client is closing.
static bool backoff_wait(rpc_client *c, int n, uint64_t deadline_ns)
{
    uint64_t cap = (uint64_t)c->backoff_base_ms << (n < 20 ? n : 20);
    if (cap > (uint64_t)c->backoff_max_ms)
        cap = (uint64_t)c->backoff_max_ms;
    pthread_mutex_lock(&c->mu);
    uint64_t ms = cn_rng_below(&c->rng, cap + 1);
    uint64_t until = cn_now_ns() + ms * 1000000ull;
    if (until > deadline_ns)
        until = deadline_ns;
    while (!c->closing && cn_now_ns() < until) {
        struct timespec ts;
        abs_time(&ts, until);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    bool ok = !c->closing;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

rpc_code rpc_client_call(rpc_client *c, const rpc_request *req, rpc_reply *rep)
{
    memset(rep, 0, sizeof *rep);
    int deadline_ms = req->deadline_ms > 0 ? req->deadline_ms : c->deadline_ms;
    uint64_t start = cn_now_ns();
    uint64_t deadline_ns = start + (uint64_t)deadline_ms * 1000000ull;
    bool idem = (req->flags & RPC_IDEMPOTENT) != 0;

    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)(req->service ? req->service : "");
    h.method = (char *)(req->method ? req->method : "");
    h.request_id = atomic_fetch_add(&c->next_id, 1);
    h.token = c->token;
    // Every call carries the caller key and a fresh seq: the server decides
    // by method whether to suppress duplicates.
    h.node_id = c->node;
    h.caller = c->caller;
    h.seq = atomic_fetch_add(&c->next_seq, 1);
    h.align_bias = RPC_ALIGN_BIAS;

    // Size check before anything is allocated or sent: the server drops an
    // oversized message at the transport, so only the client can say why.
    size_t hl_max = protobuf_c_message_get_packed_size(&h.base) + 6; // deadline varint
    size_t bl = req->body ? protobuf_c_message_get_packed_size(req->body) : 0;
    size_t poff;
    size_t total = rpc_wire_frame_size(hl_max, bl, req->payload_len, &poff);
    if (total == 0 || total + RPC_NNG_OVERHEAD > c->max_msg) {
        rep->code = RPC_RESOURCE_EXHAUSTED;
        snprintf(rep->detail, sizeof rep->detail,
                 "request of %zu bytes exceeds max_msg_bytes %zu; not sent", total, c->max_msg);
        return rep->code;
    }

    pthread_mutex_lock(&c->mu);
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        return set_fail(rep, RPC_CANCELLED, "%s", "client is closed");
    }
    c->active++;
    pthread_mutex_unlock(&c->mu);

    rpc_code code = RPC_UNAVAILABLE;
    rpc_code sc = RPC_UNAVAILABLE;
    int idx = slot_get(c, deadline_ns, &sc);
    if (idx < 0) {
        code = set_fail(rep, sc, "%s", "no free call context before the deadline");
        goto done;
    }
    cl_slot *s = &c->slots[idx];
    int retries = idem ? c->max_retries : 0;
    for (int n = 0;; n++) {
        uint64_t now = cn_now_ns();
        if (now >= deadline_ns) {
            if (n == 0 || code == RPC_OK)
                code = set_fail(rep, RPC_DEADLINE_EXCEEDED, "%s", "deadline passed");
            else if (code != RPC_DEADLINE_EXCEEDED)
                code = set_fail(rep, RPC_DEADLINE_EXCEEDED, "deadline passed; last error: %s",
                                rpc_code_name(code));
            break;
        }
        int left_ms = (int)((deadline_ns - now + 999999) / 1000000);
        // An idempotent call gives each remaining attempt an equal share of
        // the time left, so a lost request or a dead connection still
        // leaves time for a retry.
        int att_ms = left_ms / (retries - n + 1 > 0 ? retries - n + 1 : 1);
        if (att_ms < 1)
            att_ms = 1;
        h.deadline_ms = (uint32_t)att_ms;
        nng_msg *msg;
        void *pl = NULL;
        nng_msg *spare = req->payload_len >= RPC_SPARE_MIN ? spare_take() : NULL;
        cn_err rc =
            rpc_wire_pack(&msg, &h.base, req->body, req->payload_len, c->max_msg, &pl, &spare);
        if (spare)
            spare_put(spare);
        if (rc != CN_OK) {
            code =
                set_fail(rep, RPC_RESOURCE_EXHAUSTED, "cannot build request: %s", cn_strerror(rc));
            break;
        }
        if (req->payload_len)
            memcpy(pl, req->payload, req->payload_len);
        if (rep->msg_) {
            spare_put(rep->msg_);
            rep->msg_ = NULL;
        }
        uint64_t late_ns = 0;
        code = attempt(&c->aclosing, s, msg, h.request_id, att_ms, rep, &late_ns);
        if (late_ns && !rep->msg_) {
            pthread_mutex_lock(&c->mu);
            if (late_ns > c->quiet_ns)
                c->quiet_ns = late_ns;
            pthread_mutex_unlock(&c->mu);
        }
        if (code != RPC_OK && !rep->msg_ && code != RPC_CANCELLED) {
            // No reply: the context may still hold the abandoned request.
            // Replace it, so a late reply finds no one and a stale request
            // is never resent by nng.
            nng_ctx_close(s->ctx);
            if (nng_ctx_open(&s->ctx, c->sock) != 0) {
                code = set_fail(rep, RPC_UNAVAILABLE, "%s", "cannot reopen call context");
                s->dead = true;
                break;
            }
        }
        // ABORTED: the server is still running an earlier attempt of this
        // call; the retry gets its stored reply (docs/wire.md).
        if (code == RPC_OK || n >= retries ||
            (code != RPC_UNAVAILABLE && code != RPC_DEADLINE_EXCEEDED && code != RPC_ABORTED))
            break;
        if (!backoff_wait(c, n, deadline_ns)) {
            code = set_fail(rep, RPC_CANCELLED, "%s", "client closed during the call");
            break;
        }
    }
    slot_put(c, idx);
done:
    rep->code = code;
    pthread_mutex_lock(&c->mu);
    c->active--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return code;
}

ProtobufCMessage *rpc_reply_unpack(const rpc_reply *rep, const ProtobufCMessageDescriptor *desc)
{
    if (!rep->msg_)
        return NULL;
    return protobuf_c_message_unpack(desc, NULL, rep->body_len, rep->body);
}

void rpc_reply_fini(rpc_reply *rep)
{
    if (rep->msg_)
        spare_put(rep->msg_);
    memset(rep, 0, sizeof *rep);
}

rpc_code rpc_wait_ready(rpc_client *c, const char *service, const char *method, int timeout_ms)
{
    uint64_t until = cn_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
    rpc_code last = RPC_UNAVAILABLE;
    for (;;) {
        uint64_t now = cn_now_ns();
        if (now >= until)
            return last;
        int left = (int)((until - now) / 1000000) + 1;
        rpc_request r = {.service = service,
                         .method = method,
                         .deadline_ms = left < 200 ? left : 200,
                         .flags = RPC_IDEMPOTENT};
        rpc_reply rep;
        last = rpc_client_call(c, &r, &rep);
        rpc_reply_fini(&rep);
        if (last == RPC_OK || last == RPC_CANCELLED)
            return last;
        if (last != RPC_UNAVAILABLE && last != RPC_DEADLINE_EXCEEDED) {
            // The server answered, just not OK (e.g. UNIMPLEMENTED): it is
            // up; report what it said.
            return last;
        }
    }
}
