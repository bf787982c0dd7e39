// cn_log.c: timestamped single-line logging to stderr.
#include "common/cn_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
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
    char raw[2048], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    escape(msg, sizeof msg, raw);
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
}

void cn_log_warn_line(void *arg, const char *line)
{
    (void)arg;
    cn_log(CN_LOG_WARN, "%s", line);
}
