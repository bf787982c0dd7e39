// test_sweep.c: distributed sweeps with real processes on loopback: a
// worker killed mid-sweep (its unit is re-queued, a worker that joins late
// gets work, no unit is recorded twice) and a scheduler killed and resumed
// (nothing finished is redone), also under ASHA and TPE (no trial is started
// or promoted twice) and under ASHA's tree budget (a promoted trial re-runs
// its folds at its new rung's trees, once), and a sweep whose trials are MLP training runs scored
// on a validation split of a small Fashion-MNIST slice.
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/support.h"

#define TRIALS 7 // the default + 6 drawn
#define FOLDS 3

static char dir[256], url[64], log_path[512], state[300], spec[300];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    snprintf(log_path, sizeof log_path, "%s/cluster.log", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(spec, sizeof spec, "%s/sweep.json", dir);
    char data[512], text[2048];
    ts_source_path("data/covertype-kaggle-train.csv.gz", data, sizeof data);
    snprintf(text, sizeof text,
             "{\"name\": \"itest\", \"data\": {\"path\": \"%s\"},"
             " \"cv\": {\"folds\": %d, \"seed\": 3},"
             " \"fixed\": {\"n_estimators\": 12},"
             " \"space\": {\"max_features\": {\"choice\": [\"sqrt\", 0.3, 0.6]},"
             "             \"bootstrap\": {\"choice\": [true, false]}},"
             " \"search\": {\"algorithm\": \"random\", \"samples\": %d, \"seed\": 5},"
             " \"limits\": {\"retries\": 3}}",
             data, FOLDS, TRIALS - 1);
    ts_write_file(spec, text);
    setenv("CANOPY_TOKEN", "sweep-secret", 1);
}

static void teardown(void)
{
    ts_reap_all();
    ts_rmtree(dir);
}

static pid_t start_scheduler(void)
{
    char *argv[] = {
        (char *)ts_canopy_bin(), "scheduler", "--listen",        url,   "--state-dir", state,
        "--heartbeat-ms",        "100",       "--dead-after-ms", "800", NULL};
    return ts_spawn(argv, log_path);
}

static pid_t start_worker(const char *name)
{
    char cache[400];
    snprintf(cache, sizeof cache, "%s/cache-%s", dir, name);
    char *argv[] = {(char *)ts_canopy_bin(),
                    "worker",
                    "--scheduler",
                    url,
                    "--name",
                    (char *)name,
                    "--threads",
                    "1",
                    "--cache-dir",
                    cache,
                    NULL};
    return ts_spawn(argv, log_path);
}

static pid_t start_tune(const char *flag, const char *out)
{
    char best[400], csv[400];
    snprintf(best, sizeof best, "%s/best.json", dir);
    snprintf(csv, sizeof csv, "%s/trials.csv", dir);
    char *argv[] = {(char *)ts_canopy_bin(),
                    "tune",
                    spec,
                    "--scheduler",
                    url,
                    "--best-out",
                    best,
                    "--csv",
                    csv,
                    (char *)flag,
                    NULL};
    return ts_spawn(argv, out);
}

// results_file finds the one sweep's results log.
static int results_file(char *out, size_t n)
{
    char sweeps[400], one[600];
    snprintf(sweeps, sizeof sweeps, "%s/sweeps", state);
    if (!ts_only_entry(sweeps, one, sizeof one))
        return 0;
    snprintf(out, n, "%s/results.jsonl", one);
    return 1;
}

// count_units counts records and distinct (trial, fold) pairs recorded ok.
static int count_units(int *distinct, int *from_worker, const char *worker)
{
    char path[700];
    *distinct = 0;
    if (from_worker)
        *from_worker = 0;
    if (!results_file(path, sizeof path))
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int seen[TRIALS][FOLDS] = {{0}};
    int lines = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        if (!o)
            continue;
        if (cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
            lines++;
            int t = (int)cJSON_GetObjectItem(o, "trial")->valuedouble;
            int k = (int)cJSON_GetObjectItem(o, "fold")->valuedouble;
            if (t >= 0 && t < TRIALS && k >= 0 && k < FOLDS && !seen[t][k]++)
                (*distinct)++;
            const cJSON *w = cJSON_GetObjectItem(o, "worker");
            if (from_worker && worker && cJSON_IsString(w) && strcmp(w->valuestring, worker) == 0)
                (*from_worker)++;
        }
        cJSON_Delete(o);
    }
    fclose(f);
    return lines;
}

