// fuzz_scheduler.c: libFuzzer target for every request type the scheduler
// serves: Cluster (Register, Heartbeat, Status, Ping, Metrics), Jobs
// (Submit, Status, List, Cancel), Work (Get, Report) and Data (Has, Put,
// Fetch). A scheduler runs in-process on inproc:// with a fresh state
// directory; each input becomes one call whose body and payload are the
// fuzzer's bytes (see fuzz_rpc_split). Every call must get a well-formed
// reply or none; a crash, leak or sanitizer report is a bug.
#include <stdlib.h>

#include "common/cn_log.h"
#include "scheduler/scheduler.h"
#include "tests/fuzz/fuzz_rpc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static nng_socket sock;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cn_log_set_level(CN_LOG_OFF);
    static char state[512];
    fuzz_tmpdir(state, sizeof state);
    sched *s;
    char err[512];
    sched_opts o = {.listen = "inproc://fuzz-sched", .state_dir = state, .max_msg_bytes = 1 << 20};
    if (sched_open(&s, &o, err, sizeof err) != CN_OK || sched_start(s, err, sizeof err) != CN_OK)
        abort();
    sock = fuzz_rpc_dial("inproc://fuzz-sched");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *methods[][2] = {
        {"Cluster", "Register"}, {"Cluster", "Heartbeat"}, {"Cluster", "Status"},
        {"Cluster", "Ping"},     {"Cluster", "Metrics"},   {"Jobs", "Submit"},
        {"Jobs", "Status"},      {"Jobs", "List"},         {"Jobs", "Cancel"},
        {"Work", "Get"},         {"Work", "Report"},       {"Data", "Has"},
        {"Data", "Put"},         {"Data", "Fetch"}};
    const int n = (int)(sizeof methods / sizeof methods[0]);
    const uint8_t *body, *payload;
    size_t blen, plen;
    int m = fuzz_rpc_split(data, size, n, &body, &blen, &payload, &plen);
    if (m >= 0)
        fuzz_rpc_call(sock, methods[m][0], methods[m][1], body, blen, payload, plen);
    return 0;
}
