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

// escape copies src into dst (n bytes) with control characters written as
// \xNN, so a name or path from outside cannot forge or split log lines.
static void escape(char *dst, size_t n, const char *src)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p && o + 5 < n; p++) {
        if (*p < 0x20 || *p == 0x7f)
            o += (size_t)snprintf(dst + o, n - o, "\\x%02x", *p);
        else
            dst[o++] = (char)*p;
    }
    dst[o] = 0;
}

void cn_log(cn_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (level < min_level || level >= CN_LOG_OFF)
        return;
    // Most lines fit on the stack; a longer one (an error naming every
    // column of a wide file) is formatted again on the heap, never cut.
    // Control characters are escaped (each takes at most 4 bytes).
    char stack_raw[2048];
    char *raw = stack_raw;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(stack_raw, sizeof stack_raw, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof stack_raw) {
        char *big = malloc((size_t)n + 1);
        if (big != NULL) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            raw = big;
        }
    }
    size_t cap = strlen(raw) * 4 + 6;
    char stack_msg[2048];
    char *msg = cap <= sizeof stack_msg ? stack_msg : malloc(cap);
    if (msg == NULL) {
        msg = stack_msg;
        cap = sizeof stack_msg;
    }
    escape(msg, cap, raw);
    if (raw != stack_raw)
        free(raw);
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

void cn_log_warn_line(void *arg, const char *line)
{
    (void)arg;
    cn_log(CN_LOG_WARN, "%s", line);
}
