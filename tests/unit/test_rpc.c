// test_rpc.c: the RPC runtime of proto/ end to end: round trips on every
// transport, concurrency, deadlines, malformed and oversized input sent with
// a raw nng socket, the in-flight cap, the token, duplicate suppression,
// reconnecting after a server restart, in-place reply payloads and metrics.
// Every test asserts exact status codes and waits on conditions.
#include "proto/rpc.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "cluster.pb-c.h"
#include "proto/rpc_impl.h"
#include "tests/support/support.h"

// ---------------------------------------------------------------- fixture

typedef struct fixture {
    atomic_int echo_calls;
    atomic_int count_calls;
    atomic_int sleep_started;
    atomic_int sleep_done;
    atomic_int blocked;
    atomic_int release;
    atomic_int misaligned;      // request payloads seen at a misaligned address
    atomic_int busy_calls;      // BusyOnce handler runs
    rpc_server *_Atomic server; // for handlers that watch the server's metrics
} fixture;

static fixture fx;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// Echo replies with the request's HeartbeatRequest and payload.
static void h_echo(rpc_call *c, void *arg)
{
    (void)arg;
    atomic_fetch_add(&fx.echo_calls, 1);
    size_t bl, pl;
    const uint8_t *b = rpc_call_body(c, &bl);
    const void *p = rpc_call_payload(c, &pl);
    if (p && (uintptr_t)p % 16 != 0)
        atomic_fetch_add(&fx.misaligned, 1);
    Canopy__Cluster__HeartbeatRequest *r = canopy__cluster__heartbeat_request__unpack(NULL, bl, b);
    if (!r) {
        rpc_call_fail(c, RPC_INVALID_ARGUMENT, "body is not a HeartbeatRequest");
        return;
    }
    rpc_call_reply(c, &r->base, p, pl);
    canopy__cluster__heartbeat_request__free_unpacked(r, NULL);
}

// Sleep waits node_id milliseconds, then replies with an empty body.
static void h_sleep(rpc_call *c, void *arg)
{
    (void)arg;
    size_t bl;
    const uint8_t *b = rpc_call_body(c, &bl);
    Canopy__Cluster__HeartbeatRequest *r = canopy__cluster__heartbeat_request__unpack(NULL, bl, b);
    int ms = r ? (int)r->node_id : 0;
    if (r)
        canopy__cluster__heartbeat_request__free_unpacked(r, NULL);
    atomic_fetch_add(&fx.sleep_started, 1);
    sleep_ms(ms);
    atomic_fetch_add(&fx.sleep_done, 1);
    rpc_call_reply(c, NULL, NULL, 0);
}

// resent_while_running reports whether a resend of SleepOnce found the
// first attempt still running (the server answered it ABORTED).
static bool resent_while_running(void)
{
    rpc_server *s = atomic_load(&fx.server);
    cn_buf m;
    cn_buf_init(&m);
    bool seen = s && rpc_server_metrics(s, &m) == CN_OK && m.data &&
                strstr(m.data, "method=\"SleepOnce\",code=\"ABORTED\"}");
    cn_buf_fini(&m);
    return seen;
}

// SleepOnce (mutating) runs until a resend of the same call has arrived
// while it ran, or for at most node_id ms; then it replies.
static void h_sleep_until_resent(rpc_call *c, void *arg)
{
    (void)arg;
    size_t bl;
    const uint8_t *b = rpc_call_body(c, &bl);
    Canopy__Cluster__HeartbeatRequest *r = canopy__cluster__heartbeat_request__unpack(NULL, bl, b);
    int ms = r ? (int)r->node_id : 0;
    if (r)
        canopy__cluster__heartbeat_request__free_unpacked(r, NULL);
    atomic_fetch_add(&fx.sleep_started, 1);
    for (int waited = 0; waited < ms && !resent_while_running(); waited += 10)
        sleep_ms(10);
    atomic_fetch_add(&fx.sleep_done, 1);
    rpc_call_reply(c, NULL, NULL, 0);
}

// BusyOnce (mutating) answers its first call UNAVAILABLE (nothing applied)
// and every later one OK.
static void h_busy_once(rpc_call *c, void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&fx.busy_calls, 1) == 0)
        rpc_call_fail(c, RPC_UNAVAILABLE, "busy; try again");
    else
        rpc_call_reply(c, NULL, NULL, 0);
}

// Count is a mutating call: it bumps a counter and returns it as the rank.
static void h_count(rpc_call *c, void *arg)
{
    (void)arg;
    Canopy__Cluster__RegisterReply rr = CANOPY__CLUSTER__REGISTER_REPLY__INIT;
    rr.rank = (uint32_t)atomic_fetch_add(&fx.count_calls, 1) + 1;
    rr.heartbeat_interval_ms = (uint32_t)rpc_call_seq(c);
    rpc_call_reply(c, &rr.base, NULL, 0);
}

// Block holds its handler thread until fx.release is set.
static void h_block(rpc_call *c, void *arg)
{
    (void)arg;
    atomic_fetch_add(&fx.blocked, 1);
    while (!atomic_load(&fx.release))
        sleep_ms(1);
    rpc_call_reply(c, NULL, NULL, 0);
}

// Big writes node_id floats in place: value i at index i.
static void h_big(rpc_call *c, void *arg)
{
    (void)arg;
    size_t bl;
    const uint8_t *b = rpc_call_body(c, &bl);
    Canopy__Cluster__HeartbeatRequest *r = canopy__cluster__heartbeat_request__unpack(NULL, bl, b);
    size_t n = r ? (size_t)r->node_id : 0;
    if (r)
        canopy__cluster__heartbeat_request__free_unpacked(r, NULL);
    void *p;
    if (rpc_call_reply_begin(c, NULL, n * sizeof(float), &p) != CN_OK)
        return;
    float *f = p;
    for (size_t i = 0; i < n; i++)
        f[i] = (float)i;
    rpc_call_reply_end(c);
}

// Negate negates the request's float payload where it lies and answers with
// it in place; the reply body is an RpcReply whose detail has node_id
// characters, so a long one cannot fit in front of the payload.
static void h_negate(rpc_call *c, void *arg)
{
    (void)arg;
    size_t bl, pl;
    const uint8_t *b = rpc_call_body(c, &bl);
    Canopy__Cluster__HeartbeatRequest *r = canopy__cluster__heartbeat_request__unpack(NULL, bl, b);
    size_t n = r ? (size_t)r->node_id : 0;
    if (r)
        canopy__cluster__heartbeat_request__free_unpacked(r, NULL);
    float *f = rpc_call_payload_mut(c, &pl);
    for (size_t i = 0; i < pl / sizeof(float); i++)
        f[i] = -f[i];
    char detail[1024];
    memset(detail, 'x', sizeof detail);
    detail[n < sizeof detail ? n : sizeof detail - 1] = 0;
    Canopy__Rpc__RpcReply body = CANOPY__RPC__RPC_REPLY__INIT;
    body.detail = detail;
    rpc_call_reply_inplace(c, &body.base);
}

typedef struct srv_cfg {
    const char *url;
    const char *token;
    size_t max_msg;
    int max_inflight;
    int threads;
    int window;
    rpc_tls tls;
    int max_unauth_per_ip, auth_grace_ms;
    void (*on_refuse)(void *arg, const char *what);
} srv_cfg;

