// test_optim.c: optimizer updates against hand-computed values, schedules,
// slice steps against whole-vector steps, and state save/restore.
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_rand.h"
#include "ml/optim.h"
#include "tests/support/support.h"

// Tolerance for hand-computed single-precision values: 1e-6 absolute.
#define TOL 1e-6

static void step2(const optim_cfg *c, float *w, const float *g, uint64_t t, optim_state *st)
{
    optim_step(c, st, w, g, 2, t);
}

START_TEST(test_sgd_matches_hand_computed_update)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_SGD);
    c.lr = 0.1f;
    optim_state *st = optim_state_new(&c, 2);
    ck_assert_int_eq(optim_state_nslots(st), 0);
    float w[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f};
    step2(&c, w, g, 0, st);
    ck_assert_double_eq_tol(w[0], 0.95, TOL);
    ck_assert_double_eq_tol(w[1], -2.025, TOL);
    ck_assert_uint_eq(optim_state_steps(st), 1);
    optim_state_free(st);
}
END_TEST

START_TEST(test_sgd_weight_decay_adds_l2_gradient)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_SGD);
    c.lr = 0.1f;
    c.weight_decay = 0.1f;
    optim_state *st = optim_state_new(&c, 2);
    float w[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f};
    step2(&c, w, g, 0, st); // g' = g + 0.1 w = (0.6, 0.05)
    ck_assert_double_eq_tol(w[0], 0.94, TOL);
    ck_assert_double_eq_tol(w[1], -2.005, TOL);
    optim_state_free(st);
}
END_TEST

START_TEST(test_momentum_accumulates_velocity)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_MOMENTUM);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    optim_state *st = optim_state_new(&c, 2);
    float w[2] = {1.0f, 1.0f}, g[2] = {0.5f, -1.0f};
    step2(&c, w, g, 0, st); // v = g
    ck_assert_double_eq_tol(w[0], 0.95, TOL);
    ck_assert_double_eq_tol(w[1], 1.1, TOL);
    step2(&c, w, g, 1, st); // v = 0.9 * 0.5 + 0.5 = 0.95
    ck_assert_double_eq_tol(optim_state_slot(st, 0)[0], 0.95, TOL);
    ck_assert_double_eq_tol(w[0], 0.855, TOL);
    ck_assert_double_eq_tol(w[1], 1.29, TOL);
    optim_state_free(st);
}
END_TEST

START_TEST(test_nesterov_looks_ahead)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_MOMENTUM);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    c.nesterov = 1;
    optim_state *st = optim_state_new(&c, 2);
    float w[2] = {1.0f, 0.0f}, g[2] = {0.5f, 0.0f};
    step2(&c, w, g, 0, st); // v = 0.5; w -= 0.1 (0.5 + 0.45)
    ck_assert_double_eq_tol(w[0], 0.905, TOL);
    step2(&c, w, g, 1, st); // v = 0.95; w -= 0.1 (0.5 + 0.855)
    ck_assert_double_eq_tol(w[0], 0.7695, TOL);
    ck_assert_double_eq_tol(w[1], 0.0, TOL);
    optim_state_free(st);
}
END_TEST

START_TEST(test_adam_matches_hand_computed_steps)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_ADAM);
    c.lr = 0.1f;
    optim_state *st = optim_state_new(&c, 2);
    ck_assert_int_eq(optim_state_nslots(st), 2);
    float w[2] = {1.0f, 1.0f}, g[2] = {0.5f, 0.0f};
    step2(&c, w, g, 0, st);
    // m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25: w -= 0.1 * 0.5 / 0.5
    ck_assert_double_eq_tol(optim_state_slot(st, 0)[0], 0.05, TOL);
    ck_assert_double_eq_tol(optim_state_slot(st, 1)[0], 0.00025, 1e-8); // 1 - 0.999f rounds
    ck_assert_double_eq_tol(w[0], 0.9, TOL);
    ck_assert_double_eq_tol(w[1], 1.0, TOL); // zero gradient: no move
    float g2[2] = {0.25f, 0.0f};
    step2(&c, w, g2, 1, st);
    // m = 0.07, v = 0.00031225; m_hat = 0.07/0.19, v_hat = 0.00031225/0.001999
    double mh = 0.07 / 0.19, vh = 0.00031225 / (1.0 - 0.999 * 0.999);
    ck_assert_double_eq_tol(w[0], 0.9 - 0.1 * mh / (sqrt(vh) + 1e-8), 1e-5);
    optim_state_free(st);
}
END_TEST

