// rpc_server.c: the RPC server. One nng rep0 socket, a fixed pool of nng
// contexts created once at start (nng#1663 makes creating contexts in a
// burst slow in 1.5.2), each driving RECV -> HANDLE -> SEND with its own aio,
// as nng's demo/async/server.c does. The rpc_call of a context is embedded
// in it, so a call costs no allocation besides the reply message.
//
// Admission, in order: decode (INVALID_ARGUMENT), shutting down
// (UNAVAILABLE), token (UNAUTHENTICATED), method (UNIMPLEMENTED), in-flight
// cap (RESOURCE_EXHAUSTED), duplicate check for mutating calls (cached
// reply, ABORTED or ALREADY_EXISTS), then the handler runs inline on the nng
// callback thread or on this file's handler pool, unless the deadline has
// already passed when it is dequeued (DEADLINE_EXCEEDED).
//
// A reply is never sent after the deadline the request carried: the caller
// has given up by then, and a message arriving while the caller closes its
// socket can hang nng_close in nng 1.5.2 (see rpc_socket_close_bounded). The
// call is still counted in the metrics and the duplicate table.
//
// Closing keeps the listener, and so the connections, open while calls
// drain (closing a listener closes its connections, and their replies would
// be lost), then stops every context and closes the socket, each step with
// a bound; see rpc_server_close.
//
// Thread rule: the method table is immutable after start; the handler queue,
// the duplicate table and the close state have their own mutexes; counters
// are atomics.
#include "proto/rpc.h"
#include "proto/rpc_impl.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/protocol/reqrep0/rep.h>

#include "common/cn_clock.h"

enum { CTX_IDLE, CTX_RECV, CTX_BUSY, CTX_SEND };
enum { DD_EMPTY, DD_RUNNING, DD_DONE, DD_DONE_UNKEPT };
enum { DD_NEW, DD_REPLAY, DD_IN_PROGRESS, DD_TOO_OLD, DD_UNKEPT };

#define CTX_MARGIN 16     // contexts beyond max_inflight, to answer RESOURCE_EXHAUSTED
#define DD_BUCKETS 256    // hash buckets of the per-node duplicate table
#define ARENA_BYTES 1024  // per-call scratch for unpacking the request header
#define CLOSE_JOIN_MS 200 // wait for handler threads after the drain
#define REFUSE_PER_SEC 10 // reports of refused peers per second

typedef struct rpc_method {
    char service[RPC_NAME_LEN];
    char method[RPC_NAME_LEN];
    char full[2 * RPC_NAME_LEN + 1]; // "Service/Method"
    rpc_handler_fn fn;
    void *arg;
    unsigned flags;
    rpc_method_metrics metrics;
} rpc_method;

typedef struct srv_ctx srv_ctx;

// rpc_call: one call in progress, embedded in its context. Owned by the
// handler between dispatch and completion, by the context otherwise.
struct rpc_call {
    srv_ctx *x;
    nng_msg *req; // the request; body/payload point into it
    Canopy__Rpc__RpcRequest *hdr;
    rpc_method *m; // NULL before the method is known
    const uint8_t *body;
    size_t body_len;
    const void *payload;
    size_t payload_len;
    size_t front; // the request's header, body and padding: its payload's offset
    size_t bytes_in;
    uint64_t recv_ns;
    uint64_t deadline_ns; // 0 = none
    uint64_t node, caller, seq;
    bool counted;   // holds an in-flight slot
    bool dedup;     // holds a DD_RUNNING slot in the duplicate table
    bool ran;       // the handler was called
    nng_msg *reply; // between reply_begin and reply_end
    rpc_call *next; // handler queue
    // Bump allocator for unpacking the header without malloc.
    ProtobufCAllocator alloc;
    size_t arena_used;
    _Alignas(16) uint8_t arena[ARENA_BYTES];
};

struct srv_ctx {
    rpc_server *s;
    nng_ctx ctx;
    nng_aio *aio;
    atomic_int state;
    rpc_call call;
};

typedef struct dd_slot {
    uint64_t seq;
    int state;
    nng_msg *reply; // DD_DONE: a copy of the reply sent
} dd_slot;

// conn: one open connection (nng pipe), for the connection caps.
typedef struct conn {
    nng_pipe pipe;
    uint32_t id;
    bool authed;    // delivered a call with the right token
    bool has_ip;    // tcp or tls+tcp: ip is the peer's address
    uint8_t ip[16]; // IPv4 in the first 4 bytes
    uint64_t since_ns;
} conn;

typedef struct dd_node {
    uint64_t caller;
    uint64_t max_seq;
    bool any;
    int running;                         // slots DD_RUNNING (the caller is not dropped meanwhile)
    dd_slot *slots;                      // window entries, indexed by seq % window
    struct dd_node *next;                // hash chain
    struct dd_node *lru_prev, *lru_next; // most recently seen first
} dd_node;

struct rpc_server {
    char url[512];
    char token[256];
    size_t max_msg;
    int max_inflight, nthreads, window;
    nng_socket sock;
    nng_listener l;
    nng_tls_config *tls;
    bool sock_open, started;

    rpc_method *methods;
    int nmethods;
    rpc_method unknown; // metrics of calls rejected before a method was known

    srv_ctx *ctxs;
    int nctx;

    pthread_t *threads;
    int nthreads_started;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    rpc_call *qhead, *qtail;
    bool qstop;

    atomic_int inflight;
    atomic_bool closing;
    atomic_bool stopping; // contexts are being stopped: receive no more
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;

    // Duplicate table: dd_mu guards all of it.
    pthread_mutex_t dd_mu;
    dd_node *dd[DD_BUCKETS];
    // spare: a large request done with, whose buffer the next large reply
    // reuses (rpc_wire_pack); spare_mu guards it.
    pthread_mutex_t spare_mu;
    nng_msg *spare;
    dd_node *lru_head, *lru_tail;
    int dd_count, dd_max;
    size_t dd_bytes, dd_max_bytes;
    uint64_t dd_evicted;

    // Connections: pipe_mu guards conns and nunauth.
    int max_conns, max_unauth, max_unauth_ip, auth_grace_ms;
    pthread_mutex_t pipe_mu;
    conn *conns; // (max_conns)
    int nconns, nunauth;
    atomic_int unauth_hint; // nunauth, read without the lock on the call path
    atomic_uint_fast64_t refused_conns, evicted_conns;

