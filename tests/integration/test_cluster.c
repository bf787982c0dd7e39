// test_cluster.c: membership with real processes on loopback: a scheduler,
// a ps and a worker register; a worker killed with SIGKILL is declared dead;
// a restarted scheduler is re-joined by the nodes; a wrong token is refused;
// `canopy local` starts, reports and tears down a three-node cluster.
#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cn_file.h"
#include "proto/cluster_client.h"
#include "tests/support/support.h"

static char dir[256];
static char url[64];
static char log_path[512];

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    snprintf(log_path, sizeof log_path, "%s/cluster.log", dir);
    setenv("CANOPY_TOKEN", "integration-secret", 1);
}

static void teardown(void)
{
    ts_reap_all();
    ts_rmtree(dir);
}

static pid_t start_scheduler(void)
{
    char state[300];
    snprintf(state, sizeof state, "%s/state", dir);
    char *argv[] = {
        (char *)ts_canopy_bin(), "scheduler", "--listen",        url,   "--state-dir", state,
        "--heartbeat-ms",        "100",       "--dead-after-ms", "800", NULL};
    return ts_spawn(argv, log_path);
}

static pid_t start_node(const char *role, const char *name)
{
    char *argv[] = {
        (char *)ts_canopy_bin(), (char *)role, "--scheduler", url, "--name", (char *)name, NULL};
    return ts_spawn(argv, log_path);
}

typedef struct want {
    rpc_client *c;
    int ps, workers, dead_workers;
} want;

static bool cluster_is(void *arg)
{
    want *w = arg;
    cluster_node *nodes;
    size_t n;
    if (cluster_status(w->c, &nodes, &n, NULL, NULL, 0) != RPC_OK)
        return false;
    int ps = 0, wk = 0, dead = 0;
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].role == CLUSTER_ROLE_PS && nodes[i].state == CLUSTER_NODE_ALIVE)
            ps++;
        if (nodes[i].role == CLUSTER_ROLE_WORKER && nodes[i].state == CLUSTER_NODE_ALIVE)
            wk++;
        if (nodes[i].role == CLUSTER_ROLE_WORKER && nodes[i].state == CLUSTER_NODE_DEAD)
            dead++;
    }
    free(nodes);
    return ps == w->ps && wk == w->workers && dead == w->dead_workers;
}

static rpc_client *client(const char *token)
{
    rpc_client *c = NULL;
    char err[256];
    rpc_client_opts o = {.url = url, .token = token};
    ck_assert_int_eq(rpc_client_open(&c, &o, err, sizeof err), CN_OK);
    return c;
}

START_TEST(test_nodes_register_and_a_killed_worker_is_declared_dead)
{
    start_scheduler();
    start_node("ps", "ps-a");
    pid_t w1 = start_node("worker", "w-1");
    start_node("worker", "w-2");
    want w = {client("integration-secret"), 1, 2, 0};
    ck_assert_msg(ts_wait_until(cluster_is, &w, 20000), "nodes did not register (see %s)",
                  log_path);
    ts_kill(w1, SIGKILL);
    ts_wait_exit(w1, 5000, NULL);
    w.workers = 1;
    w.dead_workers = 1;
    ck_assert_msg(ts_wait_until(cluster_is, &w, 5000), "the killed worker was not marked dead");
    ck_assert(ts_file_contains(log_path, "sent no heartbeat"));
    rpc_client_close(w.c);
}
END_TEST

