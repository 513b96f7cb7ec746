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
#include <sys/stat.h>

#include "core/progress.h"

#define DEFAULT_SHARD_BYTES ((uint64_t)1 << 30)

/* A document waiting for its shard to be committed. */
typedef struct {
    char *source, *name, *note;
    const char *status; /* "ok" | "empty" | "error" */
    uint64_t start, norm_bytes, orig_bytes, words;
    cs_text_anchor *anchors;
    size_t n_anchors;
} pending_doc;

typedef struct {
    cs_store *s;
    const cs_text_index_opts *opts;
    cs_text_index_stats *st;
    uint64_t limit;
    uint8_t *buf; /* the shard being filled */
    uint64_t len, cap;
    pending_doc *docs;
    size_t n_docs, cap_docs;
    sqlite3_stmt *exists;
    cs_progress *prog;
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
    if (b->n_docs == b->cap_docs) {
        size_t c = b->cap_docs ? b->cap_docs * 2 : 64;
        pending_doc *d = realloc(b->docs, c * sizeof *d);
        if (!d) return NULL;
        b->docs = d;
        b->cap_docs = c;
    }
    pending_doc *d = &b->docs[b->n_docs];
    memset(d, 0, sizeof *d);
    d->source = strdup(source);
    d->name = strdup(name ? name : source);
    d->status = status;
    if (!d->source || !d->name) {
        pending_free(d);
        return NULL;
    }
    b->n_docs++;
    return d;
}

static int already_indexed(builder *b, const char *source) {
    sqlite3_reset(b->exists);
    sqlite3_bind_text(b->exists, 1, source, -1, SQLITE_TRANSIENT);
    return sqlite3_step(b->exists) == SQLITE_ROW;
}

/* Writes the current shard (if any text) and every pending row in one
 * transaction. */
