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
#include "index/embed.h"
#include "index/hamming.h"
#include "index/shard.h"

int cli_mpi_gate(int argc, char **argv) {
    if (cs_mpi_size() == 1 || cs_mpi_rank() == 0) return 1;
    if (argc >= 2 && (!strcmp(argv[1], "analyze") || !strcmp(argv[1], "generate"))) return 1;
    return argc >= 3 && !strcmp(argv[1], "index") && (!strcmp(argv[2], "add") || !strcmp(argv[2], "query"));
}

int cli_mpi_wait(void *ctx, int failed) {
    (void)ctx;
    return cs_mpi_any(failed);
}

enum { S_ADDED, S_DUPS, S_ERRORS, S_SKIPPED, S_NOTES, S_N };

static double cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u)) return 0;
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

/* Each rank's value (CPU-seconds) on rank 0's stdout: the balance of the cut, and
 * the speed-up the ranks allow on free cores (all / the busiest). */
static void print_rank_values(int size, const char *label, double mine) {
    double *all = NULL;
    int64_t *lens = cs_mpi_rank() == 0 ? calloc((size_t)size, sizeof *lens) : NULL;
    if (cs_mpi_rank() == 0 && !lens) size = 0;
    if (cs_mpi_gatherv(&mine, sizeof mine, (void **)&all, lens) || cs_mpi_rank() != 0 || !all) {
        free(lens);
        return;
    }
    double sum = 0, mx = 0;
    printf("%s", label);
    for (int r = 0; r < size; r++) {
        printf(" %.2f", all[r]);
        sum += all[r];
        if (all[r] > mx) mx = all[r];
    }
    printf("  (all %.2f, busiest %.2f: %.2fx on free cores)\n", sum, mx, mx > 0 ? sum / mx : 0.0);
    free(all);
    free(lens);
}