// An NTP step of the wall clock must not silence a node: its heartbeats wait
// on the monotonic clock. The worker reads a wall clock an hour ahead (as
// after a step back of the real one); a heartbeat deadline taken from it
// would not come for an hour, and the scheduler would declare it dead.
START_TEST(test_a_wall_clock_step_does_not_silence_heartbeats)
{
    const char *shim = getenv("CANOPY_CLOCK_SHIFT_LIB");
    ck_assert_ptr_nonnull(shim);
    start_scheduler();
    // The scheduler listens before the worker dials: nng's own timers (its
    // redial) follow the wall clock in Debian's build, and are not ours.
    want alive = {client("integration-secret"), 0, 1, 0};
    ck_assert_int_eq(rpc_wait_ready(alive.c, "Cluster", "Ping", 20000), RPC_OK);
    // The sanitizer runtime must come first unless told not to check.
    const char *asan = getenv("ASAN_OPTIONS");
    char *asan_was = asan ? strdup(asan) : NULL;
    char opts[512];
    snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    setenv("LD_PRELOAD", shim, 1);
    setenv("CANOPY_TEST_CLOCK_SHIFT_S", "3600", 1);
    start_node("worker", "w-shifted");
    unsetenv("LD_PRELOAD");
    unsetenv("CANOPY_TEST_CLOCK_SHIFT_S");
    if (asan_was)
        setenv("ASAN_OPTIONS", asan_was, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(asan_was);
    ck_assert_msg(ts_wait_until(cluster_is, &alive, 20000), "the worker did not register (see %s)",
                  log_path);
    // Three times the scheduler's dead-after (800 ms): a silenced node would
    // be dead long before the end.
    want dead = {alive.c, 0, 0, 1};
    ck_assert_msg(!ts_wait_until(cluster_is, &dead, 2400),
                  "the worker with a stepped wall clock was declared dead (see %s)", log_path);
    ck_assert(cluster_is(&alive));
    rpc_client_close(alive.c);
}
END_TEST

START_TEST(test_nodes_rejoin_a_restarted_scheduler)
{
    pid_t s = start_scheduler();
    start_node("ps", "ps-a");
    start_node("worker", "w-1");
    want w = {client("integration-secret"), 1, 1, 0};
    ck_assert(ts_wait_until(cluster_is, &w, 20000));
    ts_kill(s, SIGKILL);
    ts_wait_exit(s, 5000, NULL);
    start_scheduler();
    // The new scheduler knows nobody; heartbeats answered "unknown" make the
    // nodes register again, through the same client after it reconnects.
    ck_assert_msg(ts_wait_until(cluster_is, &w, 15000), "nodes did not rejoin (see %s)", log_path);
    rpc_client_close(w.c);
}
END_TEST

START_TEST(test_wrong_token_is_refused)
{
    start_scheduler();
    rpc_client *good = client("integration-secret");
    ck_assert_int_eq(rpc_wait_ready(good, "Cluster", "Ping", 10000), RPC_OK);
    rpc_client_close(good);
    rpc_client *bad = client("wrong");
    cluster_node *nodes;
    size_t n;
    char detail[300];
    ck_assert_int_eq(cluster_status(bad, &nodes, &n, NULL, detail, sizeof detail),
                     RPC_UNAUTHENTICATED);
    rpc_client_close(bad);
    setenv("CANOPY_TOKEN", "wrong", 1);
    pid_t p = start_node("worker", "w-bad");
    int st;
    ck_assert(ts_wait_exit(p, 20000, &st));
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 5); // CLI_EXIT_AUTH: the token was refused
    ck_assert(ts_file_contains(log_path, "refused the cluster token"));
}
END_TEST

