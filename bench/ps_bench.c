// ps_bench.c: a push-and-pull of an N-float vector through canopy's
// parameter server (ps_client_push_pull against S ps_service shards, ASP,
// SGD: the shards apply every gradient) versus raw nng req/rep moving the
// same bytes (request N floats, reply N floats written over the request's
// message, no processing, one socket; neither side copies the reply out:
// canopy's caller reads the values in the reply's buffer), both on tcp loopback in one process
// with the same allocator settings (ps_tune_allocator). Rounds alternate
// between the two and the median round of each is compared.
//
//   ps_bench [--params N] [--iters K] [--rounds R] [--shards S] [--no-raw|--no-ps] [--fed]
// --fed times federated clients' round trips instead: each a pull and a
// PushUpdate, with the round's CloseRound after every ten clients.
// --no-raw times canopy only, --no-ps raw nng only (to profile one path alone).
// Last line: "ps_bench: params=N shards=S nng_mb_s=X ps_mb_s=Y ratio=R
// us_per_step=T" where MB/s counts the bytes of both directions (2 * 4N per
// step) and T is the median time of one canopy push-and-pull.
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_clock.h"
#include "ps/ps.h"

static size_t g_bytes;
static uint8_t *g_src;

// raw_server answers each request with g_bytes from g_src written over the
// request's own message, as nng's demo servers reuse theirs: no allocation
// (nng zeroes every buffer it allocates), one copy.
static void *raw_server(void *arg)
{
    nng_socket s = *(nng_socket *)arg;
    for (;;) {
        nng_msg *m;
        if (nng_recvmsg(s, &m, 0) != 0)
            return NULL;
        if (nng_msg_realloc(m, g_bytes) != 0) {
            nng_msg_free(m);
            return NULL;
        }
        memcpy(nng_msg_body(m), g_src, g_bytes);
        if (nng_sendmsg(s, m, 0) != 0)
            nng_msg_free(m);
    }
}

static double raw_round(nng_socket c, const float *grad, int iters)
{
    uint64_t t0 = cn_now_ns();
    for (int i = 0; i < iters; i++) {
        nng_msg *m;
        nng_msg_alloc(&m, g_bytes);
        memcpy(nng_msg_body(m), grad, g_bytes);
        if (nng_sendmsg(c, m, 0) != 0) {
            nng_msg_free(m);
            return 0;
        }
        nng_msg *r;
        if (nng_recvmsg(c, &r, 0) != 0)
            return 0;
        nng_msg_free(r);
    }
    double s = (double)(cn_now_ns() - t0) * 1e-9;
    return 2.0 * (double)g_bytes * iters / s / 1e6;
}

static double ps_round(ps_client *c, const float *grad, int iters, uint64_t *clock)
{
    char err[512];
    ps_sync sy = {0};
    const float *params;
    uint64_t t0 = cn_now_ns();
    for (int i = 0; i < iters; i++) {
        if (ps_client_push_pull(c, *clock, sy.version, grad, &params, &sy, err, sizeof err) !=
            CN_OK) {
            fprintf(stderr, "ps_bench: %s\n", err);
            exit(1);
        }
        (*clock)++;
    }
    double s = (double)(cn_now_ns() - t0) * 1e-9;
    return 2.0 * (double)g_bytes * iters / s / 1e6;
}

#define FED_CLIENTS 10

