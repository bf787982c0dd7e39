// cn_clock.h: monotonic and wall clocks.
#ifndef CN_CLOCK_H
#define CN_CLOCK_H

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

#endif
