// rpc_wire.c: the frame codec of canopy's RPC (layout in rpc_impl.h and
// docs/wire.md). Packing writes the protobuf header and body straight into
// the nng message; decoding checks every length against the bytes actually
// received before touching them, so a truncated or hostile frame is an error
// (CN_EFORMAT, answered INVALID_ARGUMENT), never an out-of-bounds read.
#include "proto/rpc_impl.h"

#include <limits.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_uint_fast64_t realigned;

uint64_t rpc_wire_realigned(void)
{
    return atomic_load(&realigned);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// pad_to returns the smallest p >= off with (p + bias) % RPC_ALIGN == 0.
static size_t pad_to(size_t off, uint32_t bias)
{
    size_t r = (off + bias) % RPC_ALIGN;
    return r ? off + (RPC_ALIGN - r) : off;
}

// write_front writes the two length-prefixed protobuf parts at p and zeroes
// the padding up to the payload offset poff.
static void write_front(uint8_t *p, const ProtobufCMessage *hdr, size_t hl,
                        const ProtobufCMessage *body, size_t bl, size_t poff)
{
    put_u32(p, (uint32_t)hl);
    protobuf_c_message_pack(hdr, p + 4);
    put_u32(p + 4 + hl, (uint32_t)bl);
    if (body)
        protobuf_c_message_pack(body, p + 8 + hl);
    size_t end = 8 + hl + bl;
    if (poff > end)
        memset(p + end, 0, poff - end);
}

size_t rpc_wire_frame_size(size_t hdr_len, size_t body_len, size_t payload_len, size_t *payload_off)
{
    if (hdr_len > UINT32_MAX || body_len > UINT32_MAX)
        return 0;
    size_t end = 8 + hdr_len + body_len;
    size_t off = payload_len ? pad_to(end, RPC_ALIGN_BIAS) : end;
    if (payload_len > SIZE_MAX - off - RPC_ALIGN)
        return 0;
    *payload_off = off;
    return off + payload_len;
}

// reuse makes m, a message done with, hold total bytes whose start is at
// an address = RPC_ALIGN_BIAS (mod 16), within the buffer it already has.
// Returns false (m left cleared) when it has no room.
static bool reuse(nng_msg *m, size_t total)
{
    nng_msg_header_clear(m);
    nng_msg_clear(m);
    uintptr_t a = (uintptr_t)nng_msg_body(m);
    size_t skip = (RPC_ALIGN + RPC_ALIGN_BIAS - a % RPC_ALIGN) % RPC_ALIGN;
    // Within the capacity nng only moves the length: nothing is allocated
    // or zeroed.
    if (nng_msg_capacity(m) < total + skip || nng_msg_realloc(m, total + skip) != 0)
        return false;
    nng_msg_trim(m, skip);
    return true;
}

void rpc_wire_spare_keep(nng_msg **spare, nng_msg *m)
{
    size_t len = m ? nng_msg_len(m) : 0;
    if (len < RPC_SPARE_MIN || len > RPC_SPARE_MAX) {
        if (m)
            nng_msg_free(m);
        return;
    }
    if (*spare)
        nng_msg_free(*spare);
    *spare = m;
}

cn_err rpc_wire_pack(nng_msg **out, const ProtobufCMessage *hdr, const ProtobufCMessage *body,
                     size_t payload_len, size_t max_bytes, void **payload, nng_msg **spare)
{
    *out = NULL;
    if (payload)
        *payload = NULL;
    size_t hl = protobuf_c_message_get_packed_size(hdr);
    size_t bl = body ? protobuf_c_message_get_packed_size(body) : 0;
    size_t poff = 0;
    size_t total = rpc_wire_frame_size(hl, bl, payload_len, &poff);
    if (total == 0 || total > max_bytes || max_bytes - total < RPC_NNG_OVERHEAD)
        return CN_ETOOBIG;

    nng_msg *m;
    if (spare && *spare && total >= RPC_SPARE_MIN && reuse(*spare, total)) {
        m = *spare;
        *spare = NULL;
    } else {
        // Allocate 4 bytes more and trim them from the front: the body then
        // starts 4 bytes past nng's 16-byte aligned allocation, which is
        // where the receiver's body will start too (see rpc_impl.h), so the
        // payload is aligned on both sides. The 4 bytes of headroom also let
        // nng's inproc transport prepend the request id without
        // reallocating.
        if (nng_msg_alloc(&m, total + RPC_ALIGN_BIAS) != 0)
            return CN_ENOMEM;
        nng_msg_trim(m, RPC_ALIGN_BIAS);
    }
    uint8_t *p = nng_msg_body(m);
    write_front(p, hdr, hl, body, bl, poff);
    if (payload && payload_len)
        *payload = p + poff;
    *out = m;
    return CN_OK;
}

// Zeros for RpcReply.pad; a longer gap is left to trimming or the frame.
static const uint8_t pad_zeros[1024];

void rpc_wire_pad_reply(Canopy__Rpc__RpcReply *hdr, const ProtobufCMessage *body, size_t front)
{
    hdr->pad.len = 0;
    hdr->pad.data = NULL;
    size_t end = 8 + protobuf_c_message_get_packed_size(&hdr->base) +
                 (body ? protobuf_c_message_get_packed_size(body) : 0);
    if (end + 3 > front)
        return;
    // The field costs a tag byte and a length varint (1 or 2 bytes here)
    // besides its bytes; the frame's own padding takes up to 15 more.
    size_t room = front - end;
    size_t n = room - 2 < 128 ? room - 2 : room - 3;
    hdr->pad.len = n < sizeof pad_zeros ? n : sizeof pad_zeros;
    hdr->pad.data = (uint8_t *)pad_zeros;
}

cn_err rpc_wire_repack(nng_msg *m, size_t payload_off, Canopy__Rpc__RpcReply *hdr,
                       const ProtobufCMessage *body)
{
    size_t len = nng_msg_len(m);
    if (payload_off >= len)
        return CN_ETOOBIG;
    rpc_wire_pad_reply(hdr, body, payload_off);
    size_t hl = protobuf_c_message_get_packed_size(&hdr->base);
    size_t bl = body ? protobuf_c_message_get_packed_size(body) : 0;
    size_t poff = 0;
    // Both offsets are = 16 - RPC_ALIGN_BIAS (mod 16) when the old frame
    // was packed here, so the payload keeps its alignment for the receiver.
    if (rpc_wire_frame_size(hl, bl, len - payload_off, &poff) == 0 || poff > payload_off ||
        (payload_off - poff) % RPC_ALIGN != 0) {
        hdr->pad.len = 0;
        hdr->pad.data = NULL;
        return CN_ETOOBIG;
    }
    nng_msg_trim(m, payload_off - poff);
    write_front(nng_msg_body(m), &hdr->base, hl, body, bl, poff);
    return CN_OK;
}

cn_err rpc_wire_split(const uint8_t *buf, size_t len, rpc_frame *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    if (len < 4)
        return cn_errf(err, errlen, CN_EFORMAT,
                       "frame of %zu bytes is shorter than its header length", len);
    size_t hl = get_u32(buf);
    if (hl > len - 4 || hl > INT_MAX)
        return cn_errf(err, errlen, CN_EFORMAT, "header length %zu exceeds the %zu bytes received",
                       hl, len - 4);
    size_t rest = len - 4 - hl;
    if (rest < 4)
        return cn_errf(err, errlen, CN_EFORMAT, "frame truncated before the body length");
    size_t bl = get_u32(buf + 4 + hl);
    if (bl > rest - 4 || bl > INT_MAX)
        return cn_errf(err, errlen, CN_EFORMAT, "body length %zu exceeds the %zu bytes received",
                       bl, rest - 4);
    f->hdr_off = 4;
    f->hdr_len = hl;
    f->body_off = 8 + hl;
    f->body_len = bl;
    f->payload_off = f->body_off + bl;
    f->payload_len = 0;
    return CN_OK;
}

cn_err rpc_wire_locate_payload(const uint8_t *buf, size_t len, uint32_t align_bias, rpc_frame *f,
                               char *err, size_t errlen)
{
    if (align_bias >= RPC_ALIGN)
        return cn_errf(err, errlen, CN_EFORMAT, "align_bias %u is not below %d", align_bias,
                       RPC_ALIGN);
    size_t end = f->body_off + f->body_len;
    if (end == len) {
        f->payload_off = end;
        f->payload_len = 0;
        return CN_OK;
    }
    size_t off = pad_to(end, align_bias);
    if (off >= len)
        return cn_errf(err, errlen, CN_EFORMAT, "payload padding runs past the end of the frame");
    for (size_t i = end; i < off; i++)
        if (buf[i] != 0)
            return cn_errf(err, errlen, CN_EFORMAT, "non-zero padding byte at offset %zu", i);
    f->payload_off = off;
    f->payload_len = len - off;
    return CN_OK;
}

cn_err rpc_wire_decode_request(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                               Canopy__Rpc__RpcRequest **hdr, rpc_frame *f, char *err,
                               size_t errlen)
{
    *hdr = NULL;
    cn_err rc = rpc_wire_split(buf, len, f, err, errlen);
    if (rc != CN_OK)
        return rc;
    Canopy__Rpc__RpcRequest *h = canopy__rpc__rpc_request__unpack(alloc, f->hdr_len, buf + 4);
    if (!h)
        return cn_errf(err, errlen, CN_EFORMAT, "request header is not a valid RpcRequest");
    rc = rpc_wire_locate_payload(buf, len, h->align_bias, f, err, errlen);
    if (rc != CN_OK) {
        canopy__rpc__rpc_request__free_unpacked(h, alloc);
        return rc;
    }
    *hdr = h;
    return CN_OK;
}

cn_err rpc_wire_decode_reply(const uint8_t *buf, size_t len, ProtobufCAllocator *alloc,
                             Canopy__Rpc__RpcReply **hdr, rpc_frame *f, char *err, size_t errlen)
{
    *hdr = NULL;
    cn_err rc = rpc_wire_split(buf, len, f, err, errlen);
    if (rc != CN_OK)
        return rc;
    Canopy__Rpc__RpcReply *h = canopy__rpc__rpc_reply__unpack(alloc, f->hdr_len, buf + 4);
    if (!h)
        return cn_errf(err, errlen, CN_EFORMAT, "reply header is not a valid RpcReply");
    rc = rpc_wire_locate_payload(buf, len, h->align_bias, f, err, errlen);
    if (rc != CN_OK) {
        canopy__rpc__rpc_reply__free_unpacked(h, alloc);
        return rc;
    }
    *hdr = h;
    return CN_OK;
}

cn_err rpc_wire_align_payload(nng_msg *msg, rpc_frame *f)
{
    if (f->payload_len == 0)
        return CN_OK;
    uintptr_t a = (uintptr_t)((uint8_t *)nng_msg_body(msg) + f->payload_off);
    if (a % RPC_ALIGN == 0)
        return CN_OK;
    // nng_msg_realloc keeps the contents (it may move them), so recompute
    // the address afterwards and shift the payload up to the next boundary.
    size_t len = nng_msg_len(msg);
    if (nng_msg_realloc(msg, len + RPC_ALIGN - 1) != 0)
        return CN_ENOMEM;
    uint8_t *body = nng_msg_body(msg);
    uintptr_t src = (uintptr_t)(body + f->payload_off);
    size_t shift = (RPC_ALIGN - src % RPC_ALIGN) % RPC_ALIGN;
    if (shift)
        memmove(body + f->payload_off + shift, body + f->payload_off, f->payload_len);
    nng_msg_chop(msg, RPC_ALIGN - 1 - shift);
    f->payload_off += shift;
    atomic_fetch_add(&realigned, 1);
    return CN_OK;
}