START_TEST(test_status_command_prints_the_table)
{
    start_scheduler();
    start_node("ps", "ps-a");
    start_node("worker", "w-1");
    want w = {client("integration-secret"), 1, 1, 0};
    ck_assert(ts_wait_until(cluster_is, &w, 20000));
    rpc_client_close(w.c);
    char out[512];
    snprintf(out, sizeof out, "%s/status.txt", dir);
    char *argv[] = {(char *)ts_canopy_bin(), "status", "--scheduler", url, "--ping", NULL};
    pid_t p = ts_spawn(argv, out);
    int st;
    ck_assert(ts_wait_exit(p, 20000, &st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    ck_assert(ts_file_contains(out, "3 nodes"));
    ck_assert(ts_file_contains(out, "scheduler"));
    ck_assert(ts_file_contains(out, "ps-a"));
    ck_assert(ts_file_contains(out, "w-1"));
    ck_assert(ts_file_contains(out, "alive"));
}
END_TEST

// first_line_has reports whether the first line of the file at path
// contains needle.
static bool first_line_has(const char *path, const char *needle)
{
    char line[1024] = "";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    return got && strstr(line, needle) != NULL;
}

START_TEST(test_local_runs_a_command_and_tears_down)
{
    char out[512], state[300];
    snprintf(out, sizeof out, "%s/local.txt", dir);
    snprintf(state, sizeof state, "%s/local", dir);
    unsetenv("CANOPY_TOKEN");
    char *argv[] = {(char *)ts_canopy_bin(), "local", "--ps",   "1",      "--workers", "1",
                    "--state-dir",           state,   "status", "--ping", NULL};
    pid_t p = ts_spawn(argv, out);
    int st;
    ck_assert(ts_wait_exit(p, 60000, &st));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "canopy local failed (see %s)", out);
    ck_assert(ts_file_contains(out, "cluster ready"));
    ck_assert(ts_file_contains(out, "3 nodes"));
    ck_assert(ts_file_contains(out, "ps-0"));
    ck_assert(ts_file_contains(out, "worker-0"));
    // Every child is gone: nothing answers on the scheduler's logs' port any more.
    char sched_log[400];
    snprintf(sched_log, sizeof sched_log, "%s/logs/scheduler.log", state);
    ck_assert(ts_file_contains(sched_log, "shutting down"));
    // Each daemon's first log line names the BLAS library, core and threads.
    const char *nodes[] = {"scheduler", "ps-0", "worker-0"};
    for (int i = 0; i < 3; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s/logs/%s.log", state, nodes[i]);
        ck_assert_msg(first_line_has(path, "blas: OpenBLAS ") && first_line_has(path, ", core ") &&
                          first_line_has(path, " thread"),
                      "first line of %s does not describe the BLAS", path);
    }
}
END_TEST

START_TEST(test_plain_tcp_off_loopback_needs_insecure)
{
    int port = ts_free_port();
    char listen[64], state[300];
    snprintf(listen, sizeof listen, "tcp://0.0.0.0:%d", port);
    snprintf(state, sizeof state, "%s/state", dir);
    char *refused[] = {(char *)ts_canopy_bin(), "scheduler", "--listen", listen,
                       "--state-dir",           state,       NULL};
    pid_t p = ts_spawn(refused, log_path);
    int st;
    ck_assert(ts_wait_exit(p, 20000, &st));
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 2);
    char expect[200];
    snprintf(expect, sizeof expect,
             "canopy scheduler: --listen tcp://0.0.0.0:%d is plain TCP on a non-loopback "
             "address",
             port);
    ck_assert(ts_file_contains(log_path, expect));
    // A client to a plain non-loopback address is refused the same way.
    char *status[] = {(char *)ts_canopy_bin(), "status", "--scheduler", "tcp://192.0.2.1:7070",
                      NULL};
    p = ts_spawn(status, log_path);
    ck_assert(ts_wait_exit(p, 20000, &st));
    ck_assert_int_eq(WEXITSTATUS(st), 2);
    ck_assert(ts_file_contains(log_path, "canopy status: --scheduler tcp://192.0.2.1:7070 is "
                                         "plain TCP on a non-loopback address"));
    // With --insecure the operator takes the risk: the scheduler serves.
    char *allowed[] = {(char *)ts_canopy_bin(), "scheduler", "--listen",   listen,
                       "--state-dir",           state,       "--insecure", NULL};
    ts_spawn(allowed, log_path);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    rpc_client *c = client("integration-secret");
    ck_assert_int_eq(rpc_wait_ready(c, "Cluster", "Ping", 10000), RPC_OK);
    rpc_client_close(c);
}
END_TEST

START_TEST(test_forest_cv_json_escapes_the_file_name)
{
    char csv[400], out[400];
    snprintf(csv, sizeof csv, "%s/we\"ird\\name.csv", dir);
    snprintf(out, sizeof out, "%s/cv.json", dir);
    ts_write_file(csv, "a,b,label\n1,2,0\n2,3,1\n3,1,0\n4,4,1\n5,2,0\n6,3,1\n7,1,0\n8,4,1\n");
    char *argv[] = {(char *)ts_canopy_bin(), "forest", "cv", "--folds", "2", "--json", "--set",
                    "n_estimators=3",        csv,      NULL};
    pid_t p = ts_spawn(argv, out);
    int st;
    ck_assert(ts_wait_exit(p, 30000, &st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    char *text = NULL;
    size_t len = 0;
    char err[256];
    ck_assert_int_eq(cn_file_read_all(out, 1 << 20, (uint8_t **)&text, &len, err, sizeof err),
                     CN_OK);
    text = realloc(text, len + 1);
    text[len] = 0;
    cJSON *o = cJSON_Parse(text);
    ck_assert_msg(o != NULL, "not JSON: %s", text);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "data")->valuestring, csv);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "fold_results")), 2);
    cJSON_Delete(o);
    free(text);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *t = tcase_create("processes");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 90);
    tcase_add_test(t, test_nodes_register_and_a_killed_worker_is_declared_dead);
    tcase_add_test(t, test_a_wall_clock_step_does_not_silence_heartbeats);
    tcase_add_test(t, test_nodes_rejoin_a_restarted_scheduler);
    tcase_add_test(t, test_wrong_token_is_refused);
    tcase_add_test(t, test_plain_tcp_off_loopback_needs_insecure);
    tcase_add_test(t, test_status_command_prints_the_table);
    tcase_add_test(t, test_local_runs_a_command_and_tears_down);
    tcase_add_test(t, test_forest_cv_json_escapes_the_file_name);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
