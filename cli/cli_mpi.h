/* cli_mpi.h — the CLI under mpirun (cli/cmd_mpi.c, docs/SCALE.md). */
#ifndef CS_CLI_MPI_H
#define CS_CLI_MPI_H

#include <stdint.h>

#include "analyze/analyze.h"
#include "core/store.h"
#include "index/hamming.h"
#include "index/ingest.h"

/* 1 when this rank runs the command: every rank for `index add` (each
 * writes its shard), `index query` (each searches its shard), `analyze`
 * (each matches a share of every batch) and `generate` (each makes its
 * part of the suite); rank 0 alone for the others (they read the union of
 * the shards: core/shard.h); ranks that do not run it exit 0 at once. */
int cli_mpi_gate(int argc, char **argv);

/* `index add` into a sharded store: under mpirun rank K of N builds shard
 * K; without MPI, shards > 0 builds all of them one after another. Rank 0
 * writes the manifest's catalogue when every shard is done and prints. */
int cli_index_add_sharded(const char *db, char **paths, int n, const cs_ingest_opts *o, int shards, int timings);

/* After cli_index_add_sharded's shards (every rank; collective): rank 0
 * makes <db>.lfrec current and gets the vote index's quantizer (trained
 * alone, as one process trains it, where <db>.lfvote is to be built from
 * scratch; else <db>.lfquant's, or the index's as one process opens it)
 * and sends it with the records' counts and shards; each rank writes the
 * part files of shards k0..k1-1 (<db>.shards/K-of-N.db.lfpart: their
 * records' descriptors indexed with that quantizer), which the analysis's
 * ranks load instead of encoding; rank 0 then puts <db>.lfvote together
 * from them (one process's bytes) and writes <db>.lfquant
 * (cli/cmd_mpi_lf_add.c). *encoded: the descriptors this rank encoded (0
 * when current); note[cap]: rank 0's line on the vote index ("" when
 * current). */
int cli_mpi_lf_parts(const char *db, int nsh, int k0, int k1, int64_t *encoded, char *note, size_t cap,
                     cs_err *err);

/* `index add --embedder` under mpirun, after cli_index_add_sharded (every
 * rank): rank K embeds the references of shard K into a part column beside
 * it, rank 0 merges the parts into the store's column (index/embed.h:
 * the bytes of one process, float32 or q8). A store not of one shard a
 * rank is embedded by rank 0 alone. Collective. */
int cli_mpi_embed(const char *db, const char *spec, int q8, int threads, int timings);

/* `index query` under mpirun on a store of as many shards as ranks: the
 * hashes of this rank's shard only, under global ids (rows the catalogue
 * calls duplicate dropped); *total = all ranks' rows. 1 = loaded (fan-out),
 * 0 = not this case (load the union), -1 = failure (every rank). Collective. */
int cli_mpi_shard_hash_db(cs_store *manifest, cs_hash_db *db, int64_t *total, cs_err *err);
/* The rows of db flagged in used[] (each rank's per-shard top-k
 * candidates) gathered to rank 0, which gets them as its db, in id order;
 * the other ranks' db is freed. Searching that db gives exactly the top-k
 * of the whole index: a global top-k row is in its shard's top-k, and ties
 * still break by id. Collective. */
int cli_mpi_gather_hash_rows(cs_hash_db *db, const uint8_t *used, cs_err *err);

/* A barrier of the ranks: 1 when any passed failed (cs_generate_opts.wait). */
int cli_mpi_wait(void *ctx, int failed);

/* `analyze` under mpirun (cli/cmd_mpi_analyze.c): rank 0 calls begin with
 * its open store s (sets o->match: each batch's candidates verified by the
 * ranks that own their references; NULL and nothing set in one process),
 * runs the analysis, then end (the other ranks stop; frees). Ranks > 0 call
 * worker instead, which verifies their shares until then. */
typedef struct cli_mpi_an cli_mpi_an;
cli_mpi_an *cli_mpi_analyze_begin(cs_analyze_opts *o, cs_store *s);
void cli_mpi_analyze_end(cli_mpi_an *c, int quiet); /* prints the per-rank counts */
int cli_mpi_analyze_worker(const char *db, const cs_analyze_opts *o);

#endif
