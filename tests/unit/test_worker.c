// test_worker.c: the worker's executor in one process: task documents read
// into plain structs (unknown keys and values are errors), a fold scored,
// the data cache (a directory others can write is refused, a name that is
// not a hash is refused, a corrupted cached copy is fetched again), and a
// whole sweep run by a two-slot executor against an in-process scheduler
// kernel, never running more items than its slots.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "common/cn_rand.h"
#include "ml/csv.h"
#include "scheduler/sched_data.h"
#include "scheduler/sched_job.h"
#include "scheduler/sched_kinds_impl.h"
#include "tests/support/support.h"
#include "worker/wk_data.h"
#include "worker/wk_exec.h"
#include "worker/wk_fold.h"
#include "worker/wk_mlp_trial.h"
#include "worker/wk_train.h"

static char dir[256];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
}

static void teardown(void)
{
    ts_rmtree(dir);
}

// write_csv writes a labelled two-class data set that a forest separates.
static void write_csv(const char *path, int rows)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "Id,a,b,Cover_Type\n");
    cn_rng r;
    cn_rng_seed(&r, 7, 1);
    for (int i = 0; i < rows; i++) {
        int c = i % 2;
        fprintf(f, "%d,%.3f,%.3f,%d\n", i, c * 2.0 + cn_rng_uniform(&r), cn_rng_uniform(&r), c + 1);
    }
    fclose(f);
}

// ------------------------------------------------------------ tasks