static rpc_server *start_server(const srv_cfg *cfg, char *url_out, size_t n)
{
    rpc_server_opts o = {.url = cfg->url,
                         .token = cfg->token,
                         .max_msg_bytes = cfg->max_msg,
                         .max_inflight = cfg->max_inflight,
                         .handler_threads = cfg->threads,
                         .dedup_window = cfg->window,
                         .tls = cfg->tls,
                         .max_unauth_per_ip = cfg->max_unauth_per_ip,
                         .auth_grace_ms = cfg->auth_grace_ms,
                         .on_refuse = cfg->on_refuse};
    rpc_server *s = NULL;
    char err[CN_ERRBUF_LEN] = "";
    cn_err rc = rpc_server_open(&s, &o, err, sizeof err);
    ck_assert_msg(rc == CN_OK, "rpc_server_open(%s): %s", cfg->url, err);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Echo", h_echo, NULL, 0), CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "EchoInline", h_echo, NULL, RPC_HANDLER_INLINE),
                     CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Sleep", h_sleep, NULL, 0), CN_OK);
    ck_assert_int_eq(
        rpc_server_register(s, "Test", "SleepOnce", h_sleep_until_resent, NULL, RPC_MUTATING),
        CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "BusyOnce", h_busy_once, NULL, RPC_MUTATING),
                     CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Count", h_count, NULL, RPC_MUTATING), CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Block", h_block, NULL, 0), CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Big", h_big, NULL, 0), CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Negate", h_negate, NULL, 0), CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Echo", h_echo, NULL, 0), CN_EEXIST);
    ck_assert_int_eq(rpc_server_start(s, err, sizeof err), CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Late", h_echo, NULL, 0), CN_ESTATE);
    ck_assert_int_eq(rpc_server_url(s, url_out, n), CN_OK);
    return s;
}

static rpc_client *open_client(const char *url, const char *token, size_t max_msg,
                               const rpc_tls *tls)
{
    rpc_client_opts o = {.url = url, .token = token, .max_msg_bytes = max_msg};
    if (tls)
        o.tls = *tls;
    rpc_client *c = NULL;
    char err[CN_ERRBUF_LEN] = "";
    cn_err rc = rpc_client_open(&c, &o, err, sizeof err);
    ck_assert_msg(rc == CN_OK, "rpc_client_open(%s): %s", url, err);
    return c;
}

// echo_call sends Test/<method> with node_id = v and a payload of n floats
// (value v + i) and checks the echo. Returns the status.
static rpc_code echo_call(rpc_client *c, const char *method, uint64_t v, size_t n, int deadline)
{
    Canopy__Cluster__HeartbeatRequest q = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
    q.node_id = v;
    q.status = (char *)"hello";
    float *pl = n ? malloc(n * sizeof(float)) : NULL;
    for (size_t i = 0; i < n; i++)
        pl[i] = (float)(v + i);
    rpc_request r = {.service = "Test",
                     .method = method,
                     .body = &q.base,
                     .payload = pl,
                     .payload_len = n * sizeof(float),
                     .deadline_ms = deadline,
                     .flags = RPC_IDEMPOTENT};
    rpc_reply rep;
    rpc_code code = rpc_client_call(c, &r, &rep);
    if (code == RPC_OK) {
        Canopy__Cluster__HeartbeatRequest *a =
            (Canopy__Cluster__HeartbeatRequest *)rpc_reply_unpack(
                &rep, &canopy__cluster__heartbeat_request__descriptor);
        ck_assert_ptr_nonnull(a);
        ck_assert_uint_eq(a->node_id, v);
        ck_assert_str_eq(a->status, "hello");
        canopy__cluster__heartbeat_request__free_unpacked(a, NULL);
        ck_assert_uint_eq(rep.payload_len, n * sizeof(float));
        if (n) {
            ck_assert_uint_eq((uintptr_t)rep.payload % 16, 0);
            ck_assert_int_eq(memcmp(rep.payload, pl, n * sizeof(float)), 0);
        } else {
            ck_assert_ptr_null(rep.payload);
        }
    } else {
        ck_assert_msg(rep.detail[0] != '\0', "no detail for %s", rpc_code_name(code));
    }
    rpc_reply_fini(&rep);
    free(pl);
    return code;
}

static void round_trip(const char *url, const rpc_tls *stls, const rpc_tls *ctls)
{
    char bound[512];
    srv_cfg cfg = {.url = url};
    if (stls)
        cfg.tls = *stls;
    rpc_server *s = start_server(&cfg, bound, sizeof bound);
    rpc_client *c = open_client(bound, NULL, 0, ctls);
    ck_assert_int_eq(rpc_wait_ready(c, "Test", "Echo", 5000), RPC_OK);
    ck_assert_int_eq(echo_call(c, "Echo", 7, 0, 2000), RPC_OK);
    ck_assert_int_eq(echo_call(c, "Echo", 9, 1000, 2000), RPC_OK);
    ck_assert_int_eq(echo_call(c, "EchoInline", 11, 300000, 5000), RPC_OK);
    ck_assert_int_eq(echo_call(c, "Echo", 13, 3, 2000), RPC_OK);
    ck_assert_int_eq(atomic_load(&fx.misaligned), 0);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}

START_TEST(test_rpc_round_trip_tcp)
{
    round_trip("tcp://127.0.0.1:0", NULL, NULL);
}
END_TEST

START_TEST(test_rpc_round_trip_ipc)
{
    char dir[256], url[400];
    ts_tmpdir(dir, sizeof dir);
    snprintf(url, sizeof url, "ipc://%s/rpc.sock", dir);
    round_trip(url, NULL, NULL);
    ts_rmtree(dir);
}
END_TEST

START_TEST(test_rpc_round_trip_inproc)
{
    round_trip("inproc://rpc-test", NULL, NULL);
}
END_TEST

START_TEST(test_rpc_round_trip_tls)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_rpc_round_trip_tls: SKIPPED: openssl is not installed\n");
        return;
    }
    char dir[256], cmd[2048], cert[400], key[400];
    ts_tmpdir(dir, sizeof dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s -out %s -days 1 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:127.0.0.1 >/dev/null 2>&1",
             key, cert);
    ck_assert_int_eq(system(cmd), 0);
    char url[64];
    snprintf(url, sizeof url, "tls+tcp://127.0.0.1:%d", ts_free_port());
    rpc_tls stls = {.cert_file = cert, .key_file = key};
    rpc_tls ctls = {.ca_file = cert, .server_name = "localhost"};
    round_trip(url, &stls, &ctls);

    // Without a server name the client checks the URL's host: 127.0.0.1 is
    // in the certificate (also as a DNS name: mbedTLS 2.28 compares the name
    // with DNS entries and the CN only).
    rpc_tls cip = {.ca_file = cert};
    round_trip(url, &stls, &cip);
    // A certificate signed by the same CA for another name is refused (the
    // handshake fails), both when the name comes from the URL and when it
    // is given.
    char other[400], okey[400];
    snprintf(other, sizeof other, "%s/other.pem", dir);
    snprintf(okey, sizeof okey, "%s/other.key", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s "
             "-subj /CN=other.example 2>/dev/null | openssl x509 -req -CA %s -CAkey %s "
             "-CAcreateserial -days 1 -extfile <(printf 'subjectAltName=DNS:other.example') "
             "-out %s >/dev/null 2>&1",
             okey, cert, key, other);
    char bash[2200];
    snprintf(bash, sizeof bash, "bash -c \"%s\"", cmd);
    ck_assert_int_eq(system(bash), 0);
    char ourl[512];
    srv_cfg ocfg = {.url = "tls+tcp://127.0.0.1:0", .tls = {.cert_file = other, .key_file = okey}};
    rpc_server *os = start_server(&ocfg, ourl, sizeof ourl);
    rpc_tls c_url = {.ca_file = cert};
    rpc_tls c_named = {.ca_file = cert, .server_name = "localhost"};
    rpc_client *cu = open_client(ourl, NULL, 0, &c_url);
    rpc_client *cn = open_client(ourl, NULL, 0, &c_named);
    int before = atomic_load(&fx.echo_calls);
    // One attempt each (not idempotent): never connected, so UNAVAILABLE.
    rpc_request one = {.service = "Test", .method = "Echo", .deadline_ms = 1500};
    rpc_reply rep;
    ck_assert_int_eq(rpc_client_call(cu, &one, &rep), RPC_UNAVAILABLE);
    rpc_reply_fini(&rep);
    ck_assert_int_eq(rpc_client_call(cn, &one, &rep), RPC_UNAVAILABLE);
    rpc_reply_fini(&rep);
    ck_assert_int_eq(atomic_load(&fx.echo_calls), before);
    rpc_client_close(cu);
    rpc_client_close(cn);
    rpc_server_close(os, 1000);
    // With the name it has, it is accepted.
    rpc_tls c_other = {.ca_file = cert, .server_name = "other.example"};
    os = start_server(&ocfg, ourl, sizeof ourl);
    rpc_client *co = open_client(ourl, NULL, 0, &c_other);
    ck_assert_int_eq(echo_call(co, "Echo", 1, 0, 5000), RPC_OK);
    rpc_client_close(co);
    rpc_server_close(os, 1000);

    // A client without a CA is refused at open, with a reason.
    rpc_client_opts o = {.url = url};
    rpc_client *c = NULL;
    char err[CN_ERRBUF_LEN] = "";
    ck_assert_int_eq(rpc_client_open(&c, &o, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "ca_file"));
    ts_rmtree(dir);
}
END_TEST

