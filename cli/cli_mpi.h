/* cli_mpi.h — the CLI under mpirun (cli/cmd_mpi.c, docs/SCALE.md). */
#ifndef CS_CLI_MPI_H
#define CS_CLI_MPI_H

#include "index/ingest.h"

/* 1 when this rank runs the command: every rank for `index add` (each
 * writes its shard), rank 0 alone for the others (they read the union of
 * the shards: core/shard.h); ranks that do not run it exit 0 at once. */
int cli_mpi_gate(int argc, char **argv);

/* `index add` into a sharded store: under mpirun rank K of N builds shard
 * K; without MPI, shards > 0 builds all of them one after another. Rank 0
 * writes the manifest's catalogue when every shard is done and prints. */
int cli_index_add_sharded(const char *db, char **paths, int n, const cs_ingest_opts *o, int shards, int timings);

#endif