START_TEST(test_fold_task_read_names_unknown_and_missing_keys)
{
    wk_fold_task t;
    char err[512];
    cJSON *doc = cJSON_Parse("{\"trail\": 1}");
    ck_assert_int_eq(wk_fold_task_read(doc, &t, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "sweep task: unknown key \"trail\" (did you mean \"trial\"?)");
    cJSON_Delete(doc);
    doc = cJSON_Parse("{\"trial\": 1, \"fold\": 0, \"folds\": 3}");
    ck_assert_int_eq(wk_fold_task_read(doc, &t, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "are required"));
    cJSON_Delete(doc);
    doc = cJSON_Parse("{\"trial\": 1, \"fold\": 3, \"folds\": 3, \"params\": {},"
                      " \"data_sha256\": \"x\", \"label\": \"y\"}");
    ck_assert_int_eq(wk_fold_task_read(doc, &t, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "sweep task: fold 3 of 3 folds");
    cJSON_Delete(doc);
    doc = cJSON_Parse("{\"trial\": 1, \"fold\": 1, \"folds\": 3, \"params\": {\"n_trees\": 3},"
                      " \"data_sha256\": \"x\", \"label\": \"y\"}");
    ck_assert_int_eq(wk_fold_task_read(doc, &t, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "n_trees"));
    cJSON_Delete(doc);
}
END_TEST

START_TEST(test_mlp_task_read_names_bad_keys_and_reads_the_trial)
{
    wk_mlp_task t;
    char err[512];
    cJSON *doc = cJSON_Parse("{\"model\": \"mlp\", \"unit\": 0}");
    ck_assert(wk_mlp_trial_is(doc));
    ck_assert_int_eq(wk_mlp_task_read(doc, &t, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "mlp task: trial, unit, params, train_images, train_labels and "
                          "validation are required");
    cJSON_Delete(doc);
    doc = cJSON_Parse("{\"model\": \"mlp\", \"trial\": 2, \"unit\": 1, \"epochs\": 3,"
                      " \"params\": {\"hidden\": [8], \"lr\": -1}, \"train_images\": \"a\","
                      " \"train_labels\": \"b\", \"validation\": 0.1}");
    ck_assert_int_eq(wk_mlp_task_read(doc, &t, err, sizeof err), CN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "mlp task: params"));
    ck_assert_ptr_nonnull(strstr(err, "lr"));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(doc, "params"), "lr", cJSON_CreateNumber(0.1));
    ck_assert_int_eq(wk_mlp_task_read(doc, &t, err, sizeof err), CN_OK);
    ck_assert_uint_eq(t.trial, 2);
    ck_assert_uint_eq(t.unit, 1);
    ck_assert_uint_eq(t.epochs, 3);
    ck_assert_int_eq(t.hp.n_hidden, 1);
    ck_assert_int_eq(t.hp.hidden[0], 8);
    ck_assert_str_eq(t.train_labels, "b");
    cJSON_Delete(doc);
    doc = cJSON_Parse("{\"trial\": 1, \"fold\": 0}");
    ck_assert(!wk_mlp_trial_is(doc)); // a forest fold
    cJSON_Delete(doc);
}
END_TEST

START_TEST(test_train_task_read_refuses_an_unknown_partition)
{
    wk_train_task t;
    char err[512];
    cJSON *doc = cJSON_Parse(
        "{\"job_id\": \"j\", \"rank\": 0, \"workers\": 1, \"shard_urls\": [\"tcp://x:1\"],"
        " \"n_params\": 10, \"widths\": [2, 3], \"train_images\": \"a\", \"train_labels\": \"b\","
        " \"batch\": 4, \"epochs\": 1, \"steps_per_epoch\": 2, \"partition\": \"dirichet\"}");
    ck_assert_int_eq(wk_train_task_read(doc, &t, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err,
                     "training task: key \"partition\": \"dirichet\" is not one of "
                     "iid|dirichlet|klabels|quantity|contiguous (did you mean \"dirichlet\"?)");
    cJSON_ReplaceItemInObject(doc, "partition", cJSON_CreateString("klabels"));
    ck_assert_int_eq(wk_train_task_read(doc, &t, err, sizeof err), CN_OK);
    ck_assert_int_eq(t.partition, PART_KLABELS);
    ck_assert_int_eq(t.n_widths, 2);
    ck_assert_str_eq(t.shard_urls[0], "tcp://x:1");
    cJSON_ReplaceItemInObject(doc, "rank", cJSON_CreateNumber(1));
    ck_assert_int_eq(wk_train_task_read(doc, &t, err, sizeof err), CN_EINVAL);
    ck_assert_str_eq(err, "training task: rank 1 of 1 workers");
    cJSON_Delete(doc);
}
END_TEST

START_TEST(test_fold_run_scores_a_fold)
{
    char path[400], err[512];
    snprintf(path, sizeof path, "%s/d.csv", dir);
    write_csv(path, 120);
    csv_options o = csv_options_default();
    o.label_mode = CSV_LABEL_NAME;
    o.label_name = "Cover_Type";
    o.drop_columns = "Id";
    ds_dataset *d = NULL;
    ck_assert_int_eq(ds_load_csv(path, &o, &d, err, sizeof err), CN_OK);
    cJSON *doc = cJSON_Parse("{\"trial\": 0, \"fold\": 1, \"folds\": 3, \"params\": "
                             "{\"n_estimators\": 5}, \"data_sha256\": \"x\", \"label\": \"y\"}");
    wk_fold_task t;
    ck_assert_int_eq(wk_fold_task_read(doc, &t, err, sizeof err), CN_OK);
    cJSON *res = NULL;
    ck_assert_int_eq(wk_fold_run(&t, d, 1, &res, err, sizeof err), CN_OK);
    ck_assert_double_gt(cJSON_GetObjectItem(res, "accuracy")->valuedouble, 0.9);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res, "confusion")), 4);
    ck_assert_double_eq(cJSON_GetObjectItem(res, "n_test")->valuedouble, 40);
    ck_assert_double_eq(cJSON_GetObjectItem(res, "trees")->valuedouble, 5);
    cJSON_Delete(res);
    cJSON_Delete(doc);
    // ASHA's tree budget: the task's trees replace the trial's n_estimators.
    doc = cJSON_Parse("{\"trial\": 0, \"fold\": 1, \"folds\": 3, \"trees\": 2, \"params\": "
                      "{\"n_estimators\": 5}, \"data_sha256\": \"x\", \"label\": \"y\"}");
    ck_assert_int_eq(wk_fold_task_read(doc, &t, err, sizeof err), CN_OK);
    ck_assert_int_eq(t.params.n_estimators, 2);
    ck_assert_int_eq(wk_fold_run(&t, d, 1, &res, err, sizeof err), CN_OK);
    ck_assert_double_eq(cJSON_GetObjectItem(res, "trees")->valuedouble, 2);
    cJSON_Delete(res);
    cJSON_Delete(doc);
    ds_dataset_free(d);
}
END_TEST

// ------------------------------------------------------------ data cache

static rpc_server *server;
static rpc_client *client;
static sched_data *store;
static char url[64];
static int serial;

