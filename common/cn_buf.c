// cn_buf.c: growable byte buffer.
#include "common/cn_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cn_buf_init(cn_buf *b)
{
    memset(b, 0, sizeof *b);
}

void cn_buf_fini(cn_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void cn_buf_reset(cn_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

static cn_err reserve(cn_buf *b, size_t extra)
{
    if (b->oom)
        return CN_ENOMEM;
    if (b->len + extra + 1 <= b->cap)
        return CN_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = 1;
        return CN_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return CN_OK;
}

cn_err cn_buf_append(cn_buf *b, const void *p, size_t n)
{
    if (reserve(b, n) != CN_OK)
        return CN_ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return CN_OK;
}

cn_err cn_buf_vprintf(cn_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || reserve(b, (size_t)n) != CN_OK)
        return CN_ENOMEM;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return CN_OK;
}

cn_err cn_buf_printf(cn_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cn_err e = cn_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return e;
}
