// test_sweep_spec.c: sweep files: validation errors with their JSON path,
// grid expansion, seeded random sampling within bounds, the default trial,
// the search block (TPE, ASHA) errors.
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sweep_spec.h"
#include "tests/support/support.h"

static sweep_spec *parse_ok(const char *text)
{
    sweep_spec *s = NULL;
    char err[512] = "";
    cn_err e = sweep_spec_parse(text, "t.json", &s, err, sizeof err);
    ck_assert_msg(e == CN_OK, "parse failed: %s", err);
    return s;
}

static void parse_fails(const char *text, cn_err code, const char *want)
{
    sweep_spec *s = NULL;
    char err[512] = "";
    ck_assert_int_eq(sweep_spec_parse(text, "t.json", &s, err, sizeof err), code);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
}

#define HEAD "{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"}, "

START_TEST(test_sweep_spec_defaults_and_default_trial_first)
{
    sweep_spec *s = parse_ok(HEAD "\"fixed\": {\"n_estimators\": 50}}");
    ck_assert_str_eq(s->label, "Cover_Type");
    ck_assert_str_eq(s->drop, "Id");
    ck_assert_uint_eq(s->folds, 5);
    ck_assert(s->shuffle);
    ck_assert_uint_eq(s->retries, 2);
    // No space: the default trial plus `samples` copies of the empty draw.
    ck_assert_uint_eq(s->n_trials, 11);
    ck_assert_str_eq(s->trials[0], "{\"n_estimators\":50}");
    sweep_spec_free(s);
}
END_TEST

START_TEST(test_sweep_spec_grid_expands_cartesian_product)
{
    sweep_spec *s = parse_ok(HEAD "\"search\": {\"algorithm\": \"grid\"}, \"space\": {"
                                  "\"n_estimators\": {\"grid\": [10, 20, 30]},"
                                  "\"criterion\": {\"choice\": [\"gini\", \"entropy\"]},"
                                  "\"bootstrap\": false}}");
    ck_assert_uint_eq(s->n_trials, 1 + 3 * 2);
    ck_assert_str_eq(s->trials[0], "{}");
    ck_assert_str_eq(s->trials[1],
                     "{\"n_estimators\":10,\"criterion\":\"gini\",\"bootstrap\":false}");
    ck_assert_str_eq(s->trials[6],
                     "{\"n_estimators\":30,\"criterion\":\"entropy\",\"bootstrap\":false}");
    sweep_spec_free(s);
}
END_TEST

START_TEST(test_sweep_spec_random_is_seeded_and_within_bounds)
{
    const char *text =
        HEAD "\"search\": {\"algorithm\": \"random\", \"samples\": 200, \"seed\": 7},"
             "\"space\": {"
             "\"min_impurity_decrease\": {\"loguniform\": [1e-6, 1e-2]},"
             "\"max_features\": {\"uniform\": [0.1, 0.9]},"
             "\"min_samples_leaf\": {\"randint\": [1, 4]},"
             "\"max_depth\": {\"qrandint\": [10, 40, 10]},"
             "\"n_estimators\": {\"grid\": [5, 6]}}}";
    sweep_spec *a = parse_ok(text), *b = parse_ok(text);
    ck_assert_uint_eq(a->n_trials, 1 + 200 * 2);
    int leaf_seen[5] = {0}, depth_seen[5] = {0};
    for (size_t i = 1; i < a->n_trials; i++) {
        ck_assert_str_eq(a->trials[i], b->trials[i]);
        cJSON *o = cJSON_Parse(a->trials[i]);
        double mid = cJSON_GetObjectItem(o, "min_impurity_decrease")->valuedouble;
        double mf = cJSON_GetObjectItem(o, "max_features")->valuedouble;
        double leaf = cJSON_GetObjectItem(o, "min_samples_leaf")->valuedouble;
        double depth = cJSON_GetObjectItem(o, "max_depth")->valuedouble;
        ck_assert(mid >= 1e-6 && mid <= 1e-2);
        ck_assert(mf >= 0.1 && mf < 0.9);
        ck_assert(leaf >= 1 && leaf <= 3); // randint's upper bound is exclusive
        leaf_seen[(int)leaf]++;
        ck_assert(fmod(depth, 10) == 0 && depth >= 10 && depth <= 40); // qrandint: inclusive
        depth_seen[(int)depth / 10]++;
        cJSON_Delete(o);
    }
    for (int v = 1; v <= 3; v++)
        ck_assert_int_gt(leaf_seen[v], 0);
    for (int v = 1; v <= 4; v++)
        ck_assert_int_gt(depth_seen[v], 0);
    sweep_spec_free(a);
    sweep_spec_free(b);
    // Another seed gives other draws.
    sweep_spec *c = parse_ok(HEAD "\"search\": {\"samples\": 3, \"seed\": 8}, \"space\": "
                                  "{\"max_features\": {\"uniform\": [0.1, 0.9]}}}");
    sweep_spec *d = parse_ok(HEAD "\"search\": {\"samples\": 3, \"seed\": 9}, \"space\": "
                                  "{\"max_features\": {\"uniform\": [0.1, 0.9]}}}");
    ck_assert_str_ne(c->trials[1], d->trials[1]);
    sweep_spec_free(c);
    sweep_spec_free(d);
}
END_TEST

