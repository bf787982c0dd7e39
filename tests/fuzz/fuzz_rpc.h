// fuzz_rpc.h: helpers the RPC service fuzz targets share: a raw req socket
// to an in-process server, and one call whose body and payload are the
// fuzzer's bytes (so handlers see bodies no canopy client would send).
#ifndef CANOPY_FUZZ_RPC_H
#define CANOPY_FUZZ_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

// fuzz_rpc_dial opens a req socket to url (inproc://...). Aborts on failure.
nng_socket fuzz_rpc_dial(const char *url);

// fuzz_rpc_call sends service/method with body[0..blen) as the request body
// and payload[0..plen) as the raw payload, deadline 20 ms, and waits at
// most 200 ms for the reply (a parked call may never be answered in time).
// Aborts if a reply arrives that is not a well-formed RpcReply frame.
void fuzz_rpc_call(nng_socket sock, const char *service, const char *method, const uint8_t *body,
                   size_t blen, const uint8_t *payload, size_t plen);

// fuzz_rpc_split splits a fuzz input: data[0] picks one of n methods,
// data[1..3) (LE) bounds the body's length, the body follows and the rest
// is the payload. Returns the method index, or -1 if the input is too short.
int fuzz_rpc_split(const uint8_t *data, size_t size, int n, const uint8_t **body, size_t *blen,
                   const uint8_t **payload, size_t *plen);

// fuzz_tmpdir makes a fresh directory under $TMPDIR (or /tmp) for a
// target's state and writes its path into out. Aborts on failure.
void fuzz_tmpdir(char *out, size_t n);

#endif
