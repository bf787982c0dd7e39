// fuzz_ps.c: libFuzzer target for every request type of the ParameterServer
// service (Configure, Pull, Push, PushPull, Stats, Checkpoint). A server
// with the service runs in-process on inproc://; each input becomes one
// call whose body and payload are the fuzzer's bytes (see fuzz_rpc_split).
// Every call must get a well-formed reply or none (a parked pull past its
// deadline); a crash, leak or sanitizer report is a bug. Checkpoints go
// under a fresh temporary root.
#include <stdlib.h>

#include "common/cn_log.h"
#include "ps/ps.h"
#include "tests/fuzz/fuzz_rpc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static nng_socket sock;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cn_log_set_level(CN_LOG_OFF);
    static char root[512];
    fuzz_tmpdir(root, sizeof root);
    rpc_server *srv;
    ps_service *svc;
    char err[512];
    rpc_server_opts o = {.url = "inproc://fuzz-ps", .max_msg_bytes = 1 << 20};
    if (rpc_server_open(&srv, &o, err, sizeof err) != CN_OK ||
        ps_service_new(&svc, srv, root, err, sizeof err) != CN_OK ||
        rpc_server_start(srv, err, sizeof err) != CN_OK)
        abort();
    sock = fuzz_rpc_dial("inproc://fuzz-ps");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *methods[] = {"Configure", "Pull", "Push", "PushPull", "Stats", "Checkpoint"};
    const uint8_t *body, *payload;
    size_t blen, plen;
    int m = fuzz_rpc_split(data, size, 6, &body, &blen, &payload, &plen);
    if (m >= 0)
        fuzz_rpc_call(sock, "ParameterServer", methods[m], body, blen, payload, plen);
    return 0;
}
