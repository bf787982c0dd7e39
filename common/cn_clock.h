// cn_clock.h: monotonic and wall clocks, and timed waits on condition
// variables (the one place that does timespec arithmetic).
#ifndef CN_CLOCK_H
#define CN_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

// cn_now_ns returns monotonic time in nanoseconds (for durations).
static inline uint64_t cn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// cn_now_ms returns monotonic time in milliseconds.
static inline uint64_t cn_now_ms(void)
{
    return cn_now_ns() / 1000000ull;
}

// cn_wall_ms returns Unix time in milliseconds (for records a human reads).
static inline uint64_t cn_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

// cn_cond_init_mono initialises cv to time its waits on CLOCK_MONOTONIC, so
// a change of the wall clock neither shortens nor stretches them.
void cn_cond_init_mono(pthread_cond_t *cv);

// cn_cond_wait_ms waits on cv (initialised with cn_cond_init_mono) with mu
// held for at most ms milliseconds. Returns 0 when signalled (or woken
// spuriously), ETIMEDOUT when the time passed.
int cn_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms);

// cn_sleep_ms sleeps for ms milliseconds (restarting after signals).
void cn_sleep_ms(uint64_t ms);

#endif