    // Reports of refused peers, at most REFUSE_PER_SEC a second.
    void (*on_refuse)(void *arg, const char *what);
    void *on_refuse_arg;
    pthread_mutex_t refuse_mu;
    uint64_t refuse_sec;
    int refuse_n;
    uint64_t refuse_suppressed;
};

// ---------------------------------------------------------------- arena

static void *arena_alloc(void *data, size_t size)
{
    rpc_call *c = data;
    size_t n = (size + 15) & ~(size_t)15;
    if (n <= ARENA_BYTES - c->arena_used) {
        void *p = c->arena + c->arena_used;
        c->arena_used += n;
        return p;
    }
    return malloc(size);
}

static void arena_free(void *data, void *p)
{
    rpc_call *c = data;
    uint8_t *q = p;
    if (q >= c->arena && q < c->arena + ARENA_BYTES)
        return;
    free(p);
}

// ---------------------------------------------------------------- duplicates

// The table is keyed by the caller key each client draws at random: no
// other client can reach a caller's entries, whatever seq or node id it
// sends. It is bounded: at most dd_max callers (the least recently seen
// goes first) and dd_max_bytes of stored replies.

static unsigned dd_bucket(uint64_t caller)
{
    return (unsigned)((caller * 0x9e3779b97f4a7c15ull) >> 56) % DD_BUCKETS;
}

static void lru_unlink(rpc_server *s, dd_node *n)
{
    if (n->lru_prev)
        n->lru_prev->lru_next = n->lru_next;
    else
        s->lru_head = n->lru_next;
    if (n->lru_next)
        n->lru_next->lru_prev = n->lru_prev;
    else
        s->lru_tail = n->lru_prev;
    n->lru_prev = n->lru_next = NULL;
}

static void lru_front(rpc_server *s, dd_node *n)
{
    n->lru_next = s->lru_head;
    if (s->lru_head)
        s->lru_head->lru_prev = n;
    s->lru_head = n;
    if (!s->lru_tail)
        s->lru_tail = n;
}

static void dd_node_free(rpc_server *s, dd_node *n)
{
    for (int i = 0; i < s->window; i++)
        if (n->slots[i].reply) {
            s->dd_bytes -= nng_msg_len(n->slots[i].reply);
            nng_msg_free(n->slots[i].reply);
        }
    free(n->slots);
    free(n);
}

// dd_evict drops the least recently seen caller with no call running,
// other than keep. Returns false if there is none.
static bool dd_evict(rpc_server *s, const dd_node *keep)
{
    dd_node *n = s->lru_tail;
    while (n && (n == keep || n->running > 0))
        n = n->lru_prev;
    if (!n)
        return false;
    lru_unlink(s, n);
    dd_node **pp = &s->dd[dd_bucket(n->caller)];
    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
    s->dd_count--;
    s->dd_evicted++;
    dd_node_free(s, n);
    return true;
}

static dd_node *dd_find(rpc_server *s, uint64_t caller, bool create)
{
    unsigned h = dd_bucket(caller);
    for (dd_node *n = s->dd[h]; n; n = n->next)
        if (n->caller == caller) {
            lru_unlink(s, n);
            lru_front(s, n);
            return n;
        }
    if (!create)
        return NULL;
    if (s->dd_count >= s->dd_max && !dd_evict(s, NULL))
        return NULL;
    dd_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->slots = calloc((size_t)s->window, sizeof *n->slots);
    if (!n->slots) {
        free(n);
        return NULL;
    }
    n->caller = caller;
    n->next = s->dd[h];
    s->dd[h] = n;
    lru_front(s, n);
    s->dd_count++;
    return n;
}

// dd_check classifies (caller, seq); for DD_REPLAY *cached is a copy of the
// stored reply; for DD_NEW the slot is claimed (DD_RUNNING).
static int dd_check(rpc_server *s, uint64_t caller, uint64_t seq, nng_msg **cached)
{
    int r = DD_NEW;
    *cached = NULL;
    pthread_mutex_lock(&s->dd_mu);
    dd_node *n = dd_find(s, caller, true);
    if (!n) {
        r = -1;
        goto out;
    }
    uint64_t w = (uint64_t)s->window;
    if (n->any && seq < n->max_seq && n->max_seq - seq >= w) {
        r = DD_TOO_OLD;
        goto out;
    }
    dd_slot *sl = &n->slots[seq % w];
    if (sl->state != DD_EMPTY && sl->seq == seq) {
        if (sl->state == DD_RUNNING) {
            r = DD_IN_PROGRESS;
        } else if (sl->state == DD_DONE_UNKEPT) {
            r = DD_UNKEPT;
        } else if (nng_msg_dup(cached, sl->reply) == 0) {
            r = DD_REPLAY;
        } else {
            r = -1;
        }
        goto out;
    }
    if (sl->state == DD_RUNNING)
        n->running--; // an older call in this slot still runs: it will not be stored
    if (sl->reply) {
        s->dd_bytes -= nng_msg_len(sl->reply);
        nng_msg_free(sl->reply);
    }
    sl->reply = NULL;
    sl->seq = seq;
    sl->state = DD_RUNNING;
    n->running++;
    if (!n->any || seq > n->max_seq)
        n->max_seq = seq;
    n->any = true;
out:
    pthread_mutex_unlock(&s->dd_mu);
    return r;
}

// dd_finish stores a copy of reply for (caller, seq), or forgets the claim
// when reply is NULL (the handler never ran, so a resend may run it). A
// reply that does not fit in the byte budget, even after dropping other
// callers, is not kept: a resend is then told the call was applied.
static void dd_finish(rpc_server *s, uint64_t caller, uint64_t seq, nng_msg *reply)
{
    nng_msg *copy = NULL;
    if (reply && nng_msg_len(reply) <= s->dd_max_bytes / 4 && nng_msg_dup(&copy, reply) != 0)
        copy = NULL;
    pthread_mutex_lock(&s->dd_mu);
    dd_node *n = dd_find(s, caller, false);
    dd_slot *sl = n ? &n->slots[seq % (uint64_t)s->window] : NULL;
    if (sl && sl->seq == seq && sl->state == DD_RUNNING) {
        n->running--;
        if (copy) {
            s->dd_bytes += nng_msg_len(copy);
            while (s->dd_bytes > s->dd_max_bytes && dd_evict(s, n))
                ;
        }
        if (!reply)
            sl->state = DD_EMPTY;
        else if (copy && s->dd_bytes <= s->dd_max_bytes)
            sl->state = DD_DONE;
        else
            sl->state = DD_DONE_UNKEPT;
        if (sl->state == DD_DONE) {
            sl->reply = copy;
            copy = NULL;
        } else if (copy) {
            s->dd_bytes -= nng_msg_len(copy);
        }
    }
    pthread_mutex_unlock(&s->dd_mu);
    if (copy)
        nng_msg_free(copy);
}

