// cn_err.h: the error codes every canopy library returns.
//
// One X-macro makes both the enum and the strings, as libuv does. 0 is
// success; every other value is a failure whose meaning is in the table.
// Code that parses outside input also fills a caller-supplied buffer with
// what went wrong, where, and how to fix it (see cn_errf).
#ifndef CN_ERR_H
#define CN_ERR_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define CN_ERRORS(X)                                                                               \
    X(CN_OK, "success")                                                                            \
    X(CN_ENOMEM, "out of memory")                                                                  \
    X(CN_EINVAL, "invalid argument")                                                               \
    X(CN_ERANGE, "out of range")                                                                   \
    X(CN_ENOTFOUND, "not found")                                                                   \
    X(CN_EEXIST, "already exists")                                                                 \
    X(CN_EIO, "input/output error")                                                                \
    X(CN_EFORMAT, "malformed input")                                                               \
    X(CN_ETIMEDOUT, "timed out")                                                                   \
    X(CN_ECLOSED, "closed")                                                                        \
    X(CN_EBUSY, "busy")                                                                            \
    X(CN_EPROTO, "protocol error")                                                                 \
    X(CN_EAUTH, "authentication failed")                                                           \
    X(CN_ETOOBIG, "too large")                                                                     \
    X(CN_EUNAVAIL, "unavailable")                                                                  \
    X(CN_ESTATE, "wrong state")                                                                    \
    X(CN_ECANCELED, "canceled")                                                                    \
    X(CN_EVERSION, "unsupported version")                                                          \
    X(CN_EINTERNAL, "internal error")

typedef enum {
#define CN_ERR_ENUM(name, text) name,
    CN_ERRORS(CN_ERR_ENUM)
#undef CN_ERR_ENUM
        CN_ERR_COUNT
} cn_err;

// cn_strerror returns a static, human-readable string for err; unknown values
// give "unknown error".
const char *cn_strerror(cn_err err);

// cn_err_name returns the enum name ("CN_ENOTFOUND") for err.
const char *cn_err_name(cn_err err);

// cn_errf formats a message into buf (of size len) if buf is not NULL and
// returns err, so a parser can write `return cn_errf(err, n, CN_EFORMAT, ...)`.
// A message longer than the buffer ends in "..." so a reader sees it was cut.
cn_err cn_errf(char *buf, size_t len, cn_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// cn_plural picks the word for a count in a message: one when n is 1, else
// many, as in printf("%zu %s", n, cn_plural(n, "shard", "shards")).
static inline const char *cn_plural(unsigned long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

// CN_ASSERT checks a programming invariant; it stays on in release builds and
// aborts with file and line.
#define CN_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "canopy: assertion failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

// CN_ERRBUF_LEN is the size callers give error buffers by convention: room
// for a message that names every column of a wide file and still ends with
// its hint. cn_errf marks a message that did not fit with "...".
#define CN_ERRBUF_LEN 4096

#endif
