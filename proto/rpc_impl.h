// rpc_impl.h: private declarations shared by the rpc_*.c files of proto/:
// the frame codec (rpc_wire.c), TLS and token helpers (rpc_common.c) and the
// per-method metrics (rpc_metrics.c). Nothing outside proto/ (except the
// fuzz target and the unit test) includes it.
//
// Frame layout (all offsets relative to the start of the nng message body):
//   [0,4)              u32 LE header length H
//   [4,4+H)            RpcRequest or RpcReply (protobuf)
//   [4+H,8+H)          u32 LE body length B
//   [8+H,8+H+B)        body (protobuf, method-specific)
//   [8+H+B,P)          zero padding
//   [P,end)            raw payload
// P is the smallest offset >= 8+H+B with (P + align_bias) % 16 == 0, where
// align_bias (0..15) is carried in the header. When there is no payload the
// padding is omitted. Senders set align_bias = RPC_ALIGN_BIAS: nng's req/rep
// moves the 4-byte request id from the front of each received message into
// the message header, so a body received into a 16-byte aligned buffer
// starts at an address = 4 (mod 16), and a bias of 4 puts the payload on a
// 16-byte boundary with no copy. Receivers still check the real address.
#ifndef CANOPY_RPC_IMPL_H
#define CANOPY_RPC_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "proto/rpc.h"
#include "rpc.pb-c.h"

#define RPC_ALIGN 16
#define RPC_ALIGN_BIAS 4
// Bytes nng adds in front of a req/rep message on the wire (the request id);
// counted against max_msg_bytes.
#define RPC_NNG_OVERHEAD 8

// rpc_frame locates the parts of a decoded frame, as offsets into the
// message body it was decoded from.
typedef struct rpc_frame {
    size_t hdr_off, hdr_len;
    size_t body_off, body_len;
    size_t payload_off, payload_len; // payload_len 0: no payload
} rpc_frame;

// ---------------------------------------------------------------- wire

// rpc_wire_frame_size returns the total frame size for a header of hdr_len
// bytes, a body of body_len bytes and payload_len payload bytes, and sets
// *payload_off. Returns 0 on arithmetic overflow.
size_t rpc_wire_frame_size(size_t hdr_len, size_t body_len, size_t payload_len,
                           size_t *payload_off);

// Messages of at least RPC_SPARE_MIN bytes (and at most RPC_SPARE_MAX) are
// kept after use as a spare whose buffer the next message built by the same
// thread (client) or server reuses: nng 1.5.2 zeroes every buffer it
// allocates (calloc), so a 4 MB model costs a 4 MB memset per new message.
#define RPC_SPARE_MIN ((size_t)64 << 10)
#define RPC_SPARE_MAX ((size_t)64 << 20)

// rpc_wire_pack builds an nng message holding one frame: hdr and body (may
// be NULL) are packed straight into the message, the padding zeroed, and
// payload_len bytes reserved for the payload, whose address (16-byte
// aligned in the sender's memory) is written to *payload (NULL when
// payload_len is 0). hdr's align_bias field must already be RPC_ALIGN_BIAS.
// spare (may be NULL): when *spare is a message with room for the frame,
// its buffer is used instead of a new allocation and *spare is set to NULL
// (taken); otherwise *spare is left to the caller.
// Errors: CN_ETOOBIG if the message plus nng's overhead would exceed
// max_bytes (nothing allocated), CN_ENOMEM.
cn_err rpc_wire_pack(nng_msg **out, const ProtobufCMessage *hdr, const ProtobufCMessage *body,
                     size_t payload_len, size_t max_bytes, void **payload, nng_msg **spare);

// rpc_wire_spare_keep decides whether m (taken), a message done with, is
// worth keeping in *spare: it is when its length is within [RPC_SPARE_MIN,
// RPC_SPARE_MAX]; the message it replaces, or m itself when it is not
// kept, is freed.
void rpc_wire_spare_keep(nng_msg **spare, nng_msg *m);

// rpc_wire_pad_reply sets hdr's pad field so that a frame of hdr and body
// has a front (header, body and padding: the payload's offset) of about
// front bytes, when it would be shorter (else pad is left empty). A reply
// with a front as long as its request's makes a message the caller can
// reuse for its next request of the same kind (rpc_wire_pack's spare).
void rpc_wire_pad_reply(Canopy__Rpc__RpcReply *hdr, const ProtobufCMessage *body, size_t front);

// rpc_wire_repack turns m, a received frame whose payload runs from
// payload_off to the end, into a frame of hdr and body (may be NULL) in
// front of the same payload bytes, without moving them: the old header and
// body are replaced by the new ones, and hdr's pad field is set so that the
// new front is as long as the old one where it can be (the message keeps
// its length, so the caller's receive buffer, which nng allocates to the
// exact length, can carry its next request of the same size; see
// rpc_wire_pack's spare). Returns CN_OK, or CN_ETOOBIG (m unchanged) when
// the new parts do not fit in front of the payload at an offset that keeps
// its alignment.
cn_err rpc_wire_repack(nng_msg *m, size_t payload_off, Canopy__Rpc__RpcReply *hdr,
                       const ProtobufCMessage *body);

// rpc_wire_split checks the two length prefixes of buf[0..len) and fills
// f's header and body fields. Pure: no allocation. Returns CN_OK or
// CN_EFORMAT with err describing the problem.
cn_err rpc_wire_split(const uint8_t *buf, size_t len, rpc_frame *f, char *err, size_t errlen);

