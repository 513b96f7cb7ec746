/* cmd_mpi.c — which ranks run a command, and the sharded `index add`
 * (cli/cli_mpi.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/shard.h"
#include "core/store.h"
#include "index/shard.h"

int cli_mpi_gate(int argc, char **argv) {
    if (cs_mpi_size() == 1 || cs_mpi_rank() == 0) return 1;
    return argc >= 3 && !strcmp(argv[1], "index") && !strcmp(argv[2], "add");
}

enum { S_ADDED, S_DUPS, S_ERRORS, S_SKIPPED, S_NOTES, S_N };

static double cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u)) return 0;
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

/* Each rank's CPU-seconds on rank 0's stdout: the balance of the cut, and
 * the speed-up the ranks allow on free cores (all / the busiest). */
static void print_rank_cpu(int size) {
    double mine = cpu_seconds(), *all = NULL;
    int64_t *lens = cs_mpi_rank() == 0 ? calloc((size_t)size, sizeof *lens) : NULL;
    if (cs_mpi_rank() == 0 && !lens) size = 0;
    if (cs_mpi_gatherv(&mine, sizeof mine, (void **)&all, lens) || cs_mpi_rank() != 0 || !all) {
        free(lens);
        return;
    }
    double sum = 0, mx = 0;
    printf("cpu per rank (s):");
    for (int r = 0; r < size; r++) {
        printf(" %.2f", all[r]);
        sum += all[r];
        if (all[r] > mx) mx = all[r];
    }
    printf("  (all %.2f, busiest %.2f: %.2fx on free cores)\n", sum, mx, mx > 0 ? sum / mx : 0.0);
    free(all);
    free(lens);
}

/* Long: prepare (rank 0), this rank's shards, the catalogue (rank 0), the summary, in order. */
int cli_index_add_sharded(const char *db, char **paths, int n, const cs_ingest_opts *o0, int shards, int timings) {
    int size = cs_mpi_size(), rank = cs_mpi_rank();
    if (size > 1 && shards > 0 && shards != size)
        return cli_usage_error("index add: --shards %d, but %d ranks (each rank builds one shard)", shards, size);
    int nsh = size > 1 ? size : shards;
    cs_err err = {0};
    double t0 = cs_now_s();
    int bad = rank == 0 ? cs_shard_prepare(db, nsh, &err) : 0;
    if (cs_mpi_any(bad)) return bad ? cli_fail(&err) : CLI_FAIL;
    int64_t sum[S_N] = {0};
    int k0 = size > 1 ? rank : 0, k1 = size > 1 ? rank + 1 : nsh;
    for (int k = k0; k < k1 && !bad; k++) {
        char *sp = cs_shard_path(db, k, nsh);
        cs_store *s = NULL;
        cs_ingest_opts o = *o0;
        o.shard_k = k;
        o.shard_n = nsh;
        o.progress = o0->progress && rank == 0; /* one progress line, not N interleaved */
        cs_ingest_stats st;
        if (!sp) bad = cs_fail(&err, CS_ENOMEM, "out of memory");
        else if (cs_store_open(&s, sp, &err)) bad = -1;
        else bad = cs_ingest_add(s, (const char *const *)paths, n, &o, &st, &err);
        cs_store_close(s);
        free(sp);
        if (s) {
            sum[S_ADDED] += st.added;
            sum[S_DUPS] += st.duplicates;
            sum[S_ERRORS] += st.errors;
            sum[S_SKIPPED] += st.skipped;
            sum[S_NOTES] += st.notes;
        }
    }
    if (bad) fprintf(stderr, "copyscope: rank %d of %d: %s\n", rank, size, err.msg);
    if (cs_mpi_any(bad)) return CLI_FAIL; /* the shards keep what they committed: a rerun resumes */
    cs_mpi_sum_i64(sum, S_N);
    cs_shard_totals tot = {0};
    if (rank == 0) bad = cs_shard_finish(db, nsh, &tot, &err);
    if (cs_mpi_any(bad)) return bad ? cli_fail(&err) : CLI_FAIL;
    if (timings && size > 1) print_rank_cpu(size); /* collective: every rank */
    if (rank) return CLI_OK;
    double t = cs_now_s() - t0;
    int64_t done = sum[S_ADDED] + sum[S_DUPS] + sum[S_ERRORS];
    /* "skipped" counts every shard's skips of its own units only */
    printf("index add: %lld added, %lld duplicates, %lld errors, %lld already indexed", (long long)sum[S_ADDED],
           (long long)sum[S_DUPS], (long long)sum[S_ERRORS], (long long)sum[S_SKIPPED]);
    if (sum[S_NOTES]) printf(", %lld caption notes", (long long)sum[S_NOTES]);
    printf(" (%.2f s, %.1f img/s)\n", t, t > 0 ? done / t : 0.0);
    printf("index add: %d shards (%s.shards/); catalogue %lld refs: %lld ok, %lld duplicate, %lld error"
           " (%lld duplicates across shards)\n",
           nsh, db, (long long)tot.refs, (long long)tot.ok, (long long)tot.duplicate, (long long)tot.error,
           (long long)tot.cross_dups);
    if (tot.error > 0 && tot.ok + tot.duplicate == 0) {
        fprintf(stderr, "copyscope: index add: nothing could be read (%lld errors; see copyscope index ls --errors)\n",
                (long long)tot.error);
        return CLI_FAIL;
    }
    return CLI_OK;
}
