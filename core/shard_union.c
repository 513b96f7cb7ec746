/* shard_union.c — one table of every shard as one SQLite virtual table,
 * without ATTACH (core/shard.h).
 *
 * SQLite attaches at most SQLITE_MAX_ATTACHED files to a connection (10 in
 * Debian's build), so a store of more shards cannot be read through ATTACH.
 * This module reads the shards through connections of its own instead, one
 * per shard, opened read-only when first needed: any number of shards.
 * `CREATE VIRTUAL TABLE temp.X USING cs_shard_union(T)` gives table T of
 * every shard, in shard order and ref_id order within a shard, under global
 * ids (local ref_id + the shard's offset). `ref_id = ?` goes to the one shard
 * whose id range holds it (a point lookup there); anything else is a scan of
 * every shard, SQLite filtering the rest. */
#include "core/shard.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n;
    char **path;
    sqlite3 **db;    /* opened on first use */
    long long *off;  /* n + 1: shard k holds global ids (off[k], off[k+1]] */
} shard_set;

typedef struct {
    sqlite3_vtab base;
    shard_set *set;
    int table, ncol;
} union_vtab;

typedef struct {
    sqlite3_vtab_cursor base;
    sqlite3_stmt **scan, **one; /* per shard, prepared on first use */
    sqlite3_stmt *cur;          /* the statement positioned on the row */
    int k, eof, point;
} union_cursor;

/* The tables a shard holds that readers see (core/shard.c's views). */
static const struct {
    const char *name, *cols;
    int ncol;
} tables[] = {
    {"ref_hashes", "pdq, pdq_quality, phash, dhash, ahash", 6},
    {"ref_thumbs", "w, h, rgb", 4},
    {"ref_localfeat", "rec", 2},
};

static void set_free(void *p) {
    shard_set *s = p;
    if (!s) return;
    for (int k = 0; k < s->n; k++) {
        if (s->db) sqlite3_close(s->db[k]);
        if (s->path) free(s->path[k]);
    }
    free(s->db);
    free(s->path);
    free(s->off);
    free(s);
}

static int shard_db(union_vtab *v, int k, sqlite3 **out) {
    shard_set *s = v->set;
    if (!s->db[k]) {
        sqlite3 *h = NULL;
        if (sqlite3_open_v2(s->path[k], &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            sqlite3_free(v->base.zErrMsg);
            v->base.zErrMsg = sqlite3_mprintf("%s: %s", s->path[k], h ? sqlite3_errmsg(h) : "out of memory");
            sqlite3_close(h);
            return SQLITE_CANTOPEN;
        }
        sqlite3_busy_timeout(h, 10000);
        s->db[k] = h;
    }
    *out = s->db[k];
    return SQLITE_OK;
}

static int vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out, char **zerr) {
    int t = -1;
    for (int i = 0; argc == 4 && i < (int)(sizeof tables / sizeof tables[0]); i++)
        if (!strcmp(argv[3], tables[i].name)) t = i;
    if (t < 0) {
        *zerr = sqlite3_mprintf("cs_shard_union: expects one of ref_hashes, ref_thumbs, ref_localfeat");
        return SQLITE_ERROR;
    }
    char decl[256];
    snprintf(decl, sizeof decl, "CREATE TABLE x(ref_id INTEGER, %s)", tables[t].cols);
    int rc = sqlite3_declare_vtab(db, decl);
    if (rc != SQLITE_OK) return rc;
    union_vtab *v = sqlite3_malloc(sizeof *v);
    if (!v) return SQLITE_NOMEM;
    memset(v, 0, sizeof *v);
    v->set = aux;
    v->table = t;
    v->ncol = tables[t].ncol;
    *out = &v->base;
    return SQLITE_OK;
}

static int vt_disconnect(sqlite3_vtab *p) {
    sqlite3_free(p);
    return SQLITE_OK;
}

