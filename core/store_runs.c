/* store_runs.c — see store_runs.h. */
#include "core/store_runs.h"

#include <math.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

/* NULL binds NULL (sqlite3_bind_text does that too; said here for the reader) */
static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

/* Steps a write; finalizes it; fails with what on anything but DONE. */
static int step_write(cs_store *s, sqlite3_stmt *st, const char *what, cs_err *err) {
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : cs_store_fail(s, err, what);
}

int cs_run_find(cs_store *s, const char *suite_sha256, const char *model_sha256, int64_t *id, cs_err *err) {
    sqlite3_stmt *st;
    *id = 0;
    if (cs_store_prepare(s, &st, "SELECT id FROM runs WHERE suite_sha256 = ?1 AND model_sha256 = ?2 "
                                 "ORDER BY id LIMIT 1", err))
        return -1;
    bind_text(st, 1, suite_sha256);
    bind_text(st, 2, model_sha256);
    if (sqlite3_step(st) == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

int cs_run_add(cs_store *s, const cs_run_row *r, int64_t *id, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "INSERT INTO runs(suite, suite_sha256, command, model, model_sha256, "
                                 "settings_json) VALUES(?1, ?2, ?3, ?4, ?5, ?6)", err))
        return -1;
    bind_text(st, 1, r->suite);
    bind_text(st, 2, r->suite_sha256);
    bind_text(st, 3, r->command);
    bind_text(st, 4, r->model);
    bind_text(st, 5, r->model_sha256);
    bind_text(st, 6, r->settings_json);
    if (step_write(s, st, "recording the run", err)) return -1;
    *id = sqlite3_last_insert_rowid(cs_store_db(s));
    return 0;
}

int cs_run_finish(cs_store *s, int64_t id, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "UPDATE runs SET finished = datetime('now') WHERE id = ?1", err)) return -1;
    sqlite3_bind_int64(st, 1, id);
    return step_write(s, st, "finishing the run", err);
}

int cs_prompt_add(cs_store *s, int64_t run, const cs_prompt_row *p, int64_t *id, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "INSERT INTO prompts(run_id, key, text, negative, expect_ref, kind, "
                                 "task_json) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                                 "ON CONFLICT(run_id, key) DO NOTHING", err))
        return -1;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, p->key);
    bind_text(st, 3, p->text);
    bind_text(st, 4, p->negative);
    bind_text(st, 5, p->expect_ref);
    bind_text(st, 6, p->kind ? p->kind : "txt2img");
    bind_text(st, 7, p->task_json);
    if (step_write(s, st, "recording a prompt", err)) return -1;
    if (cs_store_prepare(s, &st, "SELECT id FROM prompts WHERE run_id = ?1 AND key = ?2", err)) return -1;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, p->key);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return r == SQLITE_ROW ? 0 : cs_store_fail(s, err, "finding a prompt");
}

int cs_prompt_find_text(cs_store *s, int64_t run, const char *text, int64_t *id, cs_err *err) {
    sqlite3_stmt *st;
    *id = 0;
    if (cs_store_prepare(s, &st, "SELECT id FROM prompts WHERE run_id = ? AND text = ?", err)) return -1;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, text);
    if (sqlite3_step(st) == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

int cs_generation_put(cs_store *s, const cs_generation_row *g, int64_t *id, cs_err *err) {
    sqlite3_stmt *st;
    /* an old row whose image changed: its analysis no longer describes it */
    if (cs_store_prepare(s, &st, "SELECT id FROM generations WHERE run_id = ?1 AND prompt_id IS ?2 AND seed = ?3 "
                                 "AND sample = ?4 AND sha256 IS NOT ?5", err))
        return -1;
    sqlite3_bind_int64(st, 1, g->run_id);
    sqlite3_bind_int64(st, 2, g->prompt_id);
    sqlite3_bind_int64(st, 3, g->seed);
    sqlite3_bind_int(st, 4, g->sample);
    bind_text(st, 5, g->sha256);
    int64_t stale = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    static const char *const drop[] = {"DELETE FROM matches WHERE generation_id = ?1",
                                       "DELETE FROM findings WHERE generation_id = ?1"};
    for (int i = 0; stale && i < 2; i++) {
        if (cs_store_prepare(s, &st, drop[i], err)) return -1;
        sqlite3_bind_int64(st, 1, stale);
        if (step_write(s, st, "dropping a changed generation's findings", err)) return -1;
    }
    if (cs_store_prepare(s, &st, "INSERT INTO generations(run_id, prompt_id, seed, sample, "
                                 "settings_json, path, sha256, whitebox, whitebox_json) "
                                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                                 "ON CONFLICT(run_id, prompt_id, seed, sample) DO UPDATE SET "
                                 "settings_json = excluded.settings_json, path = excluded.path, "
                                 "sha256 = excluded.sha256, whitebox = excluded.whitebox, "
                                 "whitebox_json = excluded.whitebox_json, created = datetime('now') "
                                 "RETURNING id", err))
        return -1;
    sqlite3_bind_int64(st, 1, g->run_id);
    sqlite3_bind_int64(st, 2, g->prompt_id);
    sqlite3_bind_int64(st, 3, g->seed);
    sqlite3_bind_int(st, 4, g->sample);
    bind_text(st, 5, g->settings_json);
    bind_text(st, 6, g->path);
    bind_text(st, 7, g->sha256);
    if (isnan(g->whitebox)) sqlite3_bind_null(st, 8);
    else sqlite3_bind_double(st, 8, g->whitebox);
    bind_text(st, 9, g->whitebox_json);
    int r = sqlite3_step(st);
    int64_t gid = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (r == SQLITE_ROW) r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) return cs_store_fail(s, err, "recording a generation");
    if (id) *id = gid;
    return 0;
}