static void dd_free_all(rpc_server *s)
{
    for (int h = 0; h < DD_BUCKETS; h++) {
        dd_node *n = s->dd[h];
        while (n) {
            dd_node *next = n->next;
            dd_node_free(s, n);
            n = next;
        }
        s->dd[h] = NULL;
    }
    s->lru_head = s->lru_tail = NULL;
    s->dd_count = 0;
}

// ---------------------------------------------------------------- connections

// refused reports one refused peer or call through opts.on_refuse, at most
// REFUSE_PER_SEC times a second; the rest are counted and mentioned in the
// next report.
static void refused(rpc_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refused(rpc_server *s, const char *fmt, ...)
{
    if (!s->on_refuse)
        return;
    uint64_t sec = cn_now_ns() / 1000000000ull, skipped;
    pthread_mutex_lock(&s->refuse_mu);
    if (sec != s->refuse_sec) {
        s->refuse_sec = sec;
        s->refuse_n = 0;
    }
    if (s->refuse_n >= REFUSE_PER_SEC) {
        s->refuse_suppressed++;
        pthread_mutex_unlock(&s->refuse_mu);
        return;
    }
    s->refuse_n++;
    skipped = s->refuse_suppressed;
    s->refuse_suppressed = 0;
    pthread_mutex_unlock(&s->refuse_mu);
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (skipped && n > 0 && (size_t)n < sizeof msg)
        snprintf(msg + n, sizeof msg - (size_t)n, " (and %" PRIu64 " more not reported)", skipped);
    s->on_refuse(s->on_refuse_arg, msg);
}

// peer_of fills c's address fields and writes "ip:port" (or the transport's
// name) into out.
static void peer_of(nng_pipe p, conn *c, char *out, size_t n)
{
    nng_sockaddr sa;
    memset(c->ip, 0, sizeof c->ip);
    c->has_ip = false;
    snprintf(out, n, "a local peer");
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
        return;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa.s_family == NNG_AF_INET) {
        memcpy(c->ip, &sa.s_in.sa_addr, 4);
        inet_ntop(AF_INET, c->ip, ip, sizeof ip);
        snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(sa.s_in.sa_port));
        c->has_ip = true;
    } else if (sa.s_family == NNG_AF_INET6) {
        memcpy(c->ip, sa.s_in6.sa_addr, 16);
        inet_ntop(AF_INET6, c->ip, ip, sizeof ip);
        snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(sa.s_in6.sa_port));
        c->has_ip = true;
    }
}

static int conn_find(rpc_server *s, uint32_t id)
{
    for (int i = 0; i < s->nconns; i++)
        if (s->conns[i].id == id)
            return i;
    return -1;
}

static void conn_remove(rpc_server *s, int i)
{
    if (!s->conns[i].authed) {
        s->nunauth--;
        atomic_store(&s->unauth_hint, s->nunauth);
    }
    s->conns[i] = s->conns[--s->nconns];
}

// admit decides on a new connection (pipe_mu held). Returns NULL to admit,
// else why it is refused; *evict is set to a stale unauthenticated
// connection to close in its place.
static const char *admit(rpc_server *s, const conn *c, nng_pipe *evict, bool *do_evict)
{
    *do_evict = false;
    if (s->nconns >= s->max_conns)
        return "too many connections";
    if (c->authed)
        return NULL;
    int from_ip = 0;
    for (int i = 0; i < s->nconns; i++)
        if (!s->conns[i].authed && c->has_ip && s->conns[i].has_ip &&
            memcmp(s->conns[i].ip, c->ip, 16) == 0)
            from_ip++;
    bool ip_full = c->has_ip && from_ip >= s->max_unauth_ip;
    if (!ip_full && s->nunauth < s->max_unauth)
        return NULL;
    // Make room by closing the oldest unauthenticated connection (from the
    // same address when that address is over its cap) past its grace time.
    uint64_t cutoff = cn_now_ns() - (uint64_t)s->auth_grace_ms * 1000000ull;
    int old = -1;
    for (int i = 0; i < s->nconns; i++) {
        const conn *o = &s->conns[i];
        if (o->authed || o->since_ns > cutoff)
            continue;
        if (ip_full && !(o->has_ip && memcmp(o->ip, c->ip, 16) == 0))
            continue;
        if (old < 0 || o->since_ns < s->conns[old].since_ns)
            old = i;
    }
    if (old < 0)
        return ip_full ? "too many unauthenticated connections from its address"
                       : "too many unauthenticated connections";
    *evict = s->conns[old].pipe;
    *do_evict = true;
    conn_remove(s, old);
    return NULL;
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    rpc_server *s = arg;
    uint32_t id = (uint32_t)nng_pipe_id(p);
    if (ev == NNG_PIPE_EV_REM_POST) {
        pthread_mutex_lock(&s->pipe_mu);
        int i = conn_find(s, id);
        if (i >= 0)
            conn_remove(s, i);
        pthread_mutex_unlock(&s->pipe_mu);
        return;
    }
    if (ev != NNG_PIPE_EV_ADD_PRE)
        return;
    conn c = {.pipe = p, .id = id, .authed = !s->token[0], .since_ns = cn_now_ns()};
    char peer[80];
    peer_of(p, &c, peer, sizeof peer);
    nng_pipe evict;
    bool do_evict;
    pthread_mutex_lock(&s->pipe_mu);
    const char *why = admit(s, &c, &evict, &do_evict);
    if (!why) {
        s->conns[s->nconns++] = c;
        if (!c.authed)
            s->nunauth++;
        atomic_store(&s->unauth_hint, s->nunauth);
    }
    pthread_mutex_unlock(&s->pipe_mu);
    if (do_evict) {
        atomic_fetch_add(&s->evicted_conns, 1);
        nng_pipe_close(evict);
    }
    if (why) {
        atomic_fetch_add(&s->refused_conns, 1);
        nng_pipe_close(p);
        refused(s, "refused a connection from %s: %s", peer, why);
    }
}

