/* text_lines.h — lines of a file read through zlib, so FILE.gz reads as
 * FILE, transparently; NUL bytes are kept (gzgets would stop at one) so the
 * caller can refuse a binary file. Shared by text index (JSONL corpora) and
 * text audit (JSONL completions). */
#ifndef CS_TEXT_LINES_H
#define CS_TEXT_LINES_H

#include <stddef.h>
#include <sys/types.h>
#include <zlib.h>

typedef struct {
    gzFile f;
    char buf[1 << 16];
    size_t pos, len;
    int eof, err;
} cs_text_lines;

/* One line of r->f into *line (grown as needed, NUL-terminated after it,
 * the '\n' kept): its length, 0 at the end, -1 on a read error (r->err set)
 * or out of memory (r->err 0). */
ssize_t cs_text_getline(cs_text_lines *r, char **line, size_t *cap);

/* After gzread returned 0 (the end): 1 when the end came inside a gzip
 * member (a truncated .gz, which zlib otherwise ends quietly), else 0. */
int cs_text_gz_truncated(gzFile f);

/* 1 when the last error on f was the system's (errno says which), not the data's. */
int cs_text_gz_errno(gzFile f);

/* zlib's message for the last error on f, without the "PATH: " it puts first. */
const char *cs_text_gz_error(gzFile f, const char *path);

#endif
