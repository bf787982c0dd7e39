// test_members.c: the scheduler's membership table: ranks per role, rank
// reuse after a death, heartbeats from unknown nodes, death callbacks,
// dropping long-dead nodes.
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_log.h"
#include "scheduler/sched_members.h"
#include "tests/support/support.h"

typedef struct deaths {
    int n;
    uint64_t last;
} deaths;

static void on_dead(uint64_t node, int role, uint32_t rank, void *arg)
{
    (void)role;
    (void)rank;
    deaths *d = arg;
    d->last = node;
    __atomic_add_fetch(&d->n, 1, __ATOMIC_SEQ_CST);
}

static bool one_death(void *arg)
{
    return __atomic_load_n(&((deaths *)arg)->n, __ATOMIC_SEQ_CST) >= 1;
}

START_TEST(test_sched_members_ranks_are_per_role_and_stable)
{
    sched_members *m;
    ck_assert_int_eq(sched_members_new(&m, 1000, 5000), CN_OK);
    uint32_t r;
    ck_assert_int_eq(sched_members_register(m, 11, CLUSTER_ROLE_WORKER, "", "a", 1, &r), CN_OK);
    ck_assert_uint_eq(r, 0);
    ck_assert_int_eq(sched_members_register(m, 12, CLUSTER_ROLE_WORKER, "", "b", 1, &r), CN_OK);
    ck_assert_uint_eq(r, 1);
    ck_assert_int_eq(sched_members_register(m, 13, CLUSTER_ROLE_PS, "tcp://x:1", "p", 1, &r),
                     CN_OK);
    ck_assert_uint_eq(r, 0);
    // Registering again keeps the rank.
    ck_assert_int_eq(sched_members_register(m, 12, CLUSTER_ROLE_WORKER, "", "b", 1, &r), CN_OK);
    ck_assert_uint_eq(r, 1);
    ck_assert_uint_eq(sched_members_count(m, CLUSTER_ROLE_WORKER), 2);
    ck_assert_uint_eq(sched_members_count(m, CLUSTER_ROLE_PS), 1);
    ck_assert_int_eq(sched_members_register(m, 0, CLUSTER_ROLE_WORKER, "", "z", 1, &r), CN_EINVAL);
    ck_assert_int_eq(sched_members_register(m, 14, 99, "", "z", 1, &r), CN_EINVAL);
    ck_assert_int_eq(sched_members_heartbeat(m, 11, "busy"), CN_OK);
    ck_assert_int_eq(sched_members_heartbeat(m, 999, "who"), CN_ENOTFOUND);
    cluster_node *nodes;
    size_t n;
    ck_assert_int_eq(sched_members_snapshot(m, &nodes, &n), CN_OK);
    ck_assert_uint_eq(n, 3);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (nodes[i].node_id == 11) {
            ck_assert_str_eq(nodes[i].status, "busy");
            ck_assert_int_eq(nodes[i].state, CLUSTER_NODE_ALIVE);
            found = 1;
        }
    ck_assert(found);
    free(nodes);
    sched_members_free(m);
}
END_TEST

START_TEST(test_sched_members_silent_node_dies_once_and_frees_its_rank)
{
    sched_members *m;
    ck_assert_int_eq(sched_members_new(&m, 20, 150), CN_OK);
    deaths d = {0, 0};
    sched_members_on_dead(m, on_dead, &d);
    uint32_t r;
    ck_assert_int_eq(sched_members_register(m, 21, CLUSTER_ROLE_WORKER, "", "a", 1, &r), CN_OK);
    ck_assert(ts_wait_until(one_death, &d, 5000));
    ck_assert_uint_eq(d.last, 21);
    ck_assert(!sched_members_is_alive(m, 21));
    ck_assert_int_eq(sched_members_heartbeat(m, 21, ""), CN_ENOTFOUND); // must re-register
    // The dead node's rank goes to the next worker; the callback ran once.
    ck_assert_int_eq(sched_members_register(m, 22, CLUSTER_ROLE_WORKER, "", "b", 1, &r), CN_OK);
    ck_assert_uint_eq(r, 0);
    ck_assert_int_eq(__atomic_load_n(&d.n, __ATOMIC_SEQ_CST), 1);
    sched_members_free(m);
}
END_TEST

START_TEST(test_sched_members_rejects_bad_timing)
{
    sched_members *m = NULL;
    ck_assert_int_eq(sched_members_new(&m, 0, 100), CN_EINVAL);
    ck_assert_int_eq(sched_members_new(&m, 100, 100), CN_EINVAL);
    ck_assert_ptr_null(m);
}
END_TEST

static bool table_empty(void *arg)
{
    cluster_node *nodes;
    size_t n;
    ck_assert_int_eq(sched_members_snapshot(arg, &nodes, &n), CN_OK);
    free(nodes);
    return n == 0;
}

START_TEST(test_sched_members_dead_nodes_are_dropped_and_ranks_stay_dense)
{
    sched_members *m;
    ck_assert_int_eq(sched_members_new(&m, 50, 500), CN_OK);
    uint32_t r;
    cn_log_set_level(CN_LOG_ERROR);
    // Many nodes come and go: ranks are 0..n-1 while they live ...
    for (uint64_t id = 1; id <= 1000; id++) {
        ck_assert_int_eq(sched_members_register(m, id, CLUSTER_ROLE_WORKER, "", "w", 1, &r), CN_OK);
        ck_assert_uint_eq(r, id - 1);
    }
    // ... and once dead for ten dead-after intervals they leave the table.
    ck_assert(ts_wait_until(table_empty, m, 20000));
    cn_log_set_level(CN_LOG_INFO);
    ck_assert_int_eq(sched_members_register(m, 5000, CLUSTER_ROLE_WORKER, "", "w", 1, &r), CN_OK);
    ck_assert_uint_eq(r, 0);
    sched_members_free(m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("members");
    TCase *t = tcase_create("table");
    tcase_add_test(t, test_sched_members_ranks_are_per_role_and_stable);
    tcase_add_test(t, test_sched_members_dead_nodes_are_dropped_and_ranks_stay_dense);
    tcase_add_test(t, test_sched_members_silent_node_dies_once_and_frees_its_rank);
    tcase_add_test(t, test_sched_members_rejects_bad_timing);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ts_run_suite(suite());
}
