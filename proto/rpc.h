// rpc.h: canopy's gRPC-shaped RPC runtime over nng req/rep.
//
// A call names a service and a method ("Cluster", "Register"), carries a
// request id, a deadline, the cluster token and, for mutating calls, the
// caller's (node id, sequence) so servers apply a resent request once. A
// reply carries a status code (gRPC's numbering) and a human-readable detail.
//
// Wire layout of one nng message (see docs/wire.md):
//   u32 LE header length | RpcRequest/RpcReply header (protobuf) |
//   u32 LE body length | body (protobuf, method-specific) |
//   zero padding to a 16-byte boundary | raw payload (little-endian floats)
// The payload never passes through protobuf, so a model is copied at most
// once on each side (ps-lite's header + data-frame pattern).
//
// This is the only module that includes nng. It knows nothing of gradients
// or trials.
#ifndef CANOPY_RPC_H
#define CANOPY_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common/cn_buf.h"
#include "common/cn_err.h"

// Status codes, numbered as gRPC's.
#define RPC_CODES(X)                                                                               \
    X(RPC_OK, 0, "OK")                                                                             \
    X(RPC_CANCELLED, 1, "CANCELLED")                                                               \
    X(RPC_UNKNOWN, 2, "UNKNOWN")                                                                   \
    X(RPC_INVALID_ARGUMENT, 3, "INVALID_ARGUMENT")                                                 \
    X(RPC_DEADLINE_EXCEEDED, 4, "DEADLINE_EXCEEDED")                                               \
    X(RPC_NOT_FOUND, 5, "NOT_FOUND")                                                               \
    X(RPC_ALREADY_EXISTS, 6, "ALREADY_EXISTS")                                                     \
    X(RPC_PERMISSION_DENIED, 7, "PERMISSION_DENIED")                                               \
    X(RPC_RESOURCE_EXHAUSTED, 8, "RESOURCE_EXHAUSTED")                                             \
    X(RPC_FAILED_PRECONDITION, 9, "FAILED_PRECONDITION")                                           \
    X(RPC_ABORTED, 10, "ABORTED")                                                                  \
    X(RPC_OUT_OF_RANGE, 11, "OUT_OF_RANGE")                                                        \
    X(RPC_UNIMPLEMENTED, 12, "UNIMPLEMENTED")                                                      \
    X(RPC_INTERNAL, 13, "INTERNAL")                                                                \
    X(RPC_UNAVAILABLE, 14, "UNAVAILABLE")                                                          \
    X(RPC_DATA_LOSS, 15, "DATA_LOSS")                                                              \
    X(RPC_UNAUTHENTICATED, 16, "UNAUTHENTICATED")

typedef enum {
#define RPC_CODE_ENUM(name, num, text) name = num,
    RPC_CODES(RPC_CODE_ENUM)
#undef RPC_CODE_ENUM
} rpc_code;

// rpc_code_name returns "NOT_FOUND" etc.; "UNKNOWN" for values out of range.
const char *rpc_code_name(rpc_code code);

// rpc_code_from_err maps a library error to the status a handler should send
// (CN_EINVAL -> INVALID_ARGUMENT, CN_ENOTFOUND -> NOT_FOUND, ...).
rpc_code rpc_code_from_err(cn_err err);

#define RPC_DEFAULT_MAX_MSG (256u << 20) // bytes
#define RPC_DETAIL_LEN CN_ERRBUF_LEN // a reply's detail carries a whole error message
#define RPC_NAME_LEN 64

// Call flags (rpc_request.flags) and method flags (rpc_server_register).
enum {
    // Call: safe to retry with backoff on UNAVAILABLE, DEADLINE_EXCEEDED or
    // ABORTED.
    RPC_IDEMPOTENT = 1 << 0,
    // Method: the server applies each call once, whatever the client resends
    // (duplicate table keyed by the client's random caller key and seq). On
    // a call it is ignored: every call carries (caller, seq). A handler's
    // UNAVAILABLE answer is not kept: it means nothing was applied and the
    // call may be tried again, so a resend runs the handler again.
    RPC_MUTATING = 1 << 1,
};