typedef struct conc_arg {
    rpc_client *c;
    int id;
    int ok;
} conc_arg;

static void *conc_main(void *p)
{
    conc_arg *a = p;
    for (int i = 0; i < 10; i++)
        if (echo_call(a->c, (a->id & 1) ? "Echo" : "EchoInline", (uint64_t)(a->id * 100 + i),
                      (size_t)(a->id * 16), 10000) == RPC_OK)
            a->ok++;
    return NULL;
}

START_TEST(test_rpc_64_concurrent_calls_all_succeed)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0", .max_inflight = 128};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    pthread_t t[64];
    conc_arg a[64];
    for (int i = 0; i < 64; i++) {
        a[i] = (conc_arg){.c = c, .id = i};
        pthread_create(&t[i], NULL, conc_main, &a[i]);
    }
    int ok = 0;
    for (int i = 0; i < 64; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].ok;
    }
    ck_assert_int_eq(ok, 640);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

static rpc_code sleep_call(rpc_client *c, int sleep_for, int deadline)
{
    Canopy__Cluster__HeartbeatRequest q = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
    q.node_id = (uint64_t)sleep_for;
    rpc_request r = {
        .service = "Test", .method = "Sleep", .body = &q.base, .deadline_ms = deadline};
    rpc_reply rep;
    rpc_code code = rpc_client_call(c, &r, &rep);
    rpc_reply_fini(&rep);
    return code;
}

typedef struct sleep_arg {
    rpc_client *c;
    int ms;
    rpc_code code;
} sleep_arg;

static void *sleep_main(void *p)
{
    sleep_arg *a = p;
    a->code = sleep_call(a->c, a->ms, 5000);
    return NULL;
}

static bool sleep_started(void *arg)
{
    return atomic_load(&fx.sleep_started) >= *(int *)arg;
}

typedef struct metric_wait {
    rpc_server *s;
    const char *needle;
} metric_wait;

static bool metrics_have(void *arg)
{
    metric_wait *m = arg;
    cn_buf b;
    cn_buf_init(&b);
    rpc_server_metrics(m->s, &b);
    bool ok = b.data && strstr(b.data, m->needle) != NULL;
    cn_buf_fini(&b);
    return ok;
}

START_TEST(test_rpc_deadline_exceeded_by_slow_handler_and_in_queue)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0", .threads = 1};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    ck_assert_int_eq(rpc_wait_ready(c, "Test", "Echo", 5000), RPC_OK);

    // The handler takes 400 ms, the caller waits 100 ms.
    ck_assert_int_eq(sleep_call(c, 400, 100), RPC_DEADLINE_EXCEEDED);
    int one = 1;
    ck_assert(ts_wait_until(sleep_started, &one, 2000));

    // With the only handler thread busy for 300 ms more, a call whose
    // deadline passes while queued is answered without running its handler.
    sleep_arg a = {.c = c, .ms = 300};
    pthread_t t;
    int two = 2;
    pthread_create(&t, NULL, sleep_main, &a);
    ck_assert(ts_wait_until(sleep_started, &two, 2000));
    ck_assert_int_eq(sleep_call(c, 0, 50), RPC_DEADLINE_EXCEEDED);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.code, RPC_OK);
    metric_wait mw = {s, "canopy_rpc_requests_total{service=\"Test\",method=\"Sleep\","
                         "code=\"DEADLINE_EXCEEDED\"} 1"};
    ck_assert(ts_wait_until(metrics_have, &mw, 2000));
    ck_assert_int_eq(atomic_load(&fx.sleep_started), 2);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
    // Both closes finished on their own, not by giving up on nng_close.
    ck_assert_uint_eq(rpc_close_abandoned(), 0);
}
END_TEST

START_TEST(test_rpc_unknown_method_is_unimplemented)
{
    char url[512];
    srv_cfg cfg = {.url = "inproc://unimpl"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    rpc_request r = {.service = "Test", .method = "Nope", .deadline_ms = 2000};
    rpc_reply rep;
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_UNIMPLEMENTED);
    ck_assert_int_eq(rep.code, RPC_UNIMPLEMENTED);
    ck_assert_ptr_nonnull(strstr(rep.detail, "Test/Nope"));
    rpc_reply_fini(&rep);
    r.service = "Other";
    r.method = "Echo";
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_UNIMPLEMENTED);
    rpc_reply_fini(&rep);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

// raw_call sends bytes with a plain req socket and returns the decoded reply
// code, or -1 if no reply came within timeout_ms or the connection was
// dropped. If out is not NULL it
// receives the reply message.
static int raw_call(nng_socket sock, const void *bytes, size_t n, int timeout_ms, nng_msg **out)
{
    nng_msg *m;
    ck_assert_int_eq(nng_msg_alloc(&m, n), 0);
    if (n)
        memcpy(nng_msg_body(m), bytes, n);
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, timeout_ms);
    ck_assert_int_eq(nng_sendmsg(sock, m, 0), 0);
    nng_msg *r;
    int rv = nng_recvmsg(sock, &r, 0);
    if (rv != 0) {
        // No reply: timed out, or (resend disabled) the request failed
        // because the server closed the connection on it.
        ck_assert_msg(rv == NNG_ETIMEDOUT || rv == NNG_ECONNRESET, "recv: %s", nng_strerror(rv));
        return -1;
    }
    Canopy__Rpc__RpcReply *h;
    rpc_frame f;
    char err[256];
    ck_assert_int_eq(
        rpc_wire_decode_reply(nng_msg_body(r), nng_msg_len(r), NULL, &h, &f, err, sizeof err),
        CN_OK);
    int code = h->code;
    canopy__rpc__rpc_reply__free_unpacked(h, NULL);
    if (out)
        *out = r;
    else
        nng_msg_free(r);
    return code;
}

static nng_socket raw_open(const char *url)
{
    nng_socket sock;
    ck_assert_int_eq(nng_req0_open(&sock), 0);
    nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 2000);
    // No quick redial after the server drops the connection (the oversize
    // test): nng 1.5.2 can leak the objects of a dial still in progress
    // when the socket closes.
    nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, 60000);
    nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT, 60000);
    ck_assert_int_eq(nng_dial(sock, url, NULL, 0), 0);
    return sock;
}

START_TEST(test_rpc_malformed_and_truncated_frames_are_invalid_argument)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    nng_socket raw = raw_open(url);
    ck_assert_int_eq(raw_call(raw, "garbage!garbage!", 16, 2000, NULL), RPC_INVALID_ARGUMENT);
    ck_assert_int_eq(raw_call(raw, "\x05\x00", 2, 2000, NULL), RPC_INVALID_ARGUMENT);
    ck_assert_int_eq(raw_call(raw, "", 0, 2000, NULL), RPC_INVALID_ARGUMENT);
    // A header length that claims more than was sent.
    const uint8_t big[8] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
    ck_assert_int_eq(raw_call(raw, big, sizeof big, 2000, NULL), RPC_INVALID_ARGUMENT);
    // A well-formed frame cut in the middle of its body.
    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)"Test";
    h.method = (char *)"Echo";
    h.align_bias = RPC_ALIGN_BIAS;
    Canopy__Cluster__HeartbeatRequest q = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
    q.status = (char *)"a longer status string";
    nng_msg *m;
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, &q.base, 0, 1 << 20, NULL, NULL), CN_OK);
    ck_assert_int_eq(raw_call(raw, nng_msg_body(m), nng_msg_len(m) - 5, 2000, NULL),
                     RPC_INVALID_ARGUMENT);
    // The same frame whole is served.
    ck_assert_int_eq(raw_call(raw, nng_msg_body(m), nng_msg_len(m), 2000, NULL), RPC_OK);
    nng_msg_free(m);
    nng_close(raw);

    rpc_client *c = open_client(url, NULL, 0, NULL);
    ck_assert_int_eq(echo_call(c, "Echo", 5, 8, 2000), RPC_OK);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

