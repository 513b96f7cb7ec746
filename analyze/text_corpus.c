/* text_corpus.c — reading documents, building shards, opening the corpus. */
#include "analyze/text_corpus.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "analyze/text_lines.h"
#include "core/parallel.h"
#include "core/progress.h"

/* 768 MiB: a 1 GiB corpus is two shards, sorted at once on two threads
 * (each query searches every shard, so fewer is faster to search; one
 * 1 GiB shard would leave the second thread idle for most of its sort). */
#define DEFAULT_SHARD_BYTES ((uint64_t)768 << 20)

/* A document waiting for its shard to be committed. */
typedef struct {
    char *source, *name, *note;
    const char *status; /* "ok" | "empty" | "error" */
    uint64_t raw_off;   /* in the shard's raw text */
    uint64_t start, norm_bytes, orig_bytes, words; /* start: in the side text, when side */
    int side;                                      /* NFC changed it: its normal form is in the side text */
    cs_text_anchor *anchors;
    size_t n_anchors;
} pending_doc;

/* One shard being filled, then built: its raw text and documents as read;
 * the build normalises them (norm) and sorts both texts into temporary
 * files (tmp: .nfc .sa .raw .rsa) that the commit renames. */
typedef struct {
    uint8_t *raw;
    uint64_t rlen, rcap;
    pending_doc *docs;
    size_t n_docs, cap_docs;
    uint8_t *norm;
    uint64_t nlen, ncap, n_sa, n_rsa;
    char *tmp[4];
    int rc[2]; /* the raw and the normal-form job */
    cs_err err[2];
    double cpu[2]; /* the two jobs' thread CPU seconds */
} shard_buf;

typedef struct {
    cs_store *s;
    const cs_text_index_opts *opts;
    cs_text_index_stats *st;
    uint64_t limit, target; /* most raw bytes per shard; the size aimed at (the input split evenly) */
    shard_buf *batch;       /* shards built together, one per thread */
    int n_batch, cur;       /* cur: the shard being filled */
    sqlite3_stmt *exists;
    cs_progress *prog;
    double jobs_self_s; /* the calling thread's CPU inside the job pool */
} builder;