static void print_rank_cpu(int size) { print_rank_values(size, "cpu per rank (s):", cpu_seconds()); }

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
    if (rank == 0 && !bad && o0->no_thumbs) { /* the manifest's readers re-read them too */
        cs_store *m;
        bad = cs_store_open(&m, db, &err) || cs_store_meta_set(m, "thumbs", "source", &err);
        cs_store_close(bad ? NULL : m);
    }
    if (cs_mpi_any(bad)) return bad ? cli_fail(&err) : CLI_FAIL;
    /* the vote index (<db>.lfvote, one process's bytes) and each shard's
     * part of it, so that the first analysis does no index work */
    int64_t lf_enc = 0;
    char lf_note[640] = "";
    double cpu_lf = 0;
    if (timings && size > 1 && o0->local_features) { /* the vote index's share apart (collective) */
        print_rank_values(size, "cpu per rank, shards (s):", cpu_seconds());
        cpu_lf = cpu_seconds();
    }
    if (o0->local_features) {
        bad = cli_mpi_lf_parts(db, nsh, k0, k1, &lf_enc, lf_note, sizeof lf_note, &err);
        if (bad) fprintf(stderr, "copyscope: rank %d of %d: %s\n", rank, size, err.msg);
        if (cs_mpi_any(bad)) return CLI_FAIL;
        cs_mpi_sum_i64(&lf_enc, 1);
    }
    if (timings && size > 1 && o0->local_features)
        print_rank_values(size, "cpu per rank, vote index (s):", cpu_seconds() - cpu_lf);
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
    if (o0->local_features)
        printf("index add: local-feature vote index: %lld descriptors encoded into %d shard parts\n",
               (long long)lf_enc, nsh);
    if (o0->local_features && lf_note[0]) printf("index add: %s\n", lf_note);
    if (tot.error > 0 && tot.ok + tot.duplicate == 0) {
        fprintf(stderr, "copyscope: index add: nothing could be read (%lld errors; see copyscope index ls --errors)\n",
                (long long)tot.error);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ---- index add --embedder under mpirun: every rank embeds its shard's rows ---- */

/* "<db>.shards/<k+1>-of-<n>.db.vec-<column>.part": rank k's rows, until merged. */
static char *part_path(const char *db, int k, int n, const char *spec) {
    char *sp = cs_shard_path(db, k, n);
    size_t l = sp ? strlen(sp) + 32 : 0;
    char *p = sp ? malloc(l) : NULL;
    if (p) snprintf(p, l, "%s.vec-%s.part", sp, strncmp(spec, "tiny", 4) ? "sscd" : "tiny");
    free(sp);
    return p;
}

int cli_mpi_embed(const char *db, const char *spec, int q8, int threads, int timings) {
    int size = cs_mpi_size(), rank = cs_mpi_rank(), n = 0, bad = 0;
    cs_err err = {0};
    cs_store *s = NULL;
    if (!cs_store_open_readonly(&s, db, &err)) n = cs_store_shards(s);
    cs_store_close(s);
    s = NULL;
    if (n != size) { /* not one shard a rank (or no store): rank 0 embeds the whole store */
        if (rank) return CLI_OK;
        cs_embed_stats es;
        bad = cs_store_open(&s, db, &err) || (q8 && cs_store_meta_set(s, "vec_dtype", "q8", &err)) ||
              cs_embed_index_add_ex(s, spec, threads, 0, &es, &err);
        cs_store_close(s);
        if (bad) return cli_fail(&err);
        printf("index add: embedder %s: %lld computed, %lld already present, %lld skipped\n", spec,
               (long long)es.computed, (long long)es.present, (long long)es.skipped);
        if (es.skipped) fprintf(stderr, "copyscope: skipped %s\n", es.skip_example);
        return CLI_OK;
    }
    double cpu0 = cpu_seconds(), cpu_prep = 0, cpu_part = 0, cpu_merge = 0;
    if (rank == 0) { /* the model, the weights check and the column: as one process makes them */
        bad = cs_store_open(&s, db, &err) || (q8 && cs_store_meta_set(s, "vec_dtype", "q8", &err)) ||
              cs_embed_part_prepare(s, spec, &err);
        cs_store_close(s);
        s = NULL;
        cpu_prep = cpu_seconds() - cpu0;
    }
    if (cs_mpi_any(bad)) return bad ? cli_fail(&err) : CLI_FAIL;
    long long *off = calloc((size_t)size, sizeof *off);
    char *part = NULL;
    cs_embed_stats es = {0};
    if (!off) bad = cs_fail(&err, CS_ENOMEM, "out of memory");
    else if (cs_store_open_readonly(&s, db, &err)) bad = -1;
    else if (cs_store_shard_offsets(s, off, n)) bad = cs_fail(&err, CS_EFORMAT, "%s: no meta 'shard_offsets'", db);
    else if (!(part = part_path(db, rank, n, spec))) bad = cs_fail(&err, CS_ENOMEM, "out of memory");
    else {
        cpu0 = cpu_seconds(); /* the rank's own work: the process's CPU also counts MPI's busy waits */
        bad = cs_embed_part_add(s, spec, threads, off[rank], rank + 1 < n ? off[rank + 1] : INT64_MAX, part, &es,
                                &err);
        cpu_part = cpu_seconds() - cpu0;
    }
    cs_store_close(s);
    s = NULL;
    free(off);
    free(part);
    if (bad) fprintf(stderr, "copyscope: rank %d of %d: %s\n", rank, size, err.msg);
    if (es.skipped) fprintf(stderr, "copyscope: rank %d of %d: skipped %s\n", rank, size, es.skip_example);
    if (cs_mpi_any(bad)) return CLI_FAIL; /* the parts keep their rows: a rerun resumes */
    int64_t sum[3] = {es.computed, es.present, es.skipped}, merged = 0;
    cs_mpi_sum_i64(sum, 3);
    cpu0 = cpu_seconds();
    if (rank == 0) { /* the parts' rows into the store's column, in one process's order */
        char **paths = calloc((size_t)n, sizeof *paths);
        bad = !paths;
        for (int k = 0; !bad && k < n; k++) bad = !(paths[k] = part_path(db, k, n, spec));
        if (bad) cs_fail(&err, CS_ENOMEM, "out of memory");
        else bad = cs_store_open(&s, db, &err) || cs_embed_part_merge(s, spec, (const char *const *)paths, n, &merged, &err);
        cs_store_close(s);
        for (int k = 0; paths && k < n; k++) free(paths[k]);
        free(paths);
        cpu_merge = cpu_seconds() - cpu0;
    }
    if (cs_mpi_any(bad)) return bad ? cli_fail(&err) : CLI_FAIL;
    if (timings) { /* collective: every rank */
        print_rank_cpu(size);
        print_rank_values(size, "embed: part cpu per rank (s):", cpu_part);
        if (rank == 0) printf("embed: rank 0 alone: prepare %.2f s cpu, merge %.2f s cpu\n", cpu_prep, cpu_merge);
    }
    if (rank) return CLI_OK;
    printf("index add: embedder %s: %lld computed, %lld already present, %lld skipped (%d ranks; %lld rows merged)\n",
           spec, (long long)sum[0], (long long)sum[1], (long long)sum[2], size, (long long)merged);
    return CLI_OK;
}

/* ---- index query under mpirun: every rank searches its own shard ---- */

/* Keeps the rows of db whose global id (local + off) is 'ok' in the
 * catalogue, globalising the ids (db rows are in id order). */
static int globalise(cs_store *manifest, cs_hash_db *db, int64_t off, int64_t hi, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(manifest, &st,
                         "SELECT id FROM main.refs WHERE id > ?1 AND id <= ?2 AND status <> 'ok' ORDER BY id", err))
        return -1;
    sqlite3_bind_int64(st, 1, off);
    sqlite3_bind_int64(st, 2, hi);
    int r = sqlite3_step(st);
    int64_t skip = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MAX, w = 0;
    for (int64_t i = 0; i < db->n; i++) {
        int64_t id = db->ref_ids[i] + off;
        while (skip < id && r == SQLITE_ROW) {
            r = sqlite3_step(st);
            skip = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MAX;
        }
        if (id == skip) continue; /* a duplicate of another shard's reference */
        db->ref_ids[w] = id;
        memcpy(db->pdq + 4 * w, db->pdq + 4 * i, 4 * sizeof *db->pdq);
        db->pdq_quality[w] = db->pdq_quality[i];
        db->phash[w] = db->phash[i];
        db->dhash[w] = db->dhash[i];
        db->ahash[w] = db->ahash[i];
        w++;
    }
    sqlite3_finalize(st);
    if (r != SQLITE_ROW && r != SQLITE_DONE) return cs_store_fail(manifest, err, "reading the catalogue");
    db->n = w;
    return 0;
}