// ---------------------------------------------------------------- security

// rpc_token_load reads the cluster token: from the file path if non-empty,
// else from the environment variable CANOPY_TOKEN, else "" (no auth).
// Trailing whitespace is stripped. Errors: CN_ENOTFOUND/CN_EIO with err set,
// CN_EINVAL if the token is longer than 255 bytes.
cn_err rpc_token_load(const char *path, char out[256], char *err, size_t errlen);

// rpc_url_host writes the host part of url ("10.0.0.5", "vm1", "::1") into
// out. Errors: CN_EINVAL (no "://"), CN_ERANGE (n too small).
cn_err rpc_url_host(const char *url, char *out, size_t n);

// rpc_url_exposed reports whether url is plain tcp:// on an address other
// than loopback (127.0.0.0/8, ::1, localhost): the cluster token would cross
// a network in clear text. tls+tcp://, ipc:// and inproc:// are not exposed.
bool rpc_url_exposed(const char *url);

// TLS files for tls+tcp:// URLs. Server: cert and key required, ca optional
// (when set, clients must present a certificate signed by it). Client: ca
// required to verify the server, cert/key optional; the server's
// certificate must name server_name, or the URL's host when it is empty.
typedef struct rpc_tls {
    const char *cert_file;
    const char *key_file;
    const char *ca_file;
    const char *server_name;
} rpc_tls;

// ---------------------------------------------------------------- server

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef struct rpc_server_opts {
    const char *url;      // tcp://host:port, ipc:///path, inproc://name, tls+tcp://...
    const char *token;    // cluster token; NULL or "" disables the check
    size_t max_msg_bytes; // 0 = RPC_DEFAULT_MAX_MSG; set as NNG_OPT_RECVMAXSZ
    int max_inflight;     // calls being handled at once; 0 = 64; more get RESOURCE_EXHAUSTED
    int handler_threads;  // worker pool for handlers; 0 = 4
    int dedup_window;     // remembered replies per caller for mutating methods; 0 = 64
    int dedup_callers;    // callers remembered (least recently seen dropped); 0 = 4096
    size_t dedup_bytes;   // stored replies, bytes; 0 = 64 MiB (see docs/wire.md)
    rpc_tls tls;          // used only for tls+tcp://
    // Connections (see docs/security.md). A connection is unauthenticated
    // until it delivers a call with the right token (every connection is
    // authenticated when the server has no token). nng reads a whole message
    // before the token can be checked, so the memory peers without the token
    // can hold is at most max_unauth_conns * max_msg_bytes.
    int max_conns;         // open connections; 0 = 512; more are refused
    int max_unauth_conns;  // unauthenticated connections; 0 = 16
    int max_unauth_per_ip; // unauthenticated connections from one IP address; 0 = 4
    int auth_grace_ms;     // an unauthenticated connection older than this is closed
                           // to admit a new one when a cap is reached; 0 = 5000
    // on_refuse, if set, is told about refused connections and calls without
    // the right token, with the peer's address ("refused 10.0.0.7:41234:
    // ..."). Called from nng threads, at most 10 times a second (later events
    // in the same second are counted and reported with the next one).
    void (*on_refuse)(void *arg, const char *what);
    void *on_refuse_arg;
} rpc_server_opts;

// rpc_handler_fn handles one call. It must eventually complete the call with
// exactly one of rpc_call_reply / rpc_call_reply_begin and _end /
// rpc_call_reply_inplace / rpc_call_fail,
// either before returning or later from any thread (e.g. a BSP pull that
// waits for the clock to advance). It runs on the server's handler pool,
// unless registered with RPC_HANDLER_INLINE, in which case it runs on an nng
// callback thread and must not block.
typedef void (*rpc_handler_fn)(rpc_call *call, void *arg);

// Method flags besides RPC_MUTATING. RPC_HANDLER_INLINE: the handler runs
// on the nng callback thread, must not block, and is not subject to
// max_inflight (for health checks and heartbeats).
enum { RPC_HANDLER_INLINE = 1 << 0 };

