// test_sweep_search.c: the search algorithms of sweeps without a cluster:
// ASHA's promotions on scripted scores (who is promoted, who stops) with
// eta 2 and 3, and TPE on a known one-dimensional objective against random
// search with the same seeds and draws; TPE's determinism, its constant
// liar, and that it does not repeat a trial.
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sweep_search.h"
#include "scheduler/sweep_spec.h"
#include "tests/support/support.h"

// ------------------------------------------------------------ ASHA

// complete gives trial t rung r's score and returns what is promotable
// then: the trial index, or -1.
static int complete(asha *a, size_t t, size_t r, double score, size_t *rung)
{
    asha_complete(a, t, r, score);
    size_t p;
    if (!asha_promotable(a, &p, rung))
        return -1;
    return (int)p;
}

START_TEST(test_asha_rungs_double_then_end_at_every_fold)
{
    asha *a = asha_new(4, 5, 2, 0);
    ck_assert_uint_eq(asha_n_rungs(a), 4);
    uint32_t want2[] = {1, 2, 4, 5};
    for (size_t r = 0; r < 4; r++)
        ck_assert_uint_eq(asha_budget(a, r), want2[r]);
    asha_free(a);
    a = asha_new(4, 5, 3, 0);
    ck_assert_uint_eq(asha_n_rungs(a), 3);
    uint32_t want3[] = {1, 3, 5};
    for (size_t r = 0; r < 3; r++)
        ck_assert_uint_eq(asha_budget(a, r), want3[r]);
    asha_free(a);
    a = asha_new(1, 1, 3, 0); // one fold: one rung
    ck_assert_uint_eq(asha_n_rungs(a), 1);
    asha_free(a);
}
END_TEST

START_TEST(test_asha_eta_2_promotes_the_top_half_as_results_arrive)
{
    asha *a = asha_new(4, 5, 2, 0);
    size_t rung;
    for (size_t t = 0; t < 4; t++)
        asha_grant(a, t, 0);
    ck_assert_int_eq(complete(a, 0, 0, 0.50, &rung), -1); // 1 result: floor(1/2) = 0
    ck_assert_int_eq(complete(a, 1, 0, 0.70, &rung), 1);  // best of 2
    ck_assert_uint_eq(rung, 1);
    asha_grant(a, 1, 1);
    ck_assert_int_eq(complete(a, 2, 0, 0.60, &rung), -1); // 0.70 ranks above: top 1 taken
    ck_assert_int_eq(complete(a, 3, 0, 0.80, &rung), 3);  // top 2 of 4
    asha_grant(a, 3, 1);
    size_t t;
    ck_assert(!asha_promotable(a, &t, &rung)); // 0.60 is third of 4
    // Rung 1 (2 folds): the two promoted trials; the better goes to 4 folds.
    ck_assert_int_eq(complete(a, 1, 1, 0.66, &rung), -1);
    ck_assert_int_eq(complete(a, 3, 1, 0.75, &rung), 3);
    ck_assert_uint_eq(rung, 2);
    asha_grant(a, 3, 2);
    ck_assert_int_eq(complete(a, 3, 2, 0.74, &rung), -1); // alone on rung 2
    double sc;
    ck_assert_int_eq(asha_reached(a, 0, &sc), 0);
    ck_assert_double_eq(sc, 0.50);
    ck_assert_int_eq(asha_reached(a, 3, &sc), 2);
    ck_assert_double_eq(sc, 0.74);
    ck_assert_int_eq(asha_granted(a, 2), 0); // stopped at rung 0
    asha_complete(a, 3, 2, 0.10);            // a second report keeps the first score
    ck_assert_int_eq(asha_reached(a, 3, &sc), 2);
    ck_assert_double_eq(sc, 0.74);
    asha_free(a);
}
END_TEST