// pipe_authed marks the connection msg came on as authenticated.
static void pipe_authed(rpc_server *s, nng_msg *msg)
{
    if (atomic_load(&s->unauth_hint) == 0)
        return;
    uint32_t id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
    pthread_mutex_lock(&s->pipe_mu);
    int i = conn_find(s, id);
    if (i >= 0 && !s->conns[i].authed) {
        s->conns[i].authed = true;
        s->nunauth--;
        atomic_store(&s->unauth_hint, s->nunauth);
    }
    pthread_mutex_unlock(&s->pipe_mu);
}

// ---------------------------------------------------------------- completion

static void ctx_recv(srv_ctx *x)
{
    atomic_store(&x->state, CTX_RECV);
    nng_ctx_recv(x->ctx, x->aio);
}

static void call_release(rpc_call *c)
{
    if (c->hdr) {
        canopy__rpc__rpc_request__free_unpacked(c->hdr, &c->alloc);
        c->hdr = NULL;
    }
    if (c->req) {
        rpc_server *s = c->x->s;
        pthread_mutex_lock(&s->spare_mu);
        rpc_wire_spare_keep(&s->spare, c->req);
        pthread_mutex_unlock(&s->spare_mu);
        c->req = NULL;
    }
}

// call_send finishes c with reply (taken; NULL when it could not be built):
// metrics, duplicate table, in-flight slot, then the send on the context.
static void call_send(rpc_call *c, nng_msg *reply, rpc_code code)
{
    srv_ctx *x = c->x;
    rpc_server *s = x->s;
    if (c->dedup) // an UNAVAILABLE answer applied nothing: a resend runs again
        dd_finish(s, c->caller, c->seq, c->ran && code != RPC_UNAVAILABLE ? reply : NULL);
    rpc_metrics_record(c->m ? &c->m->metrics : &s->unknown.metrics, code, cn_now_ns() - c->recv_ns,
                       c->bytes_in, reply ? nng_msg_len(reply) : 0);
    call_release(c);
    bool counted = c->counted;
    c->counted = false;
    c->dedup = false;
    // Release the in-flight slot before the reply leaves, so a caller that
    // has its reply can count on the slot being free.
    if (counted) {
        pthread_mutex_lock(&s->drain_mu);
        atomic_fetch_sub(&s->inflight, 1);
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->drain_mu);
    }
    if (reply && c->deadline_ns && cn_now_ns() > c->deadline_ns) {
        // The caller has stopped waiting: a late reply would only race with
        // its close. Receiving again drops the request.
        nng_msg_free(reply);
        reply = NULL;
    }
    if (!reply) {
        // Nothing to send (out of memory, or too late): the caller times out.
        ctx_recv(x);
    } else {
        atomic_store(&x->state, CTX_SEND);
        nng_aio_set_msg(x->aio, reply);
        nng_ctx_send(x->ctx, x->aio);
    }
}

static nng_msg *build_reply(rpc_call *c, rpc_code code, const char *detail,
                            const ProtobufCMessage *body, size_t payload_len, void **payload)
{
    Canopy__Rpc__RpcReply h = CANOPY__RPC__RPC_REPLY__INIT;
    h.request_id = c->hdr ? c->hdr->request_id : 0;
    h.code = (int32_t)code;
    h.detail = (char *)(detail ? detail : "");
    h.align_bias = RPC_ALIGN_BIAS;
    nng_msg *m = NULL;
    rpc_server *s = c->x->s;
    nng_msg *spare = NULL;
    if (payload_len >= RPC_SPARE_MIN) {
        // As long in front as the request, so the caller's buffer for this
        // reply can carry its next request (see rpc_wire_pad_reply).
        rpc_wire_pad_reply(&h, body, c->front);
        pthread_mutex_lock(&s->spare_mu);
        spare = s->spare;
        s->spare = NULL;
        pthread_mutex_unlock(&s->spare_mu);
    }
    // Replies are limited by the server's own maximum message size.
    cn_err e = rpc_wire_pack(&m, &h.base, body, payload_len, s->max_msg, payload, &spare);
    if (spare) {
        pthread_mutex_lock(&s->spare_mu);
        rpc_wire_spare_keep(&s->spare, spare);
        pthread_mutex_unlock(&s->spare_mu);
    }
    return e == CN_OK ? m : NULL;
}

static void call_fail_now(rpc_call *c, rpc_code code, const char *detail)
{
    nng_msg *m = build_reply(c, code, detail, NULL, 0, NULL);
    call_send(c, m, code);
}

