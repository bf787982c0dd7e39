// cn_buf.h: a growable byte buffer for building text (JSON lines, metrics,
// tables). Embedded in caller memory: cn_buf_init / cn_buf_fini.
// Thread rule: one owner at a time.
#ifndef CN_BUF_H
#define CN_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/cn_err.h"

typedef struct cn_buf {
    char *data; // NUL-terminated when len > 0 or after any append
    size_t len; // bytes used, excluding the NUL
    size_t cap; // bytes allocated
    int oom;    // set once an allocation failed; later appends are no-ops
} cn_buf;

void cn_buf_init(cn_buf *b);
void cn_buf_fini(cn_buf *b);
void cn_buf_reset(cn_buf *b);
// cn_buf_append adds n bytes; cn_buf_printf adds formatted text.
// Both return CN_OK or CN_ENOMEM (and set b->oom).
cn_err cn_buf_append(cn_buf *b, const void *p, size_t n);
cn_err cn_buf_printf(cn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cn_err cn_buf_vprintf(cn_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
