/* cmd_index.c — `copyscope index add|stats|ls|query`. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"
#include "core/safe_text.h"
#include "core/store.h"
#include "index/embed.h"
#include "index/ingest.h"
#include "index/localfeat.h"
#include "index/refs_info.h"
#include "index/tinydesc.h"
#include "index/vecstore.h"

int cmd_index_background(int argc, char **argv); /* cli/cmd_index_background.c */
int cmd_index_ann(int argc, char **argv);        /* cli/cmd_index_ann.c */

static void usage_index(FILE *f) {
    fprintf(f,
            "usage: copyscope index <add|query|stats|ls|background|ann> [options]\n\n"
            "  add PATH...      add reference images (folders, files, lists, tar shards)\n"
            "  query IMAGE...   nearest references under each perceptual hash\n"
            "  stats            counts by status, descriptors present, database size\n"
            "  ls               list references (--errors: only failures and notes)\n"
            "  background PATH  store a background set (SSCD score normalisation)\n"
            "  ann              build/update an embedding column's approximate (FAISS) index\n\n"
            "'copyscope index <sub> --help' describes each.\n");
}

static void usage_add(FILE *f) {
    fprintf(f,
            "usage: copyscope index add [--db PATH] [-j N] [--max-pixels N] [--batch N] [--timings]\n"
            "                           [--embedder NAME[:WEIGHTS] | --no-embedder] [--no-local-features] PATH...\n\n"
            "Adds reference images to the index. PATH may be:\n"
            "  a folder      walked recursively (symbolic links to folders are not followed);\n"
            "                .png .jpg .jpeg files are images, .tar/.tar.gz files are shards\n"
            "  an image      any file named explicitly is tried (format sniffed from its bytes),\n"
            "                except .json .jsonl .csv .parquet .md and sidecar captions (NAME.txt\n"
            "                beside NAME.png|jpg), which are skipped, so 'index add dir/*' works\n"
            "  a list file   .txt or .lst: one path per line ('#' comments), relative to the list\n"
            "  a tar shard   webdataset layout (img2dataset): KEY.jpg|png + KEY.txt or KEY.json\n"
            "                with a \"caption\"; recorded as SHARD.tar//MEMBER\n"
            "Captions: a sidecar NAME.txt beside the image, else captions.jsonl\n"
            "({\"file\": path relative to its folder, \"caption\": ...}) or captions.csv (file,caption)\n"
            "in the folder. Invalid UTF-8 is replaced by U+FFFD and noted.\n\n"
            "Each input becomes one row: ok (hashes and a 64x64 thumbnail stored), duplicate (same\n"
            "sha256 as an earlier reference) or error (corrupt, unreadable, missing: the reason is\n"
            "recorded and the run goes on). Rerunning adds only what is new and retries errors;\n"
            "an interrupted run resumes where its last batch was committed.\n\n"
            "options:\n"
            "  --db PATH         database (default $COPYSCOPE_DB or ./copyscope.db)\n"
            "  -j, --jobs N      decode/hash threads (default: all cores)\n"
            "  --max-pixels N    refuse images above N pixels (default %lld)\n"
            "  --batch N         references per transaction (default 256)\n"
            "  --timings         print the time spent reading, decoding, hashing, in SQLite\n"
            "  --shards N        build a sharded store: DB.shards/K-of-N.db, one per N contiguous runs of the\n"
            "                    inputs of about equal work (an image weighs its bytes + 128 KiB), and DB as\n"
            "                    their catalogue (under mpirun with copyscope-mpi: one shard per rank;\n"
            "                    docs/SCALE.md)\n"
            "  --no-thumbs       keep no 64x64 thumbnail (12 KiB) per reference: it is re-read from its\n"
            "                    file, or from its tar shard at the member's offset, when needed (same\n"
            "                    pixels; a changed or missing file is an error naming it); members of\n"
            "                    gzip'd shards keep theirs\n"
            "  --no-local-features  skip the SIFT keypoints kept per reference (4 KiB each) that\n"
            "                    find crops, rotations and embeds; faster, those copies are missed\n"
            "  --embedder SPEC   after adding, compute the embedding of every reference that lacks\n"
            "                    one (PATH may then be omitted): 'tiny' (built in, from the\n"
            "                    thumbnails) or 'sscd:WEIGHTS.safetensors' (SSCD ResNet-50; see\n"
            "                    scripts/convert_sscd.py; each tar shard is read once).\n"
            "                    Default: 'tiny', once the store holds %d ok references (its\n"
            "                    PCA, learnt then and kept, needs them for all %d dimensions)\n"
            "  --no-embedder     skip the default tiny embedding (256 floats, 1 KiB a reference);\n"
            "                    faster, the analysis then has no global embedding\n"
            "  --embed-q8        store new embedding columns at 8 bits a value plus a scale per\n"
            "                    reference (516 B instead of 2 KiB for 512-d; docs/SCALE.md)\n"
            "  --attribution TEXT  the credit/licence line of these references, shown beside\n"
            "                    them in reports (PATH may then be omitted)\n"
            "  --json            the summary as one JSON object on stdout (the rest on stderr)\n\n"
            "exit status: 0 when at least one input is in the index (added, duplicate or already\n"
            "there), even if others were recorded as errors; 1 when nothing could be read at all\n"
            "or the database failed; 2 on a usage error.\n",
            (long long)(64LL * 1024 * 1024), CS_TINY_DIM + 1, CS_TINY_DIM);
}

