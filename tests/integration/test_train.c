// test_train.c: data-parallel training with real processes on loopback: a
// scheduler, 2 ps shards and 2 workers train a small MLP on a few thousand
// Fashion-MNIST rows and the loss falls; and a shard SIGKILLed mid-job is
// restarted, restores its checkpoint and the job finishes.
#include <check.h>
#include <cjson/cJSON.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/cluster_client.h"
#include "tests/support/support.h"

static char dir[256], url[64], log_path[512], state[300], job_path[300];
static char ps_url[2][64], ps_ckpt[2][300];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    snprintf(log_path, sizeof log_path, "%s/cluster.log", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(job_path, sizeof job_path, "%s/job.json", dir);
    int ports[3];
    ports[0] = atoi(strrchr(url, ':') + 1);
    for (int k = 1; k < 3; k++) // three distinct ports
        do
            ports[k] = ts_free_port();
        while (ports[k] == ports[0] || (k == 2 && ports[2] == ports[1]));
    for (int k = 0; k < 2; k++) {
        snprintf(ps_url[k], sizeof ps_url[k], "tcp://127.0.0.1:%d", ports[k + 1]);
        snprintf(ps_ckpt[k], sizeof ps_ckpt[k], "%s/ps-%d", dir, k);
    }
    setenv("CANOPY_TOKEN", "train-secret", 1);
}

static void teardown(void)
{
    ts_reap_all();
    ts_rmtree(dir);
}

static void write_job(int epochs, int checkpoint_every)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"name\": \"itest\", \"train_rows\": 3000, \"test_rows\": 1000, \"hidden\": [32],"
             " \"optimizer\": \"momentum\", \"lr\": 0.05, \"batch\": 32, \"epochs\": %d,"
             " \"consistency\": \"bsp\", \"shards\": 2, \"workers\": 2, \"seed\": 4,"
             " \"eval_every_s\": 0.5, \"checkpoint_every\": %d, \"report_every_s\": 0.2}",
             epochs, checkpoint_every);
    ts_write_file(job_path, text);
}

static pid_t start_ps(int k)
{
    char name[32];
    snprintf(name, sizeof name, "ps-%d", k);
    char *argv[] = {(char *)ts_canopy_bin(),
                    "ps",
                    "--scheduler",
                    url,
                    "--listen",
                    ps_url[k],
                    "--name",
                    name,
                    "--checkpoint-dir",
                    ps_ckpt[k],
                    NULL};
    return ts_spawn(argv, log_path);
}

static pid_t workers[3];

static pid_t start_worker(int i)
{
    char name[32];
    snprintf(name, sizeof name, "worker-%d", i);
    char *wargv[] = {(char *)ts_canopy_bin(),
                     "worker",
                     "--scheduler",
                     url,
                     "--name",
                     name,
                     "--threads",
                     "1",
                     NULL};
    return ts_spawn(wargv, log_path);
}

static void start_cluster(pid_t *ps)
{
    char *sargv[] = {
        (char *)ts_canopy_bin(), "scheduler", "--listen",        url,    "--state-dir", state,
        "--heartbeat-ms",        "100",       "--dead-after-ms", "1500", NULL};
    ck_assert_int_gt(ts_spawn(sargv, log_path), 0);
    // Shard 0 registers first so it gets the lowest rank, then shard 1.
    for (int k = 0; k < 2; k++) {
        ps[k] = start_ps(k);
        ck_assert_int_gt(ps[k], 0);
    }
    for (int i = 0; i < 2; i++) {
        workers[i] = start_worker(i);
        ck_assert_int_gt(workers[i], 0);
    }
}

static pid_t start_train(const char *out)
{
    char *argv[] = {
        (char *)ts_canopy_bin(), "train", job_path, "--scheduler", url, "--poll-ms", "100", NULL};
    return ts_spawn(argv, out);
}

// cluster_ready: 2 ps and 2 workers registered and alive.
static bool cluster_ready(void *arg)
{
    rpc_client *c = arg;
    cluster_node *nodes;
    size_t n;
    if (cluster_status(c, &nodes, &n, NULL, NULL, 0) != RPC_OK)
        return false;
    int ps = 0, wk = 0;
    for (size_t i = 0; i < n; i++) {
        ps += nodes[i].role == CLUSTER_ROLE_PS && nodes[i].state == CLUSTER_NODE_ALIVE;
        wk += nodes[i].role == CLUSTER_ROLE_WORKER && nodes[i].state == CLUSTER_NODE_ALIVE;
    }
    free(nodes);
    return ps >= 2 && wk >= 2;
}

static void wait_cluster(void)
{
    rpc_client *c;
    rpc_client_opts o = {.url = url, .token = "train-secret"};
    ck_assert_int_eq(rpc_client_open(&c, &o, NULL, 0), CN_OK);
    ck_assert_msg(ts_wait_until(cluster_ready, c, 20000), "nodes did not register (see %s)",
                  log_path);
    rpc_client_close(c);
}

// job_dir finds the one job's results directory.
static int job_dir(char *out, size_t n)
{
    char train[400];
    snprintf(train, sizeof train, "%s/train", state);
    return ts_only_entry(train, out, n);
}

typedef struct results {
    double first_loss, last_loss; // rank 0's first and last reported training loss
    double first_acc, final_acc;
    int evals, restarts, restored, summaries;
    double summary_restarts;
} results;

