// test_fed.c: federated learning's parts in one process: a shard's round
// mode (the streaming weighted mean equals the batch mean; late and
// repeated updates; closing twice), every server strategy's step against
// values computed by hand, the FedProx term against finite differences, the
// client sampler, the round-closing rule and the label skew; and the late
// update's status through the RPC service, naming both rounds.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "federated/fed.h"
#include "ps/ps.h"
#include "tests/support/support.h"

#define N 4

// round_shard_n makes a one-shard round-mode shard of n keys for clients,
// starting at w0, with the server optimizer of strategy; round_shard one
// of N keys.
static ps_shard *round_shard_n(fed_strategy strategy, uint32_t clients, const float *w0, uint64_t n)
{
    ps_shard_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.job_id, sizeof c.job_id, "fed");
    c.shards = 1;
    c.n_params = n;
    c.lo = 0;
    c.hi = n;
    c.mode = PS_ROUND;
    c.workers = clients;
    fed_server sv;
    fed_server_default(&sv, strategy);
    char err[256];
    ck_assert_int_eq(fed_server_optim(&sv, &c.optim, err, sizeof err), CN_OK);
    ps_shard *s = NULL;
    ck_assert_msg(ps_shard_new(&s, &c, w0, err, sizeof err) == CN_OK, "%s", err);
    return s;
}

static ps_shard *round_shard(fed_strategy strategy, uint32_t clients, const float *w0)
{
    return round_shard_n(strategy, clients, w0, N);
}

START_TEST(test_streaming_weighted_mean_equals_the_batch_mean)
{
    const float w0[N] = {1, -2, 0.5f, 3};
    const float d[3][N] = {{0.1f, 0.2f, -0.3f, 1}, {-1, 0, 2, 0.5f}, {0.25f, -0.75f, 0, 4}};
    const double wt[3] = {100, 50, 250};
    ps_shard *s = round_shard(FED_AVG, 3, w0);
    ps_sync sy;
    uint32_t updates;
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(ps_shard_push_update(s, (uint32_t)k, 0, wt[k], d[k], &sy, &updates),
                         CN_OK);
    ck_assert_uint_eq(updates, 3);
    ps_round_close rc;
    bool due;
    ck_assert_int_eq(ps_shard_close_round(s, 0, true, &rc, &due), CN_OK);
    ck_assert_uint_eq(rc.round, 1);
    ck_assert_uint_eq(rc.updates, 3);
    ck_assert_double_eq_tol(rc.weight, 400, 1e-9);
    float w[N];
    ck_assert_int_eq(ps_shard_pull(s, 0, N, w, &sy), CN_OK);
    for (int i = 0; i < N; i++) {
        double mean = 0;
        for (int k = 0; k < 3; k++)
            mean += wt[k] * d[k][i];
        mean /= 400;
        // FedAvg: the new model is the weighted mean of the clients' models.
        ck_assert_double_eq_tol(w[i], w0[i] + mean, 1e-6);
    }
    ps_shard_free(s);
}
END_TEST

// The same over a model long enough for the vector loop and its tail
// (1037 keys): every key gets its own weighted mean (tolerance 1e-5 for
// float sums of three terms).
START_TEST(test_weighted_mean_of_a_long_model_matches_the_naive_sum)
{
    enum { M = 1037 };
    static float w0[M], d[3][M];
    const double wt[3] = {3, 0.5, 12};
    for (int i = 0; i < M; i++) {
        w0[i] = (float)(i % 17) * 0.125f - 1;
        for (int k = 0; k < 3; k++)
            d[k][i] = (float)((i * (k + 3)) % 29) * 0.03125f - 0.4f;
    }
    ps_shard *s = round_shard_n(FED_AVG, 3, w0, M);
    ps_sync sy;
    uint32_t updates;
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(ps_shard_push_update(s, (uint32_t)k, 0, wt[k], d[k], &sy, &updates),
                         CN_OK);
    ps_round_close rc;
    bool due;
    ck_assert_int_eq(ps_shard_close_round(s, 0, true, &rc, &due), CN_OK);
    static float w[M];
    ck_assert_int_eq(ps_shard_pull(s, 0, M, w, &sy), CN_OK);
    for (int i = 0; i < M; i++) {
        double mean = (wt[0] * d[0][i] + wt[1] * d[1][i] + wt[2] * d[2][i]) / 15.5;
        ck_assert_msg(fabs(w[i] - (w0[i] + mean)) < 1e-5, "key %d: %g, expected %g", i, w[i],
                      w0[i] + mean);
    }
    ps_shard_free(s);
}
END_TEST

