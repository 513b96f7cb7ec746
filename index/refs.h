/* refs.h — reading the reference index (other modules use this, never the
 * tables directly): references, captions and their 64x64 thumbnails. */
#ifndef CS_REFS_H
#define CS_REFS_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"

#define CS_THUMB_SIZE 64

typedef struct {
    int64_t n;        /* references with status 'ok' and a thumbnail, ordered by id */
    int64_t *ids;     /* [n] refs.id */
    char **sources;   /* [n] path or shard//member */
    char **captions;  /* [n] caption or NULL */
    int w, h;         /* CS_THUMB_SIZE */
    uint8_t *rgb;     /* [n][h][w][3]: into map when map is set, else malloc'd */
    void *map;        /* the mapping of <db>.thumbs (read-only), or NULL */
    size_t map_len;
} cs_ref_thumbs;

/* Loads every usable reference with its thumbnail; caller frees with
 * cs_ref_thumbs_free. An empty index gives n = 0 (not an error). The
 * thumbnails are a read-only memory mapping of the cache <db>.thumbs
 * (written here when missing or stale: a flat copy of the ref_thumbs blobs
 * in id order, keyed by the count and a hash of the ids; safe to delete),
 * or, where it cannot be written, malloc'd. */
int cs_refs_load_thumbs(cs_store *s, cs_ref_thumbs *out, cs_err *err);
/* The same rows (ids, sources, captions) without their pixels (rgb NULL):
 * for a reader that gets the thumbnails elsewhere (copyscope-mpi's rank 0,
 * from the ranks that own them). */
int cs_refs_load_rows(cs_store *s, cs_ref_thumbs *out, cs_err *err);
void cs_ref_thumbs_free(cs_ref_thumbs *t);
/* Frees (or unmaps) only the pixels; rgb becomes NULL. */
void cs_ref_thumbs_free_pixels(cs_ref_thumbs *t);

/* The reference a suite's expect_ref names: the one whose source is name, or
 * ends with "/name" (paths relative to any indexed folder), status ok or
 * duplicate. *id = its refs.id, 0 when none. */
int cs_refs_find_source(cs_store *s, const char *name, int64_t *id, cs_err *err);

#endif