static void note(builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(builder *b, const char *fmt, ...) {
    if (!b->opts || !b->opts->note) return;
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->opts->note(b->opts->note_ctx, msg);
}

static void pending_free(pending_doc *d) {
    free(d->source);
    free(d->name);
    free(d->note);
    free(d->anchors);
}

static pending_doc *pending_add(builder *b, const char *source, const char *name, const char *status) {
    shard_buf *sb = &b->batch[b->cur];
    if (sb->n_docs == sb->cap_docs) {
        size_t c = sb->cap_docs ? sb->cap_docs * 2 : 64;
        pending_doc *d = realloc(sb->docs, c * sizeof *d);
        if (!d) return NULL;
        sb->docs = d;
        sb->cap_docs = c;
    }
    pending_doc *d = &sb->docs[sb->n_docs];
    memset(d, 0, sizeof *d);
    d->source = strdup(source);
    d->name = strdup(name ? name : source);
    d->status = status;
    if (!d->source || !d->name) {
        pending_free(d);
        return NULL;
    }
    sb->n_docs++;
    return d;
}

static int already_indexed(builder *b, const char *source) {
    sqlite3_reset(b->exists);
    sqlite3_bind_text(b->exists, 1, source, -1, SQLITE_TRANSIENT);
    return sqlite3_step(b->exists) == SQLITE_ROW;
}

static int reserve(uint8_t **buf, uint64_t *cap, uint64_t need) {
    if (need <= *cap) return 0;
    uint64_t c = *cap ? *cap : (1 << 20);
    while (c < need) c *= 2;
    uint8_t *nb = realloc(*buf, c);
    if (!nb) return -1;
    cs_text_huge(nb + *cap, c - *cap); /* the new part, not touched yet */
    *buf = nb;
    *cap = c;
    return 0;
}

static int grow_u32(uint32_t **v, uint64_t *cap, uint64_t need) {
    if (need <= *cap) return 0;
    uint64_t c = *cap ? *cap : (1 << 16);
    while (c < need) c *= 2;
    uint32_t *nv = realloc(*v, c * sizeof *nv);
    if (!nv) return -1;
    *v = nv;
    *cap = c;
    return 0;
}

/* The normal form of every document of the shard, then its word suffix
 * array: one job (the raw sort is the other). A word row is the word's raw
 * offset when the raw document reads as its normal form (text_sa.h), else
 * the document's normal form goes to the side text and its rows point
 * there. */
static int norm_shard(shard_buf *sb, cs_err *err) {
    if (reserve(&sb->norm, &sb->ncap, sb->rlen)) return cs_fail(err, CS_ENOMEM, "out of memory for a shard");
    uint32_t *wval = NULL;
    uint64_t nw = 0, wcap = 0, side_n = 0, side_cap = 0;
    uint8_t *side = NULL;
    int rc = 0;
    for (size_t i = 0; i < sb->n_docs && !rc; i++) {
        pending_doc *d = &sb->docs[i];
        if (strcmp(d->status, "ok")) continue;
        cs_text_norm n;
        if (cs_text_normalize(&n, (const char *)sb->raw + d->raw_off, d->orig_bytes, err)) {
            cs_text_norm_free(&n);
            rc = cs_wrap(err, "%s", d->source);
            break;
        }
        if (reserve(&sb->norm, &sb->ncap, sb->nlen + n.len + 1) || grow_u32(&wval, &wcap, nw + n.len / 2 + 1)) {
            cs_text_norm_free(&n);
            rc = cs_fail(err, CS_ENOMEM, "out of memory for a shard");
            break;
        }
        uint64_t k = cs_text_raw_reads_as(sb->raw + d->raw_off, d->orig_bytes, (const uint8_t *)n.text, n.len,
                                          (uint32_t)d->raw_off, wval + nw);
        d->side = k == UINT64_MAX;
        if (d->side) { /* NFC changed it: its normal form is kept */
            if (reserve(&side, &side_cap, side_n + n.len + 1)) {
                cs_text_norm_free(&n);
                rc = cs_fail(err, CS_ENOMEM, "out of memory for a shard");
                break;
            }
            d->start = side_n;
            k = 0;
            for (uint64_t j = 0; j < n.len; j++)
                if (n.text[j] != ' ' && (j == 0 || n.text[j - 1] == ' ')) wval[nw + k++] = CS_TEXT_SIDE | (uint32_t)(side_n + j);
            memcpy(side + side_n, n.text, n.len);
            side_n += n.len;
            side[side_n++] = CS_TEXT_SEP;
        }
        nw += k;
        d->norm_bytes = n.len;
        d->words = n.n_words;
        d->anchors = n.anchors;
        d->n_anchors = n.n_anchors;
        n.anchors = NULL;
        memcpy(sb->norm + sb->nlen, n.text, n.len);
        sb->nlen += n.len;
        sb->norm[sb->nlen++] = CS_TEXT_SEP;
        cs_text_norm_free(&n);
    }
    if (!rc)
        rc = cs_text_sa_build_words(sb->norm, sb->nlen, wval, nw, side, side_n, sb->tmp[0], sb->tmp[1], &sb->n_sa, err);
    free(wval);
    free(side);
    free(sb->norm); /* written: not needed for the commit */
    sb->norm = NULL;
    sb->ncap = 0;
    return rc;
}

typedef struct {
    shard_buf **v;
    int n;
} batch_jobs;

static double thread_cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Job i < n: shard i's raw sort; i >= n: shard i - n's normal form. The
 * raw sorts are the longest jobs: they go first. */
static void shard_job(void *ctx, int64_t i, int thread) {
    (void)thread;
    batch_jobs *j = ctx;
    shard_buf *sb = j->v[i % j->n];
    double c0 = thread_cpu_s();
    if (i < j->n) sb->rc[0] = cs_text_sa_build_chars(sb->raw, sb->rlen, sb->tmp[2], sb->tmp[3], &sb->n_rsa, &sb->err[0]);
    else sb->rc[1] = norm_shard(sb, &sb->err[1]);
    sb->cpu[i >= j->n] = thread_cpu_s() - c0;
}

/* The jobs' CPU times laid on two threads, each job to the first free one
 * in the pool's order: the batch's wall on two free cores. */
static double makespan_2(shard_buf **v, int n) {
    double t[2] = {0, 0};
    for (int i = 0; i < 2 * n; i++) {
        int k = t[1] < t[0];
        t[k] += v[i % n]->cpu[i >= n];
    }
    return t[0] > t[1] ? t[0] : t[1];
}

/* The pending documents' rows (in the open transaction). */
static int insert_docs(cs_store *s, shard_buf *sb, int64_t shard_id, cs_err *err) {
    sqlite3_stmt *ins_doc;
    if (cs_store_prepare(s, &ins_doc,
                         "INSERT OR IGNORE INTO text_docs(source, name, status, note, shard_id, start, "
                         "norm_bytes, orig_bytes, words, offmap) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         err))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < sb->n_docs && !rc; i++) {
        pending_doc *d = &sb->docs[i];
        int ok = !strcmp(d->status, "ok");
        sqlite3_reset(ins_doc);
        sqlite3_clear_bindings(ins_doc);
        sqlite3_bind_text(ins_doc, 1, d->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_doc, 2, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_doc, 3, d->status, -1, SQLITE_STATIC);
        if (d->note) sqlite3_bind_text(ins_doc, 4, d->note, -1, SQLITE_STATIC);
        if (ok) {
            sqlite3_bind_int64(ins_doc, 5, shard_id);
            sqlite3_bind_int64(ins_doc, 6, d->side ? (int64_t)d->start : -1);
            sqlite3_bind_blob(ins_doc, 10, d->anchors ? (const void *)d->anchors : (const void *)"",
                              (int)(d->n_anchors * sizeof *d->anchors), SQLITE_STATIC);
        }
        sqlite3_bind_int64(ins_doc, 7, (int64_t)d->norm_bytes);
        sqlite3_bind_int64(ins_doc, 8, (int64_t)d->orig_bytes);
        sqlite3_bind_int64(ins_doc, 9, (int64_t)d->words);
        if (sqlite3_step(ins_doc) != SQLITE_DONE) rc = cs_store_fail(s, err, "insert text_docs");
    }
    sqlite3_finalize(ins_doc);
    return rc;
}

/* The side text is .nfc (an index of the stored normal form had .txt). */
const char *const cs_text_shard_ext[4] = {"nfc", "sa", "raw", "rsa"};

/* One built shard: its row, its files renamed into place, its documents'
 * rows, in one transaction. Files renamed before a failed commit are
 * orphans the next shard with that id overwrites. */
static int commit_shard(builder *b, shard_buf *sb, cs_err *err) {
    cs_store *s = b->s;
    sqlite3_stmt *ins = NULL, *upd = NULL;
    int rc = -1;
    if (cs_store_begin(s, err)) return -1;
    int64_t shard_id = 0;
    if (sb->rlen) {
        if (cs_store_prepare(s, &ins,
                             "INSERT INTO text_shards(text_file, sa_file, bytes, n_docs, n_suffixes) "
                             "VALUES ('', '', 0, 0, 0)",
                             err))
            goto out;
        if (sqlite3_step(ins) != SQLITE_DONE) { /* the id first: it names the files */
            cs_store_fail(s, err, "insert text_shards");
            goto out;
        }
        shard_id = sqlite3_last_insert_rowid(cs_store_db(s));
        char name[4][64];
        for (int k = 0; k < 4; k++) {
            snprintf(name[k], sizeof name[k], "text-%lld.%s", (long long)shard_id, cs_text_shard_ext[k]);
            char *dst = cs_store_sidecar(s, name[k]);
            int bad = !dst || rename(sb->tmp[k], dst) != 0;
            if (bad) cs_fail(err, CS_EIO, "%s: cannot rename to %s: %s", sb->tmp[k], name[k], dst ? strerror(errno) : "out of memory");
            free(dst);
            if (bad) goto out;
        }
        int64_t n_ok = 0;
        for (size_t i = 0; i < sb->n_docs; i++) n_ok += !strcmp(sb->docs[i].status, "ok");
        if (cs_store_prepare(s, &upd,
                             "UPDATE text_shards SET text_file = ?, sa_file = ?, bytes = ?, n_docs = ?, "
                             "n_suffixes = ? WHERE id = ?",
                             err))
            goto out;
        sqlite3_bind_text(upd, 1, name[0], -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(upd, 2, name[1], -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(upd, 3, (int64_t)sb->nlen);
        sqlite3_bind_int64(upd, 4, n_ok);
        sqlite3_bind_int64(upd, 5, (int64_t)sb->n_sa);
        sqlite3_bind_int64(upd, 6, shard_id);
        if (sqlite3_step(upd) != SQLITE_DONE) {
            cs_store_fail(s, err, "update text_shards");
            goto out;
        }
    }
    if (insert_docs(s, sb, shard_id, err)) goto out;
    if (cs_store_commit(s, err)) goto out;
    if (sb->rlen) {
        b->st->shards++;
        b->st->suffixes += sb->n_sa;
        b->st->bytes_norm += sb->nlen;
        for (size_t i = 0; i < sb->n_docs; i++) b->st->bytes_norm -= !strcmp(sb->docs[i].status, "ok"); /* separators */
    }
    rc = 0;
out:
    if (rc) cs_store_rollback(s);
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    return rc;
}

static void shard_reset(shard_buf *sb) {
    for (size_t i = 0; i < sb->n_docs; i++) pending_free(&sb->docs[i]);
    sb->n_docs = 0;
    sb->rlen = sb->nlen = sb->n_sa = sb->n_rsa = 0;
    free(sb->norm);
    sb->norm = NULL;
    sb->ncap = 0;
}

/* Builds the filled shards batch[0..n) on the thread pool (every job
 * writes only its own shard's files and fields, so the result does not
 * depend on the thread count), then commits them in order. */
static int build_batch(builder *b, int n, cs_err *err) {
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        for (int k = 0; k < 4 && !rc; k++) {
            char name[64];
            snprintf(name, sizeof name, "text-build-%d.%s", i, cs_text_shard_ext[k]);
            free(b->batch[i].tmp[k]);
            if (!(b->batch[i].tmp[k] = cs_store_sidecar(b->s, name))) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        }
    for (int i = 0; i < n; i++) b->batch[i].rc[0] = b->batch[i].rc[1] = 0;
    /* shards holding only skipped documents sort nothing; the others are first */
    int m = 0;
    shard_buf **order = rc ? NULL : malloc((size_t)n * sizeof *order);
    if (!rc && !order) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    for (int i = 0; i < n && !rc; i++)
        if (b->batch[i].rlen) order[m++] = &b->batch[i];
    if (!rc && m) {
        batch_jobs j = {order, m};
        double c0 = thread_cpu_s();
        cs_parallel_for(cs_threads(), 2 * (int64_t)m, shard_job, &j);
        b->jobs_self_s += thread_cpu_s() - c0; /* counted in the jobs */
        for (int i = 0; i < m; i++) b->st->jobs_cpu_s += order[i]->cpu[0] + order[i]->cpu[1];
        b->st->jobs_2core_s += makespan_2(order, m);
    }
    free(order);
    for (int i = 0; i < n && !rc; i++)
        for (int k = 0; k < 2 && !rc; k++)
            if (b->batch[i].rc[k]) {
                if (err) *err = b->batch[i].err[k];
                rc = -1;
            }
    for (int i = 0; i < n && !rc; i++) rc = commit_shard(b, &b->batch[i], err);
    for (int i = 0; i < n; i++) {
        if (rc)
            for (int k = 0; k < 4; k++)
                if (b->batch[i].tmp[k]) unlink(b->batch[i].tmp[k]); /* a failed build leaves no temporary file */
        shard_reset(&b->batch[i]);
    }
    return rc;
}

/* The shard being filled is full: the next one, building the batch first
 * when every slot is full. */
static int next_shard(builder *b, cs_err *err) {
    if (b->cur + 1 < b->n_batch) {
        b->cur++;
        return 0;
    }
    int rc = build_batch(b, b->cur + 1, err);
    b->cur = 0;
    return rc;
}

/* A document recorded but not indexed: empty (msg NULL), or an error. */
static int record_skipped(builder *b, const char *source, const char *name, const char *status, size_t len,
                          const char *msg, cs_err *err) {
    pending_doc *d = pending_add(b, source, name, status);
    if (!d) return cs_fail(err, CS_ENOMEM, "out of memory");
    d->note = strdup(msg ? msg : "empty document (no text after normalisation)");
    d->orig_bytes = len;
    if (msg) note(b, "%s: %s (skipped)", source, msg), b->st->docs_error++;
    else note(b, "%s: empty document (recorded, not indexed)", source), b->st->docs_empty++;
    return 0;
}

/* 1 if text[0..len) (valid UTF-8) is all whitespace: its normal form is
 * empty. */
static int all_space(const char *text, size_t len) {
    const uint8_t *p = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t k = cs_text_decode(p + i, len - i, &cp);
        if (!cs_text_is_ws(cp)) return 0;
        i += k;
    }
    return 1;
}

/* Adds one document (bytes of a file, or a JSONL text): its raw text goes
 * into the shard being filled; the build normalises it. */
static int add_doc(builder *b, const char *source, const char *name, const char *text, size_t len, cs_err *err) {
    b->st->bytes_in += len;
    if (already_indexed(b, source)) {
        b->st->docs_skipped++;
        return 0;
    }
    size_t bad = cs_text_check(text, len);
    if (bad != (size_t)-1) /* binary or another encoding: an error, never a document of U+FFFD */
        return cs_fail(err, CS_EFORMAT, "%s: not UTF-8 text (%s at byte %zu); nothing indexed from it", source,
                       text[bad] ? "invalid UTF-8" : "a NUL byte", bad);
    if (all_space(text, len)) return record_skipped(b, source, name, "empty", len, NULL, err);
    if (len + 1 > b->limit) {
        char msg[200];
        snprintf(msg, sizeof msg, "document of %zu bytes exceeds the shard size (%llu bytes)", len,
                 (unsigned long long)b->limit);
        return record_skipped(b, source, name, "error", len, msg, err);
    }
    shard_buf *sb = &b->batch[b->cur];
    if (sb->rlen && (sb->rlen + len + 1 > b->target)) {
        if (next_shard(b, err)) return -1;
        sb = &b->batch[b->cur];
    }
    if (reserve(&sb->raw, &sb->rcap, sb->rlen + len + 1))
        return cs_fail(err, CS_ENOMEM, "out of memory for a shard's raw text");
    pending_doc *d = pending_add(b, source, name, "ok");
    if (!d) return cs_fail(err, CS_ENOMEM, "out of memory");
    d->raw_off = sb->rlen;
    d->orig_bytes = len;
    memcpy(sb->raw + sb->rlen, text, len);
    sb->rlen += len;
    sb->raw[sb->rlen++] = CS_TEXT_SEP;
    b->st->docs_ok++;
    return 0;
}

static int record_error(builder *b, const char *source, const char *msg, cs_err *err) {
    b->st->docs_error++;
    note(b, "%s: %s", source, msg);
    if (already_indexed(b, source)) return 0;
    pending_doc *d = pending_add(b, source, NULL, "error");
    if (!d || !(d->note = strdup(msg))) return cs_fail(err, CS_ENOMEM, "out of memory");
    return 0;
}

/* Files are read through zlib, so NAME.gz is read as NAME, transparently. */
static int gz_fail(gzFile f, const char *path, cs_err *err) {
    int zerr = 0;
    gzerror(f, &zerr);
    if (zerr == Z_ERRNO) return cs_fail(err, CS_EIO, "%s: read error: %s", path, strerror(errno));
    return cs_fail(err, CS_EFORMAT, "%s: cannot decompress: %s", path, cs_text_gz_error(f, path));
}

static int read_all(gzFile f, const char *path, char **data, size_t *len, cs_err *err) {
    *data = NULL;
    *len = 0;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf && n == cap) {
            char *nb = cap > CS_TEXT_MAX_DOC ? NULL : realloc(buf, cap * 2);
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
        }
        if (!buf) return cs_fail(err, CS_ELIMIT, "%s: too large or out of memory", path);
        unsigned want = cap - n > (1u << 30) ? (1u << 30) : (unsigned)(cap - n);
        int k = gzread(f, buf + n, want);
        if (k < 0 || (k == 0 && cs_text_gz_truncated(f))) {
            free(buf);
            return gz_fail(f, path, err);
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* cJSON ends a string at a decoded NUL, silently: a line whose JSON holds
 * the escape \u0000 is refused instead. */
int cs_text_json_has_nul(const char *line, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {
        if (line[i] != '\\') continue;
        if (line[i + 1] == 'u' && i + 6 <= len && !memcmp(line + i + 2, "0000", 4)) return 1;
        i++; /* skip the escaped character */
    }
    return 0;
}

static int add_json_line(builder *b, const char *path, int64_t lineno, char *line, size_t k, cs_err *err) {
    char source[4200];
    snprintf(source, sizeof source, "%s:%lld", path, (long long)lineno);
    if (cs_text_check(line, k) != (size_t)-1 || cs_text_json_has_nul(line, k))
        return cs_fail(err, CS_EFORMAT, "%s: not UTF-8 text (%s); nothing indexed from it", source,
                       cs_text_json_has_nul(line, k) ? "a \\u0000 escape" : "invalid UTF-8 or a NUL byte");
    const char *field = b->opts && b->opts->field ? b->opts->field : "text";
    cJSON *j = cJSON_ParseWithLength(line, k);
    const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, field) : NULL;
    if (!j || !cJSON_IsObject(j) || !cJSON_IsString(t)) {
        char msg[200];
        if (!j || !cJSON_IsObject(j)) snprintf(msg, sizeof msg, "not a JSON object (skipped)");
        else snprintf(msg, sizeof msg, "no \"%.100s\" string (skipped)", field);
        cJSON_Delete(j);
        return record_error(b, source, msg, err); /* source is "path:LINE": the note names the line */
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    char idbuf[64];
    const char *name = NULL;
    if (cJSON_IsString(id)) name = id->valuestring;
    else if (cJSON_IsNumber(id)) {
        snprintf(idbuf, sizeof idbuf, "%.17g", id->valuedouble);
        name = idbuf;
    }
    size_t tl = strlen(t->valuestring);
    b->st->bytes_in += k - tl; /* the line; add_doc counts the text */
    int rc = add_doc(b, source, name, t->valuestring, tl, err);
    cJSON_Delete(j);
    return rc;
}

/* rg: the lines starting in a byte range of the file, or NULL (all). */
static int index_jsonl(builder *b, gzFile f, const char *path, const cs_text_range *rg, cs_err *err) {
    cs_text_lines *r = calloc(1, sizeof *r);
    if (!r) return cs_fail(err, CS_ENOMEM, "out of memory");
    r->f = f;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k = 0;
    int64_t lineno = rg ? rg->first_line - 1 : 0;
    uint64_t pos = rg ? rg->start : 0; /* where the next line starts */
    int rc = rg && gzseek(f, (z_off_t)rg->start, SEEK_SET) != (z_off_t)rg->start ? gz_fail(f, path, err) : 0;
    while (!rc && (!rg || pos < rg->end) && (k = cs_text_getline(r, &line, &cap)) > 0) {
        lineno++;
        pos += (uint64_t)k;
        cs_progress_add(b->prog, k);
        if (strspn(line, " \t\r\n") == (size_t)k) continue; /* blank line */
        rc = add_json_line(b, path, lineno, line, (size_t)k, err);
    }
    if (!rc && k < 0) rc = r->err ? gz_fail(f, path, err) : cs_fail(err, CS_ENOMEM, "out of memory");
    free(line);
    free(r);
    return rc;
}

static int ends_with(const char *s, const char *ext) {
    size_t n = strlen(s), e = strlen(ext);
    return n >= e && !strcasecmp(s + n - e, ext);
}

static int is_jsonl(const char *p) {
    return ends_with(p, ".jsonl") || ends_with(p, ".jsonl.gz");
}

static int index_file(builder *b, const char *path, cs_err *err) {
    const cs_text_range *rg = NULL;
    for (int i = 0; b->opts && i < b->opts->n_ranges; i++)
        if (!strcmp(b->opts->ranges[i].path, path)) rg = &b->opts->ranges[i];
    gzFile f = gzopen(path, "rb");
    if (!f) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot open: %s", strerror(errno ? errno : ENOMEM));
        return record_error(b, path, msg, err);
    }
    gzbuffer(f, 1 << 18);
    int rc;
    if (is_jsonl(path)) rc = index_jsonl(b, f, path, rg, err);
    else {
        char *data;
        size_t len;
        rc = read_all(f, path, &data, &len, err);
        if (!rc) {
            cs_progress_add(b->prog, (int64_t)len);
            /* a leading byte-order mark (U+FEFF, as Windows editors save UTF-8) is a signature,
             * not text: kept, it would glue itself to the first word */
            size_t bom = len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3) ? 3 : 0;
            rc = add_doc(b, path, path, data + bom, len - bom, err);
            free(data);
        }
    }
    gzclose(f);
    return rc;
}

static int list_push(cs_text_inputs *l, const char *p, uint64_t size) {
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->path, c * sizeof *v);
        if (v) l->path = v;
        uint64_t *z = v ? realloc(l->size, c * sizeof *z) : NULL;
        if (!z) return -1;
        l->size = z;
        l->cap = c;
    }
    if (!(l->path[l->n] = strdup(p))) return -1;
    l->size[l->n++] = size;
    l->bytes += size;
    return 0;
}

