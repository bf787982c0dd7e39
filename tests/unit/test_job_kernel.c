// test_job_kernel.c: the job kernel's state machines in one process: a
// scheduler's Jobs and Work services on an inproc RPC server, a membership
// table, and a small job kind whose items the test takes and reports by
// hand. Leases that lapse, retries used up, a worker's death, a duplicate
// report, cancellation, a restart with a torn results log, and the refusal
// of unregistered workers.
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cn_clock.h"
#include "common/cn_config.h"
#include "scheduler/sched_job.h"
#include "scheduler/sched_members.h"
#include "tests/support/support.h"

// ------------------------------------------------------------ a job kind

typedef struct fake {
    int64_t items, lease_ms, retries;
    bool held;             // items added held, each released when the one before is done
    bool deferred;         // items added by a tick once items_may_start is set
    int done_from_log[16]; // also set as items finish
    int failed;
    size_t n_done;
} fake;

static cn_err fake_create(sched_jobs *k, const sched_job_input *in, void **impl, char *err,
                          size_t errlen)
{
    (void)k;
    fake *f = calloc(1, sizeof *f);
    f->items = 3;
    f->lease_ms = 300;
    f->retries = 1;
    cn_opt opts[] = {{"items", CN_OPT_INT, &f->items, "items", 1, 16, NULL},
                     {"lease_ms", CN_OPT_INT, &f->lease_ms, "lease", 10, 60000, NULL},
                     {"retries", CN_OPT_INT, &f->retries, "retries", 0, 10, NULL},
                     {"held", CN_OPT_BOOL, &f->held, "held items", 0, 0, NULL},
                     {"deferred", CN_OPT_BOOL, &f->deferred, "items added later", 0, 0, NULL},
                     CN_OPT_END};
    cn_err e = cn_config_load_json(opts, in->spec_json, in->spec_name, err, errlen);
    if (e != CN_OK) {
        free(f);
        return e;
    }
    *impl = f;
    return CN_OK;
}

static void fake_make_id(const void *impl, const sched_job_input *in, char *id, size_t n)
{
    (void)impl;
    (void)in;
    snprintf(id, n, "fake-1");
}

static void fake_replay(sched_job *j, const cJSON *rec)
{
    fake *f = sched_job_impl(j);
    const cJSON *it = cJSON_GetObjectItem(rec, "item");
    if (cJSON_IsNumber(it) && cJSON_IsTrue(cJSON_GetObjectItem(rec, "ok")))
        f->done_from_log[(int)it->valuedouble] = 1;
}

static cn_err fake_start(sched_job *j, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    fake *f = sched_job_impl(j);
    sched_job_set_policy(j, (uint32_t)f->lease_ms, (uint32_t)f->retries, 0);
    if (f->deferred)
        return CN_OK; // fake_tick adds them
    if (f->held) {
        sched_job_add_held_items(j, (size_t)f->items);
        ck_assert(sched_job_item_release(j, 0));
        ck_assert(!sched_job_item_release(j, 0)); // no longer held
    } else {
        sched_job_add_items(j, (size_t)f->items);
    }
    for (int i = 0; i < f->items; i++)
        if (f->done_from_log[i] && sched_job_item_settle(j, (uint64_t)i))
            f->n_done++;
    return CN_OK;
}

static char *fake_task(sched_job *j, uint64_t item, uint32_t attempt)
{
    (void)j;
    char *s = malloc(64);
    snprintf(s, 64, "{\"item\": %llu, \"attempt\": %u}", (unsigned long long)item, attempt);
    return s;
}

static void fake_progress(sched_job *j, uint64_t item, uint64_t node, const cJSON *result)
{
    (void)j, (void)item, (void)node, (void)result;
}

static void fake_item_done(sched_job *j, uint64_t item, uint64_t node, bool ok, const char *error,
                           const cJSON *result)
{
    (void)node, (void)error, (void)result;
    fake *f = sched_job_impl(j);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "item");
    cJSON_AddNumberToObject(o, "item", (double)item);
    cJSON_AddBoolToObject(o, "ok", ok);
    sched_job_log(j, o);
    cJSON_Delete(o);
    if (ok) {
        f->n_done++;
        f->done_from_log[item] = 1;
    }
}

