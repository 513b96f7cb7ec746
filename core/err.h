/* err.h — the error convention of copyscope.
 *
 * Library code never prints and never exits. A function that can fail returns
 * 0 on success and -1 on failure, and fills the caller's cs_err with one line
 * of the form "<file or object>: <problem>". Only main() and the command
 * functions print it (as "copyscope: <msg>") and choose the exit status.
 * A NULL cs_err is allowed: the message is then dropped. */
#ifndef CS_ERR_H
#define CS_ERR_H

#include <stddef.h>

typedef struct {
    int code;       /* 0 = no error; otherwise a CS_E* value */
    char msg[1024]; /* "<file>: <problem>", no trailing newline */
} cs_err;

enum {
    CS_EOK = 0,
    CS_EIO = 1,      /* cannot read/write a file */
    CS_EFORMAT = 2,  /* input is not what it claims to be */
    CS_ELIMIT = 3,   /* input exceeds a safety limit (e.g. max pixels) */
    CS_EUSAGE = 4,   /* bad arguments or settings */
    CS_EDB = 5,      /* SQLite failure */
    CS_ENOMEM = 6,
    CS_ENOTFOUND = 7,
    CS_EINTERNAL = 8,
};

/* Sets e (if not NULL) and returns -1, so callers can write
 *   if (bad) return cs_fail(err, CS_EFORMAT, "%s: truncated header", path); */
int cs_fail(cs_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message: "<prefix>: <old msg>". Returns -1. */
int cs_wrap(cs_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void cs_err_clear(cs_err *e);

#endif
