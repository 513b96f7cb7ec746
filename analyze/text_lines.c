/* text_lines.c — lines of a gzFile (see text_lines.h). */
#include "analyze/text_lines.h"

#include <stdlib.h>
#include <string.h>

ssize_t cs_text_getline(cs_text_lines *r, char **line, size_t *cap) {
    size_t n = 0;
    for (;;) {
        if (r->pos == r->len) {
            if (r->eof) return (ssize_t)n;
            int k = gzread(r->f, r->buf, sizeof r->buf);
            if (k < 0) return r->err = 1, -1;
            if (k == 0 && cs_text_gz_truncated(r->f)) return r->err = 1, -1;
            if (k == 0) r->eof = 1;
            r->pos = 0, r->len = (size_t)k;
            continue;
        }
        const char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        size_t take = nl ? (size_t)(nl - (r->buf + r->pos)) + 1 : r->len - r->pos;
        if (n + take + 1 > *cap) {
            size_t c = *cap ? *cap : 4096;
            while (c < n + take + 1) c *= 2;
            char *t = realloc(*line, c);
            if (!t) return -1;
            *line = t, *cap = c;
        }
        memcpy(*line + n, r->buf + r->pos, take);
        n += take, r->pos += take;
        (*line)[n] = 0;
        if (nl) return (ssize_t)n;
    }
}

int cs_text_gz_truncated(gzFile f) {
    int zerr = 0;
    gzerror(f, &zerr);
    return zerr == Z_BUF_ERROR;
}

const char *cs_text_gz_error(gzFile f, const char *path) {
    int zerr = 0;
    const char *m = gzerror(f, &zerr);
    size_t n = strlen(path);
    if (!m || !*m) return "corrupt data";
    return !strncmp(m, path, n) && !strncmp(m + n, ": ", 2) ? m + n + 2 : m;
}

int cs_text_gz_errno(gzFile f) {
    int zerr = 0;
    gzerror(f, &zerr);
    return zerr == Z_ERRNO;
}