static const struct option add_opts[] = {
    {"db", required_argument, 0, 'd'},         {"jobs", required_argument, 0, 'j'},
    {"max-pixels", required_argument, 0, 'm'}, {"batch", required_argument, 0, 'b'},
    {"timings", no_argument, 0, 't'},          {"help", no_argument, 0, 'h'},
    {"embedder", required_argument, 0, 'E'},   {"attribution", required_argument, 0, 'A'},
    {"no-local-features", no_argument, 0, 'L'}, {"json", no_argument, 0, 'J'},
    {"shards", required_argument, 0, 'S'},      {"no-thumbs", no_argument, 0, 'T'},
    {"embed-q8", no_argument, 0, 'Q'},          {"no-embedder", no_argument, 0, 'N'},
    {0, 0, 0, 0}};

/* index add --attribution: the licence/credit line reports show beside every
 * reference (meta key 'attribution'). */
static int set_attribution(const char *db, const char *text) {
    cs_err err = {0};
    cs_store *s;
    if (cs_store_open(&s, db ? db : cli_default_db(), &err)) return cli_fail(&err);
    int rc = cs_store_meta_set(s, "attribution", text, &err);
    cs_store_close(s);
    return rc ? cli_fail(&err) : CLI_OK;
}

/* index add --embedder: vectors for the references that lack them (index/embed.h). */
static int embed_q8; /* --embed-q8: a column created now is q8 (index/vecstore.h) */
static int add_embeddings(const char *db, const char *spec, int threads, int progress, cJSON *js) {
    cs_err err = {0};
    cs_store *s;
    if (cs_store_open(&s, db ? db : cli_default_db(), &err)) return cli_fail(&err);
    cs_embed_stats es;
    int rc = embed_q8 ? cs_store_meta_set(s, "vec_dtype", "q8", &err) : 0;
    if (!rc) rc = cs_embed_index_add_ex(s, spec, threads, progress, &es, &err);
    cs_store_close(s);
    if (rc) return cli_fail(&err);
    printf("index add: embedder %s: %lld computed, %lld already present, %lld skipped\n", spec,
           (long long)es.computed, (long long)es.present, (long long)es.skipped);
    if (js) {
        cJSON *e = cJSON_AddObjectToObject(js, "embedder");
        cJSON_AddStringToObject(e, "spec", spec);
        cJSON_AddNumberToObject(e, "computed", (double)es.computed);
        cJSON_AddNumberToObject(e, "present", (double)es.present);
        cJSON_AddNumberToObject(e, "skipped", (double)es.skipped);
    }
    if (es.skipped) fprintf(stderr, "copyscope: skipped %s\n", es.skip_example);
    return CLI_OK;
}