START_TEST(test_rpc_oversize_request_is_resource_exhausted_and_raw_one_dropped)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0", .max_msg = 64 * 1024};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 64 * 1024, NULL);
    ck_assert_int_eq(rpc_wait_ready(c, "Test", "Echo", 5000), RPC_OK);
    // 128 KiB of payload: refused by the client before sending.
    int before = atomic_load(&fx.echo_calls);
    ck_assert_int_eq(echo_call(c, "Echo", 1, 32 * 1024, 2000), RPC_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(atomic_load(&fx.echo_calls), before);
    // Just under the limit is fine.
    ck_assert_int_eq(echo_call(c, "Echo", 1, 15 * 1024, 2000), RPC_OK);

    // A raw 200 KB message is dropped by nng at the transport: no reply.
    nng_socket raw = raw_open(url);
    size_t n = 200 * 1024;
    uint8_t *junk = calloc(1, n);
    ck_assert_int_eq(raw_call(raw, junk, n, 300, NULL), -1);
    free(junk);
    // Other clients are still served.
    ck_assert_int_eq(echo_call(c, "Echo", 2, 64, 2000), RPC_OK);
    nng_close(raw);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

typedef struct block_arg {
    rpc_client *c;
    rpc_code code;
} block_arg;

static void *block_main(void *p)
{
    block_arg *a = p;
    rpc_request r = {.service = "Test", .method = "Block", .deadline_ms = 10000};
    rpc_reply rep;
    a->code = rpc_client_call(a->c, &r, &rep);
    rpc_reply_fini(&rep);
    return NULL;
}

static bool blocked_two(void *arg)
{
    (void)arg;
    return atomic_load(&fx.blocked) == 2;
}

START_TEST(test_rpc_over_inflight_cap_is_resource_exhausted_except_inline_methods)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0", .max_inflight = 2, .threads = 4};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    pthread_t t[2];
    block_arg a[2] = {{c, RPC_UNKNOWN}, {c, RPC_UNKNOWN}};
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, block_main, &a[i]);
    ck_assert(ts_wait_until(blocked_two, NULL, 5000));
    rpc_request r = {.service = "Test", .method = "Echo", .deadline_ms = 2000};
    rpc_reply rep;
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_RESOURCE_EXHAUSTED);
    ck_assert_ptr_nonnull(strstr(rep.detail, "busy"));
    rpc_reply_fini(&rep);
    // An inline method (heartbeats are) is answered even now: it needs no
    // handler thread, so slow handlers cannot starve it.
    ck_assert_int_eq(echo_call(c, "EchoInline", 5, 0, 2000), RPC_OK);
    atomic_store(&fx.release, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(a[i].code, RPC_OK);
    }
    ck_assert_int_eq(echo_call(c, "Echo", 3, 4, 2000), RPC_OK);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

START_TEST(test_rpc_wrong_or_missing_token_is_unauthenticated)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0", .token = "s3cret-token"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *wrong = open_client(url, "s3cret-tokeN", 0, NULL);
    rpc_client *none = open_client(url, NULL, 0, NULL);
    rpc_client *longer = open_client(url, "s3cret-token2", 0, NULL);
    rpc_client *good = open_client(url, "s3cret-token", 0, NULL);
    ck_assert_int_eq(echo_call(wrong, "Echo", 1, 0, 2000), RPC_UNAUTHENTICATED);
    ck_assert_int_eq(echo_call(none, "Echo", 1, 0, 2000), RPC_UNAUTHENTICATED);
    ck_assert_int_eq(echo_call(longer, "Echo", 1, 0, 2000), RPC_UNAUTHENTICATED);
    ck_assert_int_eq(echo_call(good, "Echo", 1, 0, 2000), RPC_OK);
    ck_assert_int_eq(atomic_load(&fx.echo_calls), 1);
    rpc_client_close(wrong);
    rpc_client_close(none);
    rpc_client_close(longer);
    rpc_client_close(good);
    rpc_server_close(s, 1000);
}
END_TEST

// count_frame builds a Test/Count request from caller key `caller` (also
// sent as its node id) with seq.
static nng_msg *method_frame(const char *method, uint64_t caller, uint64_t seq)
{
    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)"Test";
    h.method = (char *)method;
    h.request_id = 1000 + seq;
    h.deadline_ms = 2000;
    h.node_id = caller;
    h.caller = caller;
    h.seq = seq;
    h.mutating = true;
    h.align_bias = RPC_ALIGN_BIAS;
    nng_msg *m;
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, NULL, 0, 1 << 20, NULL, NULL), CN_OK);
    return m;
}

static nng_msg *count_frame(uint64_t caller, uint64_t seq)
{
    return method_frame("Count", caller, seq);
}

START_TEST(test_rpc_duplicate_mutating_call_is_applied_once)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0", .window = 4};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    nng_socket raw = raw_open(url);
    nng_msg *f = count_frame(42, 7);
    nng_msg *r1, *r2;
    ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, &r1), RPC_OK);
    ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, &r2), RPC_OK);
    ck_assert_int_eq(atomic_load(&fx.count_calls), 1);
    ck_assert_uint_eq(nng_msg_len(r1), nng_msg_len(r2));
    ck_assert_int_eq(memcmp(nng_msg_body(r1), nng_msg_body(r2), nng_msg_len(r1)), 0);
    nng_msg_free(r1);
    nng_msg_free(r2);
    nng_msg_free(f);
    // The same seq from another caller is a different call.
    f = count_frame(43, 7);
    ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, NULL), RPC_OK);
    nng_msg_free(f);
    ck_assert_int_eq(atomic_load(&fx.count_calls), 2);
    // Move caller 42's window past seq 7: 7 is then too old.
    for (uint64_t q = 8; q <= 11; q++) {
        f = count_frame(42, q);
        ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, NULL), RPC_OK);
        nng_msg_free(f);
    }
    f = count_frame(42, 7);
    ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, NULL),
                     RPC_ALREADY_EXISTS);
    nng_msg_free(f);
    ck_assert_int_eq(atomic_load(&fx.count_calls), 6);
    nng_close(raw);

    // Through the client: every call gets its own seq.
    rpc_client *c = open_client(url, NULL, 0, NULL);
    rpc_request r = {.service = "Test", .method = "Count"};
    rpc_reply rep;
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
    rpc_reply_fini(&rep);
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
    rpc_reply_fini(&rep);
    ck_assert_int_eq(atomic_load(&fx.count_calls), 8);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