// The default (the baseline the best is compared with) is carried to a
// full score however it ranks; the others follow the usual rule.
START_TEST(test_asha_carries_the_baseline_to_a_full_score)
{
    asha *a = asha_new(4, 5, 2, 0);
    asha_set_baseline(a, 0);
    size_t rung, t;
    for (size_t k = 0; k < 4; k++)
        asha_grant(a, k, 0);
    ck_assert_int_eq(complete(a, 1, 0, 0.90, &rung), -1); // 1 result: floor(1/2) = 0
    ck_assert_int_eq(complete(a, 0, 0, 0.10, &rung), 0);  // the worst, promoted all the same
    ck_assert_uint_eq(rung, 1);
    asha_grant(a, 0, 1);
    ck_assert(asha_promotable(a, &t, &rung)); // then the best of two, as usual
    ck_assert_uint_eq(t, 1);
    asha_grant(a, 1, 1);
    ck_assert_int_eq(complete(a, 2, 0, 0.50, &rung), -1);
    for (size_t r = 1; r + 1 < asha_n_rungs(a); r++) {
        ck_assert_int_eq(complete(a, 0, r, 0.10, &rung), 0);
        ck_assert_uint_eq(rung, r + 1);
        asha_grant(a, 0, r + 1);
    }
    asha_complete(a, 0, asha_n_rungs(a) - 1, 0.10);
    double sc;
    ck_assert_int_eq(asha_reached(a, 0, &sc), (int)asha_n_rungs(a) - 1); // a full score
    ck_assert_int_eq(asha_granted(a, 2), 0); // the others: stopped as before
    asha_free(a);
}
END_TEST

START_TEST(test_asha_eta_3_promotes_the_top_third_and_prefers_higher_rungs)
{
    asha *a = asha_new(8, 5, 3, 0);
    size_t rung;
    for (size_t t = 0; t < 7; t++)
        asha_grant(a, t, 0);
    ck_assert_int_eq(complete(a, 0, 0, 0.30, &rung), -1);
    ck_assert_int_eq(complete(a, 1, 0, 0.10, &rung), -1);
    ck_assert_int_eq(complete(a, 2, 0, 0.20, &rung), 0); // top 1 of 3
    asha_grant(a, 0, 1);
    ck_assert_int_eq(complete(a, 3, 0, 0.05, &rung), -1);
    ck_assert_int_eq(complete(a, 4, 0, 0.04, &rung), -1);
    // Trial 0 completes rung 1 (3 folds) alone: nothing to promote there.
    ck_assert_int_eq(complete(a, 0, 1, 0.31, &rung), -1);
    ck_assert_int_eq(complete(a, 5, 0, 0.90, &rung), 5); // top 2 of 6
    ck_assert_uint_eq(rung, 1);
    asha_grant(a, 5, 1);
    size_t t;
    ck_assert(!asha_promotable(a, &t, &rung));           // 0.20 is third of 6
    ck_assert_int_eq(complete(a, 6, 0, 0.50, &rung), 6); // 7 results: 0.90 and 0.50 lead
    ck_assert_uint_eq(rung, 1);
    asha_grant(a, 6, 1);
    ck_assert_int_eq(complete(a, 5, 1, 0.88, &rung), -1); // 2 on rung 1: floor(2/3) = 0
    ck_assert_int_eq(complete(a, 6, 1, 0.20, &rung), 5);  // 3 on rung 1: the best goes on
    ck_assert_uint_eq(rung, 2);
    // Trial 7 now leads rung 0 too; the promotion nearer a full score goes first.
    asha_grant(a, 7, 0);
    ck_assert_int_eq(complete(a, 7, 0, 0.95, &rung), 5);
    ck_assert_uint_eq(rung, 2);
    asha_grant(a, 5, 2);
    ck_assert_int_eq(complete(a, 7, 0, 0.95, &rung), 7);
    ck_assert_uint_eq(rung, 1);
    asha_grant(a, 7, 1);
    size_t t2;
    ck_assert(!asha_promotable(a, &t2, &rung));
    for (size_t s = 1; s <= 4; s++) // stopped at rung 0
        ck_assert_int_eq(asha_granted(a, s), 0);
    asha_free(a);
}
END_TEST