/* The local-feature vote index beside the store (<db>.lfvote,
 * index/localfeat.h), current after this add, so that the analysis loads it
 * instead of building it; removed when no reference has local features. */
static int refresh_vote_index(cs_store *s, cs_err *err) {
    /* the records memory-mapped from <db>.lfrec, written here when stale so
     * that the analysis maps it as it is (index/localfeat.h) */
    cs_lf_records r;
    char note[512] = "";
    if (cs_lf_records_open(s, &r, note, sizeof note, err)) return -1;
    if (strstr(note, "in memory")) fprintf(stderr, "copyscope: index add: %s\n", note);
    char *path = cs_store_sidecar(s, "lfvote");
    int rc = 0;
    note[0] = 0;
    if (!path) rc = cs_fail(err, CS_ENOMEM, "out of memory");
    else if (r.n > 0) rc = cs_lf_index_open_fp(NULL, path, r.n, r.ids, r.recs, r.fp, note, sizeof note, err);
    else unlink(path);
    if (!rc && strstr(note, "not saved")) fprintf(stderr, "copyscope: index add: %s\n", note);
    if (!rc && path && r.n == 0) { /* nothing to map: no records file either */
        char *rp = cs_store_sidecar(s, "lfrec");
        if (rp) unlink(rp);
        free(rp);
    }
    free(path);
    cs_lf_records_close(&r);
    return rc;
}

/* index add's default embedder (no --embedder, no --no-embedder): tiny, once
 * the store is large enough to learn its PCA (cs_embed_default_ready). 1: add
 * it; 0: not yet (a note says so); -1: the store failed. */
static int default_embedder_ready(const char *db) {
    cs_err err = {0};
    cs_store *s;
    if (cs_store_open(&s, db ? db : cli_default_db(), &err)) return cli_fail(&err), -1;
    int ready = 0;
    int64_t n_ok = 0;
    int rc = cs_embed_default_ready(s, &ready, &n_ok, &err);
    cs_store_close(s);
    if (rc) return cli_fail(&err), -1;
    if (!ready && cs_mpi_rank() == 0)
        fprintf(stderr,
                "copyscope: index add: no tiny embedding yet: %lld ok references, its PCA is learnt from %d or "
                "more (--embedder tiny builds it now)\n",
                (long long)n_ok, CS_TINY_DIM + 1);
    return ready;
}