static bool some_done(void *arg)
{
    int distinct;
    return count_units(&distinct, NULL, NULL) >= *(int *)arg;
}

START_TEST(test_sweep_survives_a_killed_worker_and_a_late_joiner)
{
    start_scheduler();
    pid_t w1 = start_worker("w1");
    start_worker("w2");
    char out[400];
    snprintf(out, sizeof out, "%s/tune.txt", dir);
    pid_t tune = start_tune("--fresh", out);
    int need = 3;
    ck_assert_msg(ts_wait_until(some_done, &need, 60000), "no progress (see %s)", log_path);
    ts_kill(w1, SIGKILL);
    ts_wait_exit(w1, 5000, NULL);
    start_worker("w3");
    int st;
    ck_assert_msg(ts_wait_exit(tune, 240000, &st), "the sweep did not finish");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "canopy tune failed (see %s, %s)", out,
                  log_path);
    int distinct, by_w3;
    int lines = count_units(&distinct, &by_w3, "w3");
    ck_assert_int_eq(distinct, TRIALS * FOLDS);
    ck_assert_int_eq(lines, TRIALS * FOLDS); // never recorded twice
    ck_assert_int_gt(by_w3, 0);              // the late joiner got work
    ck_assert(ts_file_contains(out, "best"));
    char best[400];
    snprintf(best, sizeof best, "%s/best.json", dir);
    ck_assert(ts_file_contains(best, "max_features") || ts_file_contains(best, "n_estimators"));
}
END_TEST

START_TEST(test_sweep_resumes_after_the_scheduler_is_killed)
{
    pid_t s = start_scheduler();
    start_worker("w1");
    start_worker("w2");
    char out[400];
    snprintf(out, sizeof out, "%s/tune1.txt", dir);
    pid_t tune = start_tune("--fresh", out);
    int need = 4;
    ck_assert_msg(ts_wait_until(some_done, &need, 60000), "no progress (see %s)", log_path);
    ts_kill(s, SIGKILL);
    ts_kill(tune, SIGKILL);
    ts_wait_exit(s, 5000, NULL);
    ts_wait_exit(tune, 5000, NULL);
    int before_distinct;
    int before = count_units(&before_distinct, NULL, NULL);
    ck_assert_int_ge(before, 4);
    ck_assert_int_eq(before, before_distinct);
    start_scheduler();
    snprintf(out, sizeof out, "%s/tune2.txt", dir);
    tune = start_tune("--resume", out);
    int st;
    ck_assert_msg(ts_wait_exit(tune, 240000, &st), "the resumed sweep did not finish");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "canopy tune --resume failed (see %s)",
                  out);
    ck_assert(ts_file_contains(out, "already done (resumed)"));
    int distinct;
    int lines = count_units(&distinct, NULL, NULL);
    ck_assert_int_eq(distinct, TRIALS * FOLDS);
    ck_assert_int_eq(lines, TRIALS * FOLDS); // the units done before the crash were not redone
}
END_TEST

// decisions counts the "trial" and "promote" records of the results log and
// checks none repeats and every recorded fold was within its trial's grant.
static int decisions(int *promotions)
{
    char path[700];
    ck_assert(results_file(path, sizeof path));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int started[TRIALS] = {0}, granted[TRIALS][FOLDS + 1] = {{0}}, budget[TRIALS] = {0};
    int n_started = 0;
    *promotions = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        if (!o)
            continue;
        const cJSON *type = cJSON_GetObjectItem(o, "type");
        const cJSON *t = cJSON_GetObjectItem(o, "trial");
        int ti = cJSON_IsNumber(t) ? (int)t->valuedouble : -1;
        ck_assert(ti >= 0 && ti < TRIALS);
        if (cJSON_IsString(type)) {
            int rung = (int)cJSON_GetObjectItem(o, "rung")->valuedouble;
            int folds = (int)cJSON_GetObjectItem(o, "folds")->valuedouble;
            ck_assert_msg(granted[ti][rung]++ == 0, "trial %d given rung %d twice", ti, rung);
            budget[ti] = folds;
            if (strcmp(type->valuestring, "trial") == 0) {
                ck_assert_int_eq(started[ti]++, 0);
                n_started++;
            } else {
                (*promotions)++;
            }
        } else if (cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
            int fold = (int)cJSON_GetObjectItem(o, "fold")->valuedouble;
            ck_assert_msg(fold < budget[ti], "trial %d ran fold %d beyond its %d", ti, fold,
                          budget[ti]);
        }
        cJSON_Delete(o);
    }
    fclose(f);
    return n_started;
}

