// rpc_unpack.c: unpacking a request body in a handler, with the one error
// reply every service gives for a malformed body.
#include "proto/rpc.h"

ProtobufCMessage *rpc_call_unpack(rpc_call *c, const ProtobufCMessageDescriptor *desc)
{
    size_t len;
    const uint8_t *body = rpc_call_body(c, &len);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, body);
    if (m == NULL)
        rpc_call_fail(c, RPC_INVALID_ARGUMENT, "%s: malformed request body", rpc_call_method(c));
    return m;
}