// fed_round times federated clients' round trips: each pulls the global
// model and pushes its update; after every FED_CLIENTS clients the round
// closes (its time included), as in a round of ten clients.
static double fed_round(ps_client **cl, const float *delta, float *params, int iters,
                        uint64_t *round)
{
    char err[512];
    ps_sync sy = {0};
    uint64_t t0 = cn_now_ns();
    for (int i = 0; i < iters; i++) {
        ps_client *c = cl[i % FED_CLIENTS];
        if (ps_client_pull(c, *round, false, params, &sy, err, sizeof err) != CN_OK ||
            ps_client_push_update(c, *round, 100, delta, &sy, err, sizeof err) != CN_OK) {
            fprintf(stderr, "ps_bench: %s\n", err);
            exit(1);
        }
        if (i % FED_CLIENTS == FED_CLIENTS - 1 || i == iters - 1) {
            ps_round_close rc;
            if (ps_client_close_round(c, *round, true, &rc, err, sizeof err) != CN_OK) {
                fprintf(stderr, "ps_bench: %s\n", err);
                exit(1);
            }
            (*round)++;
        }
    }
    double s = (double)(cn_now_ns() - t0) * 1e-9;
    return 2.0 * (double)g_bytes * iters / s / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000;
    int iters = 100, rounds = 5, shards = 1, with_raw = 1, with_ps = 1, fed = 0;
    for (int i = 1; i < argc; i++) {
        with_raw &= strcmp(argv[i], "--no-raw") != 0;
        with_ps &= strcmp(argv[i], "--no-ps") != 0;
        fed |= strcmp(argv[i], "--fed") == 0;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--no-raw") == 0 || strcmp(argv[i], "--no-ps") == 0 ||
            strcmp(argv[i], "--fed") == 0)
            i--;
        else if (strcmp(argv[i], "--params") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--iters") == 0)
            iters = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--shards") == 0)
            shards = atoi(argv[i + 1]);
    }
    if (n < 1 || iters < 1 || rounds < 1 || rounds > 64 || shards < 1 || shards > 16 ||
        n < (uint64_t)shards) {
        fprintf(stderr,
                "usage: ps_bench [--params N] [--iters K] [--rounds R<=64] [--shards S<=16] "
                "[--no-raw|--no-ps] [--fed]\n");
        return 2;
    }
    // One process holds both sides: the raw side gets the same allocator
    // settings as a canopy shard and worker (ps_tune_allocator).
    ps_tune_allocator();
    g_bytes = n * sizeof(float);
    g_src = calloc(1, g_bytes);
    float *grad = malloc(g_bytes), *params = malloc(g_bytes), *init = malloc(g_bytes);
    for (uint64_t i = 0; i < n; i++) {
        grad[i] = 1e-6f * (float)(i % 7);
        init[i] = 0.01f * (float)(i % 13);
    }

    // raw nng
    nng_socket rs, rc;
    nng_listener rl;
    int port;
    char raw_url[64];
    if (nng_rep0_open(&rs) || nng_socket_set_size(rs, NNG_OPT_RECVMAXSZ, g_bytes + 4096) ||
        nng_listen(rs, "tcp://127.0.0.1:0", &rl, 0) ||
        nng_listener_get_int(rl, NNG_OPT_TCP_BOUND_PORT, &port)) {
        fprintf(stderr, "ps_bench: cannot listen\n");
        return 1;
    }
    snprintf(raw_url, sizeof raw_url, "tcp://127.0.0.1:%d", port);
    pthread_t th;
    pthread_create(&th, NULL, raw_server, &rs);
    nng_req0_open(&rc);
    nng_socket_set_size(rc, NNG_OPT_RECVMAXSZ, g_bytes + 4096);
    nng_socket_set_ms(rc, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if (nng_dial(rc, raw_url, NULL, 0) != 0) {
        fprintf(stderr, "ps_bench: cannot dial\n");
        return 1;
    }

    // canopy ps: S shards, each its own server
    char err[512], url[16][128];
    const char *urls[16];
    rpc_server *srv[16];
    ps_service *svc[16];
    rpc_server_opts so = {.url = "tcp://127.0.0.1:0"};
    for (int k = 0; k < shards; k++) {
        if (rpc_server_open(&srv[k], &so, err, sizeof err) != CN_OK ||
            ps_service_new(&svc[k], srv[k], NULL, err, sizeof err) != CN_OK ||
            rpc_server_start(srv[k], err, sizeof err) != CN_OK) {
            fprintf(stderr, "ps_bench: %s\n", err);
            return 1;
        }
        rpc_server_url(srv[k], url[k], sizeof url[k]);
        urls[k] = url[k];
    }
    ps_client_opts po = {
        .urls = urls, .shards = (uint32_t)shards, .n_params = n, .job_id = "bench"};
    ps_client *pc, *cl[FED_CLIENTS] = {0};
    if (ps_client_open(&pc, &po, err, sizeof err) != CN_OK) {
        fprintf(stderr, "ps_bench: %s\n", err);
        return 1;
    }
    cl[0] = pc;
    for (uint32_t k = 1; fed && k < FED_CLIENTS; k++) { // one client per id
        po.worker = k;
        if (ps_client_open(&cl[k], &po, err, sizeof err) != CN_OK) {
            fprintf(stderr, "ps_bench: %s\n", err);
            return 1;
        }
    }
    ps_shard_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.job_id, sizeof cfg.job_id, "bench");
    cfg.shards = (uint32_t)shards;
    cfg.n_params = n;
    cfg.hi = n;
    optim_cfg_default(&cfg.optim, OPTIM_SGD);
    cfg.optim.lr = fed ? 1.0f : 1e-3f; // federated: FedAvg's server step
    cfg.mode = fed ? PS_ROUND : PS_ASP;
    cfg.workers = fed ? FED_CLIENTS : 1;
    if (ps_client_configure(pc, &cfg, init, false, NULL, err, sizeof err) != CN_OK) {
        fprintf(stderr, "ps_bench: %s\n", err);
        return 1;
    }

    uint64_t clock = 0;
    if (with_raw)
        raw_round(rc, grad, 5); // warm up both paths
    if (with_ps && fed)
        fed_round(cl, grad, params, 5, &clock);
    else if (with_ps)
        ps_round(pc, grad, 5, &clock);
    double raw[64], ps[64];
    for (int r = 0; r < rounds; r++) {
        raw[r] = with_raw ? raw_round(rc, grad, iters) : 0;
        ps[r] = !with_ps ? 0
                : fed    ? fed_round(cl, grad, params, iters, &clock)
                         : ps_round(pc, grad, iters, &clock);
        printf("round %d: nng %.0f MB/s, ps %.0f MB/s\n", r, raw[r], ps[r]);
    }
    qsort(raw, (size_t)rounds, sizeof *raw, cmp_d);
    qsort(ps, (size_t)rounds, sizeof *ps, cmp_d);
    double rm = raw[rounds / 2], pm = ps[rounds / 2];
    printf("ps_bench: %sparams=%llu shards=%d nng_mb_s=%.0f ps_mb_s=%.0f ratio=%.3f "
           "us_per_step=%.1f\n",
           fed ? "federated " : "", (unsigned long long)n, shards, rm, pm, rm > 0 ? pm / rm : 0,
           pm > 0 ? 2.0 * (double)g_bytes / pm : 0);
    for (int k = 0; k < FED_CLIENTS; k++) // cl[0] is pc
        ps_client_close(cl[k]);
    for (int k = 0; k < shards; k++) {
        ps_service_stop(svc[k]);
        rpc_server_close(srv[k], 1000);
        ps_service_free(svc[k]);
    }
    nng_close(rc);
    nng_close(rs);
    free(grad);
    free(params);
    free(init);
    free(g_src);
    return 0;
}