static int cmd_index_add(int argc, char **argv) {
    const char *db = NULL, *embedder = NULL, *attribution = NULL;
    cs_ingest_opts o = {.local_features = 1};
    int timings = 0, json = 0, c, shards = 0, no_embedder = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:h", add_opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'd': db = optarg; break;
        case 'j':
            if ((o.threads = cli_parse_jobs(optarg)) < 0) return cli_usage_error("index add: bad -j '%s'", optarg);
            break;
        case 'm':
            o.max_pixels = strtoll(optarg, &end, 10);
            if (*end || o.max_pixels <= 0) return cli_usage_error("index add: bad --max-pixels '%s'", optarg);
            break;
        case 'b':
            o.batch = (int)strtol(optarg, &end, 10);
            if (*end || o.batch <= 0 || o.batch > 1000000)
                return cli_usage_error("index add: bad --batch '%s'", optarg);
            break;
        case 't': timings = 1; break;
        case 'E': embedder = optarg; break;
        case 'A': attribution = optarg; break;
        case 'L': o.local_features = 0; break;
        case 'J': json = 1; break;
        case 'T': o.no_thumbs = 1; break;
        case 'Q': embed_q8 = 1; break;
        case 'N': no_embedder = 1; break;
        case 'S':
            shards = (int)strtol(optarg, &end, 10);
            if (*end || shards <= 0 || shards > 4096) return cli_usage_error("index add: bad --shards '%s'", optarg);
            break;
        case 'h': usage_add(stdout); return CLI_OK;
        default: return cli_usage_hint("index add");
        }
    }
    if (embedder && no_embedder) return cli_usage_error("index add: --embedder and --no-embedder together");
    if (optind >= argc && !embedder && !attribution)
        return cli_usage_error("index add: no PATH given (see copyscope index add --help)");
    /* the default: the tiny embedding after the references (issue 13: a
     * colour shift or a caption that the hashes miss; decided once they are
     * in, see default_embedder_ready) */
    int embed_default = optind < argc && !embedder && !no_embedder;
    if (json && (shards > 0 || cs_mpi_size() > 1)) /* each rank prints its own shard's lines */
        return cli_usage_error("index add: --json is not available for a sharded add (--shards or mpirun)");
    cJSON *js = json ? cJSON_CreateObject() : NULL;
    if (json) cli_json_begin();
    if (attribution && set_attribution(db, attribution)) return cJSON_Delete(js), CLI_FAIL;
    if (attribution) cJSON_AddStringToObject(js, "attribution", attribution);
    if (optind >= argc && !embedder) return json ? cli_json_end(js) : CLI_OK;
    if (o.threads > 0) cs_set_threads(o.threads);
    const char *pe = getenv("CS_PROGRESS");
    o.progress = !(pe && !strcmp(pe, "0")); /* off a terminal: log lines (core/progress.h) */
    if (optind >= argc && cs_mpi_size() > 1) /* every rank its shard's rows, or rank 0 alone */
        return cli_mpi_embed(db ? db : cli_default_db(), embedder, embed_q8, o.threads, timings);
    if (optind >= argc) {
        int erc = add_embeddings(db, embedder, o.threads, o.progress, js);
        if (erc || !json) return cJSON_Delete(js), erc;
        return cli_json_end(js);
    }
    if (cs_mpi_size() > 1 || shards > 0) { /* a sharded store (cli/cli_mpi.h); under mpirun each rank embeds its shard */
        int r = cli_index_add_sharded(db ? db : cli_default_db(), argv + optind, argc - optind, &o, shards, timings);
        if (!r && embed_default) {
            int ready = default_embedder_ready(db);
            if (ready < 0) return CLI_FAIL;
            if (ready) embedder = "tiny";
        }
        if (!r && embedder && cs_mpi_size() > 1)
            return cli_mpi_embed(db ? db : cli_default_db(), embedder, embed_q8, o.threads, timings);
        return r || !embedder ? r : add_embeddings(db, embedder, o.threads, o.progress, NULL);
    }
    cs_err err = {0};
    cs_store *s;
    if (cs_store_open(&s, db ? db : cli_default_db(), &err)) return cli_fail(&err);
    cs_ingest_stats st;
    int rc = cs_ingest_add(s, (const char *const *)argv + optind, argc - optind, &o, &st, &err);
    if (!rc) rc = refresh_vote_index(s, &err);
    cs_store_close(s);
    int64_t done = st.added + st.duplicates + st.errors;
    printf("index add: %lld added, %lld duplicates, %lld errors, %lld already indexed",
           (long long)st.added, (long long)st.duplicates, (long long)st.errors, (long long)st.skipped);
    if (st.notes) printf(", %lld caption notes", (long long)st.notes);
    printf(" (%.2f s, %.1f img/s)\n", st.t_total, st.t_total > 0 ? done / st.t_total : 0.0);
    if (timings) {
        double db = st.t_db + st.t_lookup, walk = st.t_walk > 0 ? st.t_walk : 0;
        double all = st.t_read + st.t_sha + st.t_decode + st.t_hash + st.t_thumb + db + walk;
        if (all <= 0) all = 1;
        printf("timings (thread-seconds; workers x%d, SQLite writes on their own thread overlap them):\n",
               o.threads > 0 ? o.threads : cs_threads());
        printf("  read    %8.3f s  %5.1f%%\n", st.t_read, 100 * st.t_read / all);
        printf("  sha256  %8.3f s  %5.1f%%\n", st.t_sha, 100 * st.t_sha / all);
        printf("  decode  %8.3f s  %5.1f%%\n", st.t_decode, 100 * st.t_decode / all);
        printf("  hash    %8.3f s  %5.1f%%\n", st.t_hash, 100 * st.t_hash / all);
        printf("  thumb   %8.3f s  %5.1f%%\n", st.t_thumb, 100 * st.t_thumb / all);
        printf("  sqlite  %8.3f s  %5.1f%%  (writes %.3f s, lookups %.3f s)\n", db, 100 * db / all, st.t_db,
               st.t_lookup);
        printf("  walk    %8.3f s  %5.1f%%\n", walk, 100 * walk / all);
        printf("  wall    %8.3f s  (workers %.3f s, waiting for SQLite %.3f s)\n", st.t_total, st.t_parallel,
               st.t_db_wait);
    }
    if (rc) return cJSON_Delete(js), cli_fail(&err);
    if (st.errors > 0 && st.added + st.duplicates + st.skipped == 0) {
        fprintf(stderr, "copyscope: index add: nothing could be read (%lld errors; see copyscope index ls --errors)\n",
                (long long)st.errors);
        return cJSON_Delete(js), CLI_FAIL;
    }
    if (js) {
        cJSON_AddNumberToObject(js, "added", (double)st.added);
        cJSON_AddNumberToObject(js, "duplicates", (double)st.duplicates);
        cJSON_AddNumberToObject(js, "errors", (double)st.errors);
        cJSON_AddNumberToObject(js, "already_indexed", (double)st.skipped);
        cJSON_AddNumberToObject(js, "caption_notes", (double)st.notes);
        cJSON_AddNumberToObject(js, "seconds", st.t_total);
    }
    if (embed_default) {
        int ready = default_embedder_ready(db);
        if (ready < 0) return cJSON_Delete(js), CLI_FAIL;
        if (ready) embedder = "tiny";
    }
    if (embedder && (rc = add_embeddings(db, embedder, o.threads, o.progress, js))) return cJSON_Delete(js), rc;
    return json ? cli_json_end(js) : CLI_OK;
}