static void open_store(void)
{
    char err[512], state[400];
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(url, sizeof url, "inproc://worker-test-%d-%d", (int)getpid(), serial++);
    rpc_server_opts so = {.url = url};
    ck_assert_int_eq(rpc_server_open(&server, &so, err, sizeof err), CN_OK);
    ck_assert_int_eq(sched_data_new(&store, server, state, err, sizeof err), CN_OK);
}

static void start_serving(void)
{
    char err[512];
    ck_assert_int_eq(rpc_server_start(server, err, sizeof err), CN_OK);
    rpc_client_opts co = {.url = url};
    ck_assert_int_eq(rpc_client_open(&client, &co, err, sizeof err), CN_OK);
}

static void close_store(void)
{
    rpc_client_close(client);
    rpc_server_close(server, 1000);
    sched_data_free(store);
    client = NULL;
    server = NULL;
    store = NULL;
}

START_TEST(test_data_cache_refuses_a_directory_others_can_write)
{
    char cache[400], err[512];
    snprintf(cache, sizeof cache, "%s/open", dir);
    ck_assert_int_eq(mkdir(cache, 0777), 0);
    ck_assert_int_eq(chmod(cache, 0777), 0);
    wk_data *d = NULL;
    ck_assert_int_eq(wk_data_open(&d, cache, NULL, NULL, err, sizeof err), CN_EAUTH);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(err, "writable by others"));
    ck_assert_ptr_nonnull(strstr(err, "chmod 700"));
}
END_TEST

START_TEST(test_data_cache_fetches_verifies_and_refetches_a_corrupt_copy)
{
    open_store();
    start_serving();
    char csv[400], cache[400], err[512], path[1200];
    snprintf(csv, sizeof csv, "%s/d.csv", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    write_csv(csv, 60);
    sched_data_ref ref;
    bool sent;
    ck_assert_int_eq(sched_data_upload(client, "data", csv, 0, &ref, &sent, err, sizeof err),
                     CN_OK);
    ck_assert(sent);
    ck_assert_int_eq(sched_data_upload(client, "data", csv, 0, &ref, &sent, err, sizeof err),
                     CN_OK);
    ck_assert(!sent); // held already: not sent twice
    wk_data *d;
    ck_assert_int_eq(wk_data_open(&d, cache, NULL, client, err, sizeof err), CN_OK);
    ck_assert_int_eq(wk_data_file(d, "../etc/passwd", path, sizeof path, NULL, err, sizeof err),
                     CN_EINVAL);
    char missing[65];
    snprintf(missing, sizeof missing, "%064d", 7);
    ck_assert_int_eq(wk_data_file(d, missing, path, sizeof path, NULL, err, sizeof err),
                     CN_ENOTFOUND);
    ck_assert_int_eq(wk_data_file(d, ref.sha256, path, sizeof path, NULL, err, sizeof err), CN_OK);
    wk_data_close(d);
    // Another process finds a corrupted cached copy: it fetches it again.
    ts_write_file(path, "not the data");
    ck_assert_int_eq(wk_data_open(&d, cache, NULL, client, err, sizeof err), CN_OK);
    ck_assert_int_eq(wk_data_file(d, ref.sha256, path, sizeof path, NULL, err, sizeof err), CN_OK);
    uint8_t *bytes;
    size_t len;
    ck_assert_int_eq(cn_file_read_all(path, 0, &bytes, &len, err, sizeof err), CN_OK);
    char h[65];
    cn_file_sha256_hex(bytes, len, h);
    free(bytes);
    ck_assert_str_eq(h, ref.sha256);
    const ds_dataset *ds;
    ck_assert_int_eq(wk_data_csv(d, ref.sha256, "Cover_Type", "Id", &ds, NULL, err, sizeof err),
                     CN_OK);
    ck_assert_uint_eq(ds->n_rows, 60);
    ck_assert_uint_eq(ds->n_features, 2);
    wk_data_release(d, ds);
    ck_assert_int_eq(wk_data_local(d, 0, &ds, err, sizeof err), CN_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "--data DIR"));
    wk_data_close(d);
    close_store();
}
END_TEST

// ------------------------------------------------------------ executor

#define NODE 0x77

static sched_members *members;
static sched_jobs *kernel;