/* A folder's .txt/.md/.jsonl files and their .gz forms, recursively, by name. */
static int walk(cs_text_inputs *l, const char *dir, int depth, cs_err *err) {
    static const char *const EXT[] = {".txt", ".md", ".jsonl", ".txt.gz", ".md.gz", ".jsonl.gz"};
    if (depth > 64) return cs_fail(err, CS_ELIMIT, "%s: folders nested too deep", dir);
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0) return cs_fail(err, CS_EIO, "%s: cannot list: %s", dir, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = ents[i]->d_name;
        if (!rc && nm[0] != '.') {
            size_t pl = strlen(dir) + strlen(nm) + 2;
            char *p = malloc(pl);
            if (!p) rc = cs_fail(err, CS_ENOMEM, "out of memory");
            else {
                snprintf(p, pl, "%s/%s", dir, nm);
                struct stat st;
                int want = 0;
                for (size_t k = 0; k < sizeof EXT / sizeof EXT[0]; k++) want |= ends_with(nm, EXT[k]);
                if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) rc = walk(l, p, depth + 1, err);
                else if (want && list_push(l, p, stat(p, &st) == 0 ? (uint64_t)st.st_size : 0))
                    rc = cs_fail(err, CS_ENOMEM, "out of memory");
                free(p);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

/* A path named twice (or inside a folder also named) is read once: each
 * document's raw text is placed by its order in the shard. */
static int cmp_pstr(const void *a, const void *b) {
    const char *const *x = *(const char *const *const *)a, *const *y = *(const char *const *const *)b;
    int c = strcmp(*x, *y);
    return c ? c : (x < y ? -1 : x > y);
}

static void drop_duplicates(cs_text_inputs *l) {
    char ***v = malloc((l->n ? l->n : 1) * sizeof *v);
    if (!v) return;
    for (size_t i = 0; i < l->n; i++) v[i] = &l->path[i];
    qsort(v, l->n, sizeof *v, cmp_pstr);
    for (size_t i = 1; i < l->n; i++)
        if (!strcmp(*v[i - 1], *v[i])) {
            /* the later one (higher address) goes; cmp_pstr put it second */
            free(*v[i]);
            *v[i] = NULL;
            v[i] = v[i - 1];
        }
    free(v);
}

int cs_text_list_inputs(const char *const *paths, int n_paths, cs_text_inputs *out, cs_err *err) {
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (int i = 0; i < n_paths && !rc; i++) {
        struct stat st;
        if (stat(paths[i], &st)) rc = cs_fail(err, CS_EIO, "%s: %s", paths[i], strerror(errno));
        else if (S_ISDIR(st.st_mode)) rc = walk(out, paths[i], 0, err);
        else if (list_push(out, paths[i], (uint64_t)st.st_size)) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    }
    if (!rc) drop_duplicates(out);
    return rc;
}

void cs_text_inputs_free(cs_text_inputs *l) {
    for (size_t i = 0; i < l->n; i++) free(l->path[i]);
    free(l->path);
    free(l->size);
    memset(l, 0, sizeof *l);
}

int cs_text_index(cs_store *s, const char *const *paths, int n_paths, const cs_text_index_opts *opts,
                  cs_text_index_stats *stats, cs_err *err) {
    cs_text_index_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    builder b = {.s = s, .opts = opts, .st = stats};
    double c0 = thread_cpu_s();
    b.limit = opts && opts->shard_bytes ? opts->shard_bytes : DEFAULT_SHARD_BYTES;
    if (b.limit > CS_TEXT_MAX_SHARD) b.limit = CS_TEXT_MAX_SHARD;
    if (b.limit < 2) return cs_fail(err, CS_EUSAGE, "shard size too small");
    cs_text_inputs files;
    int rc = cs_text_list_inputs(paths, n_paths, &files, err);
    /* The input split evenly into as few shards as the limit allows (from
     * the files' sizes, so the same input gives the same shards at any -j;
     * .gz files count compressed, so they make more, smaller shards). */
    /* Each shard is given some slack over its even share (documents do not
     * cut evenly), and the count leaves room for it: a share within the
     * slack of the limit used to spill a last, tiny shard (1,023.5 MiB at
     * 512 MiB made 3 shards, the third searched on every query). */
    uint64_t slack = b.limit / 8 < (1 << 20) ? b.limit / 8 : (1 << 20);
    uint64_t n_sh = (files.bytes + b.limit - slack - 1) / (b.limit - slack);
    b.target = n_sh > 1 ? (files.bytes + n_sh - 1) / n_sh + slack : b.limit;
    if (b.target > b.limit) b.target = b.limit;
    b.n_batch = cs_threads() > 1 ? cs_threads() : 1;
    if (!rc && !(b.batch = calloc((size_t)b.n_batch, sizeof *b.batch))) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    if (!rc) rc = cs_store_prepare(s, &b.exists, "SELECT 1 FROM text_docs WHERE source = ?", err);
    if (!rc && opts && opts->progress) b.prog = cs_progress_start("text index", (int64_t)files.bytes, "B");
    for (size_t i = 0; i < files.n && !rc; i++)
        if (files.path[i]) rc = index_file(&b, files.path[i], err);
    if (!rc && b.batch[b.cur].n_docs) rc = build_batch(&b, b.cur + 1, err);
    cs_progress_end(b.prog);
    stats->serial_cpu_s = thread_cpu_s() - c0 - b.jobs_self_s;
    for (int i = 0; b.batch && i < b.n_batch; i++) {
        shard_reset(&b.batch[i]);
        free(b.batch[i].docs);
        free(b.batch[i].raw);
        for (int k = 0; k < 4; k++) free(b.batch[i].tmp[k]);
    }
    free(b.batch);
    sqlite3_finalize(b.exists);
    cs_text_inputs_free(&files);
    return rc;
}

/* ---- the corpus, opened for search ---- */

static int grow_docs(cs_text_shard *sh, size_t cap) {
    uint64_t *a = realloc(sh->doc_start, cap * sizeof *a);
    if (a) sh->doc_start = a;
    uint64_t *l = a ? realloc(sh->doc_len, cap * sizeof *l) : NULL;
    if (l) sh->doc_len = l;
    uint64_t *ra = l ? realloc(sh->raw_start, cap * sizeof *ra) : NULL;
    if (ra) sh->raw_start = ra;
    uint64_t *rl = ra ? realloc(sh->raw_len, cap * sizeof *rl) : NULL;
    if (rl) sh->raw_len = rl;
    int64_t *d = rl ? realloc(sh->doc_id, cap * sizeof *d) : NULL;
    if (d) sh->doc_id = d;
    char **nm = d ? realloc(sh->name, cap * sizeof *nm) : NULL;
    if (nm) sh->name = nm;
    cs_text_anchor **an = nm ? realloc(sh->anch, cap * sizeof *an) : NULL;
    if (an) sh->anch = an;
    size_t *nan = an ? realloc(sh->n_anch, cap * sizeof *nan) : NULL;
    if (nan) sh->n_anch = nan;
    uint64_t *sd = nan ? realloc(sh->side_docs, cap * sizeof *sd) : NULL;
    if (sd) sh->side_docs = sd;
    return sd ? 0 : -1;
}

/* The shard's documents in text order (ids grow with it). The raw text
 * holds them in the same order, each followed by the separator, so their
 * raw starts add up. A document in the side text (start >= 0) has its
 * offset map loaded, for its rows' raw offsets. */
static int load_docs(cs_store *s, cs_text_shard *sh, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT id, start, norm_bytes, orig_bytes, coalesce(name, source) FROM text_docs "
                         "WHERE shard_id = ? AND status = 'ok' ORDER BY id",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, sh->id);
    size_t cap = 0;
    uint64_t raw = 0;
    int rc = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (sh->n_docs == cap && grow_docs(sh, cap = cap ? cap * 2 : 256)) {
            rc = cs_fail(err, CS_ENOMEM, "out of memory");
            break;
        }
        uint64_t i = sh->n_docs;
        sh->doc_id[i] = sqlite3_column_int64(st, 0);
        int64_t side = sqlite3_column_int64(st, 1);
        sh->doc_start[i] = side >= 0 ? (uint64_t)side : 0;
        sh->anch[i] = NULL;
        sh->n_anch[i] = 0;
        sh->doc_len[i] = (uint64_t)sqlite3_column_int64(st, 2);
        sh->raw_start[i] = raw;
        sh->raw_len[i] = (uint64_t)sqlite3_column_int64(st, 3);
        raw += sh->raw_len[i] + 1;
        sh->name[i] = strdup((const char *)sqlite3_column_text(st, 4));
        if (!sh->name[i]) {
            rc = cs_fail(err, CS_ENOMEM, "out of memory");
            break;
        }
        sh->n_docs++;
        if (side >= 0) {
            sh->side_docs[sh->n_side++] = i;
            if ((rc = cs_text_doc_anchors(s, sh->doc_id[i], &sh->anch[i], &sh->n_anch[i], err))) break;
        }
        if ((side >= 0 && sh->doc_start[i] + sh->doc_len[i] > sh->sa.n) || raw > sh->raw.n) {
            rc = cs_fail(err, CS_EFORMAT, "%s: document %lld lies outside shard %lld (re-index the text)",
                         cs_store_path(s), (long long)sh->doc_id[i], (long long)sh->id);
            break;
        }
    }
    if (!rc && r != SQLITE_DONE) rc = cs_store_fail(s, err, "read text_docs");
    if (!rc && raw != sh->raw.n)
        rc = cs_fail(err, CS_EFORMAT, "%s: shard %lld: raw text does not match its documents (re-index the text)",
                     cs_store_path(s), (long long)sh->id);
    sqlite3_finalize(st);
    return rc;
}

