/* test_findings_fixture.h — what the end-to-end analysis tests over the
 * twemoji data share (test_analyze_local, test_lf_box, test_verdict_fine,
 * test_tiny_default_mirror): the reference list (every 25th emoji by name,
 * plus the test's own sources, minus the ones it keeps out) and a run's
 * findings by query file name (q0.png, q1.png, ...). Header-only: each test
 * is one file. */
#ifndef CS_TEST_FINDINGS_FIXTURE_H
#define CS_TEST_FINDINGS_FIXTURE_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include <unistd.h>

#include "core/fs.h"
#include "core/store.h"
#include "index/ingest.h"

static int fx_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int fx_copy_file(const char *from, const char *to) {
    uint8_t *buf;
    size_t len;
    cs_err err = {0};
    if (cs_read_file(from, &buf, &len, &err)) return -1;
    FILE *f = fopen(to, "wb");
    int rc = !f || fwrite(buf, 1, len, f) != len;
    if (f) rc |= fclose(f) != 0;
    free(buf);
    return rc ? -1 : 0;
}

/* The names in dir (a folder path ending in '/'), sorted: every 25th, plus
 * keep[nkeep], minus those whose first drop_len bytes (0: the whole name)
 * are one of drop[ndrop]. Each as dir + name, or copied into copy_to (when
 * not NULL: a test that moves a source away) and named there; into out
 * (caller frees), at most cap. */
static int fx_twemoji_refs(const char *dir, const char *const *keep, int nkeep, const char *const *drop, int ndrop,
                           size_t drop_len, const char *copy_to, char **out, int cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **all = malloc(sizeof(char *) * 4096);
    int n = 0, m = 0;
    struct dirent *e;
    while (all && (e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.') all[n++] = strdup(e->d_name);
    closedir(d);
    if (!all) return 0;
    qsort(all, (size_t)n, sizeof *all, fx_cmp_str);
    for (int i = 0; i < n; i++) {
        int in = i % 25 == 0;
        for (int k = 0; k < nkeep; k++) in |= !strcmp(all[i], keep[k]);
        for (int k = 0; k < ndrop; k++)
            in &= drop_len ? strncmp(all[i], drop[k], drop_len) != 0 : strcmp(all[i], drop[k]) != 0;
        if (in && m < cap) {
            char from[1024], to[1024];
            snprintf(from, sizeof from, "%s%s", dir, all[i]);
            if (!copy_to) out[m++] = strdup(from);
            else if (snprintf(to, sizeof to, "%s/%s", copy_to, all[i]) > 0 && !fx_copy_file(from, to))
                out[m++] = strdup(to);
        }
        free(all[i]);
    }
    free(all);
    return m;
}

typedef struct {
    char verdict[16], rule[32], ref[256]; /* ref: the finding's reference, base name */
    char extra[96];                       /* the evidence at the test's JSON path, as text; "" when absent */
    char *evidence;                       /* without its analysis id; caller frees */
} fx_row;

/* A fresh store at db (any file there removed) holding refs, indexed with
 * index add's defaults (local features on; 2 threads). *added: the
 * references added. NULL with err set on failure; the caller closes it. */
static inline cs_store *fx_index_refs(const char *db, char **refs, int nr, int64_t *added, cs_err *err) {
    cs_store *s;
    unlink(db);
    if (cs_store_open(&s, db, err)) return NULL;
    cs_ingest_opts io = {.threads = 2, .local_features = 1};
    cs_ingest_stats ist;
    if (cs_ingest_add(s, (const char *const *)refs, nr, &io, &ist, err)) {
        cs_store_close(s);
        return NULL;
    }
    *added = ist.added;
    return s;
}

/* The findings of run_id by query file name qK (K < n) into r[K];
 * extra_path: a JSON path into the evidence read into r[K].extra (NULL:
 * none). Returns how many, -1 on an SQL error. */
static int fx_read_findings(cs_store *s, int64_t run_id, const char *extra_path, fx_row *r, int n) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cs_store_db(s),
                           "SELECT g.path, f.verdict, json_extract(f.evidence_json, '$.rule'), r.source, "
                           "json_remove(f.evidence_json, '$.analysis_id'), json_extract(f.evidence_json, ?2) "
                           "FROM findings f JOIN generations g ON g.id = f.generation_id "
                           "LEFT JOIN refs r ON r.id = f.ref_id WHERE g.run_id = ?1",
                           -1, &st, NULL))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, extra_path ? extra_path : "$.no_such_field", -1, SQLITE_STATIC);
    int got = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(st, 0);
        const char *b = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
        int i = b[0] == 'q' ? atoi(b + 1) : -1;
        if (i < 0 || i >= n) continue;
        const char *rule = (const char *)sqlite3_column_text(st, 2), *src = (const char *)sqlite3_column_text(st, 3);
        const char *x = (const char *)sqlite3_column_text(st, 5);
        snprintf(r[i].verdict, sizeof r[i].verdict, "%s", sqlite3_column_text(st, 1));
        snprintf(r[i].rule, sizeof r[i].rule, "%s", rule ? rule : "");
        snprintf(r[i].ref, sizeof r[i].ref, "%s", src ? (strrchr(src, '/') ? strrchr(src, '/') + 1 : src) : "");
        snprintf(r[i].extra, sizeof r[i].extra, "%s", x ? x : "");
        r[i].evidence = strdup((const char *)sqlite3_column_text(st, 4));
        got++;
    }
    sqlite3_finalize(st);
    return got;
}

#endif
