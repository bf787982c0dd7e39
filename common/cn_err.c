// cn_err.c: strings for cn_err and the error-buffer helper.
#include "common/cn_err.h"

#include <stdarg.h>
#include <string.h>

const char *cn_strerror(cn_err err)
{
    switch (err) {
#define CN_ERR_STR(name, text)                                                                     \
    case name:                                                                                     \
        return text;
        CN_ERRORS(CN_ERR_STR)
#undef CN_ERR_STR
    default:
        return "unknown error";
    }
}

const char *cn_err_name(cn_err err)
{
    switch (err) {
#define CN_ERR_NAME(name, text)                                                                    \
    case name:                                                                                     \
        return #name;
        CN_ERRORS(CN_ERR_NAME)
#undef CN_ERR_NAME
    default:
        return "CN_EUNKNOWN";
    }
}

cn_err cn_errf(char *buf, size_t len, cn_err err, const char *fmt, ...)
{
    if (buf != NULL && len > 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n >= len && len > 4)
            memcpy(buf + len - 4, "...", 4);
    }
    return err;
}