static void fake_item_failed(sched_job *j, uint64_t item, const char *why)
{
    (void)item, (void)why;
    fake *f = sched_job_impl(j);
    f->failed++;
}

// Set by a test: a deferred job's items may be added (as a training job
// adds its ranks once its shards are configured).
static atomic_bool items_may_start;

static void fake_tick(sched_job *j, uint64_t now)
{
    (void)now;
    fake *f = sched_job_impl(j);
    if (f->deferred && atomic_load(&items_may_start)) {
        f->deferred = false;
        sched_job_add_items(j, (size_t)f->items);
    }
    for (int i = 1; f->held && i < f->items; i++)
        if (f->done_from_log[i - 1])
            sched_job_item_release(j, (uint64_t)i);
    if (f->failed)
        sched_job_finish(j, JOB_FAILED, "an item failed");
    else if (f->n_done == (size_t)f->items)
        sched_job_finish(j, JOB_DONE, NULL);
}

static void fake_status(sched_job *j, cJSON *out)
{
    fake *f = sched_job_impl(j);
    size_t pending;
    sched_job_items(j, NULL, &pending, NULL, NULL, NULL);
    cJSON_AddNumberToObject(out, "fake_done", (double)f->n_done);
    cJSON_AddNumberToObject(out, "fake_pending", (double)pending);
}

static double fake_frac(sched_job *j)
{
    fake *f = sched_job_impl(j);
    return (double)f->n_done / (double)f->items;
}

static void fake_free(void *impl)
{
    free(impl);
}

static const sched_kind fake_kind = {.name = "fake",
                                     .dir = "fake",
                                     .create = fake_create,
                                     .make_id = fake_make_id,
                                     .replay = fake_replay,
                                     .start = fake_start,
                                     .task = fake_task,
                                     .progress = fake_progress,
                                     .item_done = fake_item_done,
                                     .item_failed = fake_item_failed,
                                     .tick = fake_tick,
                                     .status = fake_status,
                                     .progress_frac = fake_frac,
                                     .free = fake_free};
static const sched_kind *const KINDS[] = {&fake_kind};

// ------------------------------------------------------------ fixture

#define A 0xa1
#define B 0xb2

static char dir[256], url[64];
static sched_members *members;
static rpc_server *server;
static sched_jobs *kernel;
static rpc_client *client;
static int serial;

static void open_kernel(void)
{
    char err[CN_ERRBUF_LEN];
    snprintf(url, sizeof url, "inproc://job-kernel-%d-%d", (int)getpid(), serial++);
    rpc_server_opts so = {.url = url};
    ck_assert_int_eq(rpc_server_open(&server, &so, err, sizeof err), CN_OK);
    sched_jobs_opts jo = {.state_dir = dir, .members = members, .reattach_grace_ms = 200};
    ck_assert_msg(sched_jobs_new(&kernel, server, &jo, KINDS, 1, err, sizeof err) == CN_OK, "%s",
                  err);
    ck_assert_int_eq(sched_jobs_start(kernel, err, sizeof err), CN_OK);
    ck_assert_int_eq(rpc_server_start(server, err, sizeof err), CN_OK);
    rpc_client_opts co = {.url = url};
    ck_assert_int_eq(rpc_client_open(&client, &co, err, sizeof err), CN_OK);
}

static void close_kernel(void)
{
    rpc_client_close(client);
    sched_jobs_stop(kernel);
    rpc_server_close(server, 1000);
    sched_jobs_free(kernel);
    client = NULL;
    server = NULL;
    kernel = NULL;
}

static void setup(void)
{
    ts_tmpdir(dir, sizeof dir);
    ck_assert_int_eq(sched_members_new(&members, 50, 1000), CN_OK);
    uint32_t rank;
    ck_assert_int_eq(sched_members_register(members, A, CLUSTER_ROLE_WORKER, "", "a", 1, &rank),
                     CN_OK);
    ck_assert_int_eq(sched_members_register(members, B, CLUSTER_ROLE_WORKER, "", "b", 1, &rank),
                     CN_OK);
    open_kernel();
}

static void teardown(void)
{
    close_kernel();
    sched_members_free(members);
    ts_rmtree(dir);
}