START_TEST(test_asha_tree_budget_gives_each_rung_its_folds_and_trees)
{
    asha *a = asha_new(4, 5, 3, 0); // folds only: rungs share folds
    ck_assert_uint_eq(asha_units(a), 5);
    for (size_t r = 0; r < 3; r++) {
        ck_assert_uint_eq(asha_first_unit(a, r), 0);
        ck_assert_uint_eq(asha_trees(a, r, 100), 100);
    }
    ck_assert_uint_eq(asha_unit_rung(a, 2), 1); // fold 2 is first needed at rung 1
    asha_free(a);
    // eta 3, 5 folds, at least 10 trees: 1, 3, 5, 5 folds at 1/27, 1/9, 1/3
    // and all the trees, laid out as units 0 | 1 2 3 | 4..8 | 9..13.
    a = asha_new(4, 5, 3, 10);
    ck_assert_uint_eq(asha_n_rungs(a), 4);
    ck_assert_uint_eq(asha_units(a), 14);
    size_t first[] = {0, 1, 4, 9};
    uint32_t folds[] = {1, 3, 5, 5}, trees100[] = {10, 11, 33, 100}, trees270[] = {10, 30, 90, 270},
             trees20[] = {10, 10, 10, 20};
    for (size_t r = 0; r < 4; r++) {
        ck_assert_uint_eq(asha_budget(a, r), folds[r]);
        ck_assert_uint_eq(asha_first_unit(a, r), first[r]);
        ck_assert_uint_eq(asha_trees(a, r, 100), trees100[r]); // rung 0: min_trees
        ck_assert_uint_eq(asha_trees(a, r, 270), trees270[r]);
        ck_assert_uint_eq(asha_trees(a, r, 20), trees20[r]);
        ck_assert_uint_eq(asha_trees(a, r, 4), 4); // never more than the trial's
    }
    size_t rung_of[] = {0, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3};
    for (size_t u = 0; u < 14; u++)
        ck_assert_uint_eq(asha_unit_rung(a, u), rung_of[u]);
    asha_free(a);
    // eta 2, 3 folds: 1, 2, 3, 3 folds at 1/8, 1/4, 1/2 and all of 160 trees.
    a = asha_new(2, 3, 2, 1);
    ck_assert_uint_eq(asha_units(a), 9);
    uint32_t trees160[] = {20, 40, 80, 160};
    size_t first2[] = {0, 1, 3, 6};
    for (size_t r = 0; r < 4; r++) {
        ck_assert_uint_eq(asha_trees(a, r, 160), trees160[r]);
        ck_assert_uint_eq(asha_first_unit(a, r), first2[r]);
    }
    asha_free(a);
}
END_TEST

START_TEST(test_asha_finishing_carries_the_best_stopped_trial_to_a_full_score)
{
    // 3 trials, 4 rungs (tree budget): floor(1 / 3) = 0 above rung 0, so
    // only the finishing promotions take the best to the top.
    asha *a = asha_new(3, 5, 3, 10);
    size_t t, rung;
    ck_assert(!asha_finishing(a, &t, &rung)); // nothing completed
    for (size_t i = 0; i < 3; i++)
        asha_grant(a, i, 0);
    asha_complete(a, 0, 0, 0.50);
    asha_complete(a, 1, 0, 0.70);
    asha_complete(a, 2, 0, 0.60);
    ck_assert(asha_promotable(a, &t, &rung));
    ck_assert_uint_eq(t, 1);
    asha_grant(a, 1, 1);
    asha_complete(a, 1, 1, 0.40); // alone on rung 1
    ck_assert(!asha_promotable(a, &t, &rung));
    ck_assert(asha_finishing(a, &t, &rung)); // the highest rung reached goes first
    ck_assert_uint_eq(t, 1);
    ck_assert_uint_eq(rung, 2);
    asha_grant(a, 1, 2);
    asha_complete(a, 1, 2, 0.45);
    ck_assert(asha_finishing(a, &t, &rung));
    ck_assert_uint_eq(t, 1);
    ck_assert_uint_eq(rung, 3);
    asha_grant(a, 1, 3);
    ck_assert(!asha_finishing(a, &t, &rung)); // one trial has the top rung
    asha_free(a);
    // Two stopped on rung 1: the better (ties: lower index) goes on.
    a = asha_new(6, 5, 3, 10);
    for (size_t i = 0; i < 6; i++) {
        asha_grant(a, i, 0);
        asha_complete(a, i, 0, 0.1 * (double)i);
    }
    asha_grant(a, 5, 1);
    asha_grant(a, 4, 1);
    asha_complete(a, 5, 1, 0.3);
    asha_complete(a, 4, 1, 0.3);
    ck_assert(asha_finishing(a, &t, &rung));
    ck_assert_uint_eq(t, 4);
    ck_assert_uint_eq(rung, 2);
    asha_free(a);
}
END_TEST

// ------------------------------------------------------------ TPE

#define OPT 0.73 // the objective's best max_features
#define N_TRIALS 40
#define STARTUP 8

static double objective(const char *params)
{
    cJSON *p = cJSON_Parse(params);
    double x = cJSON_GetObjectItem(p, "max_features")->valuedouble;
    cJSON_Delete(p);
    return -(x - OPT) * (x - OPT);
}

static sweep_spec *tpe_spec(uint64_t seed)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
             " \"space\": {\"max_features\": {\"uniform\": [0.05, 1.0]}},"
             " \"search\": {\"algorithm\": \"tpe\", \"samples\": %d, \"seed\": %llu,"
             "              \"startup\": %d}}",
             N_TRIALS, (unsigned long long)seed, STARTUP);
    sweep_spec *s = NULL;
    char err[512] = "";
    ck_assert_msg(sweep_spec_parse(text, "t.json", &s, err, sizeof err) == CN_OK, "%s", err);
    return s;
}