START_TEST(test_rpc_client_reconnects_after_server_restart)
{
    char url[64], bound[512];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    srv_cfg cfg = {.url = url};
    rpc_server *s = start_server(&cfg, bound, sizeof bound);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    ck_assert_int_eq(rpc_wait_ready(c, "Test", "Echo", 5000), RPC_OK);
    ck_assert_int_eq(echo_call(c, "Echo", 1, 4, 2000), RPC_OK);
    rpc_server_close(s, 1000);
    s = start_server(&cfg, bound, sizeof bound);
    ck_assert_int_eq(echo_call(c, "Echo", 2, 4, 5000), RPC_OK);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

START_TEST(test_rpc_reply_payload_in_place_arrives_intact_and_aligned)
{
    const char *urls[] = {"tcp://127.0.0.1:0", "inproc://big"};
    for (int u = 0; u < 2; u++) {
        char url[512];
        srv_cfg cfg = {.url = urls[u]};
        rpc_server *s = start_server(&cfg, url, sizeof url);
        rpc_client *c = open_client(url, NULL, 0, NULL);
        size_t sizes[] = {1, 3, 1000, 262144};
        for (int k = 0; k < 4; k++) {
            Canopy__Cluster__HeartbeatRequest q = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
            q.node_id = sizes[k];
            rpc_request r = {
                .service = "Test", .method = "Big", .body = &q.base, .deadline_ms = 5000};
            rpc_reply rep;
            ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
            ck_assert_uint_eq(rep.payload_len, sizes[k] * sizeof(float));
            ck_assert_uint_eq((uintptr_t)rep.payload % 16, 0);
            const float *f = rep.payload;
            for (size_t i = 0; i < sizes[k]; i++)
                ck_assert_msg(f[i] == (float)i, "index %zu", i);
            rpc_reply_fini(&rep);
        }
        rpc_client_close(c);
        rpc_server_close(s, 1000);
    }
}
END_TEST

// A reply made in the request's buffer carries the handler's changes to the
// payload, aligned, whether its header fits in front of the payload (short
// detail: reframed in place) or not (long detail: copied to a new message).
START_TEST(test_rpc_reply_inplace_returns_the_rewritten_request_payload)
{
    const char *urls[] = {"tcp://127.0.0.1:0", "inproc://negate"};
    for (int u = 0; u < 2; u++) {
        char url[512];
        srv_cfg cfg = {.url = urls[u]};
        rpc_server *s = start_server(&cfg, url, sizeof url);
        rpc_client *c = open_client(url, NULL, 0, NULL);
        size_t n = 100003, details[] = {0, 10, 600};
        float *x = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            x[i] = (float)i + 0.5f;
        for (int k = 0; k < 3; k++) {
            Canopy__Cluster__HeartbeatRequest q = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
            q.node_id = details[k];
            rpc_request r = {.service = "Test",
                             .method = "Negate",
                             .body = &q.base,
                             .payload = x,
                             .payload_len = n * sizeof(float),
                             .deadline_ms = 5000};
            rpc_reply rep;
            ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
            ck_assert_uint_eq(rep.payload_len, n * sizeof(float));
            ck_assert_uint_eq((uintptr_t)rep.payload % 16, 0);
            Canopy__Rpc__RpcReply *b = canopy__rpc__rpc_reply__unpack(NULL, rep.body_len, rep.body);
            ck_assert_ptr_nonnull(b);
            ck_assert_uint_eq(strlen(b->detail), details[k]);
            canopy__rpc__rpc_reply__free_unpacked(b, NULL);
            const float *f = rep.payload;
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(f[i] == -x[i], "detail %zu: index %zu", details[k], i);
            rpc_reply_fini(&rep);
        }
        free(x);
        rpc_client_close(c);
        rpc_server_close(s, 1000);
    }
}
END_TEST

// rpc_wire_repack keeps the payload where it is when the new parts fit in
// front of it, and refuses (message unchanged) when they do not.
START_TEST(test_rpc_wire_repack_reframes_without_moving_the_payload)
{
    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)"ParameterServer";
    h.method = (char *)"PushPull";
    h.request_id = 9;
    h.align_bias = RPC_ALIGN_BIAS;
    nng_msg *m;
    void *pl;
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, NULL, 64, 1 << 20, &pl, NULL), CN_OK);
    memset(pl, 0x5a, 64);
    size_t off = (size_t)((uint8_t *)pl - (uint8_t *)nng_msg_body(m));
    Canopy__Rpc__RpcReply r = CANOPY__RPC__RPC_REPLY__INIT;
    r.request_id = 9;
    r.align_bias = RPC_ALIGN_BIAS;
    char big[200];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = 0;
    r.detail = big;
    size_t len = nng_msg_len(m);
    ck_assert_int_eq(rpc_wire_repack(m, off, &r, NULL), CN_ETOOBIG);
    ck_assert_uint_eq(nng_msg_len(m), len);
    r.detail = (char *)"";
    ck_assert_int_eq(rpc_wire_repack(m, off, &r, NULL), CN_OK);
    // The shorter reply header is padded: the message keeps its length, so
    // the receiver's buffer fits a request of the same size.
    ck_assert_uint_eq(nng_msg_len(m), len);
    ck_assert_uint_gt(r.pad.len, 0);
    Canopy__Rpc__RpcReply *d = NULL;
    rpc_frame f;
    char err[256];
    ck_assert_int_eq(
        rpc_wire_decode_reply(nng_msg_body(m), nng_msg_len(m), NULL, &d, &f, err, sizeof err),
        CN_OK);
    ck_assert_uint_eq(d->request_id, 9);
    ck_assert_uint_eq(f.payload_len, 64);
    ck_assert_uint_eq(d->pad.len, r.pad.len);
    ck_assert_ptr_eq((uint8_t *)nng_msg_body(m) + f.payload_off, pl);
    ck_assert_int_eq(((uint8_t *)pl)[63], 0x5a);
    canopy__rpc__rpc_reply__free_unpacked(d, NULL);
    nng_msg_free(m);
}
END_TEST

// rpc_wire_pack builds a frame in a spare message's buffer when it has room
// (taking it, payload aligned as in a new one), and leaves a spare without
// room to the caller; rpc_wire_spare_keep keeps only large messages.
START_TEST(test_rpc_wire_pack_reuses_a_spare_with_room_only)
{
    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)"ParameterServer";
    h.method = (char *)"PushPull";
    h.align_bias = RPC_ALIGN_BIAS;
    size_t big = RPC_SPARE_MIN * 2;
    nng_msg *spare = NULL, *m = NULL;
    void *pl;
    ck_assert_int_eq(rpc_wire_pack(&spare, &h.base, NULL, big, 1 << 24, &pl, NULL), CN_OK);
    nng_msg *first = spare;
    // Smaller frame: built in the spare's buffer, the spare is taken.
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, NULL, big - 100, 1 << 24, &pl, &spare), CN_OK);
    ck_assert_ptr_null(spare);
    ck_assert_ptr_eq(m, first);
    ck_assert_uint_eq((uintptr_t)pl % RPC_ALIGN, 0);
    rpc_frame f;
    char err[256];
    ck_assert_int_eq(rpc_wire_split(nng_msg_body(m), nng_msg_len(m), &f, err, sizeof err), CN_OK);
    ck_assert_int_eq(rpc_wire_locate_payload(nng_msg_body(m), nng_msg_len(m), RPC_ALIGN_BIAS, &f,
                                             err, sizeof err),
                     CN_OK);
    ck_assert_uint_eq(f.payload_len, big - 100);
    ck_assert_ptr_eq((uint8_t *)nng_msg_body(m) + f.payload_off, pl);
    // Larger than the spare's room: a new message, the spare stays.
    spare = m;
    m = NULL;
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, NULL, big + 4096, 1 << 24, &pl, &spare), CN_OK);
    ck_assert_ptr_eq(spare, first);
    ck_assert_ptr_ne(m, first);
    ck_assert_uint_eq((uintptr_t)pl % RPC_ALIGN, 0);
    // Kept: the large one replaces the spare (which is freed). Not kept: a
    // small one is freed and the spare is unchanged.
    rpc_wire_spare_keep(&spare, m);
    ck_assert_ptr_eq(spare, m);
    nng_msg *small;
    ck_assert_int_eq(nng_msg_alloc(&small, 100), 0);
    rpc_wire_spare_keep(&spare, small);
    ck_assert_ptr_eq(spare, m);
    nng_msg_free(spare);
    spare = NULL;
    ck_assert_int_eq(nng_msg_alloc(&small, 100), 0);
    rpc_wire_spare_keep(&spare, small);
    ck_assert_ptr_null(spare);
}
END_TEST

// A client's large requests are built in the buffers of its earlier
// replies, and a server's large replies in those of its earlier requests:
// calls of growing, shrinking and small sizes, in place and copied, each
// get exactly their own payload back.
START_TEST(test_rpc_reused_buffers_carry_each_call_intact)
{
    const char *urls[] = {"tcp://127.0.0.1:0", "inproc://reuse"};
    for (int u = 0; u < 2; u++) {
        char url[512];
        srv_cfg cfg = {.url = urls[u]};
        rpc_server *s = start_server(&cfg, url, sizeof url);
        rpc_client *c = open_client(url, NULL, 0, NULL);
        size_t sizes[] = {100003, 99000, 120000, 100003, 2000, 100003, 30000, 100000};
        float *x = malloc(120000 * sizeof(float));
        for (int k = 0; k < 8; k++) {
            size_t n = sizes[k];
            for (size_t i = 0; i < n; i++)
                x[i] = (float)(i % 1009) + 0.25f * (float)k;
            Canopy__Cluster__HeartbeatRequest q = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
            q.node_id = (uint64_t)k;
            rpc_request r = {.service = "Test",
                             .method = k % 2 ? "Echo" : "Negate",
                             .body = &q.base,
                             .payload = x,
                             .payload_len = n * sizeof(float),
                             .deadline_ms = 5000};
            rpc_reply rep;
            ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
            ck_assert_uint_eq(rep.payload_len, n * sizeof(float));
            ck_assert_uint_eq((uintptr_t)rep.payload % 16, 0);
            const float *f = rep.payload;
            float sign = k % 2 ? 1.0f : -1.0f;
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(f[i] == sign * x[i], "call %d: index %zu", k, i);
            rpc_reply_fini(&rep);
        }
        free(x);
        rpc_client_close(c);
        rpc_server_close(s, 1000);
    }
}
END_TEST