static void submit(const char *spec)
{
    sched_submit s = {.kind = "fake", .spec_json = spec, .spec_name = "fake.json"};
    sched_submitted out;
    char detail[512];
    ck_assert_msg(sched_jobs_submit(client, &s, &out, detail, sizeof detail) == RPC_OK, "%s",
                  detail);
    ck_assert_str_eq(out.job_id, "fake-1");
    cJSON_Delete(out.status);
}

// get asks for an item as node; returns its index, or -1 for no work.
static int get(uint64_t node, uint32_t *attempt)
{
    sched_work_item it;
    bool got, shutdown;
    char detail[512];
    ck_assert_int_eq(
        sched_work_get(client, node, 0, 0, &it, &got, &shutdown, detail, sizeof detail), RPC_OK);
    int idx = got ? (int)it.item : -1;
    if (got && attempt)
        *attempt = it.attempt;
    if (got)
        ck_assert_double_eq(cJSON_GetObjectItem(it.task, "item")->valuedouble, it.item);
    sched_work_item_fini(&it);
    return idx;
}

static rpc_code report(uint64_t node, int item, bool final, bool ok, bool *stop, bool *dup)
{
    cJSON *res = cJSON_CreateObject();
    sched_report r = {.node = node,
                      .job_id = "fake-1",
                      .item = (uint64_t)item,
                      .attempt = 1,
                      .final = final,
                      .ok = ok,
                      .error = ok ? NULL : "boom",
                      .result = res};
    char detail[512];
    rpc_code c = sched_work_report(client, &r, stop, dup, detail, sizeof detail);
    cJSON_Delete(res);
    return c;
}

static const char *state_of(void)
{
    static char state[16];
    cJSON *st;
    char detail[512];
    ck_assert_int_eq(sched_jobs_status(client, "fake-1", state, &st, detail, sizeof detail),
                     RPC_OK);
    cJSON_Delete(st);
    return state;
}

static bool job_ended(void *arg)
{
    (void)arg;
    return strcmp(state_of(), "running") != 0;
}

// keep_alive heartbeats both nodes (the table's dead-after is 1 s).
static void keep_alive(void)
{
    sched_members_heartbeat(members, A, "");
    sched_members_heartbeat(members, B, "");
}

static int log_lines_for(int item, int *unreadable)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fake/fake-1/results.jsonl", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int n = 0;
    *unreadable = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        if (o == NULL) {
            (*unreadable)++;
            continue;
        }
        const cJSON *it = cJSON_GetObjectItem(o, "item");
        n += cJSON_IsNumber(it) && (int)it->valuedouble == item;
        cJSON_Delete(o);
    }
    fclose(f);
    return n;
}

// ------------------------------------------------------------ tests

START_TEST(test_work_get_refuses_a_node_that_is_not_registered)
{
    submit("{\"items\": 1}");
    sched_work_item it;
    bool got, shutdown;
    char detail[512];
    ck_assert_int_eq(
        sched_work_get(client, 0x999, 0, 0, &it, &got, &shutdown, detail, sizeof detail),
        RPC_FAILED_PRECONDITION);
    ck_assert_ptr_nonnull(strstr(detail, "register first"));
}
END_TEST

START_TEST(test_items_run_once_each_and_the_job_ends_done)
{
    submit("{\"items\": 3}");
    int seen[3] = {0};
    for (int i = 0; i < 3; i++) {
        int u = get(i % 2 ? B : A, NULL);
        ck_assert_int_ge(u, 0);
        seen[u]++;
    }
    ck_assert_int_eq(get(A, NULL), -1); // all leased
    for (int u = 0; u < 3; u++) {
        ck_assert_int_eq(seen[u], 1);
        bool stop, dup;
        ck_assert_int_eq(report(u % 2 ? B : A, u, true, true, &stop, &dup), RPC_OK);
    }
    ck_assert(ts_wait_until(job_ended, NULL, 5000));
    ck_assert_str_eq(state_of(), "done");
}
END_TEST

static double status_num(const char *key)
{
    static char state[16];
    cJSON *st;
    char detail[512];
    ck_assert_int_eq(sched_jobs_status(client, "fake-1", state, &st, detail, sizeof detail),
                     RPC_OK);
    const cJSON *v = cJSON_GetObjectItem(st, key);
    ck_assert_msg(cJSON_IsNumber(v), "status has no %s", key);
    double x = v->valuedouble;
    cJSON_Delete(st);
    return x;
}

