/* store_runs.c — see store_runs.h. */
#include "core/store_runs.h"

#include <math.h>
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
    if (cs_store_prepare(s, &st, "INSERT OR REPLACE INTO generations(run_id, prompt_id, seed, sample, "
                                 "settings_json, path, sha256, whitebox, whitebox_json) "
                                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", err))
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
    if (step_write(s, st, "recording a generation", err)) return -1;
    if (id) *id = sqlite3_last_insert_rowid(cs_store_db(s));
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