int cli_mpi_shard_hash_db(cs_store *manifest, cs_hash_db *db, int64_t *total, cs_err *err) {
    int size = cs_mpi_size(), rank = cs_mpi_rank(), n = cs_store_shards(manifest);
    memset(db, 0, sizeof *db);
    *total = 0;
    if (size == 1 || n != size) return 0; /* the same answer on every rank: one manifest */
    char *offs = NULL, *sp = cs_shard_path(cs_store_path(manifest), rank, n);
    int rc = sp ? cs_store_meta_get(manifest, "shard_offsets", &offs, err) : cs_fail(err, CS_ENOMEM, "out of memory");
    int64_t off = 0, hi = INT64_MAX;
    const char *p = offs;
    for (int k = 0; !rc && p && k <= rank + 1 && k < n; k++) {
        char *end;
        int64_t v = strtoll(p, &end, 10);
        if (k == rank) off = v;
        if (k == rank + 1) hi = v;
        p = end;
    }
    cs_store *sh = NULL;
    if (!rc) rc = cs_store_open_readonly(&sh, sp, err);
    if (!rc) rc = cs_hash_db_load(sh, db, err);
    if (!rc) rc = globalise(manifest, db, off, hi, err);
    cs_store_close(sh);
    free(sp);
    free(offs);
    if (rc) cs_hash_db_free(db);
    int any = cs_mpi_any(rc);
    if (any && !rc) cs_fail(err, CS_EDB, "index query: another rank failed");
    if (any) return -1;
    *total = db->n;
    cs_mpi_sum_i64(total, 1);
    return 1;
}

