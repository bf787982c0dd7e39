// test_jobs.c: the job kernel with real processes on loopback: a training
// job survives a SIGKILL of the scheduler (restarted on the same state
// directory, the job resumes from the shards and finishes, its log with no
// duplicated record); workers train on data they have no copy of (fetched
// by hash from the scheduler); `canopy cancel` stops a job and records it;
// Ctrl-C on `canopy train` leaves the job running and says how to reattach;
// a synchronous job that cannot get all its workers fails with the reason.
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/support.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static char dir[256], url[64], log_path[512], state[300], job_path[300], ps_url[64];
static char ps_ckpt[300], out_path[300];

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
    snprintf(ps_ckpt, sizeof ps_ckpt, "%s/ps", dir);
    snprintf(out_path, sizeof out_path, "%s/train.out", dir);
    setenv("CANOPY_TOKEN", "jobs-secret", 1);
}

static void teardown(void)
{
    ts_reap_all();
    ts_rmtree(dir);
}

// write_job writes the job file; data_prefix is where its IDX files are.
static void write_job(const char *data_prefix, const char *mode, int workers, int epochs,
                      const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"name\": \"jtest\", \"train_rows\": 3000, \"test_rows\": 1000, \"hidden\": [32],"
             " \"train_images\": \"%strain-images-idx3-ubyte.gz\","
             " \"train_labels\": \"%strain-labels-idx1-ubyte.gz\","
             " \"test_images\": \"%st10k-images-idx3-ubyte.gz\","
             " \"test_labels\": \"%st10k-labels-idx1-ubyte.gz\","
             " \"optimizer\": \"momentum\", \"lr\": 0.05, \"batch\": 32, \"epochs\": %d,"
             " \"consistency\": \"%s\", \"shards\": 1, \"workers\": %d, \"seed\": 4,"
             " \"eval_every_s\": 0.5, \"checkpoint_every\": 10, \"report_every_s\": 0.2%s}",
             data_prefix, data_prefix, data_prefix, data_prefix, epochs, mode, workers, extra);
    ts_write_file(job_path, text);
}

static pid_t start_scheduler(void)
{
    char *argv[] = {
        (char *)ts_canopy_bin(), "scheduler", "--listen",        url,    "--state-dir", state,
        "--heartbeat-ms",        "100",       "--dead-after-ms", "1500", NULL};
    return ts_spawn(argv, log_path);
}

static pid_t start_ps(void)
{
    char *argv[] = {
        (char *)ts_canopy_bin(), "ps",    "--scheduler", url, "--listen", ps_url, "--name", "ps-0",
        "--checkpoint-dir",      ps_ckpt, NULL};
    return ts_spawn(argv, log_path);
}

static pid_t start_worker(int i)
{
    char name[32], cache[400];
    snprintf(name, sizeof name, "worker-%d", i);
    snprintf(cache, sizeof cache, "%s/cache-%d", dir, i);
    char *argv[] = {
        (char *)ts_canopy_bin(), "worker", "--scheduler", url, "--name", name, "--threads", "1",
        "--cache-dir",           cache,    NULL};
    return ts_spawn(argv, log_path);
}

static pid_t run_canopy(const char *cmd, const char *arg1, const char *arg2, const char *out)
{
    char *argv[] = {
        (char *)ts_canopy_bin(), (char *)cmd, "--scheduler", url, (char *)arg1, (char *)arg2, NULL};
    return ts_spawn(argv, out);
}

static pid_t start_train(const char *flag)
{
    char *argv[] = {(char *)ts_canopy_bin(),
                    "train",
                    job_path,
                    "--scheduler",
                    url,
                    "--poll-ms",
                    "100",
                    (char *)flag,
                    NULL};
    return ts_spawn(argv, out_path);
}