START_TEST(test_late_repeated_and_refused_updates)
{
    const float w0[N] = {0}, d[N] = {1, 1, 1, 1};
    ps_shard *s = round_shard(FED_AVG, 2, w0);
    ps_sync sy;
    ck_assert_int_eq(ps_shard_push_update(s, 0, 0, 10, d, &sy, NULL), CN_OK);
    ck_assert(!sy.duplicate);
    ck_assert_int_eq(ps_shard_push_update(s, 0, 0, 10, d, &sy, NULL), CN_OK); // resent
    ck_assert(sy.duplicate);
    ck_assert_int_eq(ps_shard_push_update(s, 2, 0, 10, d, &sy, NULL), CN_EINVAL); // no client 2
    ck_assert_int_eq(ps_shard_push_update(s, 1, 0, 0, d, &sy, NULL), CN_EINVAL);  // weight 0
    ck_assert_int_eq(ps_shard_push_update(s, 1, 0, NAN, d, &sy, NULL), CN_EINVAL);
    ps_round_close rc;
    bool due;
    ck_assert_int_eq(ps_shard_close_round(s, 1, true, &rc, &due), CN_ESTATE); // not open yet
    ck_assert_int_eq(ps_shard_close_round(s, 0, true, &rc, &due), CN_OK);
    ck_assert_uint_eq(rc.updates, 1);
    // Client 1 comes after the close: refused, the shard names its round.
    ck_assert_int_eq(ps_shard_push_update(s, 1, 0, 10, d, &sy, NULL), CN_ESTATE);
    ck_assert_uint_eq(sy.clock, 1);
    ck_assert_int_eq(ps_shard_close_round(s, 0, true, &rc, &due), CN_OK); // resent close
    ck_assert(rc.already_closed);
    ps_stats st;
    ps_shard_stats(s, &st);
    ck_assert_uint_eq(st.late_updates, 1);
    ck_assert_uint_eq(st.duplicates, 1);
    // A round discarded (apply false) stays open and leaves the model.
    ck_assert_int_eq(ps_shard_push_update(s, 1, 1, 10, d, &sy, NULL), CN_OK);
    ck_assert_int_eq(ps_shard_close_round(s, 1, false, &rc, &due), CN_OK);
    ck_assert_uint_eq(rc.round, 1);
    float w[N];
    ps_shard_pull(s, 0, N, w, &sy);
    ck_assert_float_eq_tol(w[0], 1.0f, 1e-6f); // round 0's update only
    // A gradient push is not how a federated shard learns.
    bool ckpt;
    ck_assert_int_eq(ps_shard_push(s, 0, 1, 0, d, &sy, &ckpt), CN_EINVAL);
    ps_shard_free(s);
}
END_TEST

// one_round runs a round with one client's delta d and returns the values.
static void one_round(fed_strategy strategy, const float *w0, const float *d, float *w)
{
    ps_shard *s = round_shard(strategy, 1, w0);
    ps_sync sy;
    ck_assert_int_eq(ps_shard_push_update(s, 0, 0, 7, d, &sy, NULL), CN_OK);
    ps_round_close rc;
    bool due;
    ck_assert_int_eq(ps_shard_close_round(s, 0, true, &rc, &due), CN_OK);
    ck_assert_int_eq(ps_shard_pull(s, 0, N, w, &sy), CN_OK);
    ps_shard_free(s);
}