START_TEST(test_adam_coupled_weight_decay_enters_moments)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_ADAM);
    c.lr = 0.1f;
    c.weight_decay = 0.1f;
    optim_state *st = optim_state_new(&c, 2);
    float w[2] = {1.0f, 1.0f}, g[2] = {0.5f, 0.0f};
    step2(&c, w, g, 0, st); // g' = (0.6, 0.1); Adam's first step moves lr * sign
    ck_assert_double_eq_tol(optim_state_slot(st, 0)[0], 0.06, TOL);
    ck_assert_double_eq_tol(optim_state_slot(st, 0)[1], 0.01, TOL);
    ck_assert_double_eq_tol(w[0], 0.9, TOL);
    ck_assert_double_eq_tol(w[1], 0.9, TOL);
    optim_state_free(st);
}
END_TEST

START_TEST(test_adamw_decouples_weight_decay)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_ADAM);
    c.lr = 0.1f;
    c.weight_decay = 0.1f;
    c.decoupled_wd = 1;
    optim_state *st = optim_state_new(&c, 2);
    float w[2] = {1.0f, 2.0f}, g[2] = {0.5f, 0.0f};
    step2(&c, w, g, 0, st); // w *= 1 - 0.01, then the plain Adam step
    ck_assert_double_eq_tol(optim_state_slot(st, 0)[0], 0.05, TOL);
    ck_assert_double_eq_tol(w[0], 0.89, TOL);
    ck_assert_double_eq_tol(w[1], 1.98, TOL);
    optim_state_free(st);
}
END_TEST

START_TEST(test_schedules_follow_their_formulas)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_SGD);
    c.lr = 0.1f;
    ck_assert_double_eq_tol(optim_lr(&c, 12345), 0.1, TOL);
    c.schedule = OPTIM_SCHED_STEP;
    c.gamma = 0.5f;
    c.step_every = 10;
    ck_assert_double_eq_tol(optim_lr(&c, 0), 0.1, TOL);
    ck_assert_double_eq_tol(optim_lr(&c, 9), 0.1, TOL);
    ck_assert_double_eq_tol(optim_lr(&c, 10), 0.05, TOL);
    ck_assert_double_eq_tol(optim_lr(&c, 25), 0.025, TOL);
    c.schedule = OPTIM_SCHED_COSINE;
    c.total_steps = 100;
    c.min_lr = 0.0f;
    ck_assert_double_eq_tol(optim_lr(&c, 0), 0.1, TOL);
    ck_assert_double_eq_tol(optim_lr(&c, 50), 0.05, TOL);
    ck_assert_double_eq_tol(optim_lr(&c, 25), 0.05 * (1 + cos(M_PI / 4)), TOL);
    ck_assert_double_eq_tol(optim_lr(&c, 100), 0.0, TOL);
    ck_assert_double_eq_tol(optim_lr(&c, 500), 0.0, TOL);
    c.min_lr = 0.01f;
    ck_assert_double_eq_tol(optim_lr(&c, 50), 0.055, TOL);
    ck_assert_double_eq_tol(optim_lr(&c, 100), 0.01, TOL);
}
END_TEST

START_TEST(test_step_uses_scheduled_lr)
{
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_SGD);
    c.lr = 0.1f;
    c.schedule = OPTIM_SCHED_STEP;
    c.gamma = 0.5f;
    c.step_every = 1;
    optim_state *st = optim_state_new(&c, 2);
    float w[2] = {1.0f, 0.0f}, g[2] = {1.0f, 0.0f};
    step2(&c, w, g, 3, st); // lr = 0.1 * 0.5^3
    ck_assert_double_eq_tol(w[0], 1.0 - 0.0125, TOL);
    optim_state_free(st);
}
END_TEST

static void fill(float *a, size_t n, uint64_t seed)
{
    cn_rng r;
    cn_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++)
        a[i] = (float)cn_rng_normal(&r);
}

