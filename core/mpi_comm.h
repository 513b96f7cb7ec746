/* mpi_comm.h — the few MPI calls copyscope makes, behind one small API.
 *
 * Built with -DCS_MPI (make mpi: build/copyscope-mpi) they are Open MPI or
 * MPICH calls on MPI_COMM_WORLD; in the default build they are the answers
 * of a world of one process (rank 0 of 1), so no other file needs #ifdef and
 * the default binary has no MPI at all. Only the CLI calls them: the library
 * stays free of ranks (a rank's work is an ordinary call, e.g. one shard). */
#ifndef CS_MPI_COMM_H
#define CS_MPI_COMM_H

#include <stdint.h>

/* Once, first thing in main; 0 on success. Safe without mpirun (one rank). */
int cs_mpi_init(int *argc, char ***argv);
void cs_mpi_finalize(void);
int cs_mpi_rank(void);
int cs_mpi_size(void);
/* 1 when this binary was built with MPI (copyscope-mpi). */
int cs_mpi_enabled(void);
void cs_mpi_barrier(void);
/* Every rank passes its flag; every rank gets 1 if any rank passed non-zero
 * (a failure anywhere fails the command everywhere, with one exit code). */
int cs_mpi_any(int flag);
/* Element-wise sum of v[0..n) over the ranks, in place on every rank. */
void cs_mpi_sum_i64(int64_t *v, int n);
void cs_mpi_sum_f64(double *v, int n);
/* Rank 0's buffer of len bytes to every rank (len the same everywhere). */
void cs_mpi_bcast(void *buf, int64_t len);
/* Variable-length gather to rank 0: every rank sends len bytes; on rank 0
 * *out receives the concatenation in rank order (malloc'd, caller frees) and
 * lens[r] each rank's length (lens: size entries, rank 0 only). 0/-1 (memory). */
int cs_mpi_gatherv(const void *buf, int64_t len, void **out, int64_t *lens);
/* Variable-length scatter from rank 0: rank 0's buf holds lens[r] bytes for
 * each rank r, in rank order (buf and lens read on rank 0 only); every rank
 * gets its part in *out (malloc'd, caller frees) and its length in *len.
 * 0, or -1 on every rank when any could not allocate. */
int cs_mpi_scatterv(const void *buf, const int64_t *lens, void **out, int64_t *len);

#endif