START_TEST(test_server_strategies_step_as_computed_by_hand)
{
    const float w0[N] = {1, -1, 0.5f, 2}, d[N] = {0.2f, -0.4f, 0, 1};
    float w[N];
    for (int i = 0; i < N; i++) {
        double g = -d[i]; // the pseudo-gradient
        one_round(FED_AVG, w0, d, w);
        ck_assert_double_eq_tol(w[i], w0[i] - 1.0 * g, 1e-6);
        one_round(FED_PROX, w0, d, w);
        ck_assert_double_eq_tol(w[i], w0[i] - 1.0 * g, 1e-6);
        // FedAvgM, first round: v = g; w -= lr v with lr 1.
        one_round(FED_AVGM, w0, d, w);
        ck_assert_double_eq_tol(w[i], w0[i] - g, 1e-6);
        // FedAdam, first round (bias-corrected): m = 0.1 g, v = 0.01 g^2;
        // w -= lr (m / 0.1) / (sqrt(v / 0.01) + tau) = lr g / (|g| + tau).
        one_round(FED_ADAM, w0, d, w);
        ck_assert_double_eq_tol(w[i], w0[i] - 1e-2 * g / (fabs(g) + 1e-3), 1e-6);
        // FedYogi, first round: m = 0.1 g; v = 0 - 0.01 g^2 sign(0 - g^2) =
        // 0.01 g^2; w -= lr m / (sqrt(v) + tau).
        one_round(FED_YOGI, w0, d, w);
        ck_assert_double_eq_tol(w[i], w0[i] - 1e-2 * 0.1 * g / (0.1 * fabs(g) + 1e-3), 1e-6);
        // FedAdagrad, first round: m = 0.1 g; v = g^2.
        one_round(FED_ADAGRAD, w0, d, w);
        ck_assert_double_eq_tol(w[i], w0[i] - 1e-2 * 0.1 * g / (fabs(g) + 1e-3), 1e-6);
    }
}
END_TEST

START_TEST(test_fedprox_term_matches_finite_differences)
{
    float w[6] = {0.3f, -1.2f, 2, 0, 0.7f, -0.1f}, wg[6] = {0, -1, 1.5f, 0.2f, 0.7f, 1};
    float g[6] = {0};
    const float mu = 0.37f, h = 1e-3f;
    fed_prox_grad(w, wg, mu, g, 6);
    for (int i = 0; i < 6; i++) {
        float keep = w[i];
        w[i] = keep + h;
        double up = fed_prox_loss(w, wg, mu, 6);
        w[i] = keep - h;
        double down = fed_prox_loss(w, wg, mu, 6);
        w[i] = keep;
        double fd = (up - down) / (2.0 * h);
        ck_assert_double_eq_tol(g[i], fd, 1e-4); // central differences, float inputs
    }
    ck_assert_double_eq_tol(fed_prox_loss(w, w, mu, 6), 0, 1e-12);
}
END_TEST

START_TEST(test_sampler_rounds_and_skew)
{
    uint32_t a[5], b[5], c[5];
    ck_assert_uint_eq(fed_select(9, 3, 10, 5, a), 5);
    ck_assert_uint_eq(fed_select(9, 3, 10, 5, b), 5);
    ck_assert_mem_eq(a, b, sizeof a); // same seed and round: same clients
    for (int i = 1; i < 5; i++)
        ck_assert_uint_lt(a[i - 1], a[i]); // distinct, increasing
    fed_select(9, 4, 10, 5, c);
    ck_assert(memcmp(a, c, sizeof a) != 0); // another round: another draw
    ck_assert_uint_eq(fed_select(1, 0, 3, 8, a), 3);
    ck_assert_uint_eq(fed_clients_per_round(0.3, 1, 10), 3);
    ck_assert_uint_eq(fed_clients_per_round(0.05, 2, 10), 2);
    ck_assert_uint_eq(fed_clients_per_round(4, 1, 10), 4);
    ck_assert_uint_eq(fed_clients_per_round(40, 1, 10), 10);
    ck_assert(fed_round_closes(3, 2, 1, 0, 0, 0, 0));  // everyone accounted for
    ck_assert(!fed_round_closes(3, 2, 0, 0, 0, 9, 0)); // waiting for the third
    ck_assert(fed_round_closes(3, 2, 0, 0, 2, 0, 0));  // quorum
    ck_assert(fed_round_closes(3, 1, 0, 0, 2, 5, 5));  // deadline
    size_t g[3] = {10, 10, 10}, same[3] = {1, 1, 1}, one[3] = {0, 7, 0};
    ck_assert_double_eq_tol(fed_label_skew(same, g, 3), 0, 1e-12);
    ck_assert_double_eq_tol(fed_label_skew(one, g, 3), 2.0 / 3.0, 1e-12);
    fed_strategy st;
    ck_assert_int_eq(fed_strategy_parse("fedyogi", &st), CN_OK);
    ck_assert_int_eq(st, FED_YOGI);
    ck_assert_int_eq(fed_strategy_parse("fedsgd", &st), CN_EINVAL);
    fed_server sv;
    fed_server_default(&sv, FED_ADAM);
    sv.beta2 = 1.5;
    optim_cfg oc;
    char err[256];
    ck_assert_int_eq(fed_server_optim(&sv, &oc, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "fedadam server"));
}
END_TEST