// rpc_server_open creates a server bound to opts->url (not yet serving).
// Errors: CN_EINVAL (bad URL or options), CN_EIO (cannot listen: address in
// use, permission), CN_EAUTH (TLS files unreadable or invalid); err says which.
cn_err rpc_server_open(rpc_server **out, const rpc_server_opts *opts, char *err, size_t errlen);

// rpc_server_register adds a handler for service/method. flags:
// RPC_HANDLER_INLINE, RPC_MUTATING (calls that change state and must not be
// applied twice when a client resends them; their replies should be small,
// as each is stored). Must be called before rpc_server_start. arg is
// retained until close.
// Errors: CN_EEXIST if the pair is already registered, CN_ESTATE if started.
cn_err rpc_server_register(rpc_server *s, const char *service, const char *method,
                           rpc_handler_fn fn, void *arg, unsigned flags);

// rpc_server_start starts receiving. Errors: CN_EIO (listen failed).
cn_err rpc_server_start(rpc_server *s, char *err, size_t errlen);

// rpc_server_url writes the URL actually bound (with the real port when the
// requested port was 0). Returns CN_OK or CN_ERANGE if n is too small.
cn_err rpc_server_url(const rpc_server *s, char *buf, size_t n);

// rpc_server_close refuses new calls with UNAVAILABLE (connections stay open
// while calls drain), lets calls already being handled finish and sends
// their replies for up to drain_ms, answers calls still pending after that
// with UNAVAILABLE, then frees everything. Every step has a time limit, so
// close returns even if a handler never does. Accepts NULL.
void rpc_server_close(rpc_server *s, int drain_ms);

// rpc_server_metrics appends per-method counters and latency histograms in
// Prometheus text format (canopy_rpc_requests_total{service,method,code},
// canopy_rpc_latency_seconds_bucket{...}) to out. Thread-safe.
cn_err rpc_server_metrics(rpc_server *s, cn_buf *out);

// --- inside a handler (all borrowed until the call completes) ---

// rpc_call_body returns the request's protobuf body.
const uint8_t *rpc_call_body(const rpc_call *c, size_t *len);
// rpc_call_unpack unpacks the request body with desc (protobuf-c's default
// allocator: free with protobuf_c_message_free_unpacked or the type's
// free_unpacked). If the body is malformed it completes the call with
// INVALID_ARGUMENT ("Service/Method: malformed request body") and returns
// NULL, so the handler just returns.
ProtobufCMessage *rpc_call_unpack(rpc_call *c, const ProtobufCMessageDescriptor *desc);
// rpc_call_payload returns the raw payload, 16-byte aligned, or NULL if empty.
const void *rpc_call_payload(const rpc_call *c, size_t *len);
// rpc_call_node / rpc_call_seq: the caller's node id and the call's seq.
uint64_t rpc_call_node(const rpc_call *c);
uint64_t rpc_call_seq(const rpc_call *c);
// rpc_call_method: "Service/Method".
const char *rpc_call_method(const rpc_call *c);
// rpc_call_remaining_ms: time left before the caller's deadline (may be <= 0).
int64_t rpc_call_remaining_ms(const rpc_call *c);

// rpc_call_reply completes the call with OK, body (may be NULL) and a payload
// copied from payload[0..payload_len). Frees c.
void rpc_call_reply(rpc_call *c, const ProtobufCMessage *body, const void *payload,
                    size_t payload_len);

// rpc_call_reply_begin reserves payload_len bytes (16-byte aligned) in the
// reply so the handler can write the payload in place with no extra copy;
// rpc_call_reply_end sends it. Between the two, *payload is valid.
// Returns CN_ENOMEM/CN_ETOOBIG (and completes the call with
// RESOURCE_EXHAUSTED) on failure.
cn_err rpc_call_reply_begin(rpc_call *c, const ProtobufCMessage *body, size_t payload_len,
                            void **payload);
void rpc_call_reply_end(rpc_call *c);

// rpc_call_payload_mut returns the request's payload for writing (NULL if
// empty): a handler may compute its reply payload over the request's, of
// the same length, and send it with rpc_call_reply_inplace.
void *rpc_call_payload_mut(rpc_call *c, size_t *len);

