// fuzz_envelope.c: libFuzzer target for the RPC frame decoder. Feeds the
// input to rpc_wire_decode_request and rpc_wire_decode_reply as if it were
// the body of a received nng message; any crash, leak or out-of-bounds read
// (under ASan/UBSan) is a bug. On success the located parts must lie inside
// the input.
#include "proto/rpc_impl.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // Copy into an exact-size heap buffer so ASan sees any overread.
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    char err[256];
    rpc_frame f;
    Canopy__Rpc__RpcRequest *q = NULL;
    if (rpc_wire_decode_request(buf, size, NULL, &q, &f, err, sizeof err) == CN_OK) {
        if (f.body_off + f.body_len > size || f.payload_off + f.payload_len > size)
            abort();
        canopy__rpc__rpc_request__free_unpacked(q, NULL);
    }
    Canopy__Rpc__RpcReply *r = NULL;
    if (rpc_wire_decode_reply(buf, size, NULL, &r, &f, err, sizeof err) == CN_OK) {
        if (f.body_off + f.body_len > size || f.payload_off + f.payload_len > size)
            abort();
        canopy__rpc__rpc_reply__free_unpacked(r, NULL);
    }
    free(buf);
    return 0;
}
