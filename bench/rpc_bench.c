// rpc_bench.c: canopy RPC against plain nng req/rep on tcp loopback, side
// by side in one process (server threads and client threads):
//   (a) a 4 MiB request answered by a 4 MiB reply: throughput, raw vs canopy;
//   (b) a 64-byte call: median round-trip latency, raw vs canopy;
//   (c) 64 concurrent canopy clients for --seconds: errors, p50/p99 latency.
// Both sides do the same application work: the client copies its payload
// into the message, the server copies its reply payload into the reply
// (canopy writes it in place with rpc_call_reply_begin). Raw and canopy runs
// alternate in rounds and the medians are compared, since the machine is
// shared. The last line is "rpc: throughput_ratio=X latency_ratio=Y".
#include "proto/rpc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/cn_clock.h"

#define BIG (4u << 20)
#define SMALL 64

static uint8_t *big_src;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_d(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---------------------------------------------------------------- raw nng

static void *raw_server(void *arg)
{
    nng_socket s = *(nng_socket *)arg;
    for (;;) {
        nng_msg *m;
        if (nng_recvmsg(s, &m, 0) != 0)
            return NULL;
        size_t n = nng_msg_len(m) > 1024 ? BIG : SMALL;
        nng_msg *r;
        if (nng_msg_alloc(&r, n) != 0) {
            nng_msg_free(m);
            continue;
        }
        memcpy(nng_msg_body(r), big_src, n);
        nng_msg_free(m);
        if (nng_sendmsg(s, r, 0) != 0)
            nng_msg_free(r);
    }
}

static double raw_round(nng_socket c, const uint8_t *payload, size_t n, int iters, uint64_t *lat)
{
    uint64_t t0 = cn_now_ns();
    for (int i = 0; i < iters; i++) {
        uint64_t a = cn_now_ns();
        nng_msg *m;
        nng_msg_alloc(&m, n);
        memcpy(nng_msg_body(m), payload, n);
        if (nng_sendmsg(c, m, 0) != 0) {
            fprintf(stderr, "raw send failed\n");
            exit(1);
        }
        nng_msg *r;
        if (nng_recvmsg(c, &r, 0) != 0) {
            fprintf(stderr, "raw recv failed\n");
            exit(1);
        }
        nng_msg_free(r);
        if (lat)
            lat[i] = cn_now_ns() - a;
    }
    return (double)(cn_now_ns() - t0) / 1e9;
}

// ---------------------------------------------------------------- canopy

static void h_big(rpc_call *c, void *arg)
{
    (void)arg;
    void *p;
    if (rpc_call_reply_begin(c, NULL, BIG, &p) != CN_OK)
        return;
    memcpy(p, big_src, BIG);
    rpc_call_reply_end(c);
}

static void h_small(rpc_call *c, void *arg)
{
    (void)arg;
    rpc_call_reply(c, NULL, big_src, SMALL);
}

static double rpc_round(rpc_client *c, const char *method, const uint8_t *payload, size_t n,
                        int iters, uint64_t *lat)
{
    uint64_t t0 = cn_now_ns();
    for (int i = 0; i < iters; i++) {
        uint64_t a = cn_now_ns();
        rpc_request r = {.service = "Bench",
                         .method = method,
                         .payload = payload,
                         .payload_len = n,
                         .deadline_ms = 10000};
        rpc_reply rep;
        rpc_code code = rpc_client_call(c, &r, &rep);
        if (code != RPC_OK) {
            fprintf(stderr, "canopy call failed: %s %s\n", rpc_code_name(code), rep.detail);
            exit(1);
        }
        rpc_reply_fini(&rep);
        if (lat)
            lat[i] = cn_now_ns() - a;
    }
    return (double)(cn_now_ns() - t0) / 1e9;
}

typedef struct conc {
    const char *url;
    double seconds;
    uint64_t *lat;
    size_t nlat, cap;
    long errors;
} conc;

static void *conc_main(void *arg)
{
    conc *k = arg;
    rpc_client_opts o = {.url = k->url};
    rpc_client *c;
    char err[256];
    if (rpc_client_open(&c, &o, err, sizeof err) != CN_OK) {
        k->errors++;
        return NULL;
    }
    uint8_t payload[SMALL] = {0};
    uint64_t end = cn_now_ns() + (uint64_t)(k->seconds * 1e9);
    while (cn_now_ns() < end) {
        uint64_t a = cn_now_ns();
        rpc_request r = {.service = "Bench",
                         .method = "SmallPool",
                         .payload = payload,
                         .payload_len = SMALL,
                         .deadline_ms = 5000};
        rpc_reply rep;
        if (rpc_client_call(c, &r, &rep) != RPC_OK)
            k->errors++;
        rpc_reply_fini(&rep);
        if (k->nlat == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 4096;
            k->lat = realloc(k->lat, k->cap * sizeof *k->lat);
        }
        k->lat[k->nlat++] = cn_now_ns() - a;
    }
    rpc_client_close(c);
    return NULL;
}

int main(int argc, char **argv)
{
    double seconds = 10;
    int rounds = 5, big_iters = 40, small_iters = 2000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: rpc_bench [--seconds S] [--rounds N]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 50)
        rounds = 5;
    big_src = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big_src[i] = (uint8_t)(i * 31);
    uint8_t *req_payload = malloc(BIG);
    memcpy(req_payload, big_src, BIG);

    // Raw nng: rep server thread, req client.
    nng_socket rs, rc;
    nng_listener rl;
    char raw_url[128];
    int port = 0;
    if (nng_rep0_open(&rs) || nng_listen(rs, "tcp://127.0.0.1:0", &rl, 0) ||
        nng_listener_get_int(rl, NNG_OPT_TCP_BOUND_PORT, &port)) {
        fprintf(stderr, "raw listen failed\n");
        return 1;
    }
    snprintf(raw_url, sizeof raw_url, "tcp://127.0.0.1:%d", port);
    pthread_t rt;
    pthread_create(&rt, NULL, raw_server, &rs);
    nng_req0_open(&rc);
    nng_socket_set_ms(rc, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if (nng_dial(rc, raw_url, NULL, 0) != 0) {
        fprintf(stderr, "raw dial failed\n");
        return 1;
    }

    // canopy: server with inline handlers (and a pooled one), one client.
    rpc_server_opts so = {.url = "tcp://127.0.0.1:0", .max_inflight = 128};
    rpc_server *srv;
    char err[512], url[256];
    if (rpc_server_open(&srv, &so, err, sizeof err) != CN_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rpc_server_register(srv, "Bench", "Big", h_big, NULL, RPC_HANDLER_INLINE);
    rpc_server_register(srv, "Bench", "Small", h_small, NULL, RPC_HANDLER_INLINE);
    rpc_server_register(srv, "Bench", "SmallPool", h_small, NULL, 0);
    if (rpc_server_start(srv, err, sizeof err) != CN_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rpc_server_url(srv, url, sizeof url);
    rpc_client_opts co = {.url = url};
    rpc_client *cli;
    if (rpc_client_open(&cli, &co, err, sizeof err) != CN_OK ||
        rpc_wait_ready(cli, "Bench", "Small", 5000) != RPC_OK) {
        fprintf(stderr, "canopy client failed\n");
        return 1;
    }

    // Warm up both paths.
    raw_round(rc, req_payload, BIG, 5, NULL);
    rpc_round(cli, "Big", req_payload, BIG, 5, NULL);
    raw_round(rc, req_payload, SMALL, 200, NULL);
    rpc_round(cli, "Small", req_payload, SMALL, 200, NULL);

    double raw_mbs[50], rpc_mbs[50], raw_lat[50], rpc_lat[50];
    uint64_t *lat = malloc((size_t)small_iters * sizeof *lat);
    double mb = 2.0 * BIG * big_iters / 1e6;
    for (int r = 0; r < rounds; r++) {
        raw_mbs[r] = mb / raw_round(rc, req_payload, BIG, big_iters, NULL);
        rpc_mbs[r] = mb / rpc_round(cli, "Big", req_payload, BIG, big_iters, NULL);
        raw_round(rc, req_payload, SMALL, small_iters, lat);
        qsort(lat, (size_t)small_iters, sizeof *lat, cmp_u64);
        raw_lat[r] = (double)lat[small_iters / 2] / 1e3;
        rpc_round(cli, "Small", req_payload, SMALL, small_iters, lat);
        qsort(lat, (size_t)small_iters, sizeof *lat, cmp_u64);
        rpc_lat[r] = (double)lat[small_iters / 2] / 1e3;
        printf("round %d: 4MiB raw %.0f MB/s canopy %.0f MB/s | 64B median raw %.1f us canopy "
               "%.1f us\n",
               r + 1, raw_mbs[r], rpc_mbs[r], raw_lat[r], rpc_lat[r]);
        fflush(stdout);
    }
    double traw = median_d(raw_mbs, rounds), trpc = median_d(rpc_mbs, rounds);
    double lraw = median_d(raw_lat, rounds), lrpc = median_d(rpc_lat, rounds);
    printf("(a) 4 MiB request + 4 MiB reply, MB/s moved (both directions), median of %d rounds: "
           "raw %.0f, canopy %.0f\n",
           rounds, traw, trpc);
    printf("(b) 64-byte call, median round trip: raw %.1f us, canopy %.1f us\n", lraw, lrpc);

    // (c) 64 concurrent clients, pooled handler path.
    conc k[64];
    pthread_t t[64];
    for (int i = 0; i < 64; i++) {
        k[i] = (conc){.url = url, .seconds = seconds};
        pthread_create(&t[i], NULL, conc_main, &k[i]);
    }
    size_t total = 0;
    long errors = 0;
    for (int i = 0; i < 64; i++) {
        pthread_join(t[i], NULL);
        total += k[i].nlat;
        errors += k[i].errors;
    }
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < 64; i++) {
        if (k[i].nlat)
            memcpy(all + at, k[i].lat, k[i].nlat * sizeof *all);
        at += k[i].nlat;
        free(k[i].lat);
    }
    qsort(all, total, sizeof *all, cmp_u64);
    printf("(c) 64 clients x %.0f s, pooled handler: %zu calls (%.0f/s), errors %ld, p50 %.1f us, "
           "p99 %.1f us\n",
           seconds, total, (double)total / seconds, errors,
           total ? (double)all[total / 2] / 1e3 : 0.0,
           total ? (double)all[total * 99 / 100] / 1e3 : 0.0);

    free(all);
    free(lat);
    rpc_client_close(cli);
    rpc_server_close(srv, 1000);
    nng_close(rc);
    nng_close(rs);
    pthread_join(rt, NULL);
    free(req_payload);
    free(big_src);
    printf("rpc: throughput_ratio=%.2f latency_ratio=%.2f\n", trpc / traw, lrpc / lraw);
    return 0;
}
