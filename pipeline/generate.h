/* generate.h — `copyscope generate`: run a prompt suite through a model and
 * record every image in the store.
 *
 * Order of work: everything is validated first (suite, model path, vocab,
 * output folder, sizes, reference images and masks, prompts the model can
 * encode); only then is the store opened and written, so bad input leaves no
 * rows and no files. A run's identity is (suite file sha256, model sha256):
 * re-running the same suite with the same model reuses its run and skips the
 * outputs whose row and file exist. Images go to
 * OUT/<suite name>-<first 8 hex of the run identity>/<prompt id>-<sample>-<seed>.png
 * (paths are stored absolute: any command works from any folder; a run that
 * exists keeps its folder unless OUT is given, and giving another OUT while
 * the old folder still holds its images is refused: move the folder, the
 * images are then found there by their hashes)
 * with an A1111-style "parameters" tEXt chunk; each image is written to a
 * temporary name and renamed, then its row is committed (one transaction per
 * image), so a killed run resumes cleanly. */
#ifndef CS_GENERATE_H
#define CS_GENERATE_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    const char *suite;   /* suite JSON path */
    const char *model;   /* overrides the suite's model (checkpoint, empirical, empirical:DB) */
    const char *config;  /* SD config JSON (overrides the suite's) */
    const char *vocab;   /* CLIP BPE vocabulary (overrides the suite's) */
    const char *out;     /* output folder; NULL: a run that exists keeps the folder it has,
                          * a new one goes under out_default */
    const char *out_default; /* NULL = "generations" */
    const char *db;      /* the store (and the index of "empirical") */
    int samples;         /* -n: samples per prompt (0 = the suite's) */
    int threads;         /* compute threads (0 = cs_threads()) */
    int progress;        /* show the progress line */
    const char *command; /* recorded in runs.command (may be NULL) */
    /* One image without a suite file (`copyscope generate -p ...`): the
     * suite as JSON text (then `suite`, if set, only names it in messages
     * and runs.suite; default "command line"), and the PNG to write. With
     * out_file the suite must hold one prompt and one sample; the image is
     * made even if the same run already has it (the row then points at the
     * new file). */
    const char *suite_json;
    const char *out_file;
    const char *precision; /* "fp32" or "bf16" (overrides the suite's; NULL = the suite's) */
    int mask_white_generates; /* masks: white = regenerate (sd, A1111, diffusers);
                               * 0 = white keeps the reference (suites) */
    /* One of part_n processes making one run (copyscope-mpi: cli/cmd_mpi.c);
     * part_n <= 1: all of it. The images not yet stored, in the suite's
     * order, are cut into part_n contiguous runs balanced by sampler steps;
     * this process makes run part_k. Part 0 records the run and prompt
     * rows first; the generation rows are written part after part at the
     * end, so ids and rows are one process's (a part killed mid-run leaves
     * its files, made again by the rerun). wait(ctx, failed) is a barrier
     * of the parts: 1 when any part failed; every part calls it as often. */
    int part_k, part_n;
    int (*wait)(void *ctx, int failed);
    void *wait_ctx;
} cs_generate_opts;

typedef struct {
    int64_t run_id;
    int generated, skipped;
    int64_t steps;        /* sampler steps run */
    double seconds;       /* wall time of the sampling phase */
    char out_dir[4096];   /* where the images are (absolute) */
    int missing;          /* images recorded but no longer there: made again */
    char missing_example[4096]; /* the first of them */
    int moved;            /* images found (same bytes) in out_dir, not where recorded */
} cs_generate_stats;

int cs_generate(const cs_generate_opts *o, cs_generate_stats *st, cs_err *err);

/* The A1111 "parameters" text for one image (malloc'd, caller frees). */
char *cs_a1111_parameters(const char *prompt, const char *negative, int steps, const char *sampler,
                          const char *schedule, float cfg, uint64_t seed, int w, int h,
                          const char *model_hash, const char *model_name, float strength, float eta,
                          const char *rng, uint64_t ensd);
/* rng: A1111's "RNG:" value ("NV", "CPU"; NULL = omitted), ensd: its "ENSD:"
 * (0 = omitted). */

#endif