static void read_results(results *r)
{
    memset(r, 0, sizeof *r);
    r->first_loss = r->first_acc = -1;
    char jd[1000], path[1200];
    ck_assert(job_dir(jd, sizeof jd));
    snprintf(path, sizeof path, "%s/results.jsonl", jd);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_ptr_nonnull(o); // every record is whole JSON
        const char *type = cJSON_GetObjectItem(o, "type")->valuestring;
        if (strcmp(type, "worker") == 0 && cJSON_GetObjectItem(o, "rank")->valueint == 0 &&
            cJSON_GetObjectItem(o, "loss")->valuedouble > 0) {
            double l = cJSON_GetObjectItem(o, "loss")->valuedouble;
            if (r->first_loss < 0)
                r->first_loss = l;
            r->last_loss = l;
        } else if (strcmp(type, "eval") == 0) {
            double a = cJSON_GetObjectItem(o, "accuracy")->valuedouble;
            if (r->first_acc < 0)
                r->first_acc = a;
            r->evals++;
        } else if (strcmp(type, "shard_restart") == 0) {
            r->restarts++;
            r->restored += cJSON_IsTrue(cJSON_GetObjectItem(o, "restored"));
        } else if (strcmp(type, "summary") == 0) {
            r->summaries++;
            r->final_acc = cJSON_GetObjectItem(o, "test_accuracy")->valuedouble;
            r->summary_restarts = cJSON_GetObjectItem(o, "shard_restarts")->valuedouble;
        }
        cJSON_Delete(o);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/model.cnm", jd);
    ck_assert_int_eq(access(path, R_OK), 0);
}

START_TEST(test_train_two_shards_two_workers_loss_falls)
{
    pid_t ps[2];
    write_job(4, 0);
    start_cluster(ps);
    wait_cluster();
    char out[400];
    snprintf(out, sizeof out, "%s/train.out", dir);
    pid_t t = start_train(out);
    int status;
    ck_assert(ts_wait_exit(t, 50000, &status));
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert(ts_file_contains(out, "done: test accuracy"));
    results r;
    read_results(&r);
    ck_assert_int_eq(r.summaries, 1);
    ck_assert_double_gt(r.first_loss, 0);
    ck_assert_double_lt(r.last_loss, r.first_loss * 0.8); // the training loss falls
    ck_assert_double_gt(r.final_acc, 0.65);               // 3000 rows, 4 epochs, 784-32-10
    ck_assert_int_eq(r.restarts, 0);
}
END_TEST

static bool ckpt_found;

static int ckpt_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (type == FTW_F && strstr(base, ".ckpt") && !strstr(base, ".tmp"))
        ckpt_found = true;
    return 0;
}

// ckpt_exists: shard 1 has written a checkpoint (under its checkpoint root,
// in the directory the job names).
static bool ckpt_exists(void *arg)
{
    (void)arg;
    ckpt_found = false;
    nftw(ps_ckpt[1], ckpt_visit, 16, FTW_PHYS);
    return ckpt_found;
}

START_TEST(test_train_shard_killed_restarts_from_checkpoint_and_job_finishes)
{
    pid_t ps[2];
    write_job(30, 10);
    start_cluster(ps);
    wait_cluster();
    char out[400];
    snprintf(out, sizeof out, "%s/train.out", dir);
    pid_t t = start_train(out);
    ck_assert(ts_wait_until(ckpt_exists, NULL, 30000));
    ts_kill(ps[1], SIGKILL);
    int status;
    ck_assert(ts_wait_exit(ps[1], 5000, &status));
    ck_assert(WIFSIGNALED(status));
    ck_assert(ts_wait_exit(t, 300, &status) == false); // the job waits for the shard
    ps[1] = start_ps(1);
    ck_assert_int_gt(ps[1], 0);
    ck_assert(ts_wait_exit(t, 50000, &status));
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    results r;
    read_results(&r);
    ck_assert_int_eq(r.summaries, 1);
    ck_assert_int_ge(r.restarts, 1);
    ck_assert_int_ge(r.restored, 1); // the restarted shard came back from its checkpoint
    ck_assert_double_ge(r.summary_restarts, 1);
    ck_assert_double_gt(r.final_acc, 0.65);
    ck_assert(ts_file_contains(log_path, "restored from"));
}
END_TEST

START_TEST(test_train_worker_killed_its_rank_taken_over_and_job_finishes)
{
    pid_t ps[2];
    write_job(30, 10);
    start_cluster(ps);
    wait_cluster();
    char out[400];
    snprintf(out, sizeof out, "%s/train.out", dir);
    pid_t t = start_train(out);
    ck_assert(ts_wait_until(ckpt_exists, NULL, 30000)); // training is under way
    // A spare joins after both ranks are taken; then a rank holder dies.
    workers[2] = start_worker(2);
    ck_assert_int_gt(workers[2], 0);
    ts_kill(workers[1], SIGKILL);
    int status;
    ck_assert(ts_wait_exit(workers[1], 5000, &status));
    ck_assert(ts_wait_exit(t, 50000, &status));
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    results r;
    read_results(&r);
    ck_assert_int_eq(r.summaries, 1);
    ck_assert_double_gt(r.final_acc, 0.65);
    ck_assert(ts_file_contains(log_path, "stopped heartbeating; its rank is free"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("train");
    TCase *t = tcase_create("cluster");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 90);
    tcase_add_test(t, test_train_two_shards_two_workers_loss_falls);
    tcase_add_test(t, test_train_shard_killed_restarts_from_checkpoint_and_job_finishes);
    tcase_add_test(t, test_train_worker_killed_its_rank_taken_over_and_job_finishes);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