static int wait_ok(pid_t p, int ms)
{
    int st;
    ck_assert_msg(ts_wait_exit(p, ms, &st), "a canopy command did not finish (see %s)", log_path);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

// job_dir finds the one training job's results directory.
static bool job_dir(char *out, size_t n)
{
    char train[400];
    snprintf(train, sizeof train, "%s/train", state);
    return ts_only_entry(train, out, n);
}

static bool log_has(const char *needle)
{
    char jd[1000], path[1100];
    if (!job_dir(jd, sizeof jd))
        return false;
    snprintf(path, sizeof path, "%s/results.jsonl", jd);
    return ts_file_contains(path, needle);
}

static bool training_under_way(void *arg)
{
    (void)arg;
    return log_has("\"type\":\"worker\"");
}

static bool configured(void *arg)
{
    (void)arg;
    return log_has("\"type\":\"configured\"");
}

typedef struct tally {
    int records, configured, summaries, cancelled, evals;
    bool evals_in_order;
    double final_acc;
} tally;

// count_records reads the results log; every line must be whole JSON.
static void count_records(tally *t)
{
    memset(t, 0, sizeof *t);
    t->evals_in_order = true;
    char jd[1000], path[1100];
    ck_assert(job_dir(jd, sizeof jd));
    snprintf(path, sizeof path, "%s/results.jsonl", jd);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[16384];
    double last_t = -1;
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_msg(o != NULL, "%s: a record is not whole JSON: %s", path, line);
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
        ck_assert_ptr_nonnull(type);
        t->records++;
        t->configured += strcmp(type, "configured") == 0;
        t->cancelled += strcmp(type, "cancelled") == 0;
        if (strcmp(type, "eval") == 0) {
            double tt = cJSON_GetObjectItem(o, "t")->valuedouble;
            t->evals_in_order &= tt >= last_t;
            last_t = tt;
            t->evals++;
        }
        if (strcmp(type, "summary") == 0) {
            t->summaries++;
            t->final_acc = cJSON_GetObjectItem(o, "test_accuracy")->valuedouble;
        }
        cJSON_Delete(o);
    }
    fclose(f);
}

static void job_json_state(char *out, size_t n)
{
    char jd[1000], path[1100];
    ck_assert(job_dir(jd, sizeof jd));
    snprintf(path, sizeof path, "%s/job.json", jd);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char text[8192];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    cJSON *o = cJSON_Parse(text);
    ck_assert_ptr_nonnull(o);
    snprintf(out, n, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "state")));
    cJSON_Delete(o);
}

// job_id_from reads "job ID submitted" from a `canopy train` output.
static void job_id_from(const char *path, char *id, size_t n)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    id[0] = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "job %159s submitted", id) == 1)
            break;
    fclose(f);
    ck_assert_msg(id[0], "no job id in %s", path);
    (void)n;
}

START_TEST(test_training_survives_a_killed_scheduler_and_finishes_once)
{
    write_job(FMNIST, "bsp", 2, 40, "");
    pid_t sched = start_scheduler();
    ck_assert_int_gt(sched, 0);
    ck_assert_int_gt(start_ps(), 0);
    ck_assert_int_gt(start_worker(0), 0);
    ck_assert_int_gt(start_worker(1), 0);
    pid_t t = start_train(NULL);
    ck_assert_msg(ts_wait_until(training_under_way, NULL, 40000), "training did not start (%s)",
                  log_path);
    ts_kill(sched, SIGKILL);
    int st;
    ck_assert(ts_wait_exit(sched, 5000, &st));
    ts_kill(t, SIGKILL);
    ck_assert(ts_wait_exit(t, 5000, &st));
    char jd[1000], jd_path[1100];
    ck_assert(job_dir(jd, sizeof jd));
    ck_assert(ts_file_contains(strcat(strcpy(jd_path, jd), "/job.json"), "\"running\""));
    ck_assert_int_gt(start_scheduler(), 0); // same state directory
    t = start_train("--resume");
    ck_assert_int_eq(wait_ok(t, 90000), 0);
    ck_assert(ts_file_contains(out_path, "reattached"));
    ck_assert(ts_file_contains(out_path, "done: test accuracy"));
    ck_assert(ts_file_contains(log_path, "resumes"));
    tally r;
    count_records(&r);
    ck_assert_int_eq(r.summaries, 1);
    ck_assert_int_eq(r.configured, 1); // the shard kept the job: not configured twice
    ck_assert(r.evals_in_order);
    ck_assert_double_gt(r.final_acc, 0.65);
    char s[32];
    job_json_state(s, sizeof s);
    ck_assert_str_eq(s, "done");
}
END_TEST

START_TEST(test_workers_train_on_data_they_have_no_copy_of)
{
    // The job's IDX files exist only beside the job file, and only until the
    // scheduler holds them; the workers start after they are gone.
    char data[400], cmd[1200];
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0755);
    snprintf(cmd, sizeof cmd, "cp " FMNIST "*.gz %s/", data);
    ck_assert_int_eq(system(cmd), 0);
    // BSP, so the accuracy (which shows the fetched data are right) does not
    // depend on how the two workers' steps interleave: with ASP it spread
    // from 0.32 to 0.79 over runs of the same job.
    write_job("data/", "bsp", 2, 3, "");
    ck_assert_int_gt(start_scheduler(), 0);
    ck_assert_int_gt(start_ps(), 0);
    pid_t t = start_train(NULL);
    ck_assert_msg(ts_wait_until(configured, NULL, 40000), "the job was not configured (%s)",
                  log_path);
    snprintf(cmd, sizeof cmd, "rm -rf %s", data);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_gt(start_worker(0), 0);
    ck_assert_int_gt(start_worker(1), 0);
    ck_assert_int_eq(wait_ok(t, 90000), 0);
    ck_assert(ts_file_contains(log_path, "fetching data set"));
    tally r;
    count_records(&r);
    ck_assert_int_eq(r.summaries, 1);
    ck_assert_double_gt(r.final_acc, 0.6);
}
END_TEST

