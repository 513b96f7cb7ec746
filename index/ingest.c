/* ingest.c — the `index add` pipeline: jobs are queued in input order, a
 * full batch is decoded, hashed and thumbnailed on worker threads
 * (core/parallel.h), then written in one transaction, in queue order, by a
 * writer thread while the next batch is being processed. Batches are written
 * strictly one after another, so a kill -9 leaves a prefix of the input
 * committed, and a rerun (which skips committed sources) continues it
 * exactly.
 *
 * Connections: the writer thread alone uses the store's connection; the
 * queueing thread looks sources up through a second, read-only connection.
 * It cannot see the batch being written until it commits, so the sources of
 * the two unwritten batches are also kept in memory (queued[]). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/fs.h"
#include "core/hash_sha256.h"
#include "core/image.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "core/shard.h"
#include "index/ingest_internal.h"
#include "index/localfeat.h"
#include "index/refs.h"

enum { T_READ, T_SHA, T_DECODE, T_HASH, T_THUMB, T_N };

typedef struct {
    ing_ctx *c;
    ing_job *jobs;
    int n, rc;
    cs_err err;
    cs_ingest_stats ws; /* the writer's counters, merged when it is joined */
} ing_writer;

struct ing_ctx {
    cs_store *s;            /* written by the writer thread only */
    cs_store *ro;           /* lookups from the queueing thread (NULL: use s, no overlap) */
    cs_ingest_stats *st;
    cs_image_opts iopts;
    int threads, batch_size;
    int local_features;     /* opts->local_features */
    int no_thumbs;          /* opts->no_thumbs */
    int counting;           /* first pass: only count inputs for the progress total */
    int64_t count;
    sqlite3_stmt *q_source; /* on ro (or s) */
    sqlite3_stmt *q_dup, *ins_ref, *upd_ref, *ins_hash, *ins_thumb, *ins_lf; /* on s */
    ing_job *buf[2];        /* [batch_size] each: one filling, one being written */
    int cur, n;             /* buf[cur] is filling, n jobs so far */
    size_t bytes;           /* tar member bytes held by buf[cur] */
    ing_map queued[2];      /* sources of buf[0], buf[1] */
    pthread_t wt;
    int writing;            /* buf[1 - cur] is being written (or was, inline) */
    int threaded;           /* ... by the thread wt, to be joined */
    ing_writer w;
    ing_map captions;       /* absolute image path -> caption, from mapping files */
    ing_map dirs;           /* folders whose mapping files were loaded */
    cs_progress *prog;
    int64_t total;
    double (*tt)[T_N];      /* per-thread timers */
    /* sharded add (opts->shard_n > 0): the units' weights from the counting
     * pass, the run [unit_lo, unit_hi) this shard owns, the work pass's count */
    int shard_k, shard_n;
    int64_t *unit_w;        /* bytes + ING_FIXED_BYTES (ing_unit); < 0: a tar shard */
    int64_t n_units, cap_units, unit_next, unit_lo, unit_hi;
    int unit_oom;
};

void ing_job_clear(ing_job *j) {
    free(j->source);
    free(j->path);
    free(j->data);
    free(j->caption);
    free(j->pre_error);
    free(j->error);
    free(j->note);
    free(j->thumb);
    free(j->lf);
    for (int i = 0; i < j->gz_npts; i++) free(j->gz_pts[i].window);
    free(j->gz_pts);
    memset(j, 0, sizeof *j);
}

int ing_counting(const ing_ctx *c) { return c->counting; }
int ing_no_thumbs(const ing_ctx *c) { return c->no_thumbs; }

/* A unit's weight in the shards' cut: its bytes (the decode, which grows
 * with them) plus the work every image costs whatever its size (the
 * thumbnail, the hashes, SIFT at 256 px), in bytes of decode. Measured here
 * (session 9, docs/BENCHMARKS.md, CPU of `index add -j 1`): that fixed part
 * is ~7.7 ms an image, and decoding costs ~30 ns a byte of PNG and ~76 ns a
 * byte of JPEG (4K wallpapers), so it weighs as 100-250 KB of file: 128 KiB.
 * With 4 KiB, a folder of small icons (1-3 KB each) was cut by their bytes
 * and one rank got 30 % more work than the other (h17a). */
enum { ING_FIXED_BYTES = 128 << 10 };