/* ---- stats ---- */

/* A JSON string from any bytes (file names need not be UTF-8): U+FFFD for
 * bad bytes; the exact bytes, when there were any, as key_hex. */
static void add_utf8(cJSON *o, const char *key, const char *v) {
    int bad = 0;
    char *u = cs_utf8_fix(v, &bad);
    cJSON_AddStringToObject(o, key, u ? u : "");
    free(u);
    if (!bad) return;
    size_t n = strlen(v);
    char *hx = malloc(2 * n + 1), hk[64];
    for (size_t k = 0; hx && k < n; k++) snprintf(hx + 2 * k, 3, "%02x", (unsigned char)v[k]);
    snprintf(hk, sizeof hk, "%s_hex", key);
    if (hx) cJSON_AddStringToObject(o, hk, n ? hx : "");
    free(hx);
}


static int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* The embedding columns (name, rows, dim) as a JSON array; NULL on error. */
static cJSON *embedding_columns(cs_store *s, cs_err *err) {
    char **names = NULL;
    int n = 0;
    if (cs_embed_columns(s, &names, &n, err)) return NULL;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cs_vecstore vs;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", names[i]);
        cs_err e2 = {0};
        if (cs_vecstore_open_store(&vs, s, names[i], 0, 0, &e2) == 0) {
            cJSON_AddNumberToObject(c, "rows", (double)vs.n);
            cJSON_AddNumberToObject(c, "dim", vs.dim);
            cs_vecstore_close(&vs);
        } else {
            cJSON_AddStringToObject(c, "error", e2.msg);
        }
        cJSON_AddItemToArray(a, c);
        free(names[i]);
    }
    free(names);
    return a;
}

