// clock_shift.c: loaded with LD_PRELOAD by test_cluster, this moves what a
// process reads of the wall clock (CLOCK_REALTIME) by CANOPY_TEST_CLOCK_SHIFT_S
// seconds, as an NTP step would. Code that computes a timed wait's deadline
// from the wall clock then waits that much longer or shorter; code on the
// monotonic clock is unaffected.
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (real == NULL)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        const char *s = getenv("CANOPY_TEST_CLOCK_SHIFT_S");
        if (s != NULL)
            ts->tv_sec += (time_t)atol(s);
    }
    return rc;
}