// A slice step must be bit-identical to the same slice of a whole step, for
// every kind, so a sharded server reproduces single-process training.
START_TEST(test_slice_step_equals_part_of_whole_step)
{
    const size_t n = 1003;
    const size_t cut[4] = {0, 333, 700, n};
    optim_kind kinds[3] = {OPTIM_SGD, OPTIM_MOMENTUM, OPTIM_ADAM};
    for (int ki = 0; ki < 3; ki++) {
        for (int nest = 0; nest < 2; nest++) {
            optim_cfg c;
            optim_cfg_default(&c, kinds[ki]);
            c.weight_decay = 0.01f;
            c.nesterov = nest;
            c.decoupled_wd = nest;
            c.schedule = OPTIM_SCHED_COSINE;
            c.total_steps = 5;
            float *w = malloc(n * sizeof(float)), *ws = malloc(n * sizeof(float));
            float *g = malloc(n * sizeof(float));
            fill(w, n, 1);
            memcpy(ws, w, n * sizeof(float));
            optim_state *whole = optim_state_new(&c, n);
            optim_state *part[3];
            for (int p = 0; p < 3; p++)
                part[p] = optim_state_new(&c, cut[p + 1] - cut[p]);
            for (uint64_t t = 0; t < 6; t++) {
                fill(g, n, 100 + t);
                optim_step(&c, whole, w, g, n, t);
                for (int p = 0; p < 3; p++)
                    optim_step(&c, part[p], ws + cut[p], g + cut[p], cut[p + 1] - cut[p], t);
            }
            ck_assert_msg(memcmp(w, ws, n * sizeof(float)) == 0, "kind %d nesterov %d differs", ki,
                          nest);
            for (int p = 0; p < 3; p++)
                optim_state_free(part[p]);
            optim_state_free(whole);
            free(w);
            free(ws);
            free(g);
        }
    }
}
END_TEST

// optim_step_out leaves w bit-identical to optim_step and writes the same
// values to out, also when out is the gradient buffer itself.
START_TEST(test_step_out_writes_the_new_values_in_the_same_step)
{
    const size_t n = 1003;
    optim_kind kinds[3] = {OPTIM_SGD, OPTIM_MOMENTUM, OPTIM_ADAM};
    for (int ki = 0; ki < 3; ki++) {
        for (int nest = 0; nest < 2; nest++) {
            optim_cfg c;
            optim_cfg_default(&c, kinds[ki]);
            c.weight_decay = 0.01f;
            c.nesterov = nest;
            float *w1 = malloc(n * sizeof(float)), *w2 = malloc(n * sizeof(float));
            float *w3 = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
            float *io = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
            fill(w1, n, 1);
            memcpy(w2, w1, n * sizeof(float));
            memcpy(w3, w1, n * sizeof(float));
            optim_state *a = optim_state_new(&c, n), *b = optim_state_new(&c, n),
                        *d = optim_state_new(&c, n);
            for (uint64_t t = 0; t < 4; t++) {
                fill(g, n, 50 + t);
                memcpy(io, g, n * sizeof(float));
                optim_step(&c, a, w1, g, n, t);
                optim_step_out(&c, b, w2, g, out, n, t);
                optim_step_out(&c, d, w3, io, io, n, t); // out aliases the gradient
                ck_assert_msg(memcmp(w1, w2, n * sizeof(float)) == 0, "kind %d: w differs", ki);
                ck_assert_msg(memcmp(w1, w3, n * sizeof(float)) == 0, "kind %d: aliased w", ki);
                ck_assert_msg(memcmp(w1, out, n * sizeof(float)) == 0, "kind %d: out", ki);
                ck_assert_msg(memcmp(w1, io, n * sizeof(float)) == 0, "kind %d: aliased out", ki);
            }
            ck_assert_uint_eq(optim_state_steps(b), 4);
            optim_state_free(a);
            optim_state_free(b);
            optim_state_free(d);
            free(w1);
            free(w2);
            free(w3);
            free(g);
            free(io);
            free(out);
        }
    }
}
END_TEST