static bool item_1_handed_out(void *arg)
{
    int *got = arg;
    keep_alive();
    *got = get(B, NULL);
    return *got >= 0;
}

START_TEST(test_held_items_are_handed_out_only_once_released)
{
    submit("{\"items\": 3, \"held\": true}");
    ck_assert_int_eq(get(A, NULL), 0);
    ck_assert_double_eq(status_num("fake_pending"), 0); // held items are not pending
    ck_assert_int_eq(get(B, NULL), -1);
    bool stop = false, dup = false;
    ck_assert_int_eq(report(B, 2, true, true, &stop, &dup), RPC_OK); // nobody was given 2
    ck_assert(stop);
    ck_assert_double_eq(status_num("fake_done"), 0);
    ck_assert_int_eq(report(A, 0, true, true, &stop, &dup), RPC_OK);
    int got = -1;
    ck_assert(ts_wait_until(item_1_handed_out, &got, 5000));
    ck_assert_int_eq(got, 1);
    ck_assert_int_eq(report(B, 1, true, true, &stop, &dup), RPC_OK);
    ck_assert(ts_wait_until(item_1_handed_out, &got, 5000));
    ck_assert_int_eq(got, 2);
    ck_assert_int_eq(report(B, 2, true, true, &stop, &dup), RPC_OK);
    ck_assert(ts_wait_until(job_ended, NULL, 5000));
    ck_assert_str_eq(state_of(), "done");
}
END_TEST

START_TEST(test_a_lapsed_lease_requeues_the_item_with_a_new_attempt)
{
    submit("{\"items\": 1, \"lease_ms\": 150, \"retries\": 2}");
    uint32_t attempt = 0;
    ck_assert_int_eq(get(A, &attempt), 0);
    ck_assert_uint_eq(attempt, 1);
    uint64_t t0 = cn_now_ms();
    int u = -1;
    while (u < 0 && cn_now_ms() - t0 < 3000) {
        keep_alive();
        u = get(B, &attempt);
        cn_sleep_ms(20);
    }
    ck_assert_int_eq(u, 0);
    ck_assert_uint_eq(attempt, 2);
    ck_assert_uint_ge(cn_now_ms() - t0, 140); // not before the lease lapsed
    // A's late report is not taken: the item is B's now.
    bool stop = false, dup = false;
    keep_alive();
    ck_assert_int_eq(report(A, 0, false, false, &stop, &dup), RPC_OK);
    ck_assert(stop);
}
END_TEST

START_TEST(test_failures_use_up_the_retries_then_the_item_fails)
{
    submit("{\"items\": 1, \"retries\": 1}");
    bool stop, dup;
    ck_assert_int_eq(get(A, NULL), 0);
    ck_assert_int_eq(report(A, 0, true, false, &stop, &dup), RPC_OK); // attempt 1 fails
    ck_assert_int_eq(get(B, NULL), 0);                                // re-queued
    ck_assert_int_eq(report(B, 0, true, false, &stop, &dup), RPC_OK); // attempt 2 fails
    ck_assert_int_eq(get(A, NULL), -1);                               // retries used up
    ck_assert(ts_wait_until(job_ended, NULL, 5000));
    ck_assert_str_eq(state_of(), "failed");
}
END_TEST

static bool a_is_dead(void *arg)
{
    (void)arg;
    sched_members_heartbeat(members, B, "");
    return !sched_members_is_alive(members, A);
}

START_TEST(test_a_dead_workers_item_goes_to_another)
{
    submit("{\"items\": 1, \"lease_ms\": 60000, \"retries\": 2}");
    ck_assert_int_eq(get(A, NULL), 0);
    ck_assert(ts_wait_until(a_is_dead, NULL, 5000)); // A stops heartbeating
    uint32_t attempt = 0;
    int u = -1;
    for (int i = 0; i < 100 && u < 0; i++) {
        sched_members_heartbeat(members, B, "");
        u = get(B, &attempt);
        cn_sleep_ms(10);
    }
    ck_assert_int_eq(u, 0);
    ck_assert_uint_eq(attempt, 2);
}
END_TEST