static bool promoted_once(void *arg)
{
    (void)arg;
    char path[700];
    return results_file(path, sizeof path) && ts_file_contains(path, "\"promote\"");
}

// read_json parses the file at path, failing the test when it cannot.
static cJSON *read_json(const char *path)
{
    char *text = ts_read_file(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    cJSON *o = cJSON_Parse(text);
    free(text);
    ck_assert_msg(o != NULL, "%s is not JSON", path);
    return o;
}

// sweep_best reads the best.json the scheduler wrote beside the results log.
static cJSON *sweep_best(void)
{
    char path[700];
    ck_assert(results_file(path, sizeof path));
    snprintf(strrchr(path, '/'), sizeof path - (size_t)(strrchr(path, '/') - path), "/best.json");
    return read_json(path);
}

// tune_names_the_sweeps_best checks that canopy tune's best.json names the
// sweep's best trial: a stopped trial's partial score does not outrank a
// full one.
static void tune_names_the_sweeps_best(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/best.json", dir);
    cJSON *tuned = read_json(path), *best = sweep_best();
    ck_assert_msg(cJSON_Compare(tuned, cJSON_GetObjectItem(best, "params"), 1),
                  "canopy tune chose %s", cJSON_PrintUnformatted(tuned));
    cJSON_Delete(tuned);
    cJSON_Delete(best);
}

// kill_after_a_promotion runs an ASHA sweep of the given search block (a
// JSON object's members) on two workers and kills the scheduler and canopy
// tune once a promotion is recorded.
static void kill_after_a_promotion(const char *name, const char *search)
{
    char data[512], text[2048];
    ts_source_path("data/covertype-kaggle-train.csv.gz", data, sizeof data);
    snprintf(
        text, sizeof text,
        "{\"name\": \"%s\", \"data\": {\"path\": \"%s\"},"
        " \"cv\": {\"folds\": %d, \"seed\": 3},"
        " \"fixed\": {\"n_estimators\": 12},"
        " \"space\": {\"max_features\": {\"uniform\": [0.1, 0.7]},"
        "             \"bootstrap\": {\"choice\": [true, false]}},"
        " \"search\": {\"samples\": %d, \"seed\": 5, \"scheduler\": \"asha\", \"eta\": 2, %s}}",
        name, data, FOLDS, TRIALS - 1, search);
    ts_write_file(spec, text);
    pid_t s = start_scheduler();
    start_worker("w1");
    start_worker("w2");
    char out[400];
    snprintf(out, sizeof out, "%s/tune1.txt", dir);
    pid_t tune = start_tune("--fresh", out);
    ck_assert_msg(ts_wait_until(promoted_once, NULL, 60000), "no promotion (see %s)", log_path);
    ts_kill(s, SIGKILL);
    ts_kill(tune, SIGKILL);
    ts_wait_exit(s, 5000, NULL);
    ts_wait_exit(tune, 5000, NULL);
}

// resume_to_the_end restarts the scheduler and follows the sweep with
// canopy tune --resume until it ends well.
static void resume_to_the_end(void)
{
    start_scheduler();
    char out[400];
    snprintf(out, sizeof out, "%s/tune2.txt", dir);
    pid_t tune = start_tune("--resume", out);
    int st;
    ck_assert_msg(ts_wait_exit(tune, 240000, &st), "the resumed sweep did not finish");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "canopy tune --resume failed (see %s)",
                  out);
}