/* The raw text files of shard id: text-ID.raw, text-ID.rsa. */
static int open_raw(cs_store *s, cs_text_shard *sh, cs_err *err) {
    char rn[64], rsn[64];
    snprintf(rn, sizeof rn, "text-%lld.raw", (long long)sh->id);
    snprintf(rsn, sizeof rsn, "text-%lld.rsa", (long long)sh->id);
    char *rp = cs_store_sidecar(s, rn), *rsp = cs_store_sidecar(s, rsn);
    int rc;
    struct stat st;
    if (!rp || !rsp) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    else if (stat(rp, &st))
        rc = cs_fail(err, CS_EFORMAT, "%s: shard %lld has no raw text (indexed by an older copyscope: re-index)", rp,
                     (long long)sh->id);
    else rc = cs_text_sa_open(&sh->raw, rp, rsp, err);
    free(rp);
    free(rsp);
    return rc;
}

int cs_text_corpus_open(cs_text_corpus *c, cs_store *s, cs_err *err) {
    memset(c, 0, sizeof *c);
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT id, text_file, sa_file FROM text_shards ORDER BY id", err)) return -1;
    int rc = 0, r, cap = 0;
    while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        if (c->n_shards == cap) {
            cap = cap ? cap * 2 : 4;
            cs_text_shard *v = realloc(c->shards, (size_t)cap * sizeof *v);
            if (!v) {
                rc = cs_fail(err, CS_ENOMEM, "out of memory");
                break;
            }
            c->shards = v;
        }
        cs_text_shard *sh = &c->shards[c->n_shards];
        memset(sh, 0, sizeof *sh);
        sh->id = sqlite3_column_int64(st, 0);
        const char *tf = (const char *)sqlite3_column_text(st, 1);
        c->n_shards++;
        size_t tl = tf ? strlen(tf) : 0;
        if (tl < 4 || strcmp(tf + tl - 4, ".nfc")) {
            rc = cs_fail(err, CS_EFORMAT, "%s: text shard %lld was indexed by an older copyscope (re-index the text)",
                         cs_store_path(s), (long long)sh->id);
            break;
        }
        if ((rc = open_raw(s, sh, err))) break;
        char *tp = cs_store_sidecar(s, tf);
        char *sp = cs_store_sidecar(s, (const char *)sqlite3_column_text(st, 2));
        if (!tp || !sp) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else rc = cs_text_sa_open_words(&sh->sa, tp, sp, sh->raw.text, sh->raw.n, err);
        free(tp);
        free(sp);
        if (rc) break;
        /* the top levels of both arrays in memory (text_sa.h): a deep
         * binary-search step reads a row and then its text, at random,
         * over an index of several GB */
        if ((rc = cs_text_sa_sample(&sh->raw, CS_TEXT_TOP_K, err)) || (rc = cs_text_sa_sample(&sh->sa, CS_TEXT_TOP_K, err)))
            break;
        c->bytes += sh->raw.n;
        rc = load_docs(s, sh, err);
    }
    sqlite3_finalize(st);
    if (rc) cs_text_corpus_close(c);
    return rc;
}

