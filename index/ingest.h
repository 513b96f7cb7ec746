/* ingest.h — `index add`: put reference images into the store.
 *
 * Inputs are folders (walked recursively, entries in byte order), single
 * image files, list files (.txt/.lst: one path per line, relative paths taken
 * from the list's folder; only when given directly) and tar shards in the
 * webdataset layout img2dataset writes (KEY.jpg|png + KEY.txt or KEY.json
 * with "caption"). Captions of files come from a sidecar NAME.txt, else from
 * a captions.jsonl ({"file": path relative to its folder, "caption": ...}) or
 * captions.csv (file,caption) in the folder being walked or the file's folder.
 *
 * Every input becomes one refs row (source = absolute path, or
 * "<absolute shard path>//<member>"): status 'ok' with its hashes
 * (ref_hashes) and a 64x64 thumbnail (ref_thumbs), 'duplicate' (same sha256
 * as an earlier 'ok' row: dup_of), or 'error' with the reason. Sources
 * already present as ok/duplicate are skipped; 'error' rows are retried and
 * updated in place. Work is decoded and hashed on worker threads and
 * written from the calling thread in batches, one transaction each, in input
 * order: a run killed at any point and rerun ends with the same rows as an
 * uninterrupted run. */
#ifndef CS_INGEST_H
#define CS_INGEST_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"

typedef struct {
    int threads;        /* decode/hash threads; 0 = cs_threads() */
    int batch;          /* refs per transaction; 0 = 256 */
    int64_t max_pixels; /* per image; 0 = CS_IMAGE_DEFAULT_MAX_PIXELS */
    int progress;       /* show a progress line (core/progress.h rules) */
    int local_features; /* 1: a SIFT record per reference (index/localfeat.h) into ref_localfeat */
    /* Sharded add (index/shard.h): shard_n > 0 keeps only the units (image
     * files, whole tar shards) of shard shard_k of shard_n: the inputs walked
     * in order, cut into shard_n contiguous runs of about equal bytes, so the
     * shards in order hold exactly the rows one process would write, in its
     * order. Every process computes the same cut from the same inputs. */
    int shard_k, shard_n;
    /* 1: no ref_thumbs row for references read from files (12 KiB each):
     * readers get the thumbnail re-read from the file through the view
     * core/shard.c puts over ref_thumbs (meta thumbs = 'source'), the same
     * pixels. Tar members keep theirs (re-reading members is not built). */
    int no_thumbs;
} cs_ingest_opts;

typedef struct {
    int64_t added;      /* new 'ok' references */
    int64_t duplicates; /* new 'duplicate' rows */
    int64_t errors;     /* inputs recorded (or re-recorded) as 'error' */
    int64_t skipped;    /* already in the index */
    int64_t notes;      /* captions repaired (invalid UTF-8) or unreadable */
    /* seconds: worker phases are summed over threads, the others are wall time */
    double t_read, t_sha, t_decode, t_hash, t_thumb; /* per image, on workers */
    double t_walk;      /* listing inputs, reading tar shards, captions (queueing thread) */
    double t_lookup;    /* SQLite: is this source already indexed? (queueing thread) */
    double t_db;        /* SQLite: writing batches (writer thread, overlaps the workers) */
    double t_db_wait;   /* wall time the queueing thread waited for the writer */
    double t_parallel;  /* wall time of the worker phases */
    double t_total;     /* wall time of the whole call */
} cs_ingest_stats;

/* Ingests paths[0..n) into s. Per-input failures are recorded in refs, never
 * returned; -1 only for failures of the store itself (err set). st may be
 * NULL; otherwise it is zeroed and filled, also on failure. */
int cs_ingest_add(cs_store *s, const char *const *paths, int n, const cs_ingest_opts *opts,
                  cs_ingest_stats *st, cs_err *err);

#endif