int ing_unit(ing_ctx *c, const char *path) {
    if (c->shard_n <= 0) return 1;
    if (!c->counting) {
        int64_t i = c->unit_next++;
        return i >= c->unit_lo && i < c->unit_hi;
    }
    if (c->n_units == c->cap_units) {
        int64_t cap = c->cap_units ? 2 * c->cap_units : 1024;
        int64_t *w = realloc(c->unit_w, (size_t)cap * sizeof *w);
        if (!w) {
            c->unit_oom = 1;
            return 1;
        }
        c->unit_w = w;
        c->cap_units = cap;
    }
    struct stat sb;
    int64_t w = ING_FIXED_BYTES + (stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0);
    c->unit_w[c->n_units++] = ing_is_tar_name(path) ? -w : w;
    return 1;
}

/* The cut: unit i goes to shard floor(N * bytes before it / all bytes), so
 * shards are contiguous runs in input order of about equal bytes. Returns
 * the number of image files this shard owns (its progress total). */
static int64_t shard_cut(ing_ctx *c) {
    __int128 total = 0, before = 0;
    for (int64_t i = 0; i < c->n_units; i++) total += c->unit_w[i] < 0 ? -c->unit_w[i] : c->unit_w[i];
    int64_t files = 0;
    c->unit_lo = c->unit_hi = 0;
    for (int64_t i = 0; i < c->n_units; i++) {
        int64_t w = c->unit_w[i] < 0 ? -c->unit_w[i] : c->unit_w[i];
        int owner = total > 0 ? (int)(before * c->shard_n / total) : 0;
        if (owner >= c->shard_n) owner = c->shard_n - 1;
        if (owner == c->shard_k) {
            if (c->unit_hi == 0) c->unit_lo = i;
            c->unit_hi = i + 1;
            files += c->unit_w[i] > 0;
        }
        before += w;
    }
    return files;
}
void ing_note(ing_ctx *c) { c->st->notes++; }
ing_map *ing_captions(ing_ctx *c) { return &c->captions; }
ing_map *ing_loaded_dirs(ing_ctx *c) { return &c->dirs; }

void ing_progress_more(ing_ctx *c, int64_t n) {
    c->total += n;
    cs_progress_set_total(c->prog, c->total);
}

int ing_wanted(ing_ctx *c, const char *source, int64_t *existing_id, cs_err *err) {
    *existing_id = 0;
    if (ing_map_get(&c->queued[0], source) || ing_map_get(&c->queued[1], source)) {
        c->st->skipped++;
        return 0;
    }
    double t0 = cs_now_s();
    sqlite3_stmt *q = c->q_source;
    sqlite3_bind_text(q, 1, source, -1, SQLITE_STATIC);
    int r = sqlite3_step(q), want = 1;
    if (r == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(q, 1);
        if (status && !strcmp(status, "error")) *existing_id = sqlite3_column_int64(q, 0);
        else want = 0;
    } else if (r != SQLITE_DONE) {
        sqlite3_reset(q);
        return cs_store_fail(c->ro ? c->ro : c->s, err, "looking up a source");
    }
    sqlite3_reset(q);
    c->st->t_lookup += cs_now_s() - t0;
    if (!want) {
        c->st->skipped++;
        return 0;
    }
    if (ing_map_put(&c->queued[c->cur], source, "")) return cs_fail(err, CS_ENOMEM, "out of memory");
    return 1;
}

static char *dupf(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 3;
    char *o = malloc(n);
    if (o) snprintf(o, n, "%s: %s", a, b);
    return o;
}

