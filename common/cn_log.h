// cn_log.h: one line per event on stderr, for daemons and the CLI.
//
// Format: "2026-11-28T10:00:00.123Z INFO  [ps-1] message". Libraries below
// the daemons (ml/, proto/) never log; they return errors. The level and node
// name are process-wide and set once at start-up.
#ifndef CN_LOG_H
#define CN_LOG_H

typedef enum { CN_LOG_DEBUG = 0, CN_LOG_INFO, CN_LOG_WARN, CN_LOG_ERROR, CN_LOG_OFF } cn_log_level;

// cn_log_set_level sets the minimum level printed (default CN_LOG_INFO).
void cn_log_set_level(cn_log_level level);

// cn_log_parse_level maps "debug|info|warn|error|off" to a level; returns -1
// for anything else.
int cn_log_parse_level(const char *s);

// cn_log_set_node sets the node name shown in brackets (copied).
void cn_log_set_node(const char *node);

// cn_log writes one line if level is enabled. Thread-safe.
void cn_log(cn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// cn_log_warn_line logs line at CN_LOG_WARN. Its shape fits the callbacks
// libraries take to report events instead of printing (arg is unused).
void cn_log_warn_line(void *arg, const char *line);

#define CN_DEBUG(...) cn_log(CN_LOG_DEBUG, __VA_ARGS__)
#define CN_INFO(...) cn_log(CN_LOG_INFO, __VA_ARGS__)
#define CN_WARN(...) cn_log(CN_LOG_WARN, __VA_ARGS__)
#define CN_ERROR(...) cn_log(CN_LOG_ERROR, __VA_ARGS__)

#endif