START_TEST(test_cancel_stops_a_job_and_records_it)
{
    write_job(FMNIST, "asp", 2, 1000, "");
    ck_assert_int_gt(start_scheduler(), 0);
    ck_assert_int_gt(start_ps(), 0);
    ck_assert_int_gt(start_worker(0), 0);
    ck_assert_int_gt(start_worker(1), 0);
    pid_t t = start_train(NULL);
    ck_assert(ts_wait_until(training_under_way, NULL, 40000));
    char id[160], out[400];
    job_id_from(out_path, id, sizeof id);
    snprintf(out, sizeof out, "%s/cancel.out", dir);
    ck_assert_int_eq(wait_ok(run_canopy("cancel", id, "--reason=enough", out), 20000), 0);
    ck_assert(ts_file_contains(out, "cancelled"));
    ck_assert_int_eq(wait_ok(t, 20000), 1); // the follower sees the job end
    ck_assert(ts_file_contains(out_path, "cancelled"));
    tally r;
    count_records(&r);
    ck_assert_int_eq(r.cancelled, 1);
    ck_assert_int_eq(r.summaries, 0);
    char s[32];
    job_json_state(s, sizeof s);
    ck_assert_str_eq(s, "cancelled");
    // Cancelling again is refused: the job has ended.
    ck_assert_int_eq(wait_ok(run_canopy("cancel", id, NULL, out), 20000), 1);
    ck_assert(ts_file_contains(out, "already ended"));
    // `canopy jobs` lists it with its state.
    snprintf(out, sizeof out, "%s/jobs.out", dir);
    ck_assert_int_eq(wait_ok(run_canopy("jobs", NULL, NULL, out), 20000), 0);
    ck_assert(ts_file_contains(out, id));
    ck_assert(ts_file_contains(out, "cancelled"));
}
END_TEST

START_TEST(test_interrupted_follower_leaves_the_job_running_and_resume_reattaches)
{
    write_job(FMNIST, "asp", 1, 6, "");
    ck_assert_int_gt(start_scheduler(), 0);
    ck_assert_int_gt(start_ps(), 0);
    ck_assert_int_gt(start_worker(0), 0);
    pid_t t = start_train(NULL);
    ck_assert(ts_wait_until(training_under_way, NULL, 40000));
    kill(t, SIGINT);
    ck_assert_int_eq(wait_ok(t, 10000), 130);
    ck_assert(ts_file_contains(out_path, "goes on"));
    ck_assert(ts_file_contains(out_path, "canopy cancel"));
    t = start_train("--resume");
    ck_assert_int_eq(wait_ok(t, 90000), 0);
    ck_assert(ts_file_contains(out_path, "reattached"));
    tally r;
    count_records(&r);
    ck_assert_int_eq(r.summaries, 1);
}
END_TEST

START_TEST(test_sync_job_without_enough_workers_fails_with_the_reason)
{
    write_job(FMNIST, "bsp", 3, 5, ", \"admission_timeout_s\": 2");
    ck_assert_int_gt(start_scheduler(), 0);
    ck_assert_int_gt(start_ps(), 0);
    ck_assert_int_gt(start_worker(0), 0);
    ck_assert_int_gt(start_worker(1), 0);
    pid_t t = start_train(NULL);
    ck_assert_int_eq(wait_ok(t, 60000), 1);
    ck_assert(ts_file_contains(out_path, "found no worker within 2 s"));
    ck_assert(ts_file_contains(out_path, "admission_timeout_s"));
    char s[32];
    job_json_state(s, sizeof s);
    ck_assert_str_eq(s, "failed");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("jobs");
    TCase *t = tcase_create("cluster");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 150);
    tcase_add_test(t, test_training_survives_a_killed_scheduler_and_finishes_once);
    tcase_add_test(t, test_workers_train_on_data_they_have_no_copy_of);
    tcase_add_test(t, test_cancel_stops_a_job_and_records_it);
    tcase_add_test(t, test_interrupted_follower_leaves_the_job_running_and_resume_reattaches);
    tcase_add_test(t, test_sync_job_without_enough_workers_fails_with_the_reason);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