void cs_text_corpus_close(cs_text_corpus *c) {
    for (int i = 0; i < c->n_shards; i++) {
        cs_text_sa_close(&c->shards[i].sa);
        cs_text_sa_close(&c->shards[i].raw);
        for (uint64_t k = 0; k < c->shards[i].n_docs; k++) free(c->shards[i].name[k]);
        for (uint64_t k = 0; k < c->shards[i].n_side; k++) free(c->shards[i].anch[c->shards[i].side_docs[k]]);
        free(c->shards[i].anch);
        free(c->shards[i].n_anch);
        free(c->shards[i].side_docs);
        free(c->shards[i].name);
        free(c->shards[i].raw_start);
        free(c->shards[i].raw_len);
        free(c->shards[i].doc_start);
        free(c->shards[i].doc_len);
        free(c->shards[i].doc_id);
    }
    free(c->shards);
    memset(c, 0, sizeof *c);
}

int64_t cs_text_shard_word(const cs_text_shard *sh, uint64_t v, uint64_t l, uint64_t *rs, uint64_t *re) {
    if (!(v & CS_TEXT_SIDE)) {
        int64_t d = cs_text_shard_raw_doc(sh, v);
        if (d < 0) return -1;
        int b;
        const uint8_t *e = cs_text_sa_skip(&sh->sa, (uint32_t)v, l, &b), *doc = sh->raw.text + sh->raw_start[d];
        uint64_t end = (uint64_t)(e - doc);
        *rs = v - sh->raw_start[d];
        *re = end < sh->raw_len[d] ? end : sh->raw_len[d];
        return d;
    }
    uint64_t o = v & ~(uint64_t)CS_TEXT_SIDE, lo = 0, hi = sh->n_side; /* first side start > o */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (sh->doc_start[sh->side_docs[mid]] <= o) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return -1;
    uint64_t d = sh->side_docs[lo - 1], ns = o - sh->doc_start[d];
    if (ns >= sh->doc_len[d]) return -1;
    uint64_t ne = ns + l < sh->doc_len[d] ? ns + l : sh->doc_len[d];
    *rs = cs_text_orig_offset(sh->anch[d], sh->n_anch[d], ns);
    *re = cs_text_orig_offset(sh->anch[d], sh->n_anch[d], ne);
    return (int64_t)d;
}

