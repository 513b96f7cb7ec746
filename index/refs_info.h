/* refs_info.h — reading the refs table for the index commands: counts by
 * status and per descriptor table (index stats), the rows in id order
 * (index ls), one reference's source and caption (index query). Read only;
 * index/ingest.c is the writer of refs. */
#ifndef CS_REFS_INFO_H
#define CS_REFS_INFO_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"

typedef struct {
    int64_t total, ok, duplicate, error;
    int64_t notes;           /* not errors, with a note (repaired caption) */
    int64_t captioned;
    int64_t pdq_low_quality; /* PDQ quality < 50; -1 when the store has no hashes table */
    int n_tables;            /* every ref_* table, whoever added it, by name */
    char **tables;
    int64_t *table_rows;     /* -1 when unreadable */
} cs_refs_stats;

/* Fails only when the refs table cannot be read; the other counts are -1
 * when their table is missing. Free with cs_refs_stats_free. */
int cs_refs_stats_load(cs_store *s, cs_refs_stats *st, cs_err *err);
void cs_refs_stats_free(cs_refs_stats *st);

/* One refs row; strings are NULL when the column is. */
typedef struct {
    int64_t id;
    const char *status, *sha256, *source, *caption, *error;
    int has_dims, w, h;
    int has_size;
    int64_t size;
    int has_dup_of;
    int64_t dup_of;
} cs_ref_row;

/* Calls fn for every reference in id order (errors_only: those with status
 * error or a note), at most limit of them (< 0: all). Rows are valid only
 * during the call. */
int cs_refs_each(cs_store *s, int errors_only, int64_t limit, void (*fn)(const cs_ref_row *r, void *ctx), void *ctx,
                 cs_err *err);

/* Looks up references by id with one prepared statement. */
typedef struct cs_ref_lookup cs_ref_lookup;
int cs_ref_lookup_open(cs_ref_lookup **out, cs_store *s, cs_err *err);
/* *source ("?" when unknown) and *caption (NULL when none) of ref id; valid
 * until the next call. */
void cs_ref_lookup_get(cs_ref_lookup *l, int64_t id, const char **source, const char **caption);
void cs_ref_lookup_close(cs_ref_lookup *l);

#endif
