/* gzidx.h — random access into a gzip file (the method of zlib's
 * examples/zran.c): while the file is inflated once, access points are
 * recorded at deflate block boundaries, each the uncompressed offset, the
 * compressed byte and bit where the next block starts, and the 32 KiB of
 * output before it (the window its back-references may reach). Inflating
 * from a point needs no byte before it, so a tar member of a .tar.gz shard
 * can be re-read (core/shard.c) by inflating from the nearest point at or
 * before its offset instead of from the start of the shard.
 *
 * Concatenated gzip members (cat a.gz b.gz) are one stream of output, as
 * gzip -d reads them. */
#ifndef CS_GZIDX_H
#define CS_GZIDX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

#define CS_GZ_WINDOW 32768 /* deflate's largest back-reference distance */

typedef struct {
    uint64_t out;          /* uncompressed offset where the point is */
    uint64_t in;           /* file offset of the first byte not wholly consumed */
    int bits;              /* 0..7: bits of byte in - 1 still to inflate */
    size_t wlen;           /* bytes of window (< 32 KiB only near the start) */
    unsigned char *window; /* the wlen bytes of output before out, malloc'd */
} cs_gz_point;

/* When a point is placed (at the first block boundary after both hold, or
 * the second alone): the amortisation is a choice of the caller (ingest:
 * index/ingest_tar.c says why its numbers). */
typedef struct {
    int members;       /* at least this many cs_gz_note_member calls since the last point */
    uint64_t max_span; /* or at least this many output bytes since it */
} cs_gz_spacing;

typedef struct cs_gz_reader cs_gz_reader;

/* Opens path (a gzip file) for one sequential pass. */
int cs_gz_open(cs_gz_reader **r, const char *path, cs_gz_spacing sp, cs_err *err);
/* The next uncompressed bytes: *buf (valid until the next call), their
 * count, 0 at the end, -1 on a corrupt or cut stream (err names path). */
ssize_t cs_gz_read(cs_gz_reader *r, const void **buf, cs_err *err);
/* One more unit (an image member) met in the output: counted for spacing. */
void cs_gz_note_member(cs_gz_reader *r);
/* Moves the oldest point not yet taken to *p (the caller owns its window
 * then); 1 when there was one, else 0. */
int cs_gz_take_point(cs_gz_reader *r, cs_gz_point *p);
void cs_gz_close(cs_gz_reader *r);

/* Re-reading: a cursor keeps one inflate stream open between calls, so
 * reads at rising offsets of the same file (a whole store's thumbnails in id
 * order) continue where the last stopped instead of restarting at a point. */
typedef struct cs_gz_cursor cs_gz_cursor;

/* The len bytes at uncompressed offset off of path into *out (malloc'd),
 * inflated from point p (NULL: the start of the file; p->out <= off) or
 * from *cur's open stream when that is nearer. *cur is created when NULL.
 * A stream that ends or is corrupt before off + len is an error naming
 * path (a shard cut or changed since its points were recorded). */
int cs_gz_extract(cs_gz_cursor **cur, const char *path, const cs_gz_point *p, uint64_t off, uint64_t len,
                  uint8_t **out, cs_err *err);
void cs_gz_cursor_free(cs_gz_cursor *c);

#endif