START_TEST(test_late_update_status_names_both_rounds)
{
    char err[512], url[64];
    snprintf(url, sizeof url, "inproc://fed-%d", (int)getpid());
    rpc_server *srv;
    rpc_server_opts so = {.url = url};
    ck_assert_int_eq(rpc_server_open(&srv, &so, err, sizeof err), CN_OK);
    ps_service *svc;
    ck_assert_int_eq(ps_service_new(&svc, srv, NULL, err, sizeof err), CN_OK);
    ck_assert_int_eq(rpc_server_start(srv, err, sizeof err), CN_OK);
    const char *urls[] = {url};
    ps_client *pc;
    ps_client_opts po = {.urls = urls, .shards = 1, .n_params = N, .job_id = "fedrpc",
                         .worker = 0, .call_timeout_ms = 2000, .outage_ms = 2000};
    ck_assert_int_eq(ps_client_open(&pc, &po, err, sizeof err), CN_OK);
    ps_shard_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.job_id, sizeof c.job_id, "fedrpc");
    c.shards = 1;
    c.n_params = N;
    c.hi = N;
    c.mode = PS_ROUND;
    c.workers = 2;
    fed_server sv;
    fed_server_default(&sv, FED_AVG);
    ck_assert_int_eq(fed_server_optim(&sv, &c.optim, err, sizeof err), CN_OK);
    float w0[N] = {0}, d[N] = {1, 2, 3, 4};
    ck_assert_int_eq(ps_client_configure(pc, &c, w0, false, NULL, err, sizeof err), CN_OK);
    ps_sync sy;
    ck_assert_int_eq(ps_client_push_update(pc, 0, 5, d, &sy, err, sizeof err), CN_OK);
    ps_round_close rc;
    ck_assert_int_eq(ps_client_close_round(pc, 0, true, &rc, err, sizeof err), CN_OK);
    ck_assert_uint_eq(rc.round, 1);
    ck_assert_int_eq(ps_client_push_update(pc, 0, 5, d, &sy, err, sizeof err), CN_ESTATE);
    ck_assert_msg(strstr(err, "for round 0, but the shard is at round 1") != NULL, "%s", err);
    ps_client_close(pc);
    ps_service_stop(svc);
    rpc_server_close(srv, 1000);
    ps_service_free(svc);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fed");
    TCase *t = tcase_create("rounds");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_streaming_weighted_mean_equals_the_batch_mean);
    tcase_add_test(t, test_weighted_mean_of_a_long_model_matches_the_naive_sum);
    tcase_add_test(t, test_late_repeated_and_refused_updates);
    tcase_add_test(t, test_server_strategies_step_as_computed_by_hand);
    tcase_add_test(t, test_fedprox_term_matches_finite_differences);
    tcase_add_test(t, test_sampler_rounds_and_skew);
    tcase_add_test(t, test_late_update_status_names_both_rounds);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