START_TEST(test_a_duplicate_report_records_nothing)
{
    submit("{\"items\": 2, \"lease_ms\": 100, \"retries\": 3}");
    ck_assert_int_eq(get(A, NULL), 0);
    bool stop = false, dup = false;
    ck_assert_int_eq(report(A, 0, true, true, &stop, &dup), RPC_OK);
    ck_assert(!dup);
    ck_assert_int_eq(report(A, 0, true, true, &stop, &dup), RPC_OK); // resent
    ck_assert(dup);
    ck_assert(stop);
    ck_assert_int_eq(report(B, 0, true, true, &stop, &dup), RPC_OK); // another attempt
    ck_assert(dup);
    int unreadable;
    ck_assert_int_eq(log_lines_for(0, &unreadable), 1);
    ck_assert_int_eq(unreadable, 0);
}
END_TEST

START_TEST(test_cancel_stops_items_and_is_recorded)
{
    submit("{\"items\": 3}");
    ck_assert_int_eq(get(A, NULL), 0);
    char state[16], detail[512];
    ck_assert_int_eq(sched_jobs_cancel(client, "fake-1", "test", state, detail, sizeof detail),
                     RPC_OK);
    ck_assert_str_eq(state, "cancelled");
    ck_assert_int_eq(get(B, NULL), -1); // pending items are not handed out
    bool stop = false, dup;
    ck_assert_int_eq(report(A, 0, false, false, &stop, &dup), RPC_OK);
    ck_assert(stop); // the holder is told to stop
    ck_assert_int_eq(sched_jobs_cancel(client, "fake-1", "again", state, detail, sizeof detail),
                     RPC_FAILED_PRECONDITION);
    ck_assert_int_eq(sched_jobs_cancel(client, "nope", "x", state, detail, sizeof detail),
                     RPC_NOT_FOUND);
    char path[512];
    snprintf(path, sizeof path, "%s/fake/fake-1/results.jsonl", dir);
    ck_assert(ts_file_contains(path, "\"type\":\"cancelled\""));
    snprintf(path, sizeof path, "%s/fake/fake-1/job.json", dir);
    ck_assert(ts_file_contains(path, "\"cancelled\""));
}
END_TEST

static bool got_an_item(void *arg)
{
    int *item = arg;
    keep_alive();
    *item = get(A, NULL);
    return *item >= 0;
}

// heartbeats keeps both nodes alive while a call retries for longer than
// the table's dead-after.
static atomic_bool heartbeats_stop;
static void *heartbeats(void *arg)
{
    (void)arg;
    while (!atomic_load(&heartbeats_stop)) {
        keep_alive();
        cn_sleep_ms(50);
    }
    return NULL;
}

// A worker reporting on a job whose items are not there yet (a restored
// training job still configuring its shards) is told to report again
// (UNAVAILABLE), not that its item does not exist (NOT_FOUND), which would
// make it drop the item and leave the job without that rank.
START_TEST(test_a_report_before_the_items_exist_is_to_be_repeated)
{
    atomic_store(&items_may_start, false);
    submit("{\"items\": 2, \"deferred\": true}");
    bool stop = false, dup;
    // The client resends an UNAVAILABLE call with backoff before it gives up.
    atomic_store(&heartbeats_stop, false);
    pthread_t hb;
    ck_assert_int_eq(pthread_create(&hb, NULL, heartbeats, NULL), 0);
    rpc_code early = report(A, 1, false, false, &stop, &dup);
    atomic_store(&heartbeats_stop, true);
    pthread_join(hb, NULL);
    ck_assert_int_eq(early, RPC_UNAVAILABLE);
    atomic_store(&items_may_start, true);
    int first = -1;
    ck_assert(ts_wait_until(got_an_item, &first, 5000));
    ck_assert_int_eq(first, 0);
    ck_assert_int_eq(report(A, 0, false, false, &stop, &dup), RPC_OK);
    ck_assert(!stop);
    ck_assert_int_eq(report(A, 7, false, false, &stop, &dup), RPC_NOT_FOUND); // no such item
}
END_TEST

