// fuzz_rpc.c: see fuzz_rpc.h.
#include "tests/fuzz/fuzz_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/req.h>

#include "proto/rpc_impl.h"

nng_socket fuzz_rpc_dial(const char *url)
{
    nng_socket s;
    if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0)
        abort();
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 200);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 200);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    return s;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void fuzz_rpc_call(nng_socket sock, const char *service, const char *method, const uint8_t *body,
                   size_t blen, const uint8_t *payload, size_t plen)
{
    static uint64_t id;
    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)service;
    h.method = (char *)method;
    h.request_id = ++id;
    h.deadline_ms = 20;
    h.node_id = 1;
    h.caller = 7;
    h.seq = id;
    size_t hl = protobuf_c_message_get_packed_size(&h.base);
    size_t end = 8 + hl + blen;
    size_t poff = plen ? (end + 15) & ~(size_t)15 : end; // align_bias 0
    nng_msg *m;
    if (nng_msg_alloc(&m, poff + plen) != 0)
        return;
    uint8_t *b = nng_msg_body(m);
    memset(b, 0, poff);
    put32(b, (uint32_t)hl);
    protobuf_c_message_pack(&h.base, b + 4);
    put32(b + 4 + hl, (uint32_t)blen);
    if (blen)
        memcpy(b + 8 + hl, body, blen);
    if (plen)
        memcpy(b + poff, payload, plen);
    if (nng_sendmsg(sock, m, 0) != 0) {
        nng_msg_free(m);
        return;
    }
    nng_msg *r;
    if (nng_recvmsg(sock, &r, 0) != 0)
        return;
    rpc_frame f;
    char err[256];
    Canopy__Rpc__RpcReply *rep = NULL;
    if (rpc_wire_decode_reply(nng_msg_body(r), nng_msg_len(r), NULL, &rep, &f, err, sizeof err) !=
        CN_OK)
        abort();
    canopy__rpc__rpc_reply__free_unpacked(rep, NULL);
    nng_msg_free(r);
}

int fuzz_rpc_split(const uint8_t *data, size_t size, int n, const uint8_t **body, size_t *blen,
                   const uint8_t **payload, size_t *plen)
{
    if (size < 3)
        return -1;
    size_t want = (size_t)data[1] | (size_t)data[2] << 8;
    size_t rest = size - 3;
    *blen = want < rest ? want : rest;
    *body = data + 3;
    *payload = data + 3 + *blen;
    *plen = rest - *blen;
    return data[0] % n;
}

void fuzz_tmpdir(char *out, size_t n)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, n, "%s/canopy-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(out))
        abort();
}
