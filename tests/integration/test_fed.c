// test_fed.c: federated training with real processes on loopback: the
// assignment's layout (one shard, two clients, FedAvg) learns; a deadline
// closes rounds without a slow client, whose update is refused as late; a
// quorum closes rounds without waiting for the slowest; a shard SIGKILLed
// during the job comes back at the right round with the right model; and
// clients train on their own files (`canopy worker --data DIR`).
#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/support.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static char dir[256], url[64], ps_url[64], log_path[512], state[300], job_path[300];
static char out_path[300], ckpt[300];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
    int p0 = ts_free_port(), p1;
    do
        p1 = ts_free_port();
    while (p1 == p0);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", p0);
    snprintf(ps_url, sizeof ps_url, "tcp://127.0.0.1:%d", p1);
    snprintf(log_path, sizeof log_path, "%s/cluster.log", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(job_path, sizeof job_path, "%s/job.json", dir);
    snprintf(out_path, sizeof out_path, "%s/train.out", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    setenv("CANOPY_TOKEN", "fed-secret", 1);
}

static void teardown(void)
{
    ts_reap_all();
    ts_rmtree(dir);
}

static void write_job(int clients, int rounds, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"name\": \"fedtest\", \"mode\": \"federated\", \"train_rows\": 4000,"
             " \"test_rows\": 1000, \"hidden\": [64, 32], \"strategy\": \"fedavg\","
             " \"clients\": %d, \"workers\": %d, \"rounds\": %d, \"local_epochs\": 1,"
             " \"local_batch\": 32, \"local_lr\": 0.05, \"seed\": 3, \"report_every_s\": 0.2%s}",
             clients, clients, rounds, extra);
    ts_write_file(job_path, text);
}

static pid_t start_scheduler(void)
{
    char *argv[] = {(char *)ts_canopy_bin(), "scheduler", "--listen", url, "--state-dir", state,
                    "--heartbeat-ms", "100", "--dead-after-ms", "1500", NULL};
    return ts_spawn(argv, log_path);
}

static pid_t start_ps(void)
{
    char *argv[] = {(char *)ts_canopy_bin(), "ps", "--scheduler", url, "--listen", ps_url,
                    "--name", "ps-0", "--checkpoint-dir", ckpt, NULL};
    return ts_spawn(argv, log_path);
}

static pid_t start_worker(int i, const char *data)
{
    char name[32], cache[400];
    snprintf(name, sizeof name, "client-%d", i);
    snprintf(cache, sizeof cache, "%s/cache-%d", dir, i);
    char *argv[] = {(char *)ts_canopy_bin(), "worker", "--scheduler", url, "--name", name,
                    "--threads", "1", "--cache-dir", cache, data ? "--data" : NULL,
                    (char *)data, NULL};
    return ts_spawn(argv, log_path);
}

static pid_t start_train(void)
{
    char *argv[] = {(char *)ts_canopy_bin(), "train", job_path, "--scheduler", url, "--poll-ms",
                    "100", NULL};
    return ts_spawn(argv, out_path);
}

static void cluster(int workers)
{
    ck_assert_int_gt(start_scheduler(), 0);
    ck_assert_int_gt(start_ps(), 0);
    for (int i = 0; i < workers; i++)
        ck_assert_int_gt(start_worker(i, NULL), 0);
}

static void wait_done(pid_t t)
{
    int st;
    ck_assert_msg(ts_wait_exit(t, 120000, &st), "the job did not finish (%s)", log_path);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "canopy train failed (%s, %s)", out_path,
                  log_path);
}

static bool results_path(char *out, size_t n)
{
    char train[400], one[800];
    snprintf(train, sizeof train, "%s/train", state);
    if (!ts_only_entry(train, one, sizeof one))
        return false;
    snprintf(out, n, "%s/results.jsonl", one);
    return true;
}

typedef struct rounds {
    int n, finished_min, late_max, late_sum, dup, restarts, clients_records, client_records;
    double acc[64], last_acc;
    bool seen[64];
} rounds;

static void read_rounds(rounds *r)
{
    memset(r, 0, sizeof *r);
    r->finished_min = 1 << 30;
    char path[1000];
    ck_assert(results_path(path, sizeof path));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_msg(o != NULL, "a record is not whole JSON");
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
        if (strcmp(type, "round") == 0) {
            int k = (int)cJSON_GetObjectItem(o, "round")->valuedouble;
            ck_assert_int_lt(k, 64);
            r->dup += r->seen[k];
            r->seen[k] = true;
            r->acc[k] = cJSON_GetObjectItem(o, "accuracy")->valuedouble;
            r->last_acc = r->acc[k];
            int fin = (int)cJSON_GetObjectItem(o, "finished")->valuedouble;
            int late = (int)cJSON_GetObjectItem(o, "late")->valuedouble;
            r->finished_min = fin < r->finished_min ? fin : r->finished_min;
            r->late_max = late > r->late_max ? late : r->late_max;
            r->late_sum += late;
            r->n++;
        }
        r->restarts += strcmp(type, "shard_restart") == 0;
        r->clients_records += strcmp(type, "clients") == 0;
        r->client_records += strcmp(type, "client") == 0;
        cJSON_Delete(o);
    }
    fclose(f);
}

