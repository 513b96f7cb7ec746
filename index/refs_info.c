/* refs_info.c — see refs_info.h. */
#include "index/refs_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* count(*) of a query, -1 when it cannot run (e.g. a missing table) */
static int64_t count_of(sqlite3 *db, const char *sql) {
    sqlite3_stmt *q;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* every ref_* table with its row count */
static int descriptor_tables(sqlite3 *db, cs_refs_stats *st, cs_err *err) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'ref\\_%' "
                               "ESCAPE '\\' ORDER BY name", -1, &q, NULL) != SQLITE_OK)
        return 0; /* none listed */
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        char **nt = realloc(st->tables, sizeof(char *) * (size_t)(st->n_tables + 1));
        if (nt) st->tables = nt;
        int64_t *nr = nt ? realloc(st->table_rows, sizeof(int64_t) * (size_t)(st->n_tables + 1)) : NULL;
        if (nr) st->table_rows = nr;
        char *copy = nr ? strdup(name) : NULL;
        if (!copy) {
            sqlite3_finalize(q);
            return cs_fail(err, CS_ENOMEM, "index stats: out of memory");
        }
        char sql[300];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", name); /* name from sqlite_master */
        st->tables[st->n_tables] = copy;
        st->table_rows[st->n_tables++] = count_of(db, sql);
    }
    sqlite3_finalize(q);
    return 0;
}

int cs_refs_stats_load(cs_store *s, cs_refs_stats *st, cs_err *err) {
    memset(st, 0, sizeof *st);
    sqlite3 *db = cs_store_db(s);
    st->total = count_of(db, "SELECT count(*) FROM refs");
    if (st->total < 0) return cs_store_fail(s, err, "reading refs");
    st->ok = count_of(db, "SELECT count(*) FROM refs WHERE status='ok'");
    st->duplicate = count_of(db, "SELECT count(*) FROM refs WHERE status='duplicate'");
    st->error = count_of(db, "SELECT count(*) FROM refs WHERE status='error'");
    st->notes = count_of(db, "SELECT count(*) FROM refs WHERE status<>'error' AND error IS NOT NULL");
    st->captioned = count_of(db, "SELECT count(*) FROM refs WHERE status<>'error' AND caption IS NOT NULL");
    st->pdq_low_quality = count_of(db, "SELECT count(*) FROM ref_hashes WHERE pdq_quality < 50");
    if (descriptor_tables(db, st, err)) {
        cs_refs_stats_free(st);
        return -1;
    }
    return 0;
}

void cs_refs_stats_free(cs_refs_stats *st) {
    for (int i = 0; i < st->n_tables; i++) free(st->tables[i]);
    free(st->tables);
    free(st->table_rows);
    memset(st, 0, sizeof *st);
}

int cs_refs_each(cs_store *s, int errors_only, int64_t limit, void (*fn)(const cs_ref_row *r, void *ctx), void *ctx,
                 cs_err *err) {
    sqlite3_stmt *q;
    const char *sql = errors_only ? "SELECT id, status, width, height, sha256, size, source, caption, error, dup_of "
                                    "FROM refs WHERE status='error' OR error IS NOT NULL ORDER BY id LIMIT ?1"
                                  : "SELECT id, status, width, height, sha256, size, source, caption, error, dup_of "
                                    "FROM refs ORDER BY id LIMIT ?1";
    if (cs_store_prepare(s, &q, sql, err)) return -1;
    sqlite3_bind_int64(q, 1, limit);
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        cs_ref_row row = {.id = sqlite3_column_int64(q, 0)};
        /* the types first: a conversion may change them */
        row.has_dims = sqlite3_column_type(q, 2) != SQLITE_NULL;
        row.has_size = sqlite3_column_type(q, 5) != SQLITE_NULL;
        row.has_dup_of = sqlite3_column_type(q, 9) != SQLITE_NULL;
        row.status = (const char *)sqlite3_column_text(q, 1);
        row.w = sqlite3_column_int(q, 2);
        row.h = sqlite3_column_int(q, 3);
        row.sha256 = (const char *)sqlite3_column_text(q, 4);
        row.size = sqlite3_column_int64(q, 5);
        row.source = (const char *)sqlite3_column_text(q, 6);
        row.caption = (const char *)sqlite3_column_text(q, 7);
        row.error = (const char *)sqlite3_column_text(q, 8);
        row.dup_of = sqlite3_column_int64(q, 9);
        fn(&row, ctx);
    }
    int fail = r != SQLITE_DONE;
    if (fail) cs_store_fail(s, err, "listing refs");
    sqlite3_finalize(q);
    return fail ? -1 : 0;
}

struct cs_ref_lookup {
    sqlite3_stmt *st; /* SELECT source, caption FROM refs WHERE id = ? */
};

int cs_ref_lookup_open(cs_ref_lookup **out, cs_store *s, cs_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return cs_fail(err, CS_ENOMEM, "out of memory");
    if (cs_store_prepare(s, &(*out)->st, "SELECT source, caption FROM refs WHERE id = ?", err)) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void cs_ref_lookup_get(cs_ref_lookup *l, int64_t id, const char **source, const char **caption) {
    *source = "?";
    *caption = NULL;
    sqlite3_reset(l->st);
    sqlite3_bind_int64(l->st, 1, id);
    if (sqlite3_step(l->st) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(l->st, 0);
        *source = s ? s : "?";
        *caption = (const char *)sqlite3_column_text(l->st, 1);
    }
}

void cs_ref_lookup_close(cs_ref_lookup *l) {
    if (!l) return;
    sqlite3_finalize(l->st);
    free(l);
}