// run_tpe runs trials 1..N_TRIALS one after another, each proposed from
// all before it (trial 0, the default, is left out: it has no max_features),
// and counts the trials after the random start that land within 0.05 of
// the optimum. *best: the best objective value seen.
static int run_tpe(sweep_spec *s, double *best)
{
    sweep_tpe_obs obs[N_TRIALS + 1];
    char *params[N_TRIALS + 1] = {0};
    int near = 0;
    *best = -INFINITY;
    for (size_t t = 1; t <= N_TRIALS; t++) {
        if (t <= STARTUP)
            params[t] = strdup(s->trials[t]);
        else
            ck_assert_int_eq(sweep_spec_tpe_suggest(s, t, obs, t - 1, &params[t]), CN_OK);
        obs[t - 1] = (sweep_tpe_obs){.params = params[t], .score = objective(params[t])};
        *best = fmax(*best, obs[t - 1].score);
        near += t > STARTUP && -obs[t - 1].score < 0.05 * 0.05;
    }
    for (size_t t = 1; t <= N_TRIALS; t++)
        free(params[t]);
    return near;
}

// random_near counts the same for random search: the spec's own draws.
static int random_near(const sweep_spec *s, double *best)
{
    int near = 0;
    *best = -INFINITY;
    for (size_t t = 1; t <= N_TRIALS; t++) {
        double v = objective(s->trials[t]);
        *best = fmax(*best, v);
        near += t > STARTUP && -v < 0.05 * 0.05;
    }
    return near;
}

START_TEST(test_tpe_finds_the_optimum_region_more_often_than_random)
{
    int tpe_total = 0, random_total = 0, wins = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        sweep_spec *s = tpe_spec(seed);
        double tb, rb;
        int tn = run_tpe(s, &tb), rn = random_near(s, &rb);
        tpe_total += tn;
        random_total += rn;
        wins += tb >= rb;
        sweep_spec_free(s);
    }
    // Random search puts about 10% of the 32 trials after the start within
    // 0.05 of the optimum (about 3 per seed); TPE should put most there.
    ck_assert_msg(tpe_total >= 3 * random_total, "tpe %d vs random %d trials near the optimum",
                  tpe_total, random_total);
    ck_assert_int_ge(wins, 4);
}
END_TEST

START_TEST(test_tpe_is_deterministic_and_the_liar_spreads_pending_proposals)
{
    sweep_spec *s = tpe_spec(7);
    sweep_tpe_obs obs[STARTUP + 2];
    for (size_t t = 1; t <= STARTUP; t++)
        obs[t - 1] = (sweep_tpe_obs){.params = s->trials[t], .score = objective(s->trials[t])};
    char *a, *b, *c;
    ck_assert_int_eq(sweep_spec_tpe_suggest(s, STARTUP + 1, obs, STARTUP, &a), CN_OK);
    ck_assert_int_eq(sweep_spec_tpe_suggest(s, STARTUP + 1, obs, STARTUP, &b), CN_OK);
    ck_assert_str_eq(a, b); // same spec, trial and history: same proposal
    // The next trial is asked for while the first is running: it sees the
    // first as pending (scored as the worst) and proposes something else.
    obs[STARTUP] = (sweep_tpe_obs){.params = a, .pending = true};
    ck_assert_int_eq(sweep_spec_tpe_suggest(s, STARTUP + 2, obs, STARTUP + 1, &c), CN_OK);
    ck_assert_str_ne(a, c);
    free(a);
    free(b);
    free(c);
    // Fewer than two finished trials: the trial's own random draw.
    ck_assert_int_eq(sweep_spec_tpe_suggest(s, STARTUP + 1, obs, 1, &a), CN_OK);
    ck_assert_str_eq(a, s->trials[STARTUP + 1]);
    free(a);
    sweep_spec_free(s);
}
END_TEST

