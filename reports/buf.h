/* buf.h — a growable byte buffer and a string arena for the report writers.
 *
 * A report is built in memory (cs_buf) and written once, so a failed report
 * never leaves half a file. Allocation failure is sticky: the buffer sets
 * oom and ignores further appends; the writer checks it once at the end. */
#ifndef CS_REPORT_BUF_H
#define CS_REPORT_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;     /* NUL-terminated when len > 0 or after any append */
    size_t len, cap;
    int oom;     /* 1 after a failed allocation */
} cs_buf;

void cs_buf_free(cs_buf *b);
void cs_buf_put(cs_buf *b, const void *data, size_t n);
void cs_buf_puts(cs_buf *b, const char *s);
void cs_buf_putc(cs_buf *b, char c);
void cs_buf_printf(cs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Base64 (RFC 4648, with padding) of n bytes. */
void cs_buf_base64(cs_buf *b, const uint8_t *data, size_t n);
/* Takes the buffer's string (caller frees); the buffer is left empty. */
char *cs_buf_take(cs_buf *b);

/* Strings that live as long as the report model: freed all at once. */
typedef struct cs_arena_chunk cs_arena_chunk;
typedef struct {
    cs_arena_chunk *head;
    int oom;
} cs_arena;

/* Copy of s (NULL stays NULL); NULL with a->oom set when memory runs out. */
char *cs_arena_strdup(cs_arena *a, const char *s);
void *cs_arena_alloc(cs_arena *a, size_t n);
void cs_arena_free(cs_arena *a);

#endif
