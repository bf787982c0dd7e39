// failing_demo.c: a Check suite whose one test starts a child that writes a
// log line and then fails an assertion. Run only by failure_logs.sh, which
// checks that the failure prints the child's log and removes the test's
// directory: the behaviour integration tests rely on to show daemon logs.
#include <check.h>
#include <stdio.h>

#include "tests/support/support.h"

static char dir[256], log_path[300];

static bool logged(void *arg)
{
    (void)arg;
    return ts_file_contains(log_path, "daemon said: ready");
}

START_TEST(test_fails_after_its_child_logged)
{
    ts_tmpdir(dir, sizeof dir);
    snprintf(log_path, sizeof log_path, "%s/daemon.log", dir);
    char *argv[] = {"sh", "-c", "echo 'daemon said: ready'; exec sleep 60", NULL};
    ck_assert_int_gt(ts_spawn(argv, log_path), 0);
    ck_assert(ts_wait_until(logged, NULL, 10000));
    ck_assert_msg(0, "failing on purpose");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("failing-demo");
    TCase *t = tcase_create("core");
    tcase_add_test(t, test_fails_after_its_child_logged);
    suite_add_tcase(s, t);
    return ts_run_suite(s);
}