static bool round_logged(void *arg)
{
    char path[1000], needle[64];
    snprintf(needle, sizeof needle, "\"type\":\"round\",\"round\":%d,", *(int *)arg);
    return results_path(path, sizeof path) && ts_file_contains(path, needle);
}

START_TEST(test_two_clients_and_one_shard_learn_with_fedavg)
{
    write_job(2, 3, "");
    cluster(2);
    wait_done(start_train());
    ck_assert(ts_file_contains(out_path, "round 3/3"));
    ck_assert(ts_file_contains(out_path, "done: test accuracy"));
    rounds r;
    read_rounds(&r);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.dup, 0);
    ck_assert_int_eq(r.finished_min, 2); // both clients in every round
    ck_assert_int_eq(r.clients_records, 1); // the partition recorded once
    ck_assert_double_gt(r.last_acc, 0.7);
    ck_assert_double_gt(r.acc[2], r.acc[0] - 0.02);
}
END_TEST

// own_data gives worker i its own copy of the training files, so client i
// is worker i (a slow client is a slow machine).
static void own_data(int workers)
{
    for (int i = 0; i < workers; i++) {
        char data[400], cmd[1200];
        snprintf(data, sizeof data, "%s/own-%d", dir, i);
        mkdir(data, 0755);
        snprintf(cmd, sizeof cmd, "cp " FMNIST "train-*.gz %s/", data);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_int_gt(start_worker(i, data), 0);
    }
}

START_TEST(test_a_deadline_closes_rounds_without_the_slow_client)
{
    write_job(2, 3,
              ", \"client_data\": \"local\", \"slow_clients\": [1], \"delay_s\": 3,"
              " \"round_deadline_s\": 1.5");
    ck_assert_int_gt(start_scheduler(), 0);
    ck_assert_int_gt(start_ps(), 0);
    own_data(2);
    wait_done(start_train());
    rounds r;
    read_rounds(&r);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_ge(r.late_sum, 3); // the slow client misses every round
    ck_assert_int_ge(r.finished_min, 1);
    ck_assert(ts_file_contains(log_path, "closed before the update arrived") ||
              ts_file_contains(log_path, "late"));
}
END_TEST

START_TEST(test_a_quorum_closes_rounds_before_the_slowest)
{
    write_job(3, 2,
              ", \"client_data\": \"local\", \"slow_clients\": [2], \"delay_s\": 5,"
              " \"min_updates\": 2");
    ck_assert_int_gt(start_scheduler(), 0);
    ck_assert_int_gt(start_ps(), 0);
    own_data(3);
    wait_done(start_train());
    rounds r;
    read_rounds(&r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.finished_min, 2);
    ck_assert_int_ge(r.late_max, 1);
}
END_TEST

START_TEST(test_a_killed_shard_resumes_the_right_round_with_the_right_model)
{
    write_job(2, 8, "");
    ck_assert_int_gt(start_scheduler(), 0);
    pid_t ps = start_ps();
    ck_assert_int_gt(ps, 0);
    ck_assert_int_gt(start_worker(0, NULL), 0);
    ck_assert_int_gt(start_worker(1, NULL), 0);
    pid_t t = start_train();
    int two = 2;
    ck_assert_msg(ts_wait_until(round_logged, &two, 60000), "round 2 never closed (%s)",
                  log_path);
    ts_kill(ps, SIGKILL);
    int st;
    ck_assert(ts_wait_exit(ps, 5000, &st));
    ck_assert_int_gt(start_ps(), 0); // same address, same checkpoints
    wait_done(t);
    rounds r;
    read_rounds(&r);
    ck_assert_int_eq(r.n, 8);
    ck_assert_int_eq(r.dup, 0); // every round recorded once
    for (int k = 0; k < 8; k++)
        ck_assert(r.seen[k]);
    ck_assert_int_ge(r.restarts, 1);
    // The restored model is the one trained so far, not a fresh one.
    for (int k = 3; k < 8; k++)
        ck_assert_double_gt(r.acc[k], r.acc[2] - 0.1);
    ck_assert(ts_file_contains(log_path, "restored from"));
}
END_TEST

START_TEST(test_clients_train_on_their_own_files)
{
    write_job(2, 2, ", \"client_data\": \"local\"");
    ck_assert_int_gt(start_scheduler(), 0);
    ck_assert_int_gt(start_ps(), 0);
    own_data(2);
    wait_done(start_train());
    rounds r;
    read_rounds(&r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.client_records, 2); // each client's own labels, recorded once
    ck_assert_double_gt(r.last_acc, 0.6);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fed");
    TCase *t = tcase_create("cluster");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 150);
    tcase_add_test(t, test_two_clients_and_one_shard_learn_with_fedavg);
    tcase_add_test(t, test_a_deadline_closes_rounds_without_the_slow_client);
    tcase_add_test(t, test_a_quorum_closes_rounds_before_the_slowest);
    tcase_add_test(t, test_a_killed_shard_resumes_the_right_round_with_the_right_model);
    tcase_add_test(t, test_clients_train_on_their_own_files);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