START_TEST(test_restart_with_a_torn_log_resumes_without_redoing)
{
    submit("{\"items\": 3, \"lease_ms\": 60000}");
    bool stop, dup;
    ck_assert_int_eq(get(A, NULL), 0);
    ck_assert_int_eq(get(A, NULL), 1);
    ck_assert_int_eq(get(B, NULL), 2);
    ck_assert_int_eq(report(A, 0, true, true, &stop, &dup), RPC_OK);
    ck_assert_int_eq(report(A, 1, true, true, &stop, &dup), RPC_OK);
    close_kernel();
    // A crash leaves a torn record and a zero-filled tail.
    char path[512];
    snprintf(path, sizeof path, "%s/fake/fake-1/results.jsonl", dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    const char torn[] = "{\"type\":\"item\",\"item\":2,\"o";
    ck_assert_int_eq(write(fd, torn, sizeof torn - 1), (ssize_t)(sizeof torn - 1));
    char zeros[200] = {0};
    ck_assert_int_eq(write(fd, zeros, sizeof zeros), (ssize_t)sizeof zeros);
    close(fd);
    open_kernel(); // the same state directory
    ck_assert_str_eq(state_of(), "running");
    keep_alive();
    ck_assert_int_eq(get(B, NULL), -1); // held for the reattach grace
    // B still works on item 2 and takes it back with its report.
    ck_assert_int_eq(report(B, 2, false, false, &stop, &dup), RPC_OK);
    ck_assert(!stop);
    ck_assert_int_eq(report(B, 2, true, true, &stop, &dup), RPC_OK);
    ck_assert(ts_wait_until(job_ended, NULL, 5000));
    ck_assert_str_eq(state_of(), "done");
    int unreadable;
    for (int u = 0; u < 3; u++)
        ck_assert_int_eq(log_lines_for(u, &unreadable), 1);
    ck_assert_int_eq(unreadable, 0); // the torn tail was cut, not glued to
    // Restarting again: the job stays done and nothing is handed out.
    close_kernel();
    open_kernel();
    ck_assert_str_eq(state_of(), "done");
    keep_alive();
    cn_sleep_ms(250);
    ck_assert_int_eq(get(A, NULL), -1);
}
END_TEST

START_TEST(test_submit_errors_are_typed)
{
    sched_submit s = {.kind = "nope", .spec_json = "{}", .spec_name = "x.json"};
    sched_submitted out;
    char detail[512];
    ck_assert_int_eq(sched_jobs_submit(client, &s, &out, detail, sizeof detail),
                     RPC_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(detail, "kind \"nope\""));
    s.kind = "fake";
    s.spec_json = "{\"itemz\": 2}";
    ck_assert_int_eq(sched_jobs_submit(client, &s, &out, detail, sizeof detail),
                     RPC_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(detail, "did you mean \"items\""));
    sched_data_ref ref = {.role = "data", .size = 1, .name = "x.csv"};
    snprintf(ref.sha256, sizeof ref.sha256, "%064d", 0);
    s.spec_json = "{}";
    s.data = &ref;
    s.n_data = 1;
    ck_assert_int_eq(sched_jobs_submit(client, &s, &out, detail, sizeof detail),
                     RPC_FAILED_PRECONDITION);
    ck_assert_ptr_nonnull(strstr(detail, "upload it first"));
    s.n_data = 0;
    submit("{\"items\": 1}");
    ck_assert_int_eq(sched_jobs_submit(client, &s, &out, detail, sizeof detail),
                     RPC_ALREADY_EXISTS);
    s.resume = true;
    ck_assert_int_eq(sched_jobs_submit(client, &s, &out, detail, sizeof detail), RPC_OK);
    ck_assert(out.existing);
    cJSON_Delete(out.status);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("job_kernel");
    TCase *t = tcase_create("kernel");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_work_get_refuses_a_node_that_is_not_registered);
    tcase_add_test(t, test_items_run_once_each_and_the_job_ends_done);
    tcase_add_test(t, test_a_lapsed_lease_requeues_the_item_with_a_new_attempt);
    tcase_add_test(t, test_held_items_are_handed_out_only_once_released);
    tcase_add_test(t, test_failures_use_up_the_retries_then_the_item_fails);
    tcase_add_test(t, test_a_dead_workers_item_goes_to_another);
    tcase_add_test(t, test_a_duplicate_report_records_nothing);
    tcase_add_test(t, test_cancel_stops_items_and_is_recorded);
    tcase_add_test(t, test_a_report_before_the_items_exist_is_to_be_repeated);
    tcase_add_test(t, test_restart_with_a_torn_log_resumes_without_redoing);
    tcase_add_test(t, test_submit_errors_are_typed);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