/* ref_id = ? is one row of one shard; everything else a scan in id order. */
static int vt_best_index(sqlite3_vtab *p, sqlite3_index_info *ix) {
    (void)p;
    ix->idxNum = 0;
    ix->estimatedCost = 1e6;
    ix->estimatedRows = 1000000;
    for (int i = 0; i < ix->nConstraint; i++)
        if (ix->aConstraint[i].usable && ix->aConstraint[i].iColumn == 0 &&
            ix->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_EQ) {
            ix->aConstraintUsage[i].argvIndex = 1;
            ix->aConstraintUsage[i].omit = 1;
            ix->idxNum = 1;
            ix->estimatedCost = 10;
            ix->estimatedRows = 1;
            ix->idxFlags = SQLITE_INDEX_SCAN_UNIQUE;
            break;
        }
    if (ix->nOrderBy == 1 && ix->aOrderBy[0].iColumn == 0 && !ix->aOrderBy[0].desc) ix->orderByConsumed = 1;
    return SQLITE_OK;
}

static int vt_open(sqlite3_vtab *p, sqlite3_vtab_cursor **out) {
    union_vtab *v = (union_vtab *)p;
    union_cursor *c = sqlite3_malloc(sizeof *c);
    if (!c) return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->scan = sqlite3_malloc64(sizeof *c->scan * (size_t)v->set->n * 2);
    if (!c->scan) {
        sqlite3_free(c);
        return SQLITE_NOMEM;
    }
    memset(c->scan, 0, sizeof *c->scan * (size_t)v->set->n * 2);
    c->one = c->scan + v->set->n;
    c->eof = 1;
    *out = &c->base;
    return SQLITE_OK;
}

static int vt_close(sqlite3_vtab_cursor *cur) {
    union_cursor *c = (union_cursor *)cur;
    union_vtab *v = (union_vtab *)cur->pVtab;
    for (int k = 0; k < 2 * v->set->n; k++) sqlite3_finalize(c->scan[k]);
    sqlite3_free(c->scan);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int stmt_for(union_cursor *c, int k, int point, sqlite3_stmt **out) {
    union_vtab *v = (union_vtab *)c->base.pVtab;
    sqlite3_stmt **slot = point ? &c->one[k] : &c->scan[k];
    if (!*slot) {
        sqlite3 *h;
        int rc = shard_db(v, k, &h);
        if (rc != SQLITE_OK) return rc;
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT ref_id, %s FROM main.%s %s", tables[v->table].cols,
                 tables[v->table].name, point ? "WHERE ref_id = ?1" : "ORDER BY ref_id");
        if (sqlite3_prepare_v2(h, sql, -1, slot, NULL) != SQLITE_OK) {
            sqlite3_free(v->base.zErrMsg);
            v->base.zErrMsg = sqlite3_mprintf("%s: %s", v->set->path[k], sqlite3_errmsg(h));
            return SQLITE_ERROR;
        }
    }
    sqlite3_reset(*slot);
    *out = *slot;
    return SQLITE_OK;
}

/* Steps c->cur; at the end of a scan's shard, on to the next shard's rows. */
static int advance(union_cursor *c) {
    union_vtab *v = (union_vtab *)c->base.pVtab;
    for (;;) {
        int rc = sqlite3_step(c->cur);
        if (rc == SQLITE_ROW) return SQLITE_OK;
        if (rc != SQLITE_DONE) {
            sqlite3_free(v->base.zErrMsg);
            v->base.zErrMsg = sqlite3_mprintf("%s: %s", v->set->path[c->k], sqlite3_errmsg(v->set->db[c->k]));
            return rc;
        }
        sqlite3_reset(c->cur);
        if (c->point || c->k + 1 >= v->set->n) {
            c->cur = NULL;
            c->eof = 1;
            return SQLITE_OK;
        }
        c->k++;
        if ((rc = stmt_for(c, c->k, 0, &c->cur)) != SQLITE_OK) return rc;
    }
}