// optim_step_range over pieces covering [0, n) (odd sizes and starts, one
// empty) is bit-identical to optim_step on the whole slice, and leaves the
// step count to the caller; so is optim_step_part given each piece's
// gradient alone in a buffer of its own.
START_TEST(test_range_steps_equal_whole_step)
{
    const size_t n = 1003;
    const size_t cut[5] = {0, 17, 17, 530, n};
    optim_kind kinds[3] = {OPTIM_SGD, OPTIM_MOMENTUM, OPTIM_ADAM};
    for (int ki = 0; ki < 3; ki++) {
        for (int nest = 0; nest < 2; nest++) {
            optim_cfg c;
            optim_cfg_default(&c, kinds[ki]);
            c.weight_decay = 0.01f;
            c.nesterov = nest;
            c.decoupled_wd = nest;
            c.schedule = OPTIM_SCHED_COSINE;
            c.total_steps = 5;
            float *w = malloc(n * sizeof(float)), *wr = malloc(n * sizeof(float));
            float *wp = malloc(n * sizeof(float));
            float *g = malloc(n * sizeof(float)), *gp = malloc(n * sizeof(float));
            fill(w, n, 3);
            memcpy(wr, w, n * sizeof(float));
            memcpy(wp, w, n * sizeof(float));
            optim_state *whole = optim_state_new(&c, n), *ranged = optim_state_new(&c, n);
            optim_state *parted = optim_state_new(&c, n);
            for (uint64_t t = 0; t < 6; t++) {
                fill(g, n, 200 + t);
                optim_step(&c, whole, w, g, n, t);
                for (int p = 3; p >= 0; p--) { // any order
                    optim_step_range(&c, ranged, wr, g, cut[p], cut[p + 1], t);
                    memset(gp, 0xff, n * sizeof(float)); // NaN but for the piece
                    memcpy(gp, g + cut[p], (cut[p + 1] - cut[p]) * sizeof(float));
                    optim_step_part(&c, parted, wp, gp, cut[p], cut[p + 1], t);
                }
                ck_assert_uint_eq(optim_state_steps(ranged), t);
                ck_assert_uint_eq(optim_state_steps(parted), t);
                optim_state_set_steps(ranged, t + 1);
                optim_state_set_steps(parted, t + 1);
            }
            ck_assert_msg(memcmp(w, wr, n * sizeof(float)) == 0, "kind %d nesterov %d differs", ki,
                          nest);
            ck_assert_msg(memcmp(w, wp, n * sizeof(float)) == 0,
                          "kind %d nesterov %d: parts differ", ki, nest);
            for (int sl = 0; sl < optim_state_nslots(whole); sl++) {
                ck_assert(memcmp(optim_state_slot(whole, sl), optim_state_slot(ranged, sl),
                                 n * sizeof(float)) == 0);
                ck_assert(memcmp(optim_state_slot(whole, sl), optim_state_slot(parted, sl),
                                 n * sizeof(float)) == 0);
            }
            optim_state_free(whole);
            optim_state_free(ranged);
            optim_state_free(parted);
            free(w);
            free(wr);
            free(wp);
            free(g);
            free(gp);
        }
    }
}
END_TEST

