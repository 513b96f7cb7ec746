/* mpi_comm.c — see mpi_comm.h. The one file with MPI in it. */
#include "core/mpi_comm.h"

#include <stdlib.h>
#include <string.h>

#ifdef CS_MPI
#include <mpi.h>

static int g_rank = 0, g_size = 1, g_init = 0;

int cs_mpi_init(int *argc, char ***argv) {
    int provided = 0;
    /* threads: the worker pool never calls MPI; only the main thread does */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return -1;
    g_init = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
}

void cs_mpi_finalize(void) {
    if (g_init) MPI_Finalize();
    g_init = 0;
}

int cs_mpi_rank(void) { return g_rank; }
int cs_mpi_size(void) { return g_size; }
int cs_mpi_enabled(void) { return 1; }
void cs_mpi_barrier(void) {
    if (g_init) MPI_Barrier(MPI_COMM_WORLD);
}

int cs_mpi_any(int flag) {
    int in = flag != 0, out = in;
    if (g_init) MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

void cs_mpi_sum_i64(int64_t *v, int n) {
    if (g_init && n > 0) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
}

void cs_mpi_sum_f64(double *v, int n) {
    if (g_init && n > 0) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

/* Large buffers go in pieces: MPI counts are int. */
void cs_mpi_bcast(void *buf, int64_t len) {
    if (!g_init) return;
    for (int64_t o = 0; o < len; o += 1 << 30) {
        int64_t k = len - o < (1 << 30) ? len - o : (1 << 30);
        MPI_Bcast((char *)buf + o, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

int cs_mpi_gatherv(const void *buf, int64_t len, void **out, int64_t *lens) {
    if (g_rank == 0) *out = NULL;
    int64_t my = len;
    int64_t *all = g_rank == 0 ? lens : NULL, tmp = 0;
    MPI_Gather(&my, 1, MPI_INT64_T, all ? all : &tmp, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    int *cnt = NULL, *disp = NULL, bad = 0;
    char *dst = NULL;
    if (g_rank == 0) {
        int64_t total = 0;
        for (int r = 0; r < g_size; r++) total += lens[r];
        cnt = malloc((size_t)g_size * sizeof *cnt);
        disp = malloc((size_t)g_size * sizeof *disp);
        dst = malloc(total > 0 ? (size_t)total : 1);
        bad = !cnt || !disp || !dst || total > 0x7fffffff;
        for (int r = 0, o = 0; !bad && r < g_size; o += (int)lens[r], r++) {
            cnt[r] = (int)lens[r];
            disp[r] = o;
        }
    }
    MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!bad) MPI_Gatherv(buf, (int)len, MPI_BYTE, dst, cnt, disp, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(cnt);
    free(disp);
    if (bad) {
        free(dst);
        return -1;
    }
    if (g_rank == 0) *out = dst;
    return 0;
}

int cs_mpi_scatterv(const void *buf, const int64_t *lens, void **out, int64_t *len) {
    *out = NULL;
    *len = 0;
    int *cnt = NULL, *disp = NULL, bad = 0;
    if (g_rank == 0) {
        cnt = malloc((size_t)g_size * sizeof *cnt);
        disp = malloc((size_t)g_size * sizeof *disp);
        int64_t total = 0;
        for (int r = 0; r < g_size; r++) total += lens[r];
        bad = !cnt || !disp || total > 0x7fffffff;
        for (int r = 0, o = 0; !bad && r < g_size; o += (int)lens[r], r++) {
            cnt[r] = (int)lens[r];
            disp[r] = o;
        }
    }
    MPI_Scatter(g_rank == 0 ? lens : NULL, 1, MPI_INT64_T, len, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    char *dst = malloc(*len > 0 ? (size_t)*len : 1);
    int mine = bad || !dst, any = 0;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (!any) MPI_Scatterv(buf, cnt, disp, MPI_BYTE, dst, (int)*len, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(cnt);
    free(disp);
    if (any) {
        free(dst);
        *len = 0;
        return -1;
    }
    *out = dst;
    return 0;
}

#else /* one process: the world is rank 0 of 1 */

int cs_mpi_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}
void cs_mpi_finalize(void) {}
int cs_mpi_rank(void) { return 0; }
int cs_mpi_size(void) { return 1; }
int cs_mpi_enabled(void) { return 0; }
void cs_mpi_barrier(void) {}
int cs_mpi_any(int flag) { return flag != 0; }
void cs_mpi_sum_i64(int64_t *v, int n) {
    (void)v;
    (void)n;
}
void cs_mpi_sum_f64(double *v, int n) {
    (void)v;
    (void)n;
}
void cs_mpi_bcast(void *buf, int64_t len) {
    (void)buf;
    (void)len;
}
int cs_mpi_gatherv(const void *buf, int64_t len, void **out, int64_t *lens) {
    *out = malloc(len > 0 ? (size_t)len : 1);
    if (!*out) return -1;
    if (len > 0) memcpy(*out, buf, (size_t)len);
    lens[0] = len;
    return 0;
}
int cs_mpi_scatterv(const void *buf, const int64_t *lens, void **out, int64_t *len) {
    *len = lens[0];
    *out = malloc(*len > 0 ? (size_t)*len : 1);
    if (!*out) return -1;
    if (*len > 0) memcpy(*out, buf, (size_t)*len);
    return 0;
}

#endif
