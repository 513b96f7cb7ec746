#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cs_fail(cs_err *e, int code, const char *fmt, ...) {
    if (!e) return -1;
    e->code = code ? code : CS_EINTERNAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int cs_wrap(cs_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* prefix, ": ", then as much of the old message as fits */
    size_t n = strlen(prefix);
    if (n > sizeof e->msg - 3) n = sizeof e->msg - 3;
    memcpy(e->msg, prefix, n);
    memcpy(e->msg + n, ": ", 2);
    size_t room = sizeof e->msg - n - 3, m = strnlen(old, room);
    memcpy(e->msg + n + 2, old, m);
    e->msg[n + 2 + m] = 0;
    if (!e->code) e->code = CS_EINTERNAL;
    return -1;
}

void cs_err_clear(cs_err *e) {
    if (!e) return;
    e->code = 0;
    e->msg[0] = 0;
}