int cs_text_corpus_find_doc(const cs_text_corpus *c, int64_t doc_id, int *shard, uint64_t *index) {
    for (int s = 0; s < c->n_shards; s++) {
        const cs_text_shard *sh = &c->shards[s];
        uint64_t lo = 0, hi = sh->n_docs; /* ids grow with start */
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (sh->doc_id[mid] < doc_id) lo = mid + 1;
            else hi = mid;
        }
        if (lo < sh->n_docs && sh->doc_id[lo] == doc_id) {
            *shard = s;
            *index = lo;
            return 0;
        }
        for (uint64_t i = 0; i < sh->n_docs; i++) /* ids out of order (should not happen) */
            if (sh->doc_id[i] == doc_id) {
                *shard = s;
                *index = i;
                return 0;
            }
    }
    return -1;
}

int cs_text_doc_anchors(cs_store *s, int64_t doc_id, cs_text_anchor **a, size_t *n, cs_err *err) {
    *a = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT offmap FROM text_docs WHERE id = ?", err)) return -1;
    sqlite3_bind_int64(st, 1, doc_id);
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(st, 0);
        size_t bytes = (size_t)sqlite3_column_bytes(st, 0);
        size_t k = bytes / sizeof(cs_text_anchor);
        if (k) {
            *a = malloc(k * sizeof **a);
            if (!*a) rc = cs_fail(err, CS_ENOMEM, "out of memory");
            else {
                memcpy(*a, blob, k * sizeof **a);
                *n = k;
            }
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int64_t cs_text_shard_raw_doc(const cs_text_shard *sh, uint64_t pos) {
    uint64_t lo = 0, hi = sh->n_docs; /* first raw start > pos */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (sh->raw_start[mid] <= pos) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return -1;
    uint64_t i = lo - 1;
    return pos < sh->raw_start[i] + sh->raw_len[i] ? (int64_t)i : -1;
}

int cs_text_corpus_find_name(const cs_text_corpus *c, const char *name, int *shard, uint64_t *index) {
    for (int s = 0; s < c->n_shards; s++)
        for (uint64_t i = 0; i < c->shards[s].n_docs; i++)
            if (!strcmp(c->shards[s].name[i], name)) {
                *shard = s;
                *index = i;
                return 0;
            }
    return -1;
}