START_TEST(test_state_restore_continues_identically)
{
    const size_t n = 257;
    optim_cfg c;
    optim_cfg_default(&c, OPTIM_ADAM);
    c.weight_decay = 0.01f;
    float w[257], w2[257], g[257], saved_w[257];
    fill(w, n, 7);
    optim_state *st = optim_state_new(&c, n);
    for (uint64_t t = 0; t < 3; t++) {
        fill(g, n, 50 + t);
        optim_step(&c, st, w, g, n, optim_state_steps(st));
    }
    cn_buf rec;
    cn_buf_init(&rec);
    ck_assert_int_eq(optim_state_encode(st, &rec), CN_OK);
    memcpy(saved_w, w, sizeof w);
    for (uint64_t t = 3; t < 6; t++) {
        fill(g, n, 50 + t);
        optim_step(&c, st, w, g, n, optim_state_steps(st));
    }
    optim_state *st2 = optim_state_new(&c, n);
    char err[CN_ERRBUF_LEN] = "";
    ck_assert_int_eq(optim_state_decode(st2, rec.data, rec.len, err, sizeof err), CN_OK);
    ck_assert_uint_eq(optim_state_steps(st2), 3);
    memcpy(w2, saved_w, sizeof w2);
    for (uint64_t t = 3; t < 6; t++) {
        fill(g, n, 50 + t);
        optim_step(&c, st2, w2, g, n, optim_state_steps(st2));
    }
    ck_assert(memcmp(w, w2, sizeof w) == 0);

    // Raw slot access gives the same result as the record.
    optim_state *st3 = optim_state_new(&c, n);
    memcpy(optim_state_slot(st3, 0), optim_state_slot(st2, 0), n * sizeof(float));
    memcpy(optim_state_slot(st3, 1), optim_state_slot(st2, 1), n * sizeof(float));
    optim_state_set_steps(st3, optim_state_steps(st2));
    ck_assert_ptr_null(optim_state_slot(st3, 2));
    ck_assert_uint_eq(optim_state_steps(st3), 6);
    optim_state_free(st3);

    // Errors, by code and text.
    ck_assert_int_eq(optim_state_decode(st2, rec.data, 10, err, sizeof err), CN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "bad magic or short record"));
    ck_assert_int_eq(optim_state_decode(st2, rec.data, rec.len - 4, err, sizeof err), CN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "header implies"));
    rec.data[4] = 9;
    ck_assert_int_eq(optim_state_decode(st2, rec.data, rec.len, err, sizeof err), CN_EVERSION);
    ck_assert_str_eq(err, "optimizer state: version 9 is not supported (this build reads 1)");
    rec.data[4] = 1;
    optim_state *small = optim_state_new(&c, n - 1);
    ck_assert_int_eq(optim_state_decode(small, rec.data, rec.len, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "optimizer state: record holds 257 parameters, this slice has 256");
    optim_cfg m;
    optim_cfg_default(&m, OPTIM_MOMENTUM);
    optim_state *mom = optim_state_new(&m, n);
    ck_assert_int_eq(optim_state_decode(mom, rec.data, rec.len, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "optimizer state: record is for adam, this state is momentum");
    optim_state_free(mom);
    optim_state_free(small);
    optim_state_free(st2);
    optim_state_free(st);
    cn_buf_fini(&rec);
}
END_TEST

START_TEST(test_cfg_check_names_the_bad_field)
{
    optim_cfg c;
    char err[CN_ERRBUF_LEN];
    optim_cfg_default(&c, OPTIM_ADAM);
    ck_assert_int_eq(optim_cfg_check(&c, err, sizeof err), CN_OK);
    c.lr = 0.0f;
    ck_assert_int_eq(optim_cfg_check(&c, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "lr: 0 is not allowed (must be > 0)");
    optim_cfg_default(&c, OPTIM_MOMENTUM);
    c.momentum = 1.0f;
    ck_assert_int_eq(optim_cfg_check(&c, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "momentum: 1 is not allowed (must be in [0, 1))");
    optim_cfg_default(&c, OPTIM_SGD);
    c.schedule = OPTIM_SCHED_COSINE;
    c.total_steps = 0;
    ck_assert_int_eq(optim_cfg_check(&c, err, sizeof err), CN_EINVAL);
    c.total_steps = 10;
    c.min_lr = 1.0f;
    ck_assert_int_eq(optim_cfg_check(&c, err, sizeof err), CN_EINVAL);
    c.weight_decay = -1.0f;
    ck_assert_int_eq(optim_cfg_check(&c, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "weight_decay: -1 is not allowed (must be >= 0)");
    optim_kind k;
    optim_sched s;
    ck_assert_int_eq(optim_kind_parse("adam", &k), CN_OK);
    ck_assert_int_eq(k, OPTIM_ADAM);
    ck_assert_int_eq(optim_kind_parse("rmsprop", &k), CN_EINVAL);
    ck_assert_int_eq(optim_sched_parse("cosine", &s), CN_OK);
    ck_assert_int_eq(s, OPTIM_SCHED_COSINE);
    ck_assert_int_eq(optim_sched_parse("linear", &s), CN_EINVAL);
    ck_assert_str_eq(optim_kind_name(OPTIM_MOMENTUM), "momentum");
    ck_assert_str_eq(optim_sched_name(OPTIM_SCHED_STEP), "step");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("optim");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_sgd_matches_hand_computed_update);
    tcase_add_test(t, test_sgd_weight_decay_adds_l2_gradient);
    tcase_add_test(t, test_momentum_accumulates_velocity);
    tcase_add_test(t, test_nesterov_looks_ahead);
    tcase_add_test(t, test_adam_matches_hand_computed_steps);
    tcase_add_test(t, test_adam_coupled_weight_decay_enters_moments);
    tcase_add_test(t, test_adamw_decouples_weight_decay);
    tcase_add_test(t, test_schedules_follow_their_formulas);
    tcase_add_test(t, test_step_uses_scheduled_lr);
    tcase_add_test(t, test_slice_step_equals_part_of_whole_step);
    tcase_add_test(t, test_range_steps_equal_whole_step);
    tcase_add_test(t, test_step_out_writes_the_new_values_in_the_same_step);
    tcase_add_test(t, test_state_restore_continues_identically);
    tcase_add_test(t, test_cfg_check_names_the_bad_field);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