START_TEST(test_sweep_spec_errors_name_the_path)
{
    parse_fails("{\"name\": ", CN_EFORMAT, "t.json:1: invalid JSON");
    parse_fails("{\"data\": {\"path\": \"d\"}}", CN_EINVAL, "name: missing");
    parse_fails(HEAD "\"spaec\": {}}", CN_EINVAL,
                "unknown key \"spaec\" (did you mean \"space\"?)");
    parse_fails("{\"name\": \"x\"}", CN_EINVAL, "data: missing");
    parse_fails(HEAD "\"cv\": {\"folds\": 1}}", CN_EINVAL,
                "cv: key \"folds\": 1 is out of range (allowed: 2..100)");
    parse_fails(HEAD "\"search\": {\"algorithm\": \"bayes\"}}", CN_EINVAL,
                "search: key \"algorithm\": \"bayes\" is not one of grid|random");
    parse_fails(HEAD "\"space\": {\"max_depth\": {\"normal\": [1, 2]}}}", CN_EINVAL,
                "space.max_depth.normal: unknown distribution");
    parse_fails(HEAD "\"space\": {\"max_depth\": [1, 2]}}", CN_EINVAL,
                "space.max_depth: a bare list is ambiguous");
    parse_fails(HEAD "\"space\": {\"max_features\": {\"uniform\": [0.9, 0.1]}}}", CN_EINVAL,
                "space.max_features.uniform: need lo < hi");
    parse_fails(HEAD "\"space\": {\"x\": {\"loguniform\": [0, 1]}}}", CN_EINVAL,
                "space.x.loguniform: lo must be > 0");
    parse_fails(HEAD "\"search\": {\"algorithm\": \"grid\"}, \"space\": {\"max_features\": "
                     "{\"uniform\": [0.1, 0.9]}}}",
                CN_EINVAL, "space.max_features: grid search cannot enumerate");
    parse_fails(HEAD "\"space\": {\"n_estimators\": {\"grid\": [10, -3]}}}", CN_EINVAL,
                "n_estimators");
    parse_fails(HEAD "\"space\": {\"max_featres\": {\"grid\": [1]}}}", CN_EINVAL, "max_featres");
    parse_fails(HEAD "\"fixed\": {\"seed\": 1}, \"space\": {\"seed\": {\"grid\": [1, 2]}}}",
                CN_EINVAL, "space.seed: also set in \"fixed\"");
    parse_fails(HEAD "\"search\": {\"algorithm\": \"grid\"}, \"space\": {"
                     "\"n_estimators\": {\"grid\": [1,2,3,4,5,6,7,8,9,10]},"
                     "\"max_depth\": {\"grid\": [1,2,3,4,5,6,7,8,9,10]},"
                     "\"min_samples_leaf\": {\"grid\": [1,2,3,4,5,6,7,8,9,10]},"
                     "\"min_samples_split\": {\"grid\": [2,3,4,5,6,7,8,9,10,11]},"
                     "\"seed\": {\"grid\": [1,2,3,4,5,6,7,8,9,10]}}}",
                CN_ERANGE, "expands to more than 100000 trials");
}
END_TEST

START_TEST(test_search_block_errors_say_what_to_write)
{
    parse_fails("{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
                " \"space\": {\"max_depth\": {\"grid\": [4, 8]}},"
                " \"search\": {\"algorithm\": \"tpe\"}}",
                CN_EINVAL, "t.json: space.max_depth: TPE proposes every value itself");
    parse_fails("{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
                " \"search\": {\"scheduler\": \"asha\", \"eta\": 1}}",
                CN_EINVAL, "search: key \"eta\": 1 is out of range (allowed: 2..10)");
    parse_fails("{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
                " \"search\": {\"scheduler\": \"hyperband\"}}",
                CN_EINVAL, "fifo|asha");
    parse_fails("{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
                " \"search\": {\"tree_budget\": true}}",
                CN_EINVAL,
                "t.json: search.tree_budget: trees are a second budget of ASHA over a forest's "
                "folds; set \"scheduler\": \"asha\" with a forest model, or drop the key");
    parse_fails("{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
                " \"search\": {\"scheduler\": \"asha\", \"tree_budgets\": true}}",
                CN_EINVAL, "did you mean \"tree_budget\"");
    parse_fails("{\"name\": \"x\", \"data\": {\"path\": \"d.csv\"},"
                " \"search\": {\"scheduler\": \"asha\", \"tree_budget\": true, "
                "\"min_trees\": 0}}",
                CN_EINVAL, "search: key \"min_trees\": 0 is out of range (allowed: 1..100000)");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sweep_spec");
    TCase *t = tcase_create("spec");
    tcase_add_test(t, test_sweep_spec_defaults_and_default_trial_first);
    tcase_add_test(t, test_sweep_spec_grid_expands_cartesian_product);
    tcase_add_test(t, test_sweep_spec_random_is_seeded_and_within_bounds);
    tcase_add_test(t, test_sweep_spec_errors_name_the_path);
    tcase_add_test(t, test_search_block_errors_say_what_to_write);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