void rpc_call_fail(rpc_call *c, rpc_code code, const char *fmt, ...)
{
    char detail[RPC_DETAIL_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (code == RPC_OK)
        code = RPC_INTERNAL;
    if (c->reply) {
        nng_msg_free(c->reply);
        c->reply = NULL;
    }
    call_fail_now(c, code, detail);
}

void rpc_call_reply(rpc_call *c, const ProtobufCMessage *body, const void *payload,
                    size_t payload_len)
{
    void *dst = NULL;
    nng_msg *m = build_reply(c, RPC_OK, NULL, body, payload_len, &dst);
    if (!m) {
        call_fail_now(c, RPC_RESOURCE_EXHAUSTED, "reply does not fit in max_msg_bytes");
        return;
    }
    if (payload_len)
        memcpy(dst, payload, payload_len);
    call_send(c, m, RPC_OK);
}

void *rpc_call_payload_mut(rpc_call *c, size_t *len)
{
    *len = c->payload_len;
    return c->payload_len ? (void *)c->payload : NULL;
}

void rpc_call_reply_inplace(rpc_call *c, const ProtobufCMessage *body)
{
    Canopy__Rpc__RpcReply h = CANOPY__RPC__RPC_REPLY__INIT;
    h.request_id = c->hdr ? c->hdr->request_id : 0;
    h.code = RPC_OK;
    h.detail = "";
    h.align_bias = RPC_ALIGN_BIAS;
    nng_msg *m = c->req;
    size_t off =
        c->payload_len ? (size_t)((const uint8_t *)c->payload - (uint8_t *)nng_msg_body(m)) : 0;
    if (c->payload_len == 0 || rpc_wire_repack(m, off, &h, body) != CN_OK) {
        rpc_call_reply(c, body, c->payload, c->payload_len);
        return;
    }
    // The request message is the reply now: the call no longer owns it.
    c->req = NULL;
    c->payload = NULL;
    c->body = NULL;
    c->body_len = c->payload_len = 0;
    call_send(c, m, RPC_OK);
}

cn_err rpc_call_reply_begin(rpc_call *c, const ProtobufCMessage *body, size_t payload_len,
                            void **payload)
{
    *payload = NULL;
    nng_msg *m = build_reply(c, RPC_OK, NULL, body, payload_len, payload);
    if (!m) {
        char d[96];
        snprintf(d, sizeof d, "reply of %zu payload bytes does not fit in max_msg_bytes",
                 payload_len);
        call_fail_now(c, RPC_RESOURCE_EXHAUSTED, d);
        return CN_ETOOBIG;
    }
    c->reply = m;
    return CN_OK;
}

void rpc_call_reply_end(rpc_call *c)
{
    nng_msg *m = c->reply;
    c->reply = NULL;
    call_send(c, m, RPC_OK);
}

const uint8_t *rpc_call_body(const rpc_call *c, size_t *len)
{
    *len = c->body_len;
    return c->body;
}

const void *rpc_call_payload(const rpc_call *c, size_t *len)
{
    *len = c->payload_len;
    return c->payload_len ? c->payload : NULL;
}

uint64_t rpc_call_node(const rpc_call *c)
{
    return c->node;
}
uint64_t rpc_call_seq(const rpc_call *c)
{
    return c->seq;
}
const char *rpc_call_method(const rpc_call *c)
{
    return c->m ? c->m->full : "";
}

int64_t rpc_call_remaining_ms(const rpc_call *c)
{
    if (!c->deadline_ns)
        return INT64_MAX;
    return ((int64_t)c->deadline_ns - (int64_t)cn_now_ns()) / 1000000;
}

// ---------------------------------------------------------------- dispatch

static void call_run(rpc_call *c)
{
    if (c->deadline_ns && cn_now_ns() > c->deadline_ns) {
        call_fail_now(c, RPC_DEADLINE_EXCEEDED,
                      "deadline passed while the call waited for a handler");
        return;
    }
    c->ran = true;
    c->m->fn(c, c->m->arg);
}

static void *pool_main(void *arg)
{
    rpc_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (!s->qhead && !s->qstop)
            pthread_cond_wait(&s->qcv, &s->qmu);
        rpc_call *c = s->qhead;
        if (!c) {
            pthread_mutex_unlock(&s->qmu);
            return NULL;
        }
        s->qhead = c->next;
        if (!s->qhead)
            s->qtail = NULL;
        pthread_mutex_unlock(&s->qmu);
        c->next = NULL;
        call_run(c);
    }
}

static rpc_method *find_method(rpc_server *s, const char *service, const char *method)
{
    for (int i = 0; i < s->nmethods; i++)
        if (strcmp(s->methods[i].service, service) == 0 &&
            strcmp(s->methods[i].method, method) == 0)
            return &s->methods[i];
    return NULL;
}

static void handle_request(srv_ctx *x, nng_msg *msg)
{
    rpc_server *s = x->s;
    rpc_call *c = &x->call;
    c->x = x;
    c->req = msg;
    c->hdr = NULL;
    c->m = NULL;
    c->body = NULL;
    c->payload = NULL;
    c->body_len = c->payload_len = c->front = 0;
    c->node = c->caller = c->seq = 0;
    c->counted = c->dedup = c->ran = false;
    c->reply = NULL;
    c->next = NULL;
    c->arena_used = 0;
    c->alloc.alloc = arena_alloc;
    c->alloc.free = arena_free;
    c->alloc.allocator_data = c;
    c->recv_ns = cn_now_ns();
    c->deadline_ns = 0;
    c->bytes_in = nng_msg_len(msg);

    char err[RPC_DETAIL_LEN];
    rpc_frame f;
    if (rpc_wire_decode_request(nng_msg_body(msg), nng_msg_len(msg), &c->alloc, &c->hdr, &f, err,
                                sizeof err) != CN_OK) {
        call_fail_now(c, RPC_INVALID_ARGUMENT, err);
        return;
    }
    Canopy__Rpc__RpcRequest *h = c->hdr;
    if (atomic_load(&s->closing)) {
        call_fail_now(c, RPC_UNAVAILABLE, "server is shutting down");
        return;
    }
    if (s->token[0]) {
        if (!rpc_token_equal(h->token, s->token)) {
            const char *why = h->token[0] ? "wrong cluster token" : "missing cluster token";
            if (s->on_refuse) {
                conn pc;
                char peer[80];
                peer_of(nng_msg_get_pipe(msg), &pc, peer, sizeof peer);
                refused(s, "refused a call from %s: %s", peer, why);
            }
            call_fail_now(c, RPC_UNAUTHENTICATED, why);
            return;
        }
        pipe_authed(s, msg);
    }
    c->m = find_method(s, h->service, h->method);
    if (!c->m) {
        snprintf(err, sizeof err, "no method %.64s/%.64s on this server", h->service, h->method);
        call_fail_now(c, RPC_UNIMPLEMENTED, err);
        return;
    }
    if (rpc_wire_align_payload(msg, &f) != CN_OK) {
        call_fail_now(c, RPC_RESOURCE_EXHAUSTED, "out of memory aligning the payload");
        return;
    }
    const uint8_t *b = nng_msg_body(msg);
    c->body = b + f.body_off;
    c->body_len = f.body_len;
    c->front = f.payload_off;
    c->payload = b + f.payload_off;
    c->payload_len = f.payload_len;
    if (h->deadline_ms)
        c->deadline_ns = c->recv_ns + (uint64_t)h->deadline_ms * 1000000ull;

    // Inline methods (health checks, heartbeats) need no handler thread and
    // return at once: the cap does not apply to them, so slow handlers
    // filling it cannot make a live node look dead.
    if (atomic_fetch_add(&s->inflight, 1) >= s->max_inflight &&
        !(c->m->flags & RPC_HANDLER_INLINE)) {
        atomic_fetch_sub(&s->inflight, 1);
        snprintf(err, sizeof err, "server busy: %d calls in flight", s->max_inflight);
        call_fail_now(c, RPC_RESOURCE_EXHAUSTED, err);
        return;
    }
    c->counted = true;

    c->node = h->node_id;
    c->seq = h->seq;
    // Whether a call is applied once is the method's property; a call
    // without a caller key (not from rpc_client) is not deduplicated.
    if ((c->m->flags & RPC_MUTATING) && h->caller) {
        nng_msg *cached = NULL;
        int r = dd_check(s, h->caller, h->seq, &cached);
        switch (r) {
        case DD_NEW:
            c->dedup = true;
            c->caller = h->caller;
            break;
        case DD_REPLAY:
            call_send(c, cached, RPC_OK);
            return;
        case DD_IN_PROGRESS:
            snprintf(err, sizeof err,
                     "duplicate of call (node %" PRIx64 ", seq %" PRIu64
                     ") still in progress; retry for its reply",
                     h->node_id, h->seq);
            call_fail_now(c, RPC_ABORTED, err);
            return;
        case DD_TOO_OLD:
            snprintf(err, sizeof err,
                     "seq %" PRIu64 " of node %" PRIx64 " is older than the last %d calls; "
                     "treated as already applied",
                     h->seq, h->node_id, s->window);
            call_fail_now(c, RPC_ALREADY_EXISTS, err);
            return;
        case DD_UNKEPT:
            snprintf(err, sizeof err,
                     "duplicate of call (node %" PRIx64 ", seq %" PRIu64
                     ") that was applied; its reply was too large to keep",
                     h->node_id, h->seq);
            call_fail_now(c, RPC_ALREADY_EXISTS, err);
            return;
        default:
            call_fail_now(c, RPC_RESOURCE_EXHAUSTED, "out of memory in duplicate table");
            return;
        }
    }

    atomic_store(&x->state, CTX_BUSY);
    if (c->m->flags & RPC_HANDLER_INLINE) {
        call_run(c);
        return;
    }
    pthread_mutex_lock(&s->qmu);
    if (s->qtail)
        s->qtail->next = c;
    else
        s->qhead = c;
    s->qtail = c;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
}

