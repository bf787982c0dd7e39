// test_flood.c: every daemon (scheduler, ps, worker: real processes on
// loopback, with a cluster token) receives 10,000 bad messages: malformed
// frames, frames truncated at every length, calls without the token, plus
// connections that stop in the middle of a message. Each daemon answers
// valid calls all along and counts every rejected call in its metrics
// (Cluster/Metrics), by status.
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "proto/cluster_client.h"
#include "proto/rpc_impl.h"
#include "tests/support/support.h"

#define TOKEN "flood-secret"
#define BAD 10000 // bad messages per daemon

static char dir[256], log_path[512];
static char urls[3][64];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
    snprintf(log_path, sizeof log_path, "%s/daemons.log", dir);
    for (int i = 0; i < 3; i++)
        snprintf(urls[i], sizeof urls[i], "tcp://127.0.0.1:%d", ts_free_port());
    setenv("CANOPY_TOKEN", TOKEN, 1);
}

static void teardown(void)
{
    ts_reap_all();
    ts_rmtree(dir);
}

static rpc_client *client(const char *url, const char *token)
{
    rpc_client *c = NULL;
    char err[256];
    rpc_client_opts o = {.url = url, .token = token};
    ck_assert_int_eq(rpc_client_open(&c, &o, err, sizeof err), CN_OK);
    return c;
}

// ping_frame packs a Cluster/Ping request without a token.
static nng_msg *ping_frame(void)
{
    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)"Cluster";
    h.method = (char *)"Ping";
    h.request_id = 1;
    h.deadline_ms = 2000;
    h.align_bias = RPC_ALIGN_BIAS;
    Canopy__Rpc__RpcRequest body = CANOPY__RPC__RPC_REQUEST__INIT;
    body.service = (char *)"padding so that truncation cuts the body";
    nng_msg *m;
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, &body.base, 0, 1 << 20, NULL, NULL), CN_OK);
    return m;
}

// raw_send sends bytes on a plain req socket and returns the reply's status
// (-1: no reply).
static int raw_send(nng_socket s, const void *bytes, size_t n)
{
    nng_msg *m, *r;
    ck_assert_int_eq(nng_msg_alloc(&m, 0), 0);
    nng_msg_append(m, bytes, n);
    if (nng_sendmsg(s, m, 0) != 0) {
        nng_msg_free(m);
        return -1;
    }
    if (nng_recvmsg(s, &r, 0) != 0)
        return -1;
    rpc_frame f;
    char err[256];
    Canopy__Rpc__RpcReply *rep = NULL;
    ck_assert_int_eq(
        rpc_wire_decode_reply(nng_msg_body(r), nng_msg_len(r), NULL, &rep, &f, err, sizeof err),
        CN_OK);
    int code = rep->code;
    canopy__rpc__rpc_reply__free_unpacked(rep, NULL);
    nng_msg_free(r);
    return code;
}

// cut_connection opens a TCP connection, does the SP handshake and sends
// part of a message, then closes it.
static void cut_connection(int port, int i)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
    uint8_t frame[24] = {0, 0, 0, 0, 0, 0, 0x10, 0}; // claims 4 KiB
    size_t n = (size_t)(i % 3) * 8;                  // stop in the handshake or the message
    (void)!send(fd, hello, i % 2 ? 8 : 5, MSG_NOSIGNAL);
    (void)!send(fd, frame, n, MSG_NOSIGNAL);
    close(fd);
}

typedef struct counts {
    long invalid, unauth;
} counts;

// metric returns canopy_rpc_requests_total{service="_",method="_",code=...}.
static long metric(const char *text, const char *code)
{
    char key[160];
    snprintf(key, sizeof key, "canopy_rpc_requests_total{service=\"_\",method=\"_\",code=\"%s\"} ",
             code);
    const char *p = strstr(text, key);
    return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

static void flood(const char *url, counts *sent)
{
    nng_socket s;
    ck_assert_int_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    rpc_client *good = client(url, TOKEN);
    ck_assert_int_eq(rpc_wait_ready(good, "Cluster", "Ping", 20000), RPC_OK);
    ck_assert_int_eq(nng_dial(s, url, NULL, 0), 0);
    int port = atoi(strrchr(url, ':') + 1);
    nng_msg *ping = ping_frame();
    const uint8_t *pb = nng_msg_body(ping);
    size_t plen = nng_msg_len(ping);
    uint8_t junk[64];
    for (int i = 0; i < BAD; i++) {
        int kind = i % 4;
        if (kind == 0) { // a header length past the end
            memset(junk, (uint8_t)i, sizeof junk);
            junk[3] = 0x7f;
            ck_assert_int_eq(raw_send(s, junk, 1 + (size_t)i % sizeof junk), RPC_INVALID_ARGUMENT);
            sent->invalid++;
        } else if (kind == 1) { // a valid frame cut short
            ck_assert_int_eq(raw_send(s, pb, (size_t)i % plen), RPC_INVALID_ARGUMENT);
            sent->invalid++;
        } else if (kind == 2) { // no token
            ck_assert_int_eq(raw_send(s, pb, plen), RPC_UNAUTHENTICATED);
            sent->unauth++;
        } else {
            cut_connection(port, i);
        }
        if (i % 1000 == 999) // valid calls are served all along
            ck_assert_int_eq(cluster_ping(good, 2000, NULL, 0), RPC_OK);
    }
    nng_msg_free(ping);
    nng_close(s);
    ck_assert_int_eq(cluster_ping(good, 2000, NULL, 0), RPC_OK);
    cn_buf m;
    cn_buf_init(&m);
    char detail[256];
    ck_assert_int_eq(cluster_metrics(good, &m, detail, sizeof detail), RPC_OK);
    ck_assert_int_eq(metric(m.data, "INVALID_ARGUMENT"), sent->invalid);
    ck_assert_int_eq(metric(m.data, "UNAUTHENTICATED"), sent->unauth);
    cn_buf_fini(&m);
    rpc_client_close(good);
}

START_TEST(test_every_daemon_survives_a_flood_and_counts_it)
{
    char state[300];
    snprintf(state, sizeof state, "%s/state", dir);
    char *sched[] = {(char *)ts_canopy_bin(), "scheduler", "--listen", urls[0],
                     "--state-dir",           state,       NULL};
    ts_spawn(sched, log_path);
    char *ps[] = {(char *)ts_canopy_bin(),
                  "ps",
                  "--scheduler",
                  urls[0],
                  "--listen",
                  urls[1],
                  "--name",
                  "ps-flood",
                  NULL};
    char *worker[] = {(char *)ts_canopy_bin(),
                      "worker",
                      "--scheduler",
                      urls[0],
                      "--listen",
                      urls[2],
                      "--name",
                      "w-flood",
                      "--threads",
                      "1",
                      NULL};
    ts_spawn(ps, log_path);
    ts_spawn(worker, log_path);
    for (int d = 0; d < 3; d++) {
        counts sent = {0, 0};
        flood(urls[d], &sent);
        ck_assert_int_eq(sent.invalid, BAD / 2);
        ck_assert_int_eq(sent.unauth, BAD / 4);
    }
    // The refused callers were logged with their address.
    ck_assert(ts_file_contains(log_path, "refused a call from 127.0.0.1:"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("flood");
    TCase *t = tcase_create("daemons");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_every_daemon_survives_a_flood_and_counts_it);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