static nng_msg *sleep_frame(uint64_t ms, uint32_t deadline_ms)
{
    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)"Test";
    h.method = (char *)"Sleep";
    h.request_id = 77;
    h.deadline_ms = deadline_ms;
    h.align_bias = RPC_ALIGN_BIAS;
    Canopy__Cluster__HeartbeatRequest q = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
    q.node_id = ms;
    nng_msg *m;
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, &q.base, 0, 1 << 20, NULL, NULL), CN_OK);
    return m;
}

START_TEST(test_rpc_reply_completed_after_the_deadline_is_not_sent)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    nng_socket raw = raw_open(url);
    // The handler finishes at 200 ms, 150 ms after the caller's deadline:
    // nothing comes back, while a reply within the deadline still does.
    nng_msg *m = sleep_frame(200, 50);
    ck_assert_int_eq(raw_call(raw, nng_msg_body(m), nng_msg_len(m), 1000, NULL), -1);
    nng_msg_free(m);
    ck_assert_int_eq(atomic_load(&fx.sleep_done), 1);
    m = sleep_frame(0, 2000);
    ck_assert_int_eq(raw_call(raw, nng_msg_body(m), nng_msg_len(m), 2000, NULL), RPC_OK);
    nng_msg_free(m);
    nng_close(raw);
    rpc_server_close(s, 1000);
    ck_assert_uint_eq(rpc_close_abandoned(), 0);
}
END_TEST

START_TEST(test_rpc_server_close_sends_the_reply_of_a_call_in_progress)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    ck_assert_int_eq(rpc_wait_ready(c, "Test", "Echo", 5000), RPC_OK);
    sleep_arg a = {.c = c, .ms = 200};
    pthread_t t;
    int one = 1;
    pthread_create(&t, NULL, sleep_main, &a);
    ck_assert(ts_wait_until(sleep_started, &one, 2000));
    rpc_server_close(s, 2000);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.code, RPC_OK);
    rpc_client_close(c);
    ck_assert_uint_eq(rpc_close_abandoned(), 0);
}
END_TEST

static bool blocked_one(void *arg)
{
    (void)arg;
    return atomic_load(&fx.blocked) == 1;
}

START_TEST(test_rpc_server_close_is_bounded_when_a_handler_never_returns)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    block_arg a = {c, RPC_UNKNOWN};
    pthread_t t;
    pthread_create(&t, NULL, block_main, &a);
    ck_assert(ts_wait_until(blocked_one, NULL, 5000));
    // Drain 100 ms, then at most 200 ms for the handler threads, 100 ms for
    // replies being sent and the close itself: well under 2 s. The blocked
    // handler keeps the server's memory; its caller is cancelled.
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rpc_server_close(s, 100);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ck_assert_msg(ms < 2000, "rpc_server_close took %.0f ms", ms);
    rpc_client_close(c);
    pthread_join(t, NULL);
    // Cancelled by the client's close, or failed when the server dropped
    // the connection, whichever came first.
    ck_assert_msg(a.code == RPC_CANCELLED || a.code == RPC_UNAVAILABLE, "code %s",
                  rpc_code_name(a.code));
}
END_TEST

START_TEST(test_rpc_metrics_text_has_counters)
{
    char url[512];
    srv_cfg cfg = {.url = "inproc://metrics"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(echo_call(c, "Echo", (uint64_t)i, 2, 2000), RPC_OK);
    rpc_request r = {.service = "Test", .method = "Nope", .deadline_ms = 2000};
    rpc_reply rep;
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_UNIMPLEMENTED);
    rpc_reply_fini(&rep);
    cn_buf b;
    cn_buf_init(&b);
    ck_assert_int_eq(rpc_server_metrics(s, &b), CN_OK);
    const char *want[] = {
        "# TYPE canopy_rpc_requests_total counter\n",
        "canopy_rpc_requests_total{service=\"Test\",method=\"Echo\",code=\"OK\"} 3\n",
        "canopy_rpc_requests_total{service=\"_\",method=\"_\",code=\"UNIMPLEMENTED\"} 1\n",
        "# TYPE canopy_rpc_latency_seconds histogram\n",
        "canopy_rpc_latency_seconds_bucket{service=\"Test\",method=\"Echo\",le=\"+Inf\"} 3\n",
        "canopy_rpc_latency_seconds_count{service=\"Test\",method=\"Echo\"} 3\n",
        "canopy_rpc_received_bytes_total{service=\"Test\",method=\"Echo\"} ",
        "canopy_rpc_sent_bytes_total{service=\"Test\",method=\"Echo\"} ",
        "canopy_rpc_inflight 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(b.data, want[i]) != NULL, "missing %s in:\n%s", want[i], b.data);
    ck_assert_ptr_null(strstr(b.data, "method=\"Sleep\""));
    cn_buf_fini(&b);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

START_TEST(test_rpc_codes_tokens_and_wire_helpers)
{
    ck_assert_str_eq(rpc_code_name(RPC_NOT_FOUND), "NOT_FOUND");
    ck_assert_str_eq(rpc_code_name((rpc_code)99), "UNKNOWN");
    ck_assert_int_eq(rpc_code_from_err(CN_EINVAL), RPC_INVALID_ARGUMENT);
    ck_assert_int_eq(rpc_code_from_err(CN_ENOTFOUND), RPC_NOT_FOUND);
    ck_assert_int_eq(rpc_code_from_err(CN_ETIMEDOUT), RPC_DEADLINE_EXCEEDED);
    ck_assert_int_eq(rpc_code_from_err(CN_EAUTH), RPC_UNAUTHENTICATED);
    ck_assert(rpc_token_equal("abc", "abc"));
    ck_assert(!rpc_token_equal("abc", "abd"));
    ck_assert(!rpc_token_equal("abc", "ab"));
    ck_assert(!rpc_token_equal("", "a"));

    char dir[256], path[400], tok[256], err[CN_ERRBUF_LEN];
    ts_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/token", dir);
    ts_write_file(path, "tok-123 \n");
    ck_assert_int_eq(rpc_token_load(path, tok, err, sizeof err), CN_OK);
    ck_assert_str_eq(tok, "tok-123");
    snprintf(path, sizeof path, "%s/missing", dir);
    ck_assert_int_eq(rpc_token_load(path, tok, err, sizeof err), CN_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "missing"));
    char lng[400];
    memset(lng, 'x', 300);
    lng[300] = '\0';
    snprintf(path, sizeof path, "%s/long", dir);
    ts_write_file(path, lng);
    ck_assert_int_eq(rpc_token_load(path, tok, err, sizeof err), CN_EINVAL);
    setenv("CANOPY_TOKEN", "from-env", 1);
    ck_assert_int_eq(rpc_token_load(NULL, tok, err, sizeof err), CN_OK);
    ck_assert_str_eq(tok, "from-env");
    unsetenv("CANOPY_TOKEN");
    ck_assert_int_eq(rpc_token_load("", tok, err, sizeof err), CN_OK);
    ck_assert_str_eq(tok, "");
    ts_rmtree(dir);

    // Padding must be zero; a bias of 16 or more is refused.
    Canopy__Rpc__RpcRequest h = CANOPY__RPC__RPC_REQUEST__INIT;
    h.service = (char *)"S";
    h.align_bias = RPC_ALIGN_BIAS;
    nng_msg *m;
    void *pl;
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, NULL, 32, 1 << 20, &pl, NULL), CN_OK);
    ck_assert_uint_eq((uintptr_t)pl % 16, 0);
    Canopy__Rpc__RpcRequest *d;
    rpc_frame f;
    uint8_t *b = nng_msg_body(m);
    size_t n = nng_msg_len(m);
    ck_assert_int_eq(rpc_wire_decode_request(b, n, NULL, &d, &f, err, sizeof err), CN_OK);
    ck_assert_uint_eq(f.payload_len, 32);
    ck_assert_uint_eq((f.payload_off + RPC_ALIGN_BIAS) % 16, 0);
    canopy__rpc__rpc_request__free_unpacked(d, NULL);
    if (f.payload_off > f.body_off + f.body_len) {
        b[f.payload_off - 1] = 1;
        ck_assert_int_eq(rpc_wire_decode_request(b, n, NULL, &d, &f, err, sizeof err), CN_EFORMAT);
        ck_assert_ptr_null(d);
    }
    nng_msg_free(m);
    ck_assert_int_eq(rpc_wire_pack(&m, &h.base, NULL, 2 << 20, 1 << 20, &pl, NULL), CN_ETOOBIG);
}
END_TEST