/* Every file of the store's set as a JSON array; *n_missing required ones absent. */
static cJSON *store_files(cs_store *s, int *n_missing, cs_err *err) {
    cs_store_file *f;
    int n;
    *n_missing = 0;
    if (cs_store_files_list(s, &f, &n, err)) return NULL;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        add_utf8(o, "path", f[i].path);
        cJSON_AddStringToObject(o, "role", f[i].role);
        cJSON_AddBoolToObject(o, "present", f[i].present);
        cJSON_AddBoolToObject(o, "required", f[i].required);
        cJSON_AddNumberToObject(o, "bytes", (double)f[i].bytes);
        cJSON_AddItemToArray(a, o);
        *n_missing += f[i].required && !f[i].present;
    }
    cs_store_files_free(f, n);
    return a;
}

static int cmd_index_stats(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                         {"json", no_argument, 0, 'J'},
                                         {"forget-missing", no_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dbp = NULL;
    int json = 0, forget = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dbp = optarg; break;
        case 'J': json = 1; break;
        case 'F': forget = 1; break;
        case 'h':
            printf("usage: copyscope index stats [--db PATH] [--json] [--forget-missing]\n\n"
                   "References by status (ok, duplicate, error; notes = repaired captions), the\n"
                   "descriptor tables present (ref_*) with their row counts, the embedding columns\n"
                   "(rows x dim), low-quality PDQ hashes (quality < 50), and every file of the store:\n"
                   "the database PATH, its WAL files and the side files PATH.* (embedding columns,\n"
                   "ANN indexes, background sets, text shards). Copy them together: a store whose\n"
                   "recorded side files are missing is refused by every command that reads it.\n"
                   "  --forget-missing  drop the record of side files removed on purpose\n"
                   "exit status: 0, 1 if the database cannot be read or a side file is missing,\n"
                   "2 on a usage error.\n");
            return CLI_OK;
        default: return cli_usage_hint("index stats");
        }
    }
    if (optind < argc) return cli_usage_error("index stats: unexpected argument '%s'", argv[optind]);
    cs_err err = {0};
    cs_store *s;
    const char *db = dbp ? dbp : cli_default_db();
    if (forget) {
        int n = 0;
        if (cs_store_open_indexed(&s, db, CS_STORE_RO_UNCHECKED, &err)) return cli_fail(&err);
        cs_store_close(s);
        if (cs_store_open(&s, db, &err)) return cli_fail(&err);
        int rc = cs_store_files_forget_missing(s, &n, &err);
        cs_store_close(s);
        if (rc) return cli_fail(&err);
        fprintf(stderr, "index stats: %d missing side file%s forgotten\n", n, n == 1 ? "" : "s");
    }
    if (cs_store_open_indexed(&s, db, CS_STORE_RO_UNCHECKED, &err)) return cli_fail(&err);
    cs_refs_stats rs;
    if (cs_refs_stats_load(s, &rs, &err)) {
        cs_store_close(s);
        return cli_fail(&err);
    }
    int64_t total = rs.total, ok = rs.ok, dup = rs.duplicate, bad = rs.error, notes = rs.notes,
            capt = rs.captioned, lowq = rs.pdq_low_quality;
    const char *path = cs_store_path(s);
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    int64_t size = file_size(path), wsize = file_size(wal);
    cJSON *desc = cJSON_CreateObject();
    for (int i = 0; i < rs.n_tables; i++) cJSON_AddNumberToObject(desc, rs.tables[i], (double)rs.table_rows[i]);
    cs_refs_stats_free(&rs);
    int missing = 0;
    cJSON *cols = embedding_columns(s, &err), *files = cols ? store_files(s, &missing, &err) : NULL;
    if (!files) {
        cJSON_Delete(cols);
        cJSON_Delete(desc);
        cs_store_close(s);
        return cli_fail(&err);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "db", path);
        cJSON_AddNumberToObject(o, "refs", (double)total);
        cJSON_AddNumberToObject(o, "ok", (double)ok);
        cJSON_AddNumberToObject(o, "duplicate", (double)dup);
        cJSON_AddNumberToObject(o, "error", (double)bad);
        cJSON_AddNumberToObject(o, "notes", (double)notes);
        cJSON_AddNumberToObject(o, "captioned", (double)capt);
        cJSON_AddNumberToObject(o, "pdq_low_quality", (double)lowq);
        cJSON_AddItemToObject(o, "descriptors", desc);
        cJSON_AddItemToObject(o, "embedding_columns", cols);
        cJSON_AddItemToObject(o, "files", files);
        cJSON_AddNumberToObject(o, "missing_files", missing);
        cJSON_AddNumberToObject(o, "db_bytes", (double)(size + wsize));
        char *t = cJSON_Print(o);
        printf("%s\n", t);
        free(t);
        cJSON_Delete(o);
    } else {
        printf("database    %s (%.1f MiB with WAL)\n", path, (size + wsize) / 1048576.0);
        printf("references  %lld: %lld ok, %lld duplicate, %lld error", (long long)total, (long long)ok,
               (long long)dup, (long long)bad);
        if (notes) printf(" (%lld with notes)", (long long)notes);
        printf("\ncaptioned   %lld\n", (long long)capt);
        printf("descriptors");
        for (cJSON *d = desc->child; d; d = d->next) printf("  %s: %lld", d->string, (long long)d->valuedouble);
        printf("\nembeddings");
        /* index add builds tiny by default from CS_TINY_DIM + 1 ok references
         * (its PCA); a store past that without one was added with --no-embedder
         * (or before the default) */
        if (!cols->child && ok < CS_TINY_DIM + 1)
            printf("  none (index add builds the tiny one by default once %d references are ok; "
                   "'index add --embedder tiny' builds it now)",
                   CS_TINY_DIM + 1);
        else if (!cols->child)
            printf("  none (added with --no-embedder, or before the default; 'index add --embedder tiny' builds "
                   "the tiny one, which analyze searches for candidates and ranking)");
        for (cJSON *d = cols->child; d; d = d->next) {
            cJSON *r = cJSON_GetObjectItem(d, "rows"), *dm = cJSON_GetObjectItem(d, "dim");
            if (r) printf("  %s: %lld x %d", cJSON_GetObjectItem(d, "name")->valuestring, (long long)r->valuedouble,
                          (int)dm->valuedouble);
            else printf("  %s: unreadable", cJSON_GetObjectItem(d, "name")->valuestring);
        }
        printf("\nlow-quality PDQ (< 50)  %lld\n", (long long)lowq);
        printf("files (copy them together):\n");
        static char sp[8192];
        for (cJSON *d = files->child; d; d = d->next)
            printf("  %-9s %10lld  %-22s %s\n",
                   cJSON_IsTrue(cJSON_GetObjectItem(d, "present")) ? "ok"
                   : cJSON_IsTrue(cJSON_GetObjectItem(d, "required")) ? "MISSING"
                                                                       : "absent",
                   (long long)cJSON_GetObjectItem(d, "bytes")->valuedouble,
                   cJSON_GetObjectItem(d, "role")->valuestring,
                   cs_term_safe(sp, sizeof sp, cJSON_GetObjectItem(d, "path")->valuestring));
        cJSON_Delete(desc);
        cJSON_Delete(cols);
        cJSON_Delete(files);
    }
    if (missing) {
        cs_store_files_check(s, &err);
        cs_store_close(s);
        return cli_fail(&err);
    }
    cs_store_close(s);
    return CLI_OK;
}