char *cs_generation_path(cs_store *s, int64_t run, int64_t prompt, int64_t seed, int sample) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT path FROM generations WHERE run_id = ?1 AND prompt_id = ?2 "
                                 "AND seed = ?3 AND sample = ?4", NULL))
        return NULL;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, prompt);
    sqlite3_bind_int64(st, 3, seed);
    sqlite3_bind_int(st, 4, sample);
    char *path = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        path = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return path;
}

/* One text column of the generation (run, prompt, seed, sample), malloc'd. */
static char *generation_text(cs_store *s, const char *col_sql, int64_t run, int64_t prompt, int64_t seed,
                             int sample) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, col_sql, NULL)) return NULL;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, prompt);
    sqlite3_bind_int64(st, 3, seed);
    sqlite3_bind_int(st, 4, sample);
    char *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

char *cs_generation_sha256(cs_store *s, int64_t run, int64_t prompt, int64_t seed, int sample) {
    return generation_text(s, "SELECT sha256 FROM generations WHERE run_id = ?1 AND prompt_id = ?2 "
                              "AND seed = ?3 AND sample = ?4", run, prompt, seed, sample);
}

int cs_generation_set_path(cs_store *s, int64_t run, int64_t prompt, int64_t seed, int sample, const char *path,
                           cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "UPDATE generations SET path = ?5 WHERE run_id = ?1 AND prompt_id = ?2 "
                                 "AND seed = ?3 AND sample = ?4", err))
        return -1;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, prompt);
    sqlite3_bind_int64(st, 3, seed);
    sqlite3_bind_int(st, 4, sample);
    bind_text(st, 5, path);
    return step_write(s, st, "recording a generation's new path", err);
}

char *cs_run_out_dir(cs_store *s, int64_t id) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT json_extract(settings_json, '$.out') FROM runs WHERE id = ?1 "
                                 "AND json_valid(settings_json)", NULL))
        return NULL;
    sqlite3_bind_int64(st, 1, id);
    char *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

int cs_run_set_out_dir(cs_store *s, int64_t id, const char *dir, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "UPDATE runs SET settings_json = json_set(CASE WHEN json_valid(settings_json) "
                                 "THEN settings_json ELSE '{}' END, '$.out', ?2) WHERE id = ?1", err))
        return -1;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, dir);
    return step_write(s, st, "recording the run's folder", err);
}

int cs_run_missing_files(cs_store *s, int64_t run, int64_t *n_missing, int64_t *n_total, char **example,
                         cs_err *err) {
    sqlite3_stmt *st;
    *n_missing = *n_total = 0;
    if (example) *example = NULL;
    if (cs_store_prepare(s, &st, "SELECT path FROM generations WHERE run_id = ?1 ORDER BY id", err)) return -1;
    sqlite3_bind_int64(st, 1, run);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(st, 0);
        struct stat sb;
        ++*n_total;
        if (p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) continue;
        if (++*n_missing == 1 && example) *example = strdup(p ? p : "");
    }
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : cs_store_fail(s, err, "listing the run's images");
}