// rpc_wire_locate_payload fills f's payload fields given the header's
// align_bias, checking the padding. Pure. Returns CN_OK or CN_EFORMAT.
cn_err rpc_wire_locate_payload(const uint8_t *buf, size_t len, uint32_t align_bias, rpc_frame *f,
                               char *err, size_t errlen);

// rpc_wire_decode_request decodes a request frame from buf[0..len): lengths,
// the RpcRequest header (unpacked with alloc, NULL = malloc) and the payload
// position. On CN_OK *hdr must be freed with
// canopy__rpc__rpc_request__free_unpacked(*hdr, alloc). On error *hdr is
// NULL and err says what was wrong (CN_EFORMAT). Pure apart from the
// allocation: the libFuzzer target calls it on arbitrary bytes.
cn_err rpc_wire_decode_request(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                               Canopy__Rpc__RpcRequest **hdr, rpc_frame *f, char *err,
                               size_t errlen);

// rpc_wire_decode_reply is rpc_wire_decode_request for an RpcReply.
cn_err rpc_wire_decode_reply(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                             Canopy__Rpc__RpcReply **hdr, rpc_frame *f, char *err, size_t errlen);

// rpc_wire_align_payload makes the payload of the frame in *msg start on a
// 16-byte boundary. When nng delivered the body at an unexpected address
// (e.g. some inproc paths) it grows the message by up to 15 bytes and moves
// the payload up once (counted in rpc_wire_realigned). f->payload_off is
// updated. Errors: CN_ENOMEM (the message is unchanged).
cn_err rpc_wire_align_payload(nng_msg *msg, rpc_frame *f);

// rpc_wire_realigned returns how many payloads had to be moved so far
// (process-wide; for tests and the benchmark).
uint64_t rpc_wire_realigned(void);

// ---------------------------------------------------------------- common

// rpc_tls_setup builds an nng TLS configuration from t for a server
// (server = true) or a client. Errors: CN_EINVAL (missing files),
// CN_EAUTH (files unreadable or invalid), with err set.
cn_err rpc_tls_setup(nng_tls_config **out, const rpc_tls *t, bool server, char *err, size_t errlen);

// rpc_url_is_tls reports whether url uses the tls+tcp transport.
bool rpc_url_is_tls(const char *url);

// rpc_token_equal compares two NUL-terminated tokens (each at most 255
// bytes) in time that does not depend on where they differ.
bool rpc_token_equal(const char *a, const char *b);

// rpc_err_from_nng maps an nng error to a cn_err.
cn_err rpc_err_from_nng(int rv);

// rpc_socket_close_bounded runs nng_close(sock) on a helper thread and waits
// for it at most timeout_ms. nng 1.5.2 can block nng_close forever: when a
// message arrives on a TCP or IPC pipe while the pipe is being closed, the
// transport may drop the protocol's pending receive without completing it,
// and nng's reaper thread then waits for that receive for ever (which also
// stalls every later close in the process). Callers first make such arrivals
// unlikely (see rpc_client_close and rpc_server_close); this is the bound for
// when they still happen. Returns true if the socket closed in time, false
// if the close was left running (counted in rpc_close_abandoned). The caller
// must stop and close every aio and context it owns on sock beforehand, so
// that an abandoned close references none of its memory.
bool rpc_socket_close_bounded(nng_socket sock, int timeout_ms);

// rpc_close_abandoned returns how many closes rpc_socket_close_bounded gave
// up on so far (process-wide; for tests and diagnostics).
uint64_t rpc_close_abandoned(void);

// Time a peer may still deliver a message after the deadline it was given,
// covering transit and scheduling delay; see rpc_client_close.
#define RPC_LATE_GRACE_MS 100
// How long rpc_client_close and rpc_server_close give nng_close.
#define RPC_CLOSE_TIMEOUT_MS 2000

// ---------------------------------------------------------------- metrics

// Latency bucket upper bounds in seconds: 100us, 250us, 500us, 1ms ... 10s.
#define RPC_LAT_BUCKETS 16
#define RPC_NCODES 17

// rpc_method_metrics: counters for one method. Updated with atomics from any
// thread; read without a lock (each value is individually consistent).
typedef struct rpc_method_metrics {
    uint64_t codes[RPC_NCODES];
    uint64_t buckets[RPC_LAT_BUCKETS]; // non-cumulative counts per bucket
    uint64_t over;                     // above the last bucket
    uint64_t sum_ns;
    uint64_t bytes_in, bytes_out;
} rpc_method_metrics;

// rpc_metrics_record adds one finished call.
void rpc_metrics_record(rpc_method_metrics *m, rpc_code code, uint64_t ns, size_t in, size_t out);

// rpc_metrics_write_headers appends the # HELP / # TYPE lines of family i
// (0 requests, 1 latency, 2 bytes in, 3 bytes out); rpc_metrics_write_family
// appends family i of one method. rpc_server_metrics groups lines per family
// as the exposition format requires.
cn_err rpc_metrics_write_header(cn_buf *out, int family);
cn_err rpc_metrics_write_family(cn_buf *out, int family, const char *service, const char *method,
                                const rpc_method_metrics *m);
#define RPC_METRIC_FAMILIES 4

#endif