START_TEST(test_a_resumed_asha_tpe_sweep_neither_reruns_nor_repromotes)
{
    kill_after_a_promotion("asha", "\"algorithm\": \"tpe\", \"startup\": 3");
    int before_distinct, before_promotions;
    int before = count_units(&before_distinct, NULL, NULL);
    ck_assert_int_eq(before, before_distinct);
    int before_started = decisions(&before_promotions);
    ck_assert_int_ge(before_promotions, 1);
    resume_to_the_end();
    int distinct, promotions;
    int lines = count_units(&distinct, NULL, NULL);
    ck_assert_int_eq(lines, distinct); // nothing recorded before the crash ran again
    ck_assert_int_ge(lines, before);
    ck_assert_int_eq(decisions(&promotions), TRIALS); // every trial started, once
    ck_assert_int_ge(promotions, before_promotions);
    ck_assert_int_ge(before_started, 1);
    ck_assert_int_lt(distinct, TRIALS * FOLDS); // some trials were stopped early
    char csv[400];
    snprintf(csv, sizeof csv, "%s/trials.csv", dir);
    ck_assert(ts_file_contains(csv, "folds_done,rung,stopped,"));
    tune_names_the_sweeps_best();
}
END_TEST

// Tree budget with 3 folds, eta 2, 12 trees and min_trees 2: rungs of 1,
// 2, 3, 3 folds at 2, 3, 6, 12 trees, laid out as units 0 | 1 2 | 3 4 5 |
// 6 7 8.
#define TB_UNITS 9
#define TB_TOP 3
static const int tb_rung[TB_UNITS] = {0, 1, 1, 2, 2, 2, 3, 3, 3},
                 tb_first[TB_TOP + 1] = {0, 1, 3, 6}, tb_trees[TB_TOP + 1] = {2, 3, 6, 12};

// field returns o's number under key, failing the test when it is missing.
static double field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "no number \"%s\" in %s", key, cJSON_PrintUnformatted(o));
    return v->valuedouble;
}

// tree_units checks every unit recorded under the tree budget (its rung,
// fold and the trees the worker trained; none recorded twice), counts the
// units and the rung-1 re-runs of fold 0 in *reruns, and returns the mean
// accuracy of trial best's top-rung folds in *best_mean.
static int tree_units(int *reruns, int best, double *best_mean)
{
    char path[700];
    ck_assert(results_file(path, sizeof path));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int seen[TRIALS][TB_UNITS] = {{0}}, n = 0, top = 0;
    double sum = 0;
    *reruns = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        if (o && cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
            int t = (int)field(o, "trial");
            int u = (int)field(o, "unit");
            ck_assert(t >= 0 && t < TRIALS && u >= 0 && u < TB_UNITS);
            ck_assert_msg(seen[t][u]++ == 0, "trial %d unit %d ran twice", t, u);
            int r = tb_rung[u];
            ck_assert_int_eq((int)field(o, "rung"), r);
            ck_assert_int_eq((int)field(o, "fold"), u - tb_first[r]);
            ck_assert_int_eq((int)field(o, "trees"), tb_trees[r]);
            *reruns += u == tb_first[1] && seen[t][0];
            if (t == best && r == TB_TOP) {
                sum += field(o, "accuracy");
                top++;
            }
            n++;
        }
        cJSON_Delete(o);
    }
    fclose(f);
    *best_mean = top ? sum / top : -1;
    return n;
}

START_TEST(test_a_resumed_tree_budget_sweep_reruns_promotions_at_more_trees_only_once)
{
    kill_after_a_promotion("trees", "\"algorithm\": \"random\", \"tree_budget\": true, "
                                    "\"min_trees\": 2");
    int before_promotions, reruns;
    double mean;
    int before = tree_units(&reruns, -1, &mean);
    decisions(&before_promotions);
    ck_assert_int_ge(before_promotions, 1);
    resume_to_the_end();
    int promotions;
    ck_assert_int_eq(decisions(&promotions), TRIALS); // every trial started once, no rung twice
    ck_assert_int_ge(promotions, before_promotions);
    // The best trial's score is its 3 folds at 12 trees, not mixed with the
    // same folds at fewer trees.
    cJSON *b = sweep_best();
    int lines = tree_units(&reruns, (int)field(b, "trial"), &mean);
    ck_assert_double_eq_tol(field(b, "mean_accuracy"), mean, 1e-9);
    tune_names_the_sweeps_best();
    cJSON_Delete(b);
    ck_assert_int_gt(lines, before);
    ck_assert_int_ge(reruns, 1);                // promoted trials ran fold 0 again at 3 trees
    ck_assert_int_lt(lines, TRIALS * TB_UNITS); // some trials were stopped early
}
END_TEST

// count_entries counts the entries of dir but "." and "..".
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

#define FMNIST "/usr/share/datasets/fashion-mnist/"