// ---------------------------------------------------------------- before the token

static pthread_mutex_t refuse_mu = PTHREAD_MUTEX_INITIALIZER;
static char refuse_seen[512];
static int refuse_count;

static void on_refuse(void *arg, const char *what)
{
    (void)arg;
    pthread_mutex_lock(&refuse_mu);
    if (refuse_count++ == 0)
        snprintf(refuse_seen, sizeof refuse_seen, "%s", what);
    pthread_mutex_unlock(&refuse_mu);
}

static size_t rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

// sp_connect connects with plain TCP and does the SP handshake of a req0
// peer (the server admits or refuses the connection after it). Returns the
// socket.
static int sp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0}; // req0
    uint8_t reply[8];
    if (send(fd, hello, 8, MSG_NOSIGNAL) == 8)
        (void)!recv(fd, reply, 8, MSG_WAITALL);
    return fd;
}

// partial_frame announces a message of claim bytes on fd and sends the
// first n of them (without any token). Returns false if the server closed
// the connection before all n bytes were taken.
static bool partial_frame(int fd, uint64_t claim, const uint8_t *junk, size_t n)
{
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(claim >> (56 - 8 * i));
    if (send(fd, len, 8, MSG_NOSIGNAL) != 8)
        return false;
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, junk + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        off += (size_t)w;
    }
    return true;
}

START_TEST(test_rpc_unauthenticated_connections_are_capped_and_reported)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0",
                   .token = "s3cret-token",
                   .max_unauth_per_ip = 4,
                   .auth_grace_ms = 2000,
                   .on_refuse = on_refuse};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    int port = atoi(strrchr(url, ':') + 1);
    // meson sets MALLOC_PERTURB_, with which glibc fills a whole buffer when
    // nng allocates a claimed message (otherwise only the pages received
    // are resident): the bound below holds either way.
    enum { CONNS = 20, SENT = 8 << 20, CLAIM = 24 << 20 };
    uint8_t *junk = malloc(SENT);
    memset(junk, 0x5a, SENT);
    size_t before = rss_bytes();
    // All connect first (well within the grace time, so none is closed to
    // make room), then each sends 8 MiB of a 24 MiB message.
    int fds[CONNS], held = 0;
    for (int i = 0; i < CONNS; i++)
        fds[i] = sp_connect(port);
    for (int i = 0; i < CONNS; i++)
        held += partial_frame(fds[i], CLAIM, junk, SENT);
    // Twenty peers each holding 8 MiB of a 24 MiB message would be 160 MiB
    // (480 MiB with MALLOC_PERTURB_); four are admitted from one address.
    size_t grown = rss_bytes() - before;
    ck_assert_msg(grown < 4 * (size_t)CLAIM + ((size_t)16 << 20), "server grew by %zu MiB",
                  grown >> 20);
    ck_assert_int_eq(held, 4);
    pthread_mutex_lock(&refuse_mu);
    // Reports are limited to 10 a second (more if the burst spans seconds).
    ck_assert_int_ge(refuse_count, 10);
    ck_assert_int_le(refuse_count, 16);
    ck_assert_msg(strstr(refuse_seen, "refused a connection from 127.0.0.1:") &&
                      strstr(refuse_seen, "too many unauthenticated connections from its address"),
                  "%s", refuse_seen);
    refuse_count = 0;
    pthread_mutex_unlock(&refuse_mu);
    cn_buf m;
    cn_buf_init(&m);
    ck_assert_int_eq(rpc_server_metrics(s, &m), CN_OK);
    ck_assert_ptr_nonnull(strstr(m.data, "canopy_rpc_connections{authenticated=\"false\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(m.data, "canopy_rpc_connections_refused_total 16\n"));
    cn_buf_fini(&m);
    // A client with the token still gets in: once the oldest unauthenticated
    // connection is past its grace time (2 s), it is closed to make room.
    rpc_client *good = open_client(url, "s3cret-token", 0, NULL);
    ck_assert_int_eq(rpc_wait_ready(good, "Test", "Echo", 10000), RPC_OK);
    ck_assert_int_eq(echo_call(good, "Echo", 1, 0, 5000), RPC_OK);
    cn_buf_init(&m);
    ck_assert_int_eq(rpc_server_metrics(s, &m), CN_OK);
    ck_assert_ptr_nonnull(strstr(m.data, "canopy_rpc_connections_evicted_total 1\n"));
    cn_buf_fini(&m);
    // A call with a wrong token is refused and reported with its address.
    rpc_client *wrong = open_client(url, "wrong", 0, NULL);
    ck_assert_int_eq(echo_call(wrong, "Echo", 1, 0, 5000), RPC_UNAUTHENTICATED);
    pthread_mutex_lock(&refuse_mu);
    ck_assert_msg(strstr(refuse_seen, "from 127.0.0.1:"), "%s", refuse_seen);
    pthread_mutex_unlock(&refuse_mu);
    rpc_client_close(wrong);
    rpc_client_close(good);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    free(junk);
    rpc_server_close(s, 1000);
}
END_TEST

static bool metric_at_most(rpc_server *s, const char *name, uint64_t max, uint64_t *got)
{
    cn_buf m;
    cn_buf_init(&m);
    ck_assert_int_eq(rpc_server_metrics(s, &m), CN_OK);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(m.data, key);
    ck_assert_msg(p != NULL, "no metric %s", name);
    *got = strtoull(p + strlen(key), NULL, 10);
    cn_buf_fini(&m);
    return *got <= max;
}

START_TEST(test_rpc_duplicate_table_is_bounded_and_kept_for_mutating_methods_only)
{
    char url[512];
    rpc_server_opts o = {.url = "tcp://127.0.0.1:0", .dedup_window = 4, .dedup_callers = 100};
    rpc_server *s;
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(rpc_server_open(&s, &o, err, sizeof err), CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Count", h_count, NULL, RPC_MUTATING), CN_OK);
    ck_assert_int_eq(rpc_server_register(s, "Test", "Echo", h_echo, NULL, 0), CN_OK);
    ck_assert_int_eq(rpc_server_start(s, err, sizeof err), CN_OK);
    ck_assert_int_eq(rpc_server_url(s, url, sizeof url), CN_OK);
    nng_socket raw = raw_open(url);
    // Calls flagged mutating by the client on a method that is not: no entry.
    for (uint64_t k = 1; k <= 500; k++) {
        nng_msg *f = method_frame("Echo", k, 1);
        ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, NULL), RPC_OK);
        nng_msg_free(f);
    }
    uint64_t got;
    ck_assert_msg(metric_at_most(s, "canopy_rpc_dedup_callers", 0, &got), "%llu callers",
                  (unsigned long long)got);
    // Many callers of a mutating method: the least recently seen go.
    for (uint64_t k = 1; k <= 3000; k++) {
        nng_msg *f = count_frame(k, 1);
        ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, NULL), RPC_OK);
        nng_msg_free(f);
    }
    ck_assert_msg(metric_at_most(s, "canopy_rpc_dedup_callers", 100, &got), "%llu callers",
                  (unsigned long long)got);
    ck_assert_uint_eq(got, 100);
    ck_assert(!metric_at_most(s, "canopy_rpc_dedup_evicted_total", 2899, &got));
    ck_assert_uint_eq(got, 2900);
    // The most recent callers are still remembered: a resend is a replay.
    nng_msg *f = count_frame(3000, 1);
    int before = atomic_load(&fx.count_calls);
    ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, NULL), RPC_OK);
    ck_assert_int_eq(atomic_load(&fx.count_calls), before);
    nng_msg_free(f);
    nng_close(raw);
    rpc_server_close(s, 1000);
}
END_TEST