static int vt_filter(sqlite3_vtab_cursor *cur, int idx, const char *s, int argc, sqlite3_value **argv) {
    (void)s;
    union_cursor *c = (union_cursor *)cur;
    shard_set *set = ((union_vtab *)cur->pVtab)->set;
    if (c->cur) sqlite3_reset(c->cur);
    c->cur = NULL;
    c->eof = 1;
    c->point = idx == 1 && argc == 1;
    if (!c->point) {
        c->k = 0;
        int rc = stmt_for(c, 0, 0, &c->cur);
        if (rc != SQLITE_OK) return rc;
        c->eof = 0;
        return advance(c);
    }
    if (sqlite3_value_numeric_type(argv[0]) != SQLITE_INTEGER) return SQLITE_OK; /* no integer id: no row */
    long long id = sqlite3_value_int64(argv[0]);
    int lo = 0, hi = set->n - 1; /* the last shard k with off[k] < id */
    if (id <= set->off[0]) return SQLITE_OK;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (set->off[mid] < id) lo = mid;
        else hi = mid - 1;
    }
    c->k = lo;
    int rc = stmt_for(c, lo, 1, &c->cur);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(c->cur, 1, id - set->off[lo]);
    c->eof = 0;
    return advance(c);
}

static int vt_next(sqlite3_vtab_cursor *cur) { return advance((union_cursor *)cur); }

static int vt_eof(sqlite3_vtab_cursor *cur) { return ((union_cursor *)cur)->eof; }

static int vt_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i) {
    union_cursor *c = (union_cursor *)cur;
    shard_set *set = ((union_vtab *)cur->pVtab)->set;
    if (i == 0) sqlite3_result_int64(ctx, sqlite3_column_int64(c->cur, 0) + set->off[c->k]);
    else sqlite3_result_value(ctx, sqlite3_column_value(c->cur, i));
    return SQLITE_OK;
}

static int vt_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *id) {
    union_cursor *c = (union_cursor *)cur;
    *id = sqlite3_column_int64(c->cur, 0) + ((union_vtab *)cur->pVtab)->set->off[c->k];
    return SQLITE_OK;
}

static const sqlite3_module union_module = {
    .iVersion = 0,
    .xCreate = vt_connect,
    .xConnect = vt_connect,
    .xBestIndex = vt_best_index,
    .xDisconnect = vt_disconnect,
    .xDestroy = vt_disconnect,
    .xOpen = vt_open,
    .xClose = vt_close,
    .xFilter = vt_filter,
    .xNext = vt_next,
    .xEof = vt_eof,
    .xColumn = vt_column,
    .xRowid = vt_rowid,
};

int cs_shard_union_register(sqlite3 *db, const char *manifest, int n, const long long *off, cs_err *err) {
    shard_set *s = calloc(1, sizeof *s);
    if (!s) return cs_fail(err, CS_ENOMEM, "out of memory");
    s->n = n;
    s->path = calloc((size_t)n, sizeof *s->path);
    s->db = calloc((size_t)n, sizeof *s->db);
    s->off = calloc((size_t)n + 1, sizeof *s->off);
    int rc = !s->path || !s->db || !s->off ? cs_fail(err, CS_ENOMEM, "out of memory") : 0;
    for (int k = 0; !rc && k < n; k++) {
        s->off[k] = off[k];
        if (!(s->path[k] = cs_shard_path(manifest, k, n))) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    }
    if (rc) {
        set_free(s);
        return rc;
    }
    s->off[n] = LLONG_MAX;
    /* the destructor runs when the connection closes or the module is replaced */
    if (sqlite3_create_module_v2(db, "cs_shard_union", &union_module, s, set_free) != SQLITE_OK)
        return cs_fail(err, CS_EDB, "%s: registering the shard reader: %s", manifest, sqlite3_errmsg(db));
    return 0;
}