/* ---- ls ---- */

typedef struct {
    int json;
    cJSON *arr; /* --json: the rows */
} ls_ctx;

static void ls_row(const cs_ref_row *r, void *vctx) {
    ls_ctx *c = vctx;
    if (!c->json) {
        char dim[32] = "-";
        if (r->has_dims) snprintf(dim, sizeof dim, "%dx%d", r->w, r->h);
        static char ssrc[16384], snote[16384]; /* from the data: no terminal escapes, no tabs */
        printf("%lld\t%s\t%s\t%.12s\t%s\t%s\n", (long long)r->id, r->status ? r->status : "", dim,
               r->sha256 ? r->sha256 : "-", cs_term_safe(ssrc, sizeof ssrc, r->source ? r->source : ""),
               cs_term_safe(snote, sizeof snote, r->error ? r->error : r->caption ? r->caption : ""));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    add_utf8(o, "source", r->source ? r->source : "");
    cJSON_AddStringToObject(o, "status", r->status ? r->status : "");
    if (r->sha256) cJSON_AddStringToObject(o, "sha256", r->sha256);
    else cJSON_AddNullToObject(o, "sha256");
    if (r->has_size) cJSON_AddNumberToObject(o, "size", (double)r->size);
    if (r->has_dims) {
        cJSON_AddNumberToObject(o, "width", r->w);
        cJSON_AddNumberToObject(o, "height", r->h);
    }
    char *uc = r->caption ? cs_utf8_fix(r->caption, NULL) : NULL, *ue = r->error ? cs_utf8_fix(r->error, NULL) : NULL;
    if (uc) cJSON_AddStringToObject(o, "caption", uc);
    else cJSON_AddNullToObject(o, "caption");
    if (ue) cJSON_AddStringToObject(o, "error", ue);
    free(uc);
    free(ue);
    if (r->has_dup_of) cJSON_AddNumberToObject(o, "dup_of", (double)r->dup_of);
    cJSON_AddItemToArray(c->arr, o);
}

static int cmd_index_ls(int argc, char **argv) {
    static const struct option opts[] = {{"db", required_argument, 0, 'd'},
                                         {"errors", no_argument, 0, 'e'},
                                         {"limit", required_argument, 0, 'n'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dbp = NULL;
    int json = 0, errors = 0, c;
    long long limit = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'd': dbp = optarg; break;
        case 'e': errors = 1; break;
        case 'J': json = 1; break;
        case 'n':
            limit = strtoll(optarg, &end, 10);
            if (*end || limit < 0) return cli_usage_error("index ls: bad --limit '%s'", optarg);
            break;
        case 'h':
            printf("usage: copyscope index ls [--db PATH] [--errors] [--limit N] [--json]\n\n"
                   "Lists references in id order: id, status, WxH, sha256 (12 digits), source, and\n"
                   "the caption (or, for errors and notes, the recorded problem).\n"
                   "  --errors   only rows with status error, or a note (repaired caption)\n"
                   "  --limit N  at most N rows\n"
                   "  --json     one JSON array with every column\n"
                   "exit status: 0, 1 if the database cannot be read, 2 on a usage error.\n");
            return CLI_OK;
        default: return cli_usage_hint("index ls");
        }
    }
    if (optind < argc) return cli_usage_error("index ls: unexpected argument '%s'", argv[optind]);
    cs_err err = {0};
    cs_store *s;
    if (cs_store_open_readonly(&s, dbp ? dbp : cli_default_db(), &err)) return cli_fail(&err);
    ls_ctx lc = {.json = json, .arr = json ? cJSON_CreateArray() : NULL};
    int fail = cs_refs_each(s, errors, limit, ls_row, &lc, &err) != 0;
    cs_store_close(s);
    if (json) {
        char *t = cJSON_Print(lc.arr);
        if (t) printf("%s\n", t);
        free(t);
        cJSON_Delete(lc.arr);
    }
    return fail ? cli_fail(&err) : CLI_OK;
}

int cmd_index(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("index: give a subcommand (add, query, stats, ls, background, ann)"),
                      cli_usage_hint("index");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        usage_index(stdout);
        return CLI_OK;
    }
    if (!strcmp(sub, "add")) return cmd_index_add(argc - 1, argv + 1);
    if (!strcmp(sub, "stats")) return cmd_index_stats(argc - 1, argv + 1);
    if (!strcmp(sub, "ls")) return cmd_index_ls(argc - 1, argv + 1);
    if (!strcmp(sub, "query")) return cmd_index_query(argc - 1, argv + 1);
    if (!strcmp(sub, "background")) return cmd_index_background(argc - 1, argv + 1);
    if (!strcmp(sub, "ann")) return cmd_index_ann(argc - 1, argv + 1);
    return cli_usage_error("index: unknown subcommand '%s' (add, query, stats, ls, background, ann)", sub),
           cli_usage_hint("index");
}