static void ctx_cb(void *arg)
{
    srv_ctx *x = arg;
    int rv = nng_aio_result(x->aio);
    if (atomic_load(&x->s->stopping)) {
        // rpc_server_close is stopping the contexts: start nothing new.
        // A received request (success on RECV) or an unsent reply (failure
        // on SEND) is ours to free.
        bool recv = atomic_load(&x->state) == CTX_RECV;
        nng_msg *m = nng_aio_get_msg(x->aio);
        if ((rv == 0) == recv && m)
            nng_msg_free(m);
        nng_aio_set_msg(x->aio, NULL);
        atomic_store(&x->state, CTX_IDLE);
        return;
    }
    if (atomic_load(&x->state) == CTX_RECV) {
        if (rv != 0) {
            if (rv == NNG_ECLOSED) {
                atomic_store(&x->state, CTX_IDLE);
                return;
            }
            ctx_recv(x);
            return;
        }
        handle_request(x, nng_aio_get_msg(x->aio));
        return;
    }
    // CTX_SEND finished.
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(x->aio));
        if (rv == NNG_ECLOSED) {
            atomic_store(&x->state, CTX_IDLE);
            return;
        }
    }
    ctx_recv(x);
}

// ---------------------------------------------------------------- lifecycle

cn_err rpc_server_open(rpc_server **out, const rpc_server_opts *opts, char *err, size_t errlen)
{
    *out = NULL;
    if (!opts || !opts->url || !opts->url[0])
        return cn_errf(err, errlen, CN_EINVAL, "rpc server: url is required");
    if (strlen(opts->url) >= sizeof((rpc_server *)0)->url)
        return cn_errf(err, errlen, CN_EINVAL, "rpc server: url too long");
    if (opts->token && strlen(opts->token) > 255)
        return cn_errf(err, errlen, CN_EINVAL, "rpc server: token longer than 255 bytes");
    if (opts->max_inflight < 0 || opts->handler_threads < 0 || opts->dedup_window < 0 ||
        opts->dedup_callers < 0 || opts->max_conns < 0 || opts->max_unauth_conns < 0 ||
        opts->max_unauth_per_ip < 0 || opts->auth_grace_ms < 0)
        return cn_errf(err, errlen, CN_EINVAL, "rpc server: negative limit in options");
    rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        return CN_ENOMEM;
    snprintf(s->url, sizeof s->url, "%s", opts->url);
    snprintf(s->token, sizeof s->token, "%s", opts->token ? opts->token : "");
    s->max_msg = opts->max_msg_bytes ? opts->max_msg_bytes : RPC_DEFAULT_MAX_MSG;
    s->max_inflight = opts->max_inflight ? opts->max_inflight : 64;
    s->nthreads = opts->handler_threads ? opts->handler_threads : 4;
    s->window = opts->dedup_window ? opts->dedup_window : 64;
    s->dd_max = opts->dedup_callers ? opts->dedup_callers : 4096;
    s->dd_max_bytes = opts->dedup_bytes ? opts->dedup_bytes : (size_t)64 << 20;
    s->max_conns = opts->max_conns ? opts->max_conns : 512;
    s->max_unauth = opts->max_unauth_conns ? opts->max_unauth_conns : 16;
    s->max_unauth_ip = opts->max_unauth_per_ip ? opts->max_unauth_per_ip : 4;
    s->auth_grace_ms = opts->auth_grace_ms ? opts->auth_grace_ms : 5000;
    s->on_refuse = opts->on_refuse;
    s->on_refuse_arg = opts->on_refuse_arg;
    pthread_mutex_init(&s->pipe_mu, NULL);
    pthread_mutex_init(&s->refuse_mu, NULL);
    atomic_init(&s->unauth_hint, 0);
    atomic_init(&s->refused_conns, 0);
    atomic_init(&s->evicted_conns, 0);
    s->conns = calloc((size_t)s->max_conns, sizeof *s->conns);
    if (!s->conns) {
        free(s);
        return CN_ENOMEM;
    }
    snprintf(s->unknown.service, RPC_NAME_LEN, "_");
    snprintf(s->unknown.method, RPC_NAME_LEN, "_");
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    pthread_mutex_init(&s->drain_mu, NULL);
    cn_cond_init_mono(&s->drain_cv);
    pthread_mutex_init(&s->dd_mu, NULL);
    pthread_mutex_init(&s->spare_mu, NULL);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->closing, false);
    atomic_init(&s->stopping, false);

    cn_err rc;
    int rv = nng_rep0_open(&s->sock);
    if (rv != 0) {
        rc = cn_errf(err, errlen, CN_EIO, "rpc server: cannot open socket: %s", nng_strerror(rv));
        goto fail;
    }
    s->sock_open = true;
    if ((rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s)) != 0 ||
        (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s)) != 0) {
        rc = cn_errf(err, errlen, CN_EIO, "rpc server: cannot watch connections: %s",
                     nng_strerror(rv));
        goto fail;
    }
    rv = nng_listener_create(&s->l, s->sock, s->url);
    if (rv != 0) {
        rc =
            cn_errf(err, errlen, CN_EINVAL, "rpc server: bad url %s: %s", s->url, nng_strerror(rv));
        goto fail;
    }
    rv = nng_listener_set_size(s->l, NNG_OPT_RECVMAXSZ, s->max_msg);
    if (rv != 0) {
        rc = cn_errf(err, errlen, CN_EINVAL, "rpc server: cannot set receive limit: %s",
                     nng_strerror(rv));
        goto fail;
    }
    if (rpc_url_is_tls(s->url)) {
        rc = rpc_tls_setup(&s->tls, &opts->tls, true, err, errlen);
        if (rc != CN_OK)
            goto fail;
        rv = nng_listener_set_ptr(s->l, NNG_OPT_TLS_CONFIG, s->tls);
        if (rv != 0) {
            rc = cn_errf(err, errlen, CN_EAUTH, "rpc server: cannot apply TLS config: %s",
                         nng_strerror(rv));
            goto fail;
        }
    }
    rv = nng_listener_start(s->l, 0);
    if (rv != 0) {
        rc = cn_errf(err, errlen, rv == NNG_EADDRINVAL ? CN_EINVAL : CN_EIO,
                     "rpc server: cannot listen on %s: %s", s->url, nng_strerror(rv));
        goto fail;
    }
    *out = s;
    return CN_OK;
