/* cmd_index_ann.c — `copyscope index ann [--embedder NAME] [--factory STR]
 * [--nprobe N] [--rebuild] [--db PATH] [-j N]`: builds or updates the
 * approximate nearest-neighbour index of an embedding column (index/ann.h),
 * which `index query --approx` searches. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/parallel.h"
#include "core/store.h"
#include "index/ann.h"
#include "index/embed.h"

int cmd_index_ann(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope index ann [--embedder NAME] [--factory STR] [--nprobe N] [--rebuild]\n"
            "                           [--db PATH] [-j N]\n\n"
            "Builds, or brings up to date, the approximate nearest-neighbour index of an\n"
            "embedding column (FAISS), stored beside the database as <db>.ann-<NAME>.faiss;\n"
            "'copyscope index query --approx' searches it instead of scanning every vector.\n"
            "A first run trains it on a sample of the column (k-means, minutes at 1M vectors)\n"
            "and adds every vector; later runs add only the vectors appended since (run it\n"
            "after 'index add --embedder NAME'). Queries still see vectors added after the\n"
            "last run: they are scanned exactly.\n\n"
            "  --embedder NAME  the column: tiny or sscd (an sscd:WEIGHTS spec names the sscd\n"
            "                   column); default: the only column present\n"
            "  --factory STR    FAISS index_factory string (default IVF<nlist>,Flat, nlist a power\n"
            "                   of two near 4 sqrt(vectors), at most vectors/100: IVF4096,Flat at\n"
            "                   1M; Flat under 200); another factory than the stored one rebuilds;\n"
            "                   a default index is retrained once the column has 4x the vectors\n"
            "                   it was trained on and the default for the new size differs\n"
            "  --nprobe N       IVF lists searched by default (stored; default max(8, nlist/512),\n"
            "                   at most half the lists)\n"
            "  --rebuild        train anew (needed when the column was rebuilt or shrank)\n"
            "  -j N             threads (default: all cores)\n"
            "  --db PATH        the index (default $COPYSCOPE_DB or ./copyscope.db)\n"
            "exit status: 0, 1 on failure, 2 on a usage error.\n");
}

/* "sscd:W.safetensors" / "sscd@skew_320:W" -> "sscd"; caller frees. */
static char *column_of(const char *spec) {
    size_t n = strcspn(spec, ":@");
    char *c = malloc(n + 1);
    if (c) memcpy(c, spec, n), c[n] = 0;
    return c;
}

/* Long: option parsing, build and the summary of one short command. */
int cmd_index_ann(int argc, char **argv) {
    static const struct option opts[] = {{"embedder", required_argument, 0, 'E'},
                                         {"factory", required_argument, 0, 'F'},
                                         {"nprobe", required_argument, 0, 'p'},
                                         {"rebuild", no_argument, 0, 'R'},
                                         {"db", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *db = NULL, *embedder = NULL;
    cs_ann_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hj:", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'E': embedder = optarg; break;
        case 'F': o.factory = optarg; break;
        case 'p':
            o.nprobe = (int)strtol(optarg, &end, 10);
            if (!*optarg || *end || o.nprobe < 1 || o.nprobe > 1000000)
                return cli_usage_error("index ann: --nprobe wants an integer >= 1, not '%s'", optarg);
            break;
        case 'R': o.rebuild = 1; break;
        case 'd': db = optarg; break;
        case 'j':
            if ((o.threads = cli_parse_jobs(optarg)) < 0) return cli_usage_error("index ann: bad -j '%s'", optarg);
            break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_hint("index ann");
        }
    }
    if (optind < argc) return cli_usage_error("index ann: unexpected argument '%s'", argv[optind]);
    if (o.threads > 0) cs_set_threads(o.threads);
    const char *pe = getenv("CS_PROGRESS");
    o.progress = !(pe && !strcmp(pe, "0")); /* off a terminal: log lines (core/progress.h) */
    cs_err err = {0};
    cs_store *s;
    if (cs_store_open_readonly(&s, db ? db : cli_default_db(), &err)) return cli_fail(&err);
    char *column = NULL;
    int rc = CLI_OK;
    if (embedder) {
        column = column_of(embedder);
    } else { /* the only column there is */
        char **cols = NULL;
        int n = 0;
        if (cs_embed_columns(s, &cols, &n, &err)) {
            cs_store_close(s);
            return cli_fail(&err);
        }
        if (n == 1) column = strdup(cols[0]);
        for (int i = 0; i < n; i++) free(cols[i]);
        free(cols);
        if (n != 1) {
            cs_store_close(s);
            if (n) return cli_usage_error("index ann: several embedding columns: name one with --embedder");
            cs_fail(&err, CS_ENOTFOUND, "index ann: no embedding column yet (run copyscope index add --embedder tiny)");
            return cli_fail(&err);
        }
    }
    cs_ann_stats st;
    if (!column) {
        cs_fail(&err, CS_ENOMEM, "index ann: out of memory");
        rc = cli_fail(&err);
    } else if (cs_ann_build(s, column, &o, &st, &err)) {
        rc = cli_fail(&err);
    } else {
        char *path = cs_ann_path(s, column);
        if (st.trained)
            printf("index ann: %s: built %s over %lld vectors (train %.1f s, add %.1f s), nprobe %d\n", column,
                   st.factory, (long long)st.rows, st.train_s, st.add_s, st.nprobe);
        else if (st.rows > st.rows_before)
            printf("index ann: %s: %s: added %lld vectors (now %lld, %.1f s), nprobe %d\n", column, st.factory,
                   (long long)(st.rows - st.rows_before), (long long)st.rows, st.add_s, st.nprobe);
        else
            printf("index ann: %s: %s up to date (%lld vectors), nprobe %d\n", column, st.factory,
                   (long long)st.rows, st.nprobe);
        printf("  %s (%.1f MiB)\n", path ? path : "?", st.file_bytes / 1048576.0);
        free(path);
    }
    free(column);
    cs_store_close(s);
    return rc;
}