START_TEST(test_executor_runs_a_sweep_within_its_slots)
{
    char err[512], state[400], csv[400], cache[400];
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(csv, sizeof csv, "%s/d.csv", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    write_csv(csv, 90);
    ck_assert_int_eq(sched_members_new(&members, 50, 2000), CN_OK);
    uint32_t rank;
    ck_assert_int_eq(sched_members_register(members, NODE, CLUSTER_ROLE_WORKER, "", "w", 2, &rank),
                     CN_OK);
    open_store();
    static const sched_kind *const kinds[] = {&sched_sweep_kind};
    sched_jobs_opts jo = {.state_dir = state, .members = members};
    ck_assert_int_eq(sched_jobs_new(&kernel, server, &jo, kinds, 1, err, sizeof err), CN_OK);
    ck_assert_int_eq(sched_jobs_start(kernel, err, sizeof err), CN_OK);
    start_serving();
    wk_exec_opts xo = {.scheduler_url = url,
                       .node_id = NODE,
                       .name = "w",
                       .slots = 2,
                       .threads = 2,
                       .cache_dir = cache,
                       .poll_ms = 200};
    wk_exec *x;
    ck_assert_int_eq(wk_exec_start(&x, &xo, err, sizeof err), CN_OK);
    sched_data_ref ref;
    ck_assert_int_eq(sched_data_upload(client, "data", csv, 0, &ref, NULL, err, sizeof err), CN_OK);
    const char *spec = "{\"name\": \"exec-test\", \"data\": {\"path\": \"d.csv\"},"
                       " \"cv\": {\"folds\": 3}, \"fixed\": {\"n_estimators\": 4},"
                       " \"space\": {\"max_features\": {\"grid\": [1, 2]}},"
                       " \"search\": {\"algorithm\": \"grid\"}}";
    sched_submit sub = {
        .kind = "sweep", .spec_json = spec, .spec_name = "s.json", .data = &ref, .n_data = 1};
    sched_submitted out;
    char detail[512];
    ck_assert_int_eq(sched_jobs_submit(client, &sub, &out, detail, sizeof detail), RPC_OK);
    cJSON_Delete(out.status);
    // The id is name-hash; follow it under that name by listing.
    sched_job_info *v;
    size_t n;
    ck_assert_int_eq(sched_jobs_list(client, "sweep", &v, &n, detail, sizeof detail), RPC_OK);
    ck_assert_uint_eq(n, 1);
    char id[SCHED_ID_LEN];
    snprintf(id, sizeof id, "%s", v[0].job_id);
    free(v);
    int max_leased = 0;
    bool finished = false;
    for (int i = 0; i < 3000 && !finished; i++) {
        char st_s[16];
        cJSON *st = NULL;
        ck_assert_int_eq(sched_jobs_status(client, id, st_s, &st, detail, sizeof detail), RPC_OK);
        int leased =
            (int)cJSON_GetObjectItem(cJSON_GetObjectItem(st, "items"), "leased")->valuedouble;
        max_leased = leased > max_leased ? leased : max_leased;
        finished = strcmp(st_s, "running") != 0;
        if (finished) {
            ck_assert_str_eq(st_s, "done");
            ck_assert_double_eq(cJSON_GetObjectItem(st, "units_done")->valuedouble, 9);
        }
        cJSON_Delete(st);
        sched_members_heartbeat(members, NODE, "");
        cn_sleep_ms(5);
    }
    ck_assert(finished);
    ck_assert_int_le(max_leased, 2); // two slots: never more items at once
    wk_exec_stop(x);
    sched_jobs_stop(kernel);
    close_store();
    sched_jobs_free(kernel);
    sched_members_free(members);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("worker");
    TCase *t = tcase_create("executor");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_fold_task_read_names_unknown_and_missing_keys);
    tcase_add_test(t, test_train_task_read_refuses_an_unknown_partition);
    tcase_add_test(t, test_fold_run_scores_a_fold);
    tcase_add_test(t, test_data_cache_refuses_a_directory_others_can_write);
    tcase_add_test(t, test_data_cache_fetches_verifies_and_refetches_a_corrupt_copy);
    tcase_add_test(t, test_executor_runs_a_sweep_within_its_slots);
    tcase_add_test(t, test_mlp_task_read_names_bad_keys_and_reads_the_trial);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
