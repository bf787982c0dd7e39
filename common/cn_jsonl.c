// cn_jsonl.c: the append-only JSON-lines log (see cn_jsonl.h).
#include "common/cn_jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cn_clock.h"
#include "common/cn_file.h"

struct cn_jsonl {
    int fd;
    size_t records;
    uint64_t write_ns; // spent in appends' write + fdatasync
};

static void say(void (*warn)(const char *, void *), void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(void (*warn)(const char *, void *), void *arg, const char *fmt, ...)
{
    if (warn == NULL)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    warn(msg, arg);
}

// read_fd reads the whole file open on fd. *buf is NUL-terminated.
static cn_err read_fd(int fd, char **buf, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return CN_EIO;
    size_t cap = (size_t)st.st_size;
    char *b = malloc(cap + 1);
    if (b == NULL)
        return CN_ENOMEM;
    size_t got = 0;
    while (got < cap) {
        ssize_t r = pread(fd, b + got, cap - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    b[got] = 0;
    *buf = b;
    *len = got;
    return CN_OK;
}

static cn_err sync_dir_of(const char *path)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return CN_EIO;
    int rc = fsync(dfd);
    close(dfd);
    return rc == 0 ? CN_OK : CN_EIO;
}

cn_err cn_jsonl_open(cn_jsonl **out, const char *path, cn_jsonl_replay_fn fn, void *arg,
                     void (*warn)(const char *msg, void *arg), char *err, size_t errlen)
{
    *out = NULL;
    int created = access(path, F_OK) != 0;
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return cn_errf(err, errlen, CN_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (created && sync_dir_of(path) != CN_OK) {
        close(fd);
        return cn_errf(err, errlen, CN_EIO, "%s: cannot sync its directory", path);
    }
    char *text;
    size_t len;
    cn_err e = read_fd(fd, &text, &len);
    if (e != CN_OK) {
        close(fd);
        return cn_errf(err, errlen, e, "%s: cannot read: %s", path, cn_strerror(e));
    }
    // The intact prefix ends after the last newline that is followed by no
    // NUL-only tail; anything after it is a torn record or a zero fill.
    size_t keep = len;
    while (keep > 0 && text[keep - 1] == 0)
        keep--;
    if (keep < len)
        say(warn, arg,
            "%s: %zu zero bytes at the end (a crash before the data reached the disk) "
            "cut off",
            path, len - keep);
    size_t torn_from = keep;
    while (torn_from > 0 && text[torn_from - 1] != '\n')
        torn_from--;
    if (torn_from < keep)
        say(warn, arg, "%s: torn last record (%zu bytes without a newline) cut off", path,
            keep - torn_from);
    if (torn_from < len) {
        if (ftruncate(fd, (off_t)torn_from) != 0 || fdatasync(fd) != 0) {
            free(text);
            close(fd);
            return cn_errf(err, errlen, CN_EIO, "%s: cannot cut the torn tail: %s", path,
                           strerror(errno));
        }
    }
    cn_jsonl *l = calloc(1, sizeof *l);
    if (l == NULL) {
        free(text);
        close(fd);
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    }
    l->fd = fd;
    size_t lineno = 0;
    for (size_t i = 0; i < torn_from;) {
        char *nl = memchr(text + i, '\n', torn_from - i);
        size_t end = nl ? (size_t)(nl - text) : torn_from;
        text[end] = 0;
        lineno++;
        // A NUL inside a line (a zero-filled block mid-file) hides nothing
        // after the line: the line alone is unreadable.
        cJSON *rec = strlen(text + i) == end - i ? cJSON_Parse(text + i) : NULL;
        if (rec == NULL) {
            if (end > i)
                say(warn, arg, "%s:%zu: unreadable record skipped", path, lineno);
        } else {
            l->records++;
            if (fn)
                fn(rec, lineno, arg);
            cJSON_Delete(rec);
        }
        i = end + 1;
    }
    free(text);
    *out = l;
    return CN_OK;
}

cn_err cn_jsonl_append(cn_jsonl *l, const cJSON *rec)
{
    if (l == NULL)
        return CN_ECLOSED;
    char *text = cJSON_PrintUnformatted(rec);
    if (text == NULL)
        return CN_ENOMEM;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (line == NULL) {
        free(text);
        return CN_ENOMEM;
    }
    line[n] = '\n';
    line[n + 1] = 0;
    uint64_t t0 = cn_now_ns();
    cn_err e = cn_file_append_line(l->fd, line, n + 1);
    l->write_ns += cn_now_ns() - t0;
    free(line);
    if (e == CN_OK)
        l->records++;
    return e;
}

uint64_t cn_jsonl_write_ns(const cn_jsonl *l)
{
    return l ? l->write_ns : 0;
}

size_t cn_jsonl_records(const cn_jsonl *l)
{
    return l ? l->records : 0;
}

void cn_jsonl_close(cn_jsonl *l)
{
    if (l == NULL)
        return;
    close(l->fd);
    free(l);
}