static int flush(builder *b, cs_err *err) {
    if (!b->n_docs) return 0;
    cs_store *s = b->s;
    sqlite3_stmt *ins_shard = NULL, *upd_shard = NULL, *ins_doc = NULL;
    char *tpath = NULL, *spath = NULL;
    int rc = -1;
    if (cs_store_begin(s, err)) return -1;
    int64_t shard_id = 0;
    if (b->len) {
        if (cs_store_prepare(s, &ins_shard,
                             "INSERT INTO text_shards(text_file, sa_file, bytes, n_docs, n_suffixes) "
                             "VALUES ('', '', ?, 0, 0)",
                             err))
            goto out;
        sqlite3_bind_int64(ins_shard, 1, (int64_t)b->len);
        if (sqlite3_step(ins_shard) != SQLITE_DONE) {
            cs_store_fail(s, err, "insert text_shards");
            goto out;
        }
        shard_id = sqlite3_last_insert_rowid(cs_store_db(s));
        char tf[64], sf[64];
        snprintf(tf, sizeof tf, "text-%lld.txt", (long long)shard_id);
        snprintf(sf, sizeof sf, "text-%lld.sa", (long long)shard_id);
        tpath = cs_store_sidecar(s, tf);
        spath = cs_store_sidecar(s, sf);
        if (!tpath || !spath) {
            cs_fail(err, CS_ENOMEM, "out of memory");
            goto out;
        }
        uint64_t n_sa = 0;
        if (cs_text_sa_build(b->buf, b->len, tpath, spath, &n_sa, err)) goto out;
        int64_t n_ok = 0;
        for (size_t i = 0; i < b->n_docs; i++) n_ok += !strcmp(b->docs[i].status, "ok");
        if (cs_store_prepare(s, &upd_shard,
                             "UPDATE text_shards SET text_file = ?, sa_file = ?, n_docs = ?, n_suffixes = ? "
                             "WHERE id = ?",
                             err))
            goto out;
        sqlite3_bind_text(upd_shard, 1, tf, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(upd_shard, 2, sf, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(upd_shard, 3, n_ok);
        sqlite3_bind_int64(upd_shard, 4, (int64_t)n_sa);
        sqlite3_bind_int64(upd_shard, 5, shard_id);
        if (sqlite3_step(upd_shard) != SQLITE_DONE) {
            cs_store_fail(s, err, "update text_shards");
            goto out;
        }
        b->st->shards++;
        b->st->suffixes += n_sa;
    }
    if (cs_store_prepare(s, &ins_doc,
                         "INSERT OR IGNORE INTO text_docs(source, name, status, note, shard_id, start, "
                         "norm_bytes, orig_bytes, words, offmap) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         err))
        goto out;
    for (size_t i = 0; i < b->n_docs; i++) {
        pending_doc *d = &b->docs[i];
        int ok = !strcmp(d->status, "ok");
        sqlite3_reset(ins_doc);
        sqlite3_clear_bindings(ins_doc);
        sqlite3_bind_text(ins_doc, 1, d->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_doc, 2, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_doc, 3, d->status, -1, SQLITE_STATIC);
        if (d->note) sqlite3_bind_text(ins_doc, 4, d->note, -1, SQLITE_STATIC);
        if (ok) {
            sqlite3_bind_int64(ins_doc, 5, shard_id);
            sqlite3_bind_int64(ins_doc, 6, (int64_t)d->start);
            sqlite3_bind_blob(ins_doc, 10, d->anchors ? (const void *)d->anchors : (const void *)"",
                              (int)(d->n_anchors * sizeof *d->anchors), SQLITE_STATIC);
        }
        sqlite3_bind_int64(ins_doc, 7, (int64_t)d->norm_bytes);
        sqlite3_bind_int64(ins_doc, 8, (int64_t)d->orig_bytes);
        sqlite3_bind_int64(ins_doc, 9, (int64_t)d->words);
        if (sqlite3_step(ins_doc) != SQLITE_DONE) {
            cs_store_fail(s, err, "insert text_docs");
            goto out;
        }
    }
    if (cs_store_commit(s, err)) goto out;
    rc = 0;
out:
    if (rc) cs_store_rollback(s);
    sqlite3_finalize(ins_shard);
    sqlite3_finalize(upd_shard);
    sqlite3_finalize(ins_doc);
    free(tpath);
    free(spath);
    for (size_t i = 0; i < b->n_docs; i++) pending_free(&b->docs[i]);
    b->n_docs = 0;
    b->len = 0;
    return rc;
}

/* Adds one document (bytes of a file, or a JSONL text). */
static int add_doc(builder *b, const char *source, const char *name, const char *text, size_t len, cs_err *err) {
    b->st->bytes_in += len;
    if (already_indexed(b, source)) {
        b->st->docs_skipped++;
        return 0;
    }
    cs_text_norm n;
    if (cs_text_normalize(&n, text, len, err)) {
        cs_text_norm_free(&n);
        if (err && err->code == CS_ELIMIT) { /* too large: recorded, not fatal */
            pending_doc *d = pending_add(b, source, name, "error");
            if (!d) return cs_fail(err, CS_ENOMEM, "out of memory");
            d->note = strdup(err->msg);
            d->orig_bytes = len;
            note(b, "%s: %s (skipped)", source, err->msg);
            cs_err_clear(err);
            b->st->docs_error++;
            return 0;
        }
        return cs_wrap(err, "%s", source);
    }
    if (n.len == 0) {
        pending_doc *d = pending_add(b, source, name, "empty");
        cs_text_norm_free(&n);
        if (!d) return cs_fail(err, CS_ENOMEM, "out of memory");
        d->note = strdup("empty document (no text after normalisation)");
        d->orig_bytes = len;
        note(b, "%s: empty document (recorded, not indexed)", source);
        b->st->docs_empty++;
        return 0;
    }
    if (n.len + 1 > b->limit) {
        pending_doc *d = pending_add(b, source, name, "error");
        if (!d) {
            cs_text_norm_free(&n);
            return cs_fail(err, CS_ENOMEM, "out of memory");
        }
        char msg[200];
        snprintf(msg, sizeof msg, "document of %zu bytes exceeds the shard size (%llu bytes)", n.len,
                 (unsigned long long)b->limit);
        d->note = strdup(msg);
        d->orig_bytes = len;
        note(b, "%s: %s (skipped)", source, msg);
        cs_text_norm_free(&n);
        b->st->docs_error++;
        return 0;
    }
    if (b->len + n.len + 1 > b->limit && flush(b, err)) {
        cs_text_norm_free(&n);
        return -1;
    }
    if (b->len + n.len + 1 > b->cap) {
        uint64_t c = b->cap ? b->cap : (1 << 20);
        while (c < b->len + n.len + 1) c *= 2;
        if (c > b->limit) c = b->limit;
        uint8_t *nb = realloc(b->buf, c);
        if (!nb) {
            cs_text_norm_free(&n);
            return cs_fail(err, CS_ENOMEM, "out of memory for a shard of %llu bytes", (unsigned long long)c);
        }
        b->buf = nb;
        b->cap = c;
    }
    pending_doc *d = pending_add(b, source, name, "ok");
    if (!d) {
        cs_text_norm_free(&n);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    d->start = b->len;
    d->norm_bytes = n.len;
    d->orig_bytes = len;
    d->words = n.n_words;
    d->anchors = n.anchors;
    d->n_anchors = n.n_anchors;
    n.anchors = NULL;
    char msg[256] = "";
    if (n.n_invalid)
        snprintf(msg, sizeof msg, "%zu invalid UTF-8 bytes replaced by U+FFFD", n.n_invalid);
    if (n.n_nul)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "%s%zu NUL bytes read as whitespace",
                 msg[0] ? "; " : "", n.n_nul);
    if (msg[0]) {
        d->note = strdup(msg);
        note(b, "%s: %s", source, msg);
    }
    memcpy(b->buf + b->len, n.text, n.len);
    b->len += n.len;
    b->buf[b->len++] = CS_TEXT_SEP;
    b->st->docs_ok++;
    b->st->bytes_norm += n.len;
    cs_text_norm_free(&n);
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

static int read_all(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *nb = cap > CS_TEXT_MAX_DOC ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        if (!errno) errno = ENOMEM;
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

static int index_jsonl(builder *b, const char *path, cs_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot open: %s", strerror(errno));
        return record_error(b, path, msg, err);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    int64_t lineno = 0;
    int rc = 0;
    size_t plen = strlen(path) + 32;
    char *source = malloc(plen);
    if (!source) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    while (!rc && (k = getline(&line, &cap, f)) >= 0) {
        lineno++;
        cs_progress_add(b->prog, k);
        size_t i = 0;
        while (i < (size_t)k && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) i++;
        if (i == (size_t)k) continue; /* blank line */
        snprintf(source, plen, "%s:%lld", path, (long long)lineno);
        cJSON *j = cJSON_ParseWithLength(line, (size_t)k);
        const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
        if (!j || !cJSON_IsObject(j) || !cJSON_IsString(t)) {
            /* source is "path:LINE", so the note names the line */
            rc = record_error(b, source,
                              !j || !cJSON_IsObject(j) ? "not a JSON object (skipped)" : "no \"text\" string (skipped)",
                              err);
            cJSON_Delete(j);
            continue;
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        char idbuf[64], *name = NULL;
        if (cJSON_IsString(id)) name = id->valuestring;
        else if (cJSON_IsNumber(id)) {
            snprintf(idbuf, sizeof idbuf, "%.17g", id->valuedouble);
            name = idbuf;
        }
        b->st->bytes_in -= strlen(t->valuestring); /* counted by add_doc */
        b->st->bytes_in += (uint64_t)k;
        rc = add_doc(b, source, name, t->valuestring, strlen(t->valuestring), err);
        cJSON_Delete(j);
    }
    if (!rc && ferror(f)) rc = cs_fail(err, CS_EIO, "%s: read error: %s", path, strerror(errno));
    free(source);
    free(line);
    fclose(f);
    return rc;
}

static int ends_with(const char *s, const char *ext) {
    size_t n = strlen(s), e = strlen(ext);
    return n >= e && !strcasecmp(s + n - e, ext);
}

static int index_file(builder *b, const char *path, cs_err *err) {
    if (ends_with(path, ".jsonl")) return index_jsonl(b, path, err);
    char *data;
    size_t len;
    errno = 0;
    if (read_all(path, &data, &len)) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot read: %s", errno == ENOMEM ? "too large or out of memory" : strerror(errno));
        return record_error(b, path, msg, err);
    }
    cs_progress_add(b->prog, (int64_t)len);
    int rc = add_doc(b, path, path, data, len, err);
    free(data);
    return rc;
}

/* The file list of a folder, recursively, sorted by name. */
typedef struct {
    char **v;
    size_t n, cap;
    uint64_t bytes;
} file_list;

static int list_push(file_list *l, const char *p, uint64_t size) {
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, c * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = c;
    }
    if (!(l->v[l->n] = strdup(p))) return -1;
    l->n++;
    l->bytes += size;
    return 0;
}

static int walk(file_list *l, const char *dir, int depth, cs_err *err) {
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
                if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) rc = walk(l, p, depth + 1, err);
                else if (ends_with(nm, ".txt") || ends_with(nm, ".md") || ends_with(nm, ".jsonl")) {
                    if (list_push(l, p, stat(p, &st) == 0 ? (uint64_t)st.st_size : 0))
                        rc = cs_fail(err, CS_ENOMEM, "out of memory");
                }
                free(p);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

int cs_text_index(cs_store *s, const char *const *paths, int n_paths, const cs_text_index_opts *opts,
                  cs_text_index_stats *stats, cs_err *err) {
    cs_text_index_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    builder b = {.s = s, .opts = opts, .st = stats};
    b.limit = opts && opts->shard_bytes ? opts->shard_bytes : DEFAULT_SHARD_BYTES;
    if (b.limit > CS_TEXT_MAX_SHARD) b.limit = CS_TEXT_MAX_SHARD;
    if (b.limit < 2) return cs_fail(err, CS_EUSAGE, "shard size too small");
    file_list files = {0};
    int rc = 0;
    for (int i = 0; i < n_paths && !rc; i++) {
        struct stat st;
        if (stat(paths[i], &st)) rc = cs_fail(err, CS_EIO, "%s: %s", paths[i], strerror(errno));
        else if (S_ISDIR(st.st_mode)) rc = walk(&files, paths[i], 0, err);
        else if (list_push(&files, paths[i], (uint64_t)st.st_size)) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    }
    if (!rc) rc = cs_store_prepare(s, &b.exists, "SELECT 1 FROM text_docs WHERE source = ?", err);
    if (!rc && opts && opts->progress) b.prog = cs_progress_start("text index", (int64_t)files.bytes, "B");
    for (size_t i = 0; i < files.n && !rc; i++) rc = index_file(&b, files.v[i], err);
    if (!rc) rc = flush(&b, err);
    cs_progress_end(b.prog);
    for (size_t i = 0; i < b.n_docs; i++) pending_free(&b.docs[i]);
    free(b.docs);
    free(b.buf);
    sqlite3_finalize(b.exists);
    for (size_t i = 0; i < files.n; i++) free(files.v[i]);
    free(files.v);
    return rc;
}

/* ---- the corpus, opened for search ---- */

static int load_docs(cs_store *s, cs_text_shard *sh, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st,
                         "SELECT id, start, norm_bytes FROM text_docs WHERE shard_id = ? AND status = 'ok' "
                         "ORDER BY start",
                         err))
        return -1;
    sqlite3_bind_int64(st, 1, sh->id);
    size_t cap = 0;
    int rc = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (sh->n_docs == cap) {
            cap = cap ? cap * 2 : 256;
            uint64_t *a = realloc(sh->doc_start, cap * sizeof *a), *l = a ? realloc(sh->doc_len, cap * sizeof *l) : NULL;
            if (a) sh->doc_start = a;
            if (l) sh->doc_len = l;
            int64_t *d = l ? realloc(sh->doc_id, cap * sizeof *d) : NULL;
            if (d) sh->doc_id = d;
            if (!d) {
                rc = cs_fail(err, CS_ENOMEM, "out of memory");
                break;
            }
        }
        sh->doc_id[sh->n_docs] = sqlite3_column_int64(st, 0);
        sh->doc_start[sh->n_docs] = (uint64_t)sqlite3_column_int64(st, 1);
        sh->doc_len[sh->n_docs] = (uint64_t)sqlite3_column_int64(st, 2);
        if (sh->doc_start[sh->n_docs] + sh->doc_len[sh->n_docs] > sh->sa.n) {
            rc = cs_fail(err, CS_EFORMAT, "%s: document %lld lies outside shard %lld", cs_store_path(s),
                         (long long)sh->doc_id[sh->n_docs], (long long)sh->id);
            break;
        }
        sh->n_docs++;
    }
    if (!rc && r != SQLITE_DONE) rc = cs_store_fail(s, err, "read text_docs");
    sqlite3_finalize(st);
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
        char *tp = cs_store_sidecar(s, (const char *)sqlite3_column_text(st, 1));
        char *sp = cs_store_sidecar(s, (const char *)sqlite3_column_text(st, 2));
        if (!tp || !sp) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else rc = cs_text_sa_open(&sh->sa, tp, sp, err);
        free(tp);
        free(sp);
        if (rc) break;
        c->n_shards++;
        c->bytes += sh->sa.n;
        rc = load_docs(s, sh, err);
    }
    sqlite3_finalize(st);
    if (rc) cs_text_corpus_close(c);
    return rc;
}

void cs_text_corpus_close(cs_text_corpus *c) {
    for (int i = 0; i < c->n_shards; i++) {
        cs_text_sa_close(&c->shards[i].sa);
        free(c->shards[i].doc_start);
        free(c->shards[i].doc_len);
        free(c->shards[i].doc_id);
    }
    free(c->shards);
    memset(c, 0, sizeof *c);
}

int64_t cs_text_shard_doc(const cs_text_shard *sh, uint64_t pos) {
    uint64_t lo = 0, hi = sh->n_docs; /* first start > pos */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (sh->doc_start[mid] <= pos) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return -1;
    uint64_t i = lo - 1;
    return pos < sh->doc_start[i] + sh->doc_len[i] ? (int64_t)i : -1;
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