START_TEST(test_an_mlp_trial_sweep_scores_trials_on_a_validation_split)
{
    ts_write_file(spec, "{\"name\": \"mlp\", \"model\": \"mlp\","
                        " \"data\": {\"train_images\": \"" FMNIST "train-images-idx3-ubyte.gz\","
                        "          \"train_labels\": \"" FMNIST "train-labels-idx1-ubyte.gz\","
                        "          \"train_rows\": 600, \"validation\": 0.2},"
                        " \"fixed\": {\"epochs\": 4, \"batch\": 32},"
                        " \"space\": {\"lr\": {\"loguniform\": [0.005, 0.2]},"
                        "             \"hidden\": {\"choice\": [[16], [32, 16]]},"
                        "             \"optimizer\": {\"choice\": [\"sgd\", \"momentum\"]}},"
                        " \"search\": {\"algorithm\": \"tpe\", \"samples\": 6, \"seed\": 5,"
                        "             \"startup\": 3, \"scheduler\": \"asha\", \"eta\": 2}}");
    start_scheduler();
    start_worker("w1");
    start_worker("w2");
    char out[400];
    snprintf(out, sizeof out, "%s/tune.txt", dir);
    pid_t tune = start_tune("--fresh", out);
    int st;
    ck_assert_msg(ts_wait_exit(tune, 120000, &st), "the mlp sweep did not finish");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "canopy tune failed (see %s, %s)", out,
                  log_path);
    char path[700];
    ck_assert(results_file(path, sizeof path));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[8192];
    int units = 0, top = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        if (o && cJSON_IsTrue(cJSON_GetObjectItem(o, "ok"))) {
            units++;
            ck_assert_double_eq(cJSON_GetObjectItem(o, "n_validation")->valuedouble, 120);
            ck_assert_double_eq(cJSON_GetObjectItem(o, "n_train")->valuedouble, 480);
            double acc = cJSON_GetObjectItem(o, "accuracy")->valuedouble;
            ck_assert(acc > 0.1 && acc <= 1); // above chance for ten classes
            int unit = (int)cJSON_GetObjectItem(o, "unit")->valuedouble;
            int epochs = (int)cJSON_GetObjectItem(o, "epochs")->valuedouble;
            ck_assert_int_eq(epochs, unit == 0 ? 1 : unit == 1 ? 2 : 4); // rung r: 2^r epochs
            top += epochs == 4;
        }
        cJSON_Delete(o);
    }
    fclose(f);
    ck_assert_int_ge(units, TRIALS);     // every trial's first rung
    ck_assert_int_lt(units, 3 * TRIALS); // not every rung of every trial
    ck_assert_int_ge(top, 1);            // someone reached the full budget
    char best[400], data[400];
    snprintf(best, sizeof best, "%s/best.json", dir);
    ck_assert(ts_file_contains(best, "\"hidden\""));
    snprintf(data, sizeof data, "%s/data", state);
    ck_assert_int_eq(count_entries(data), 2); // training images and labels; no test set
}
END_TEST

START_TEST(test_invalid_sweep_is_rejected_before_anything_runs)
{
    start_scheduler();
    ts_write_file(spec, "{\"name\": \"bad\", \"data\": {\"path\": \"x.csv\"},"
                        " \"space\": {\"max_depth\": {\"uniform\": [5]}}}");
    char out[400];
    snprintf(out, sizeof out, "%s/tune.txt", dir);
    pid_t tune = start_tune("--fresh", out);
    int st;
    ck_assert(ts_wait_exit(tune, 30000, &st));
    ck_assert_int_eq(WEXITSTATUS(st), 2);
    ck_assert(ts_file_contains(out, "space.max_depth.uniform: expected [lo, hi]"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sweep");
    TCase *t = tcase_create("processes");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 300);
    tcase_add_test(t, test_sweep_survives_a_killed_worker_and_a_late_joiner);
    tcase_add_test(t, test_sweep_resumes_after_the_scheduler_is_killed);
    tcase_add_test(t, test_a_resumed_asha_tpe_sweep_neither_reruns_nor_repromotes);
    tcase_add_test(t, test_a_resumed_tree_budget_sweep_reruns_promotions_at_more_trees_only_once);
    tcase_add_test(t, test_an_mlp_trial_sweep_scores_trials_on_a_validation_split);
    tcase_add_test(t, test_invalid_sweep_is_rejected_before_anything_runs);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