fail:
    rpc_server_close(s, 0);
    return rc;
}

cn_err rpc_server_register(rpc_server *s, const char *service, const char *method,
                           rpc_handler_fn fn, void *arg, unsigned flags)
{
    if (s->started)
        return CN_ESTATE;
    if (!service || !method || !fn || strlen(service) >= RPC_NAME_LEN ||
        strlen(method) >= RPC_NAME_LEN)
        return CN_EINVAL;
    if (find_method(s, service, method))
        return CN_EEXIST;
    rpc_method *t = realloc(s->methods, (size_t)(s->nmethods + 1) * sizeof *t);
    if (!t)
        return CN_ENOMEM;
    s->methods = t;
    rpc_method *m = &t[s->nmethods++];
    memset(m, 0, sizeof *m);
    snprintf(m->service, sizeof m->service, "%s", service);
    snprintf(m->method, sizeof m->method, "%s", method);
    snprintf(m->full, sizeof m->full, "%s/%s", service, method);
    m->fn = fn;
    m->arg = arg;
    m->flags = flags;
    return CN_OK;
}

cn_err rpc_server_start(rpc_server *s, char *err, size_t errlen)
{
    if (s->started)
        return cn_errf(err, errlen, CN_ESTATE, "rpc server: already started");
    s->threads = calloc((size_t)s->nthreads, sizeof *s->threads);
    s->nctx = s->max_inflight + CTX_MARGIN;
    s->ctxs = calloc((size_t)s->nctx, sizeof *s->ctxs);
    if (!s->threads || !s->ctxs)
        return cn_errf(err, errlen, CN_ENOMEM, "rpc server: out of memory");
    for (int i = 0; i < s->nthreads; i++) {
        if (pthread_create(&s->threads[i], NULL, pool_main, s) != 0)
            return cn_errf(err, errlen, CN_EIO, "rpc server: cannot start handler threads");
        s->nthreads_started++;
    }
    for (int i = 0; i < s->nctx; i++) {
        srv_ctx *x = &s->ctxs[i];
        x->s = s;
        atomic_init(&x->state, CTX_IDLE);
        int rv = nng_aio_alloc(&x->aio, ctx_cb, x);
        if (rv == 0)
            rv = nng_ctx_open(&x->ctx, s->sock);
        if (rv != 0)
            return cn_errf(err, errlen, CN_EIO, "rpc server: cannot create context: %s",
                           nng_strerror(rv));
    }
    s->started = true;
    for (int i = 0; i < s->nctx; i++)
        ctx_recv(&s->ctxs[i]);
    return CN_OK;
}

