// cn_log.c: timestamped single-line logging to stderr.
#include "common/cn_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static cn_log_level min_level = CN_LOG_INFO;
static char node_name[64] = "";
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void cn_log_set_level(cn_log_level level)
{
    min_level = level;
}

int cn_log_parse_level(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

void cn_log_set_node(const char *node)
{
    pthread_mutex_lock(&log_mu);
    snprintf(node_name, sizeof node_name, "%s", node ? node : "");
    pthread_mutex_unlock(&log_mu);
}

void cn_log(cn_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (level < min_level || level >= CN_LOG_OFF)
        return;
    // Most lines fit on the stack; a longer one (an error naming every
    // column of a wide file) is formatted again on the heap, never cut.
    char stack_msg[2048];
    char *msg = stack_msg;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(stack_msg, sizeof stack_msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof stack_msg) {
        char *big = malloc((size_t)n + 1);
        if (big != NULL) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            msg = big;
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_mu);
    fprintf(stderr, "%s.%03ldZ %s [%s] %s\n", when, ts.tv_nsec / 1000000, tags[level],
            node_name[0] ? node_name : "canopy", msg);
    pthread_mutex_unlock(&log_mu);
    if (msg != stack_msg)
        free(msg);
}
