/* cli_mpi_text.h — `run`, `text index` and `text audit` under mpirun
 * (copyscope-mpi; cli/cmd_mpi_text.c, cli/cmd_mpi_text_index.c). In the
 * default build every function here is the one-process case. */
#ifndef CS_CLI_MPI_TEXT_H
#define CS_CLI_MPI_TEXT_H

#include "analyze/text_audit.h"
#include "analyze/text_corpus.h"

/* 1 when every rank runs the command: `run`, `text index`, `text audit`
 * (main.c asks this beside cli_mpi_gate). */
int cli_mpi_gate_text_run(int argc, char **argv);

/* `text audit` under mpirun, rank 0: the audit (cs_text_audit_split) with
 * every round of lines scored by all ranks, each a contiguous share by
 * bytes, every rank searching the whole corpus; the results written here
 * in line order. Stops the other ranks when done (also on failure). */
int cli_mpi_text_audit(cs_store *s, const cs_text_corpus *c, const char *path, const cs_text_audit_opts *o,
                       FILE *out, cs_text_audit_stats *st, int quiet, cs_err *err);
/* Stops the other ranks without auditing (rank 0 failed before). */
void cli_mpi_text_audit_stop(void);
/* Ranks > 0: open the store read-only and the corpus, score shares until
 * rank 0 stops them. */
int cli_mpi_text_audit_worker(const char *db, const char *path, const cs_text_audit_opts *o);

/* `text index` under mpirun (collective): the input files (folders walked
 * as cs_text_index walks them) cut into one contiguous run per rank,
 * balanced by bytes; an uncompressed JSONL file a cut falls inside is split
 * at line starts (rank K reads the lines starting in its share; .gz and
 * other files go whole to the rank they start in); rank K indexes its run into DB.textparts/K-of-N.db
 * (its own shards, built as cs_text_index builds them); rank 0 then moves
 * every part's shards and documents into DB in rank order, so the
 * documents' ids and order are one process's and DB opens as one corpus.
 * Committed shards survive a killed rank: the rerun indexes the rest. *st
 * (rank 0): every rank's counts summed. */
int cli_mpi_text_index(const char *db, char **paths, int n, const cs_text_index_opts *o, cs_text_index_stats *st,
                       cs_err *err);

/* With CS_MPI_TIMINGS set, every rank's CPU-seconds on rank 0's stderr
 * (collective: every rank calls it). */
void cli_mpi_print_cpu(const char *what);

#endif
