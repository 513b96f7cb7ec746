/* ingest_internal.h — what the ingestion files share (not part of the API).
 *
 * ingest.c owns the batch pipeline and the SQL; ingest_walk.c turns the
 * command-line inputs into jobs; ingest_tar.c reads shards; ingest_captions.c
 * holds the caption sources and UTF-8 repair. */
#ifndef CS_INGEST_INTERNAL_H
#define CS_INGEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/gzidx.h"
#include "core/store.h"
#include "index/hashes.h"
#include "index/ingest.h"

enum { ING_OK = 0, ING_ERROR = 1, ING_DUP = 2 };

/* One input: an image file, or a tar member already in memory. All strings
 * and buffers are owned by the job (freed by ing_job_clear). */
typedef struct {
    char *source;        /* refs.source */
    char *path;          /* file to read, or NULL when data is given */
    uint8_t *data;       /* tar member bytes */
    size_t len;
    int has_data;
    char *caption;       /* candidate caption (raw bytes, NUL-terminated), may be NULL */
    int caption_from_sidecar_ok; /* 0: worker may look for a sidecar NAME.txt */
    char *pre_error;     /* failure known before processing (missing path, bad tar member) */
    int64_t existing_id; /* > 0: an 'error' row to update in place */
    /* a tar member: where its bytes lie in the shard (core/shard.h's
     * locator, kept instead of the thumbnail under --no-thumbs); loc_gz: a
     * gzip'd shard, the offset is in its uncompressed stream */
    int has_loc, loc_gz;
    uint64_t loc_off, loc_len;
    uint32_t loc_plen;   /* the shard's path is source[0, loc_plen) */
    /* a gzip'd shard's access points met since the last job, written before
     * this one in the same transaction (ing_tar_write_points) */
    cs_gz_point *gz_pts;
    int gz_npts;
    /* results, filled by the worker */
    int status;
    char *error;         /* for status error */
    char *note;          /* caption repaired etc. (kept beside status ok/dup) */
    char sha[65];
    int have_sha;
    int64_t size;
    int w, h;
    cs_hashes hashes;
    uint8_t *thumb;      /* CS_THUMB_SIZE^2 * 3 */
    uint8_t *lf;         /* CS_LF_RECORD bytes, or NULL (local features off) */
} ing_job;

void ing_job_clear(ing_job *j);

/* A string -> string map for captions (open addressing). */
typedef struct {
    char **keys, **vals;
    size_t cap, n;
} ing_map;

int ing_map_put(ing_map *m, const char *key, const char *val); /* copies; replaces; 0/-1 */
const char *ing_map_get(const ing_map *m, const char *key);
void ing_map_free(ing_map *m);

typedef struct ing_ctx ing_ctx;

/* Does this source still need work? 0 = skip it (already ok/duplicate, or
 * queued earlier in this run), 1 = process (*existing_id set when an 'error'
 * row is to be updated), -1 = store failure (err). */
int ing_wanted(ing_ctx *c, const char *source, int64_t *existing_id, cs_err *err);
/* Queues a job (taking ownership of its contents, even on failure); runs and
 * writes a batch when it is full. checked: ing_wanted was already asked. */
int ing_push(ing_ctx *c, ing_job *job, int checked, cs_err *err);
/* Notes a caption problem found outside a job (e.g. a bad line of a mapping). */
void ing_note(ing_ctx *c);
ing_map *ing_captions(ing_ctx *c);
ing_map *ing_loaded_dirs(ing_ctx *c);
void ing_progress_more(ing_ctx *c, int64_t n); /* grows the progress total */
/* 1 when thumbnails are not stored (opts->no_thumbs). */
int ing_no_thumbs(const ing_ctx *c);
/* Writes j's access points to tar_points of s (ingest_tar.c). */
int ing_tar_write_points(cs_store *s, const ing_job *j, cs_err *err);
/* 1 during the counting pass (inputs are only counted; shards are skipped). */
int ing_counting(const ing_ctx *c);
/* A unit (an image file, or a whole tar shard) begins: in the counting pass
 * its size is noted for the shard cut; in the work pass 0 = another shard
 * owns it (skip it), 1 = process it. Always 1 when not sharding. */
int ing_unit(ing_ctx *c, const char *path);

/* ingest_walk.c: one command-line input (file, folder, list, shard). */
int ing_walk_input(ing_ctx *c, const char *arg, int from_list, cs_err *err);
/* Absolute form of a path (realpath when it exists); malloc'd. */
char *ing_abs_path(const char *p);
int ing_has_ext(const char *name, const char *const *exts);
int ing_is_image_name(const char *name);
int ing_is_tar_name(const char *name);

/* ingest_tar.c: every image member of a shard. */
int ing_tar(ing_ctx *c, const char *path, cs_err *err);

/* Streams a shard once for readers other than ingest (the embedders): for
 * each regular member with an image name (as ing_tar takes them), want()
 * says whether its bytes are needed (1), not (0) or fails (-1, err set);
 * got() receives the bytes (borrowed, NUL-terminated) or, data NULL, why the
 * member could not be read (the stream then stops); it returns 0 or -1 (err). */
typedef struct {
    void *u;
    int (*want)(void *u, const char *member, cs_err *err);
    int (*got)(void *u, const char *member, const uint8_t *data, size_t len, const char *problem,
               cs_err *err);
} ing_tar_visitor;
/* 0: the whole shard was read; 1: it could not be opened or broke off
 * (problem: "<path>: <reason>"; the members before the break were visited);
 * -1: a callback failed or out of memory (err). */
int ing_tar_visit(const char *path, const ing_tar_visitor *v, char *problem, size_t pn, cs_err *err);

/* ingest_captions.c */
/* Loads dir/captions.jsonl, then dir/captions.csv (once per dir) into the
 * map; an image already mapped keeps its first caption. */
void ing_load_caption_files(ing_ctx *c, const char *dir);
/* Repairs invalid UTF-8 (U+FFFD per bad byte) and trims surrounding white
 * space; returns a malloc'd string, *repaired = 1 when bytes were replaced. */
char *ing_clean_caption(const char *s, size_t n, int *repaired);
/* Reads a sidecar caption file (at most 1 MiB); NULL when there is none. */
char *ing_read_sidecar(const char *image_path, int *unreadable);
/* The "caption" string of a JSON object text, malloc'd, or NULL. */
char *ing_json_caption(const char *text, size_t n);

#endif
