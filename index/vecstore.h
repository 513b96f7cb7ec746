/* vecstore.h — per-descriptor vector columns beside the database.
 *
 * A column is two files next to the store (cs_store_sidecar):
 *   <db>.vec-<name>      header + count rows of dim float32 (row-major)
 *   <db>.vec-<name>.ids  header + count int64 refs.id, row i of both files
 *                        belongs to the same reference
 * Both are memory-mapped read-only; opening costs O(1) in the row count (the
 * header is read and the sizes are checked, nothing else), so a 1M x 512
 * column opens in milliseconds.
 *
 * Header (64 bytes, little-endian, the same layout in both files):
 *   magic[8] "CSVEC\0\0\1" (vectors) or "CSIDS\0\0\1" (ids), u32 version (1),
 *   u32 dim, u32 dtype, u32 reserved, u64 count, then zero padding.
 * dtype 0 (f32): a row is dim float32. dtype 1 (q8, scalar-quantised, for
 * stores that must stay small: dim + 4 bytes a row instead of 4 dim): a row
 * is its scale s (float32) then dim int8 q, value = q * s; q = round(v / g)
 * on the grid g = max |v| / 127, s = |v| / |q| (the decoded row keeps the
 * norm of v). Most readers see float32 either way: a q8 column is decoded
 * into memory when opened (vecs points there); the exact search
 * (cs_embed_search) opens it raw and stays at 8 bits (dequantising
 * 512-row blocks on the fly, the same scores bit for bit);
 * the scores of a q8 column are those of the decoded vectors (docs/SCALE.md
 * measures what that changes).
 * count is the committed row count: an append writes the rows past the end
 * and only then rewrites count (ids file first, vectors file last), so a crash
 * leaves a valid column of the old count plus ignored trailing bytes.
 * A file shorter than header + count rows is reported as truncated.
 *
 * Appending is for one writer at a time (an exclusive flock on the vector
 * file while a writable column is open). Readers keep using their mapping;
 * rows appended after they opened are not visible to them. */
#ifndef CS_VECSTORE_H
#define CS_VECSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/store.h"

#define CS_VS_HEADER_SIZE 64
#define CS_VS_MAX_DIM 65536

enum { CS_VS_F32 = 0, CS_VS_Q8 = 1 };

typedef struct {
    char *path;          /* vector file */
    char *ids_path;      /* id file */
    int dim;             /* floats per row */
    int64_t n;           /* rows */
    const float *vecs;   /* [n][dim], into the mapping (NULL when n = 0) */
    const int64_t *ids;  /* [n] refs.id, into the mapping (NULL when n = 0) */
    /* private */
    void *vmap, *imap;
    size_t vmap_size, imap_size;
    int vfd, ifd;        /* open only while writable */
    int writable;
    int64_t *by_id;      /* lazily built: rows sorted by id, for cs_vecstore_find */
    int dtype;           /* CS_VS_F32 or CS_VS_Q8 (as stored) */
    float *dec;          /* q8: the decoded rows vecs points at */
    int64_t dec_n;       /* rows decoded so far */
    int raw;             /* opened by cs_vecstore_open_store_raw */
    const unsigned char *q8; /* raw q8 column: [n] rows of scale + dim int8, into the mapping (vecs NULL) */
} cs_vecstore;

/* Opens the column at path (vector file; the id file is path + ".ids").
 * dim > 0: the column must have that dimension (else CS_EFORMAT
 *   "<path>: dimension 256, expected 512"); dim = 0 accepts the file's.
 * writable: take the writer lock and create the files when absent (then
 *   dim must be > 0). Read-only opening of a missing column fails with
 *   CS_ENOTFOUND. Free with cs_vecstore_close. */
int cs_vecstore_open(cs_vecstore *vs, const char *path, int dim, int writable, cs_err *err);
/* The same; a column it creates gets dtype (an existing one keeps its own). */
int cs_vecstore_open_dtype(cs_vecstore *vs, const char *path, int dim, int dtype, int writable, cs_err *err);

/* The same for the column named name (e.g. "tiny", "sscd") of store s; a
 * column it creates is q8 when the store's meta vec_dtype is 'q8'
 * (index add --embed-q8), else f32. */
int cs_vecstore_open_store(cs_vecstore *vs, cs_store *s, const char *name, int dim, int writable,
                     cs_err *err);

/* The same, read-only, for a reader that searches a q8 column at 8 bits
 * (index/knn.h cs_knn_exact_q8): a q8 column is not decoded, vs->q8 points
 * at its rows in the mapping and vs->vecs is NULL, so it costs dim + 4 bytes
 * a reference in memory instead of 4 dim. An f32 column opens as usual
 * (vs->q8 NULL). */
int cs_vecstore_open_store_raw(cs_vecstore *vs, cs_store *s, const char *name, int dim, cs_err *err);

/* Decodes n q8 rows (scale + dim int8 each) to float32 out[n][dim]: the
 * values every reader of a q8 column sees (value = q * scale). */
void cs_vs_q8_decode(const unsigned char *rows, int64_t n, int dim, float *out);
#define CS_VS_Q8_ROW(dim) ((size_t)(dim) + sizeof(float))

/* Appends n rows (ids[n], v[n][dim]) and remaps; vs->vecs/ids stay valid
 * only until the next append. Non-finite values are rejected. */
int cs_vecstore_append(cs_vecstore *vs, const int64_t *ids, const float *v, int64_t n, cs_err *err);

/* Row holding refs.id id, or -1. The first call sorts an index of the ids
 * (O(n log n), kept until close). Returns -2 when out of memory. */
int64_t cs_vecstore_find(cs_vecstore *vs, int64_t id);

void cs_vecstore_close(cs_vecstore *vs);

#endif
