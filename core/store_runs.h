/* store_runs.h — the one writer of the runs, prompts and generations tables.
 *
 * A run is a suite x a model (pipeline/generate.c) or a set of image folders
 * recorded by `copyscope analyze --images` (analyze/); both write their rows
 * through these functions. Each call is one statement: the caller groups
 * them in cs_store_begin/commit as it needs. Text fields may be NULL (stored
 * as NULL). */
#ifndef CS_STORE_RUNS_H
#define CS_STORE_RUNS_H

#include <stdint.h>

#include "core/store.h"

typedef struct {
    const char *suite, *suite_sha256; /* the suite file and its hash ("images" for folders) */
    const char *command;              /* the command line that made it */
    const char *model, *model_sha256; /* the model spec and its hash ("external" for folders) */
    const char *settings_json;
} cs_run_row;

/* The first run of this suite and model: *id, or 0 when there is none. */
int cs_run_find(cs_store *s, const char *suite_sha256, const char *model_sha256, int64_t *id, cs_err *err);
int cs_run_add(cs_store *s, const cs_run_row *r, int64_t *id, cs_err *err);
/* Stamps the run finished (now). */
int cs_run_finish(cs_store *s, int64_t id, cs_err *err);

typedef struct {
    const char *key, *text, *negative, *expect_ref;
    const char *kind;      /* txt2img (NULL) | img2img | completion */
    const char *task_json; /* the completion/img2img task, or NULL */
} cs_prompt_row;

/* Adds the prompt unless the run has one with its key; *id is the run's
 * prompt with that key either way. */
int cs_prompt_add(cs_store *s, int64_t run, const cs_prompt_row *p, int64_t *id, cs_err *err);
/* The run's prompt with this text: *id, or 0 when there is none. */
int cs_prompt_find_text(cs_store *s, int64_t run, const char *text, int64_t *id, cs_err *err);

typedef struct {
    int64_t run_id, prompt_id, seed;
    int sample;
    const char *settings_json, *path, *sha256;
    double whitebox;           /* NAN: none */
    const char *whitebox_json;
} cs_generation_row;

/* Adds the generation, or updates the row with the same run, prompt, seed
 * and sample in place (its id, which findings and matches reference, is
 * kept); when the image's sha256 changed, that row's matches and findings
 * are deleted, so that the next analysis looks at it again. *id (may be
 * NULL) is the row's id. Call it inside a transaction. */
int cs_generation_put(cs_store *s, const cs_generation_row *g, int64_t *id, cs_err *err);
/* The path stored for (run, prompt, seed, sample): malloc'd, or NULL when
 * there is no such row (or on any error). */
char *cs_generation_path(cs_store *s, int64_t run, int64_t prompt, int64_t seed, int sample);

/* Sets the stored path of generation (run, prompt, seed, sample): an image
 * found moved (same bytes) to another folder. */
int cs_generation_set_path(cs_store *s, int64_t run, int64_t prompt, int64_t seed, int sample, const char *path,
                           cs_err *err);
/* The sha256 stored for (run, prompt, seed, sample): malloc'd, or NULL. */
char *cs_generation_sha256(cs_store *s, int64_t run, int64_t prompt, int64_t seed, int sample);

/* The run's image folder (settings_json's "out"): malloc'd, or NULL when
 * it has none. */
char *cs_run_out_dir(cs_store *s, int64_t id);
/* Records dir as the run's image folder. */
int cs_run_set_out_dir(cs_store *s, int64_t id, const char *dir, cs_err *err);

/* Counts the run's generations whose recorded file is missing (not a
 * readable regular file) into *n_missing (of *n_total); *example (malloc'd,
 * may be NULL) is the first such path. */
int cs_run_missing_files(cs_store *s, int64_t run, int64_t *n_missing, int64_t *n_total, char **example,
                         cs_err *err);

#endif