START_TEST(test_rpc_huge_seq_under_another_node_id_does_not_poison_it)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = open_client(url, NULL, 0, NULL);
    rpc_request r = {.service = "Test", .method = "Count"};
    rpc_reply rep;
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
    rpc_reply_fini(&rep);
    // Another peer sends seq 2^63 under the client's (public) node id.
    nng_socket raw = raw_open(url);
    nng_msg *f = count_frame(rpc_client_node(c), UINT64_C(1) << 63);
    ck_assert_int_eq(raw_call(raw, nng_msg_body(f), nng_msg_len(f), 2000, NULL), RPC_OK);
    nng_msg_free(f);
    nng_close(raw);
    int before = atomic_load(&fx.count_calls);
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
    rpc_reply_fini(&rep);
    ck_assert_int_eq(atomic_load(&fx.count_calls), before + 1);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

// retrying_client opens a client that resends an idempotent call up to 3
// times with backoff_ms as its base, once the server answers.
static rpc_client *retrying_client(const char *url, int backoff_ms)
{
    rpc_client_opts o = {.url = url, .max_retries = 3, .backoff_base_ms = backoff_ms};
    rpc_client *c;
    char err[CN_ERRBUF_LEN];
    ck_assert_int_eq(rpc_client_open(&c, &o, err, sizeof err), CN_OK);
    ck_assert_int_eq(rpc_wait_ready(c, "Test", "Echo", 5000), RPC_OK);
    return c;
}

START_TEST(test_rpc_idempotent_call_retries_aborted_and_gets_the_stored_reply)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = retrying_client(url, 100);
    // Each of the four attempts gets a quarter of 8 s. The handler runs
    // until a resend finds it still in progress (ABORTED), so the first
    // attempt gives up while it runs whatever the machine's load; a later
    // resend gets its stored reply.
    atomic_store(&fx.server, s);
    Canopy__Cluster__HeartbeatRequest q = CANOPY__CLUSTER__HEARTBEAT_REQUEST__INIT;
    q.node_id = 7000;
    rpc_request r = {.service = "Test",
                     .method = "SleepOnce",
                     .body = &q.base,
                     .deadline_ms = 8000,
                     .flags = RPC_IDEMPOTENT};
    rpc_reply rep;
    int before = atomic_load(&fx.sleep_started);
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
    rpc_reply_fini(&rep);
    ck_assert_int_eq(atomic_load(&fx.sleep_started), before + 1);
    cn_buf m;
    cn_buf_init(&m);
    ck_assert_int_eq(rpc_server_metrics(s, &m), CN_OK);
    ck_assert_ptr_nonnull(strstr(
        m.data,
        "canopy_rpc_requests_total{service=\"Test\",method=\"SleepOnce\",code=\"ABORTED\"}"));
    cn_buf_fini(&m);
    atomic_store(&fx.server, NULL);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

// A mutating call answered UNAVAILABLE applied nothing: its resend runs the
// handler again instead of getting the kept UNAVAILABLE back.
START_TEST(test_rpc_mutating_call_answered_unavailable_runs_again_on_resend)
{
    char url[512];
    srv_cfg cfg = {.url = "tcp://127.0.0.1:0"};
    rpc_server *s = start_server(&cfg, url, sizeof url);
    rpc_client *c = retrying_client(url, 20);
    atomic_store(&fx.busy_calls, 0);
    rpc_request r = {
        .service = "Test", .method = "BusyOnce", .deadline_ms = 5000, .flags = RPC_IDEMPOTENT};
    rpc_reply rep;
    ck_assert_int_eq(rpc_client_call(c, &r, &rep), RPC_OK);
    rpc_reply_fini(&rep);
    ck_assert_int_eq(atomic_load(&fx.busy_calls), 2);
    rpc_client_close(c);
    rpc_server_close(s, 1000);
}
END_TEST

// nng 1.5.2 frees a closed socket's dialers, pipes and the messages they
// held on its own reaper thread, after nng_close has returned, so a test
// process that exits at once can leave them to LeakSanitizer as leaks (seen
// once in a while under load, in different tests). Every test's process
// (Check forks one per test) ends by finalising nng, which drains the
// reaper, as nng's own test library does at exit; with a bound, since a
// socket whose close was abandoned can hold nng_fini up.
static void *fini_main(void *arg)
{
    nng_fini();
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

static bool is_set(void *arg)
{
    return atomic_load((atomic_bool *)arg);
}

static void drain_nng(void)
{
    static atomic_bool done;
    atomic_store(&done, false);
    pthread_t t;
    if (pthread_create(&t, NULL, fini_main, &done) != 0)
        return;
    pthread_detach(t);
    ts_wait_until(is_set, &done, 5000);
}

static Suite *rpc_suite(void)
{
    Suite *s = suite_create("rpc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, NULL, drain_nng);
    tcase_add_test(tc, test_rpc_codes_tokens_and_wire_helpers);
    tcase_add_test(tc, test_rpc_round_trip_tcp);
    tcase_add_test(tc, test_rpc_round_trip_ipc);
    tcase_add_test(tc, test_rpc_round_trip_inproc);
    tcase_add_test(tc, test_rpc_round_trip_tls);
    tcase_add_test(tc, test_rpc_64_concurrent_calls_all_succeed);
    tcase_add_test(tc, test_rpc_deadline_exceeded_by_slow_handler_and_in_queue);
    tcase_add_test(tc, test_rpc_unknown_method_is_unimplemented);
    tcase_add_test(tc, test_rpc_malformed_and_truncated_frames_are_invalid_argument);
    tcase_add_test(tc, test_rpc_oversize_request_is_resource_exhausted_and_raw_one_dropped);
    tcase_add_test(tc, test_rpc_over_inflight_cap_is_resource_exhausted_except_inline_methods);
    tcase_add_test(tc, test_rpc_wrong_or_missing_token_is_unauthenticated);
    tcase_add_test(tc, test_rpc_unauthenticated_connections_are_capped_and_reported);
    tcase_add_test(tc, test_rpc_duplicate_mutating_call_is_applied_once);
    tcase_add_test(tc, test_rpc_duplicate_table_is_bounded_and_kept_for_mutating_methods_only);
    tcase_add_test(tc, test_rpc_huge_seq_under_another_node_id_does_not_poison_it);
    tcase_add_test(tc, test_rpc_idempotent_call_retries_aborted_and_gets_the_stored_reply);
    tcase_add_test(tc, test_rpc_mutating_call_answered_unavailable_runs_again_on_resend);
    tcase_add_test(tc, test_rpc_client_reconnects_after_server_restart);
    tcase_add_test(tc, test_rpc_reply_payload_in_place_arrives_intact_and_aligned);
    tcase_add_test(tc, test_rpc_reply_inplace_returns_the_rewritten_request_payload);
    tcase_add_test(tc, test_rpc_wire_repack_reframes_without_moving_the_payload);
    tcase_add_test(tc, test_rpc_wire_pack_reuses_a_spare_with_room_only);
    tcase_add_test(tc, test_rpc_reused_buffers_carry_each_call_intact);
    tcase_add_test(tc, test_rpc_metrics_text_has_counters);
    tcase_add_test(tc, test_rpc_reply_completed_after_the_deadline_is_not_sent);
    tcase_add_test(tc, test_rpc_server_close_sends_the_reply_of_a_call_in_progress);
    suite_add_tcase(s, tc);
    // A handler that never returns keeps the server's socket open: nng_fini
    // would wait for it, so this test ends without finalising nng.
    TCase *hung = tcase_create("hung");
    tcase_set_timeout(hung, 30);
    tcase_add_test(hung, test_rpc_server_close_is_bounded_when_a_handler_never_returns);
    suite_add_tcase(s, hung);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rpc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