START_TEST(test_tpe_proposes_choices_and_integers_from_the_space)
{
    sweep_spec *s = NULL;
    char err[512] = "";
    ck_assert_int_eq(
        sweep_spec_parse("{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
                         " \"fixed\": {\"n_estimators\": 10},"
                         " \"space\": {\"max_depth\": {\"choice\": [null, 4, 8]},"
                         "            \"min_samples_leaf\": {\"qrandint\": [2, 10, 2]},"
                         "            \"max_samples\": {\"quniform\": [0.5, 1.0, 0.1]}},"
                         " \"search\": {\"algorithm\": \"tpe\", \"samples\": 20, \"seed\": 3,"
                         "              \"startup\": 4, \"scheduler\": \"asha\", \"eta\": 2}}",
                         "t.json", &s, err, sizeof err),
        CN_OK);
    ck_assert_str_eq(s->scheduler, "asha");
    ck_assert_uint_eq(s->eta, 2);
    sweep_tpe_obs obs[20];
    char *p[21] = {0};
    for (size_t t = 1; t <= 20; t++) {
        if (t <= 4)
            p[t] = strdup(s->trials[t]);
        else
            ck_assert_int_eq(sweep_spec_tpe_suggest(s, t, obs, t - 1, &p[t]), CN_OK);
        cJSON *o = cJSON_Parse(p[t]);
        ck_assert_double_eq(cJSON_GetObjectItem(o, "n_estimators")->valuedouble, 10);
        const cJSON *d = cJSON_GetObjectItem(o, "max_depth");
        ck_assert(cJSON_IsNull(d) || d->valuedouble == 4 || d->valuedouble == 8);
        double leaf = cJSON_GetObjectItem(o, "min_samples_leaf")->valuedouble;
        ck_assert(leaf >= 2 && leaf <= 10 && fmod(leaf, 2) == 0);
        double ms = cJSON_GetObjectItem(o, "max_samples")->valuedouble;
        ck_assert(ms >= 0.5 - 1e-9 && ms <= 1.0 + 1e-9);
        ck_assert_double_eq_tol(ms * 10, round(ms * 10), 1e-6);
        // Deep trees with small leaves score best here.
        obs[t - 1] = (sweep_tpe_obs){.params = p[t], .score = (cJSON_IsNull(d) ? 1 : 0) - leaf};
        cJSON_Delete(o);
    }
    // Random draws give leaf 2 one time in five; TPE finds it and stays
    // near it (with no repeats, it must also try other depths and rows).
    int small = 0, best = 0;
    for (size_t t = 5; t <= 20; t++) {
        small += strstr(p[t], "\"min_samples_leaf\":2,") != NULL;
        best += strstr(p[t], "\"max_depth\":null,\"min_samples_leaf\":2,") != NULL;
    }
    ck_assert_int_ge(small, 8); // of the 16 proposals
    ck_assert_int_ge(best, 1);
    for (size_t t = 1; t <= 20; t++)
        free(p[t]);
    sweep_spec_free(s);
}
END_TEST

START_TEST(test_tpe_does_not_repeat_a_trial_while_something_new_is_left)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
                 " \"space\": {\"max_depth\": {\"choice\": [4, 8, 16]}},"
                 " \"search\": {\"algorithm\": \"tpe\", \"samples\": 4, \"seed\": %llu,"
                 "              \"startup\": 2}}",
                 (unsigned long long)seed);
        sweep_spec *s = NULL;
        char err[512];
        ck_assert_int_eq(sweep_spec_parse(text, "t.json", &s, err, sizeof err), CN_OK);
        // Depth 4 scored best: the good density favours it, but it ran.
        sweep_tpe_obs obs[] = {{.params = "{\"max_depth\":4}", .score = 1.0},
                               {.params = "{\"max_depth\":8}", .score = 0.0},
                               {.params = "{\"max_depth\":4}", .score = 1.0}};
        char *p;
        ck_assert_int_eq(sweep_spec_tpe_suggest(s, 3, obs, 3, &p), CN_OK);
        ck_assert_str_eq(p, "{\"max_depth\":16}");
        free(p);
        sweep_spec_free(s);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sweep_search");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_asha_rungs_double_then_end_at_every_fold);
    tcase_add_test(t, test_asha_eta_2_promotes_the_top_half_as_results_arrive);
    tcase_add_test(t, test_asha_carries_the_baseline_to_a_full_score);
    tcase_add_test(t, test_asha_eta_3_promotes_the_top_third_and_prefers_higher_rungs);
    tcase_add_test(t, test_asha_tree_budget_gives_each_rung_its_folds_and_trees);
    tcase_add_test(t, test_asha_finishing_carries_the_best_stopped_trial_to_a_full_score);
    tcase_add_test(t, test_tpe_finds_the_optimum_region_more_often_than_random);
    tcase_add_test(t, test_tpe_is_deterministic_and_the_liar_spreads_pending_proposals);
    tcase_add_test(t, test_tpe_proposes_choices_and_integers_from_the_space);
    tcase_add_test(t, test_tpe_does_not_repeat_a_trial_while_something_new_is_left);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