/* Worker: everything about one job that does not touch the store. */
/* Long: a worker's steps for one image in order (read, caption, decode, describe), each with its error. */
static void process_job(void *ctx, int64_t i, int thread) {
    ing_ctx *c = ctx;
    ing_job *j = &c->buf[c->cur][i];
    double *tt = c->tt[thread], t0 = cs_now_s(), t1;
    cs_err err = {0};
    j->status = ING_ERROR;
    if (j->pre_error) {
        j->error = strdup(j->pre_error);
        goto done;
    }
    if (!j->has_data) {
        if (cs_read_file(j->path, &j->data, &j->len, &err)) {
            j->error = strdup(err.msg);
            goto done;
        }
        j->has_data = 1;
    }
    t1 = cs_now_s();
    tt[T_READ] += t1 - t0;
    j->size = (int64_t)j->len;
    cs_sha256_hex(j->data, j->len, j->sha);
    j->have_sha = 1;
    t0 = cs_now_s();
    tt[T_SHA] += t0 - t1;

    if (!j->caption_from_sidecar_ok && j->path) {
        int unreadable;
        char *side = ing_read_sidecar(j->path, &unreadable);
        if (side) {
            free(j->caption);
            j->caption = side;
        } else if (unreadable) {
            j->note = dupf(j->source, "caption: sidecar .txt unreadable");
        }
    }
    if (j->caption) {
        int repaired;
        char *clean = ing_clean_caption(j->caption, strlen(j->caption), &repaired);
        free(j->caption);
        j->caption = clean && clean[0] ? clean : NULL;
        if (clean && !clean[0]) free(clean);
        if (repaired && !j->note) j->note = dupf(j->source, "caption: invalid UTF-8 replaced with U+FFFD");
    }

    cs_image img;
    int rc = cs_image_decode(&img, j->data, j->len, j->source, &c->iopts, &err);
    free(j->data);
    j->data = NULL;
    t1 = cs_now_s();
    tt[T_DECODE] += t1 - t0;
    if (rc) {
        j->error = strdup(err.msg);
        goto done;
    }
    j->w = img.w;
    j->h = img.h;
    rc = cs_hashes_compute(&img, &j->hashes, &err);
    t0 = cs_now_s();
    tt[T_HASH] += t0 - t1;
    if (rc) {
        cs_image_free(&img);
        j->error = dupf(j->source, err.msg);
        goto done;
    }
    if (c->local_features) { /* timed with the thumbnail */
        cs_lf_set *ls = malloc(sizeof *ls);
        j->lf = malloc(CS_LF_RECORD);
        rc = !ls || !j->lf ? cs_fail(&err, CS_ENOMEM, "out of memory") : cs_lf_extract(&img, CS_LF_REF_KP, 0, ls, &err);
        if (!rc) cs_lf_pack(ls, j->lf);
        free(ls);
        if (rc) {
            cs_image_free(&img);
            j->error = dupf(j->source, err.msg);
            goto done;
        }
    }
    cs_image th;
    rc = cs_image_resize(&th, &img, CS_THUMB_SIZE, CS_THUMB_SIZE, CS_RESIZE_AREA, &err);
    cs_image_free(&img);
    tt[T_THUMB] += cs_now_s() - t0;
    if (rc) {
        j->error = dupf(j->source, err.msg);
        goto done;
    }
    j->thumb = th.rgb;
    j->status = ING_OK;
done:
    if (j->status == ING_ERROR && !j->error) j->error = strdup("out of memory");
    free(j->data);
    j->data = NULL;
    cs_progress_add(c->prog, 1);
}

static int step_done(ing_ctx *c, sqlite3_stmt *st, const char *what, cs_err *err) {
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE) return cs_store_fail(c->s, err, what);
    return 0;
}