// rpc_call_reply_inplace completes the call with OK, body (may be NULL) and
// the request's own payload bytes as they are now: the request message is
// reframed in place and sent, so the payload is neither allocated nor
// copied. (When the reply's header would not fit in front of the payload it
// falls back to rpc_call_reply with a copy.) Frees c.
void rpc_call_reply_inplace(rpc_call *c, const ProtobufCMessage *body);

// rpc_call_fail completes the call with code (not RPC_OK) and a detail
// message. Frees c.
void rpc_call_fail(rpc_call *c, rpc_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// ---------------------------------------------------------------- client

typedef struct rpc_client rpc_client;

typedef struct rpc_client_opts {
    const char *url;         // server URL
    const char *token;       // sent with every call; NULL = ""
    uint64_t node_id;        // sent with every call (rpc_call_node); 0 = random
    size_t max_msg_bytes;    // checked before sending and on receive; 0 = default
    int default_deadline_ms; // 0 = 30000
    int max_retries;         // for RPC_IDEMPOTENT calls; 0 = 5
    int backoff_base_ms;     // first retry delay; 0 = 50 (doubles, with jitter)
    int backoff_max_ms;      // cap; 0 = 2000
    rpc_tls tls;             // used only for tls+tcp://
} rpc_client_opts;

typedef struct rpc_request {
    const char *service;
    const char *method;
    const ProtobufCMessage *body; // may be NULL (empty body)
    const void *payload;          // raw bytes appended after the body; may be NULL
    size_t payload_len;
    int deadline_ms; // 0 = client default
    unsigned flags;  // RPC_IDEMPOTENT
} rpc_request;

// rpc_reply holds a reply until rpc_reply_fini. body and payload point into
// the received message (payload 16-byte aligned); no copy is made.
typedef struct rpc_reply {
    rpc_code code;
    char detail[RPC_DETAIL_LEN];
    const uint8_t *body;
    size_t body_len;
    const void *payload;
    size_t payload_len;
    void *msg_; // private: the nng message backing body and payload
} rpc_reply;

// rpc_client_open creates a client that dials url in the background and
// redials after the server restarts. It does not wait for the connection.
// Errors: CN_EINVAL (bad URL), CN_EAUTH (TLS files).
cn_err rpc_client_open(rpc_client **out, const rpc_client_opts *opts, char *err, size_t errlen);

// rpc_client_close waits for no call; calls in progress fail with CANCELLED.
// Accepts NULL.
void rpc_client_close(rpc_client *c);

// rpc_client_node returns the node id used for mutating calls.
uint64_t rpc_client_node(const rpc_client *c);

// rpc_client_call performs one call and blocks until the reply, the deadline
// or the retries are exhausted. Thread-safe: concurrent calls use their own
// nng contexts (from a bounded pool). The whole deadline covers all retries.
// Returns the status: RPC_OK, a server status, or a local one
// (RESOURCE_EXHAUSTED for an oversized request, not sent; UNAVAILABLE when
// the server cannot be reached; DEADLINE_EXCEEDED). rep->detail is set
// whenever the status is not OK. rep must be released with rpc_reply_fini,
// whatever the status.
rpc_code rpc_client_call(rpc_client *c, const rpc_request *req, rpc_reply *rep);

// rpc_reply_unpack unpacks rep's body with desc (using protobuf-c's default
// allocator). Returns NULL if the body is malformed.
ProtobufCMessage *rpc_reply_unpack(const rpc_reply *rep, const ProtobufCMessageDescriptor *desc);

// rpc_reply_fini releases the message behind rep. Accepts a zeroed rep.
void rpc_reply_fini(rpc_reply *rep);

// rpc_wait_ready calls Cluster/Ping-like method "service/method" with an
// empty body until it answers OK or timeout_ms passes. For tests and
// start-up ordering. Returns RPC_OK or the last status seen.
rpc_code rpc_wait_ready(rpc_client *c, const char *service, const char *method, int timeout_ms);

#endif