enum { ROW_I64 = 9 }; /* id, pdq[4], quality, phash, dhash, ahash */

int cli_mpi_gather_hash_rows(cs_hash_db *db, const uint8_t *used, cs_err *err) {
    int64_t m = 0;
    for (int64_t i = 0; i < db->n; i++) m += used[i] != 0;
    int64_t *pack = malloc((size_t)(m > 0 ? m : 1) * ROW_I64 * sizeof *pack), w = 0;
    for (int64_t i = 0; pack && i < db->n; i++) {
        if (!used[i]) continue;
        int64_t *r = pack + ROW_I64 * w++;
        r[0] = db->ref_ids[i];
        memcpy(r + 1, db->pdq + 4 * i, 4 * sizeof *r);
        r[5] = db->pdq_quality[i];
        r[6] = (int64_t)db->phash[i];
        r[7] = (int64_t)db->dhash[i];
        r[8] = (int64_t)db->ahash[i];
    }
    int size = cs_mpi_size(), bad = !pack;
    if (cs_mpi_any(bad)) {
        free(pack);
        return cs_fail(err, CS_ENOMEM, "index query: out of memory");
    }
    int64_t *lens = cs_mpi_rank() == 0 ? calloc((size_t)size, sizeof *lens) : NULL;
    void *all = NULL;
    bad = cs_mpi_rank() == 0 && !lens;
    /* a rank without memory for lens still takes part (its gather fails cleanly) */
    int64_t dummy[1];
    int grc = cs_mpi_gatherv(pack, m * ROW_I64 * (int64_t)sizeof *pack, &all, lens ? lens : dummy);
    free(pack);
    cs_hash_db_free(db);
    if (cs_mpi_rank() != 0 || grc || bad) {
        free(lens);
        free(all);
        return grc || bad ? cs_fail(err, CS_ENOMEM, "index query: out of memory") : 0;
    }
    int64_t total = 0;
    for (int r = 0; r < size; r++) total += lens[r];
    free(lens);
    int64_t n = total / (ROW_I64 * (int64_t)sizeof(int64_t)), un = n > 0 ? n : 1;
    const int64_t *rows = all;
    /* shards are contiguous id ranges gathered in rank order: rows arrive in id order */
    db->ref_ids = malloc((size_t)un * 8);
    db->pdq = malloc((size_t)un * 32);
    db->pdq_quality = malloc((size_t)un * sizeof(int));
    db->phash = malloc((size_t)un * 8);
    db->dhash = malloc((size_t)un * 8);
    db->ahash = malloc((size_t)un * 8);
    if (!db->ref_ids || !db->pdq || !db->pdq_quality || !db->phash || !db->dhash || !db->ahash) {
        cs_hash_db_free(db);
        free(all);
        return cs_fail(err, CS_ENOMEM, "index query: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t *r = rows + ROW_I64 * i;
        db->ref_ids[i] = r[0];
        memcpy(db->pdq + 4 * i, r + 1, 4 * sizeof *r);
        db->pdq_quality[i] = (int)r[5];
        db->phash[i] = (uint64_t)r[6];
        db->dhash[i] = (uint64_t)r[7];
        db->ahash[i] = (uint64_t)r[8];
    }
    db->n = n;
    free(all);
    return 0;
}