static int write_job(ing_ctx *c, ing_job *j, cs_ingest_stats *ws, cs_err *err) {
    sqlite3 *db = cs_store_db(c->s);
    int64_t dup_of = 0;
    if (j->gz_npts && ing_tar_write_points(c->s, j, err)) return -1; /* before any member that needs them */
    if (j->status == ING_OK) {
        sqlite3_bind_text(c->q_dup, 1, j->sha, -1, SQLITE_STATIC);
        int r = sqlite3_step(c->q_dup);
        if (r == SQLITE_ROW) dup_of = sqlite3_column_int64(c->q_dup, 0);
        sqlite3_reset(c->q_dup);
        if (r != SQLITE_ROW && r != SQLITE_DONE) return cs_store_fail(c->s, err, "looking up a sha256");
        if (dup_of && dup_of != j->existing_id) j->status = ING_DUP;
        else dup_of = 0;
    }
    static const char *const names[] = {"ok", "error", "duplicate"};
    sqlite3_stmt *st = j->existing_id ? c->upd_ref : c->ins_ref;
    if (j->existing_id) sqlite3_bind_int64(st, 1, j->existing_id);
    else sqlite3_bind_text(st, 1, j->source, -1, SQLITE_STATIC);
    if (j->have_sha) {
        sqlite3_bind_text(st, 2, j->sha, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, j->size);
    } else {
        sqlite3_bind_null(st, 2);
        sqlite3_bind_null(st, 3);
    }
    if (j->caption) sqlite3_bind_text(st, 4, j->caption, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    if (j->status != ING_ERROR) {
        sqlite3_bind_int(st, 5, j->w);
        sqlite3_bind_int(st, 6, j->h);
    } else {
        sqlite3_bind_null(st, 5);
        sqlite3_bind_null(st, 6);
    }
    sqlite3_bind_text(st, 7, names[j->status], -1, SQLITE_STATIC);
    const char *etext = j->status == ING_ERROR ? j->error : j->note;
    if (etext) sqlite3_bind_text(st, 8, etext, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 8);
    if (dup_of) sqlite3_bind_int64(st, 9, dup_of);
    else sqlite3_bind_null(st, 9);
    if (step_done(c, st, "recording a reference", err)) return -1;
    if (!j->existing_id && sqlite3_changes(db) == 0) { /* someone else added it meanwhile */
        ws->skipped++;
        return 0;
    }
    int64_t id = j->existing_id ? j->existing_id : sqlite3_last_insert_rowid(db);
    if (j->status == ING_ERROR) ws->errors++;
    else if (j->status == ING_DUP) ws->duplicates++;
    else ws->added++;
    if (j->note) ws->notes++;
    if (j->status != ING_OK) return 0;
    sqlite3_stmt *h = c->ins_hash;
    sqlite3_bind_int64(h, 1, id);
    sqlite3_bind_blob(h, 2, j->hashes.pdq, 32, SQLITE_STATIC);
    sqlite3_bind_int(h, 3, j->hashes.pdq_quality);
    sqlite3_bind_int64(h, 4, (int64_t)j->hashes.phash);
    sqlite3_bind_int64(h, 5, (int64_t)j->hashes.dhash);
    sqlite3_bind_int64(h, 6, (int64_t)j->hashes.ahash);
    if (step_done(c, h, "recording hashes", err)) return -1;
    if (c->no_thumbs && j->path) goto thumb_done; /* re-read from the file (opts->no_thumbs) */
    sqlite3_stmt *t = c->ins_thumb;
    sqlite3_bind_int64(t, 1, id);
    if (c->no_thumbs && j->has_loc) { /* re-read from the tar at its offset: the locator, w = h = 0 */
        unsigned char loc[CS_TAR_LOC_BYTES];
        cs_tar_loc_pack(loc, j->loc_off, j->loc_len, j->loc_plen, j->loc_gz);
        sqlite3_bind_int(t, 2, 0);
        sqlite3_bind_int(t, 3, 0);
        sqlite3_bind_blob(t, 4, loc, CS_TAR_LOC_BYTES, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_int(t, 2, CS_THUMB_SIZE);
        sqlite3_bind_int(t, 3, CS_THUMB_SIZE);
        sqlite3_bind_blob(t, 4, j->thumb, CS_THUMB_SIZE * CS_THUMB_SIZE * 3, SQLITE_STATIC);
    }
    if (step_done(c, t, "recording a thumbnail", err)) return -1;
thumb_done:
    if (!j->lf) return 0;
    sqlite3_stmt *l = c->ins_lf;
    sqlite3_bind_int64(l, 1, id);
    sqlite3_bind_blob(l, 2, j->lf, CS_LF_RECORD, SQLITE_STATIC);
    return step_done(c, l, "recording local features", err);
}

/* Writer thread: one batch, one transaction. */
static void *write_batch(void *arg) {
    ing_writer *w = arg;
    double t0 = cs_now_s();
    int rc = cs_store_begin(w->c->s, &w->err);
    for (int i = 0; !rc && i < w->n; i++) rc = write_job(w->c, &w->jobs[i], &w->ws, &w->err);
    if (!rc) rc = cs_store_commit(w->c->s, &w->err);
    if (rc) cs_store_rollback(w->c->s);
    w->ws.t_db += cs_now_s() - t0;
    w->rc = rc;
    return NULL;
}

/* Waits for the batch being written, merges its counters, frees it. */
static int join_writer(ing_ctx *c, cs_err *err) {
    if (!c->writing) return 0;
    double t0 = cs_now_s();
    if (c->threaded) pthread_join(c->wt, NULL);
    c->writing = c->threaded = 0;
    cs_ingest_stats *st = c->st, *ws = &c->w.ws;
    st->t_db_wait += cs_now_s() - t0;
    if (!c->w.rc) { /* a batch rolled back (disk full...) stored nothing: the summary must not count it */
        st->added += ws->added;
        st->duplicates += ws->duplicates;
        st->errors += ws->errors;
        st->skipped += ws->skipped;
        st->notes += ws->notes;
    }
    st->t_db += ws->t_db;
    int other = 1 - c->cur;
    for (int i = 0; i < c->w.n; i++) ing_job_clear(&c->buf[other][i]);
    ing_map_free(&c->queued[other]);
    if (c->w.rc) {
        if (err) *err = c->w.err;
        return -1;
    }
    return 0;
}

/* Runs the filling batch on the workers, then hands it to a writer thread
 * (after the previous one has finished) and switches buffers. */
static int flush_batch(ing_ctx *c, cs_err *err) {
    if (c->n == 0) return 0;
    double t0 = cs_now_s();
    cs_parallel_for(c->threads, c->n, process_job, c);
    c->st->t_parallel += cs_now_s() - t0;
    if (join_writer(c, err)) return -1;
    c->w = (ing_writer){.c = c, .jobs = c->buf[c->cur], .n = c->n};
    c->n = 0;
    c->bytes = 0;
    c->cur = 1 - c->cur; /* the batch just processed is buf[1 - cur] from here on */
    c->writing = 1;
    if (c->ro && pthread_create(&c->wt, NULL, write_batch, &c->w) == 0) {
        c->threaded = 1;
        return 0;
    }
    write_batch(&c->w); /* no second connection or no thread: write inline */
    return join_writer(c, err);
}

int ing_push(ing_ctx *c, ing_job *job, int checked, cs_err *err) {
    if (job->path && !ing_unit(c, job->path)) { /* an image file is a unit; tar members belong to theirs */
        ing_job_clear(job);
        return 0;
    }
    if (c->counting) {
        c->count++;
        ing_job_clear(job);
        return 0;
    }
    if (!checked) {
        int w = ing_wanted(c, job->source, &job->existing_id, err);
        if (w <= 0) {
            ing_job_clear(job);
            if (w == 0) cs_progress_add(c->prog, 1);
            return w;
        }
    }
    c->bytes += job->len;
    c->buf[c->cur][c->n++] = *job;
    memset(job, 0, sizeof *job);
    /* a batch of large tar members is cut short so memory stays bounded */
    if (c->n == c->batch_size || c->bytes > ((size_t)256 << 20)) return flush_batch(c, err);
    return 0;
}

/* Long: setup, counting pass, work pass and teardown of one ingest context, in order. */
int cs_ingest_add(cs_store *s, const char *const *paths, int n, const cs_ingest_opts *opts,
                  cs_ingest_stats *st, cs_err *err) {
    cs_ingest_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    double t_start = cs_now_s();
    ing_ctx c = {0};
    c.s = s;
    c.st = st;
    c.threads = opts && opts->threads > 0 ? opts->threads : cs_threads();
    c.batch_size = opts && opts->batch > 0 ? opts->batch : 256;
    c.iopts.max_pixels = opts ? opts->max_pixels : 0;
    c.local_features = opts && opts->local_features;
    c.no_thumbs = opts && opts->no_thumbs;
    /* before any row: readers of this store re-read missing thumbnails */
    if (c.no_thumbs && cs_store_meta_set(s, "thumbs", "source", err)) return -1;
    if (cs_store_shards(s) > 0) /* its rows live in the shards (index/shard.h) */
        return cs_fail(err, CS_EUSAGE, "%s: a store of %d shards: add to it with --shards %d (or mpirun -np %d)",
                       cs_store_path(s), cs_store_shards(s), cs_store_shards(s), cs_store_shards(s));
    if (opts && opts->shard_n > 0) {
        if (opts->shard_k < 0 || opts->shard_k >= opts->shard_n)
            return cs_fail(err, CS_EUSAGE, "index add: shard %d of %d does not exist", opts->shard_k, opts->shard_n);
        c.shard_k = opts->shard_k;
        c.shard_n = opts->shard_n;
    }
    c.buf[0] = calloc((size_t)c.batch_size, sizeof(ing_job));
    c.buf[1] = calloc((size_t)c.batch_size, sizeof(ing_job));
    c.tt = calloc((size_t)c.threads, sizeof *c.tt);
    if (!c.buf[0] || !c.buf[1] || !c.tt) {
        free(c.buf[0]);
        free(c.buf[1]);
        free(c.tt);
        return cs_fail(err, CS_ENOMEM, "index add: out of memory");
    }
    /* the lookup connection; without one (e.g. an in-memory store) batches
     * are written inline */
    if (cs_store_open_readonly(&c.ro, cs_store_path(s), NULL)) c.ro = NULL;
    int rc = cs_store_prepare(c.ro ? c.ro : s, &c.q_source, "SELECT id, status FROM refs WHERE source = ?1",
                              err) ||
             cs_store_prepare(s, &c.q_dup,
                              "SELECT id FROM refs WHERE sha256 = ?1 AND status = 'ok' ORDER BY id LIMIT 1",
                              err) ||
             cs_store_prepare(s, &c.ins_ref,
                              "INSERT INTO refs(source, sha256, size, caption, width, height, status, error, "
                              "dup_of) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                              "ON CONFLICT(source) DO NOTHING",
                              err) ||
             cs_store_prepare(s, &c.upd_ref,
                              "UPDATE refs SET sha256 = ?2, size = ?3, caption = ?4, width = ?5, "
                              "height = ?6, status = ?7, error = ?8, dup_of = ?9, added = datetime('now') "
                              "WHERE id = ?1",
                              err) ||
             cs_store_prepare(s, &c.ins_hash,
                              "INSERT OR REPLACE INTO main.ref_hashes(ref_id, pdq, pdq_quality, phash, dhash, "
                              "ahash) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                              err) ||
             cs_store_prepare(s, &c.ins_thumb,
                              "INSERT OR REPLACE INTO main.ref_thumbs(ref_id, w, h, rgb) VALUES(?1, ?2, ?3, ?4)",
                              err) ||
             cs_store_prepare(s, &c.ins_lf, "INSERT OR REPLACE INTO main.ref_localfeat(ref_id, rec) VALUES(?1, ?2)", err)
                 ? -1
                 : 0;
    /* first pass: count the file inputs so the progress line has a total
     * (tar members are counted as they are read) */
    if (!rc && ((opts && opts->progress) || c.shard_n > 0)) {
        c.counting = 1;
        for (int i = 0; i < n && !rc; i++) rc = ing_walk_input(&c, paths[i], 0, err);
        c.counting = 0;
        c.total = c.count;
        if (!rc && c.unit_oom) rc = cs_fail(err, CS_ENOMEM, "index add: out of memory");
        if (!rc && c.shard_n > 0) c.total = shard_cut(&c);
        if (opts && opts->progress) c.prog = cs_progress_start("index add", c.total, "img");
    }
    for (int i = 0; i < n && !rc; i++) rc = ing_walk_input(&c, paths[i], 0, err);
    if (!rc) rc = flush_batch(&c, err);
    if (join_writer(&c, rc ? NULL : err)) rc = -1;
    for (int i = 0; i < c.n; i++) ing_job_clear(&c.buf[c.cur][i]);
    cs_progress_end(c.prog);
    for (int t = 0; t < c.threads; t++) {
        st->t_read += c.tt[t][T_READ];
        st->t_sha += c.tt[t][T_SHA];
        st->t_decode += c.tt[t][T_DECODE];
        st->t_hash += c.tt[t][T_HASH];
        st->t_thumb += c.tt[t][T_THUMB];
    }
    sqlite3_finalize(c.q_source);
    sqlite3_finalize(c.q_dup);
    sqlite3_finalize(c.ins_ref);
    sqlite3_finalize(c.upd_ref);
    sqlite3_finalize(c.ins_hash);
    sqlite3_finalize(c.ins_thumb);
    sqlite3_finalize(c.ins_lf);
    cs_store_close(c.ro);
    ing_map_free(&c.queued[0]);
    ing_map_free(&c.queued[1]);
    ing_map_free(&c.captions);
    ing_map_free(&c.dirs);
    free(c.buf[0]);
    free(c.buf[1]);
    free(c.tt);
    free(c.unit_w);
    st->t_total = cs_now_s() - t_start;
    st->t_walk = st->t_total - st->t_parallel - st->t_db_wait - st->t_lookup;
    return rc;
}