cn_err rpc_server_url(const rpc_server *s, char *buf, size_t n)
{
    const char *u = s->url;
    int port = 0;
    const char *sep = strstr(u, "://");
    const char *colon = sep ? strrchr(sep + 3, ':') : NULL;
    bool tcp = strncmp(u, "tcp", 3) == 0 || rpc_url_is_tls(u);
    if (tcp && colon && strcmp(colon, ":0") == 0 &&
        nng_listener_get_int(s->l, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        int w = snprintf(buf, n, "%.*s:%d", (int)(colon - u), u, port);
        return w < 0 || (size_t)w >= n ? CN_ERANGE : CN_OK;
    }
    int w = snprintf(buf, n, "%s", u);
    return w < 0 || (size_t)w >= n ? CN_ERANGE : CN_OK;
}

// mono_after returns the monotonic time ns nanoseconds from now.
static struct timespec mono_after(uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec += (long)(ns % 1000000000ull);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void rpc_server_close(rpc_server *s, int drain_ms)
{
    if (!s)
        return;
    // Every step below is bounded: drain_ms for calls in progress, then
    // CLOSE_JOIN_MS for handler threads, 100 ms for replies being sent and
    // RPC_CLOSE_TIMEOUT_MS for nng_close.
    atomic_store(&s->closing, true);
    uint64_t until = cn_now_ns() + (uint64_t)(drain_ms > 0 ? drain_ms : 0) * 1000000ull;
    bool abandoned = false;
    if (s->started) {
        // The listener stays open while calls drain: closing it would close
        // the connections their replies go out on. Requests arriving now are
        // answered UNAVAILABLE by handle_request.
        pthread_mutex_lock(&s->drain_mu);
        while (atomic_load(&s->inflight) > 0) {
            uint64_t now = cn_now_ns();
            if (now >= until)
                break;
            uint64_t left = until - now;
            cn_cond_wait_ms(&s->drain_cv, &s->drain_mu,
                            left < 50000000ull ? left / 1000000ull + 1 : 50);
        }
        pthread_mutex_unlock(&s->drain_mu);
        // Calls still in their handlers after the drain: a queued call that
        // never started is answered UNAVAILABLE here; a running handler keeps
        // its call, so the contexts must outlive it (see below).
        pthread_mutex_lock(&s->qmu);
        rpc_call *q = s->qhead;
        s->qhead = s->qtail = NULL;
        s->qstop = true;
        pthread_cond_broadcast(&s->qcv);
        pthread_mutex_unlock(&s->qmu);
        while (q) {
            rpc_call *next = q->next;
            call_fail_now(q, RPC_UNAVAILABLE, "server shut down before the call was handled");
            q = next;
        }
    }
    // A handler that blocks past the drain keeps its thread: leave it
    // running (detached) rather than wait for it.
    struct timespec jts = mono_after((uint64_t)CLOSE_JOIN_MS * 1000000ull);
    for (int i = 0; i < s->nthreads_started; i++) {
        if (pthread_clockjoin_np(s->threads[i], NULL, CLOCK_MONOTONIC, &jts) != 0) {
            pthread_detach(s->threads[i]);
            abandoned = true;
        }
    }
    // Let replies already handed to nng leave before the socket closes
    // (bounded: at most 100 ms more).
    for (int tries = 0; s->started && tries < 100; tries++) {
        bool sending = false;
        for (int i = 0; i < s->nctx; i++)
            if (atomic_load(&s->ctxs[i].state) == CTX_SEND)
                sending = true;
        if (!sending)
            break;
        cn_sleep_ms(1);
    }
    // Stop every context before the socket, so that no callback of ours
    // runs and no aio of ours is pending when nng_close starts.
    atomic_store(&s->stopping, true);
    for (int i = 0; s->ctxs && i < s->nctx; i++) {
        srv_ctx *x = &s->ctxs[i];
        if (x->aio)
            nng_aio_stop(x->aio);
    }
    for (int i = 0; s->ctxs && i < s->nctx; i++)
        if (s->ctxs[i].aio)
            nng_ctx_close(s->ctxs[i].ctx);
    // A close left running may still call pipe_cb: keep the server then.
    if (s->sock_open && !rpc_socket_close_bounded(s->sock, RPC_CLOSE_TIMEOUT_MS))
        abandoned = true;
    if (atomic_load(&s->inflight) > 0)
        abandoned = true;
    if (abandoned) {
        // A handler that completes its call asynchronously still holds it:
        // keep the contexts (and the server) allocated so its late
        // rpc_call_reply is harmless (the socket is closed, the reply is
        // dropped). This leaks only when a handler outlives drain_ms.
        return;
    }
    for (int i = 0; s->ctxs && i < s->nctx; i++) {
        srv_ctx *x = &s->ctxs[i];
        if (x->aio)
            nng_aio_free(x->aio);
        if (x->call.hdr || x->call.req)
            call_release(&x->call);
        if (x->call.reply)
            nng_msg_free(x->call.reply);
    }
    free(s->ctxs);
    free(s->threads);
    dd_free_all(s);
    free(s->methods);
    if (s->tls)
        nng_tls_config_free(s->tls);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->drain_mu);
    pthread_cond_destroy(&s->drain_cv);
    pthread_mutex_destroy(&s->dd_mu);
    if (s->spare)
        nng_msg_free(s->spare);
    pthread_mutex_destroy(&s->spare_mu);
    pthread_mutex_destroy(&s->pipe_mu);
    pthread_mutex_destroy(&s->refuse_mu);
    free(s->conns);
    free(s);
}

cn_err rpc_server_metrics(rpc_server *s, cn_buf *out)
{
    for (int f = 0; f < RPC_METRIC_FAMILIES; f++) {
        rpc_metrics_write_header(out, f);
        for (int i = 0; i < s->nmethods; i++)
            rpc_metrics_write_family(out, f, s->methods[i].service, s->methods[i].method,
                                     &s->methods[i].metrics);
        rpc_metrics_write_family(out, f, s->unknown.service, s->unknown.method,
                                 &s->unknown.metrics);
    }
    cn_buf_printf(out,
                  "# HELP canopy_rpc_inflight Calls being handled now.\n"
                  "# TYPE canopy_rpc_inflight gauge\ncanopy_rpc_inflight %d\n",
                  atomic_load(&s->inflight));
    pthread_mutex_lock(&s->pipe_mu);
    int nconns = s->nconns, nunauth = s->nunauth;
    pthread_mutex_unlock(&s->pipe_mu);
    pthread_mutex_lock(&s->dd_mu);
    int dd_count = s->dd_count;
    size_t dd_bytes = s->dd_bytes;
    uint64_t dd_evicted = s->dd_evicted;
    pthread_mutex_unlock(&s->dd_mu);
    cn_buf_printf(out,
                  "# HELP canopy_rpc_dedup_callers Callers in the duplicate table.\n"
                  "# TYPE canopy_rpc_dedup_callers gauge\ncanopy_rpc_dedup_callers %d\n"
                  "# HELP canopy_rpc_dedup_bytes Reply bytes stored in the duplicate table.\n"
                  "# TYPE canopy_rpc_dedup_bytes gauge\ncanopy_rpc_dedup_bytes %zu\n"
                  "# HELP canopy_rpc_dedup_evicted_total Callers dropped from the duplicate "
                  "table to keep it within its bounds.\n"
                  "# TYPE canopy_rpc_dedup_evicted_total counter\n"
                  "canopy_rpc_dedup_evicted_total %" PRIu64 "\n",
                  dd_count, dd_bytes, dd_evicted);
    cn_buf_printf(out,
                  "# HELP canopy_rpc_connections Open connections.\n"
                  "# TYPE canopy_rpc_connections gauge\n"
                  "canopy_rpc_connections{authenticated=\"true\"} %d\n"
                  "canopy_rpc_connections{authenticated=\"false\"} %d\n"
                  "# HELP canopy_rpc_connections_refused_total Connections refused by the caps.\n"
                  "# TYPE canopy_rpc_connections_refused_total counter\n"
                  "canopy_rpc_connections_refused_total %" PRIu64 "\n"
                  "# HELP canopy_rpc_connections_evicted_total Unauthenticated connections "
                  "closed to admit new ones.\n"
                  "# TYPE canopy_rpc_connections_evicted_total counter\n"
                  "canopy_rpc_connections_evicted_total %" PRIu64 "\n",
                  nconns - nunauth, nunauth, (uint64_t)atomic_load(&s->refused_conns),
                  (uint64_t)atomic_load(&s->evicted_conns));
    return out->oom ? CN_ENOMEM : CN_OK;
}
