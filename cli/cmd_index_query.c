/* cmd_index_query.c — `copyscope index query IMAGE... [--k N]
 * [--max-distance D] [--json] [--db PATH]`: the nearest references of each
 * image under each perceptual hash, with Hamming distances.
 *
 * Shape: the query images are hashed first (a failed one is reported and
 * skipped); then each descriptor family is searched for all queries at once
 * by its own function, which fills one result list per query; printing walks
 * the queries and, for each, the families in order. A new family (e.g.
 * embedding neighbours) is one more search function plus one entry in
 * print_query / json_query. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/analyze.h"
#include "analyze/verdict.h"
#include "cli/cli.h"
#include "cli/cli_mpi.h"
#include "core/fs.h"
#include "core/mpi_comm.h"
#include "core/image.h"
#include "core/parallel.h"
#include "core/store.h"
#include "index/background.h"
#include "index/ann.h"
#include "index/embed.h"
#include "index/hamming.h"
#include "index/hashes.h"
#include "index/pdq.h"
#include "index/refs_info.h"

/* The 64-bit hashes' default threshold: PDQ's 31 of 256 bits scaled to 64
 * bits (31/4, rounded down), the same fraction of differing bits. */
#define BITS64_SHARE(d) ((d) / 4)

typedef struct {
    const char *path;
    int ok;
    char *error; /* why it failed (malloc'd), for --json */
    cs_hashes h;
    cs_pdq dih[CS_PDQ_NDIHEDRAL]; /* with --dihedral */
} query;

/* One family's results: hits[q*k ..], nhits[q]; dist bound used. */
typedef struct {
    const char *name;
    int bits, max_dist;
    cs_hamming_hit *hits;
    int *nhits;
    int *variant; /* [q*k + r]: the dihedral variant of the query that matched, or NULL */
} family;

/* Embedding neighbours of one column (index/embed.h): cosine, best first. */
typedef struct {
    char *column;
    int64_t *ids; /* [nq][k], -1 past the end */
    float *scores;
    int approx;     /* found through the column's approximate index */
    int normalized; /* scores lowered by the stored background set's bias */
} emb_family;

typedef struct {
    int k, max_dist, json, dihedral;
    int nemb;
    int approx, nprobe; /* --approx: through the columns' ANN indexes (index/ann.h) */
    int normalize; /* --normalize: embedding scores minus the stored background bias */
    emb_family emb[2];
    cs_store *store;
    cs_hash_db db;
    cs_ref_lookup *refs;  /* source and caption by id */
    int no_fused;         /* --no-fused: hashes (and embeddings) only */
    cs_an_neighbours *fz; /* the analysis's ranking of every query (analyze/analyze.h), or NULL */
    int64_t nfz;
} ctx;

/* The analysis's ranking of the query at path, or NULL. */
static const cs_an_neighbours *fused_of(const ctx *c, const char *path) {
    char *abs = cs_abs_path(path); /* the analysis names its files by absolute path */
    const cs_an_neighbours *hit = NULL;
    for (int64_t i = 0; i < c->nfz && !hit; i++)
        if (c->fz[i].path && (!strcmp(c->fz[i].path, path) || (abs && !strcmp(c->fz[i].path, abs)))) hit = &c->fz[i];
    free(abs);
    return hit;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope index query IMAGE... [--k N] [--max-distance D] [--dihedral] [--json]\n"
            "                             [--embedder SPEC] [--approx [--nprobe N]] [--normalize]\n"
            "                             [--db PATH]\n"
            "\n"
            "Lists, for each image, the nearest references of the index under each\n"
            "perceptual hash, with their Hamming distances:\n"
            "  pdq     256 bits; a match is distance <= D (default 31, the PDQ authors'\n"
            "          recommendation)\n"
            "  phash, dhash, ahash   64 bits; distance <= D/4 (default 7: the same share of\n"
            "          differing bits)\n"
            "A PDQ hash with quality < 50 (query or reference) is flagged \"low quality\":\n"
            "the PDQ authors advise not to trust it (flat or near-blank images).\n"
            "\n"
            "  --k N             at most N references per hash (default 5)\n"
            "  --max-distance D  PDQ distance bound, 0..256 (default 31)\n"
            "  --dihedral        PDQ also under the query's 8 rotations/mirrors (models trained\n"
            "                    with flip augmentation copy mirrored); a hit names the\n"
            "                    transform of the query that matched\n"
            "  --json            one JSON array, an object per image\n"
            "  --embedder SPEC   also list the nearest references by cosine similarity of\n"
            "                    this embedding (sscd:WEIGHTS.safetensors; the index's 'tiny'\n"
            "                    column, when present, is always listed)\n"
            "  --approx          embedding neighbours through the column's approximate index\n"
            "                    (built by copyscope index ann), not an exact scan (the tiny\n"
            "                    column listed beside --embedder: only if it has one)\n"
            "  --nprobe N        with --approx: IVF lists searched (default: the index's own)\n"
            "  --normalize       embedding scores minus the mean of the query's top-3 cosines to\n"
            "                    the column's stored background set (copyscope index background;\n"
            "                    images known not to be copies): SSCD score normalisation;\n"
            "                    the --embedder column (else tiny) must have a stored set\n"
            "  --db PATH         the index (default $COPYSCOPE_DB or ./copyscope.db)\n"
            "  --no-fused        skip the analysis's own ranking, listed by default as 'fused':\n"
            "                    every descriptor copyscope analyze uses (tiled L2, hashes, local\n"
            "                    features verified geometrically), its verdict and fused z\n");
}

/* ---- hashing the queries ---- */

static int hash_queries(query *qs, int n, int dihedral) {
    int failed = 0;
    for (int i = 0; i < n; i++) {
        cs_err err = {0};
        cs_image img;
        qs[i].ok = 0;
        if (cs_image_load(&img, qs[i].path, NULL, &err) == 0) {
            if (cs_hashes_compute(&img, &qs[i].h, &err) == 0 &&
                (!dihedral || cs_pdq_dihedral(&img, 0, qs[i].dih, &err) == 0))
                qs[i].ok = 1;
            else
                cs_wrap(&err, "%s", qs[i].path);
            cs_image_free(&img);
        }
        if (!qs[i].ok) {
            qs[i].error = strdup(err.msg);
            cli_fail(&err);
            failed++;
        }
    }
    return failed;
}

/* ---- one search function per descriptor family ---- */

static int search_family(ctx *c, family *f, const uint64_t *codes, int words, const uint64_t *qcodes,
                         int nq, cs_err *err) {
    f->hits = malloc(sizeof(cs_hamming_hit) * (size_t)nq * (size_t)c->k);
    f->nhits = calloc((size_t)nq, sizeof(int));
    if (!f->hits || !f->nhits) return cs_fail(err, CS_ENOMEM, "index query: out of memory");
    cs_hamming_opts o = {.k = c->k, .max_dist = f->max_dist, .threads = cs_threads()};
    return cs_hamming_topk(codes, c->db.n, words, qcodes, nq, &o, f->hits, f->nhits, err);
}

static int cmp_hit(const void *a, const void *b) {
    const cs_hamming_hit *x = a, *y = b;
    if (x->dist != y->dist) return x->dist - y->dist;
    return (x->index > y->index) - (x->index < y->index);
}

/* --dihedral: the 8 variants' lists of each query (in f->hits as 8*nq
 * queries) merged into one per query: per reference the smallest distance
 * (first variant on ties), then the k best by (distance, index). */
static int merge_dihedral(ctx *c, family *f, int nq, cs_err *err) {
    int k = c->k, nd = CS_PDQ_NDIHEDRAL;
    cs_hamming_hit *hits = malloc(sizeof *hits * (size_t)nq * k);
    int *nh = calloc((size_t)nq, sizeof(int)), *var = malloc(sizeof(int) * (size_t)nq * k);
    cs_hamming_hit *all = malloc(sizeof *all * (size_t)nd * k);
    int *allv = malloc(sizeof(int) * (size_t)nd * k);
    if (!hits || !nh || !var || !all || !allv) {
        free(hits), free(nh), free(var), free(all), free(allv);
        return cs_fail(err, CS_ENOMEM, "index query: out of memory");
    }
    for (int q = 0; q < nq; q++) {
        int m = 0;
        for (int d = 0; d < nd; d++) {
            int row = q * nd + d;
            for (int r = 0; r < f->nhits[row]; r++) {
                cs_hamming_hit h = f->hits[(size_t)row * k + r];
                int j = 0;
                while (j < m && all[j].index != h.index) j++;
                if (j == m) {
                    all[m] = h;
                    allv[m++] = d;
                } else if (h.dist < all[j].dist) {
                    all[j].dist = h.dist;
                    allv[j] = d;
                }
            }
        }
        /* sort (distance, index) keeping each hit's variant: sort indices */
        for (int a = 1; a < m; a++) /* insertion sort: m <= 8k, small */
            for (int b = a; b > 0 && cmp_hit(&all[b - 1], &all[b]) > 0; b--) {
                cs_hamming_hit t = all[b];
                all[b] = all[b - 1];
                all[b - 1] = t;
                int tv = allv[b];
                allv[b] = allv[b - 1];
                allv[b - 1] = tv;
            }
        nh[q] = m < k ? m : k;
        for (int r = 0; r < nh[q]; r++) {
            hits[q * k + r] = all[r];
            var[q * k + r] = allv[r];
        }
    }
    free(all);
    free(allv);
    free(f->hits);
    free(f->nhits);
    f->hits = hits;
    f->nhits = nh;
    f->variant = var;
    return 0;
}

static int search_pdq(ctx *c, const query *qs, int nq, family *f, cs_err *err) {
    *f = (family){.name = "pdq", .bits = 256, .max_dist = c->max_dist};
    int per = c->dihedral ? CS_PDQ_NDIHEDRAL : 1, nc = nq * per;
    uint64_t *q = malloc(sizeof(uint64_t) * 4 * (size_t)nc);
    if (!q) return cs_fail(err, CS_ENOMEM, "index query: out of memory");
    for (int i = 0; i < nq; i++)
        for (int d = 0; d < per; d++) /* the plain hash for the identity, as without --dihedral */
            cs_hamming_pack_pdq(d == 0 ? qs[i].h.pdq : qs[i].dih[d].hash, q + 4 * (i * per + d));
    int rc = search_family(c, f, c->db.pdq, 4, q, nc, err);
    free(q);
    if (!rc && c->dihedral) rc = merge_dihedral(c, f, nq, err);
    return rc;
}

/* which: 0 phash, 1 dhash, 2 ahash */
static int search_hash64(ctx *c, const query *qs, int nq, int which, family *f, cs_err *err) {
    static const char *names[] = {"phash", "dhash", "ahash"};
    const uint64_t *codes = which == 0 ? c->db.phash : which == 1 ? c->db.dhash : c->db.ahash;
    *f = (family){.name = names[which], .bits = 64, .max_dist = BITS64_SHARE(c->max_dist)};
    uint64_t *q = malloc(sizeof(uint64_t) * (size_t)nq);
    if (!q) return cs_fail(err, CS_ENOMEM, "index query: out of memory");
    for (int i = 0; i < nq; i++)
        q[i] = which == 0 ? qs[i].h.phash : which == 1 ? qs[i].h.dhash : qs[i].h.ahash;
    int rc = search_family(c, f, codes, 1, q, nq, err);
    free(q);
    return rc;
}

/* Whether the column has an approximate index (index/ann.h). */
static int ann_exists(cs_store *s, const char *column) {
    char *p = cs_ann_path(s, column);
    int ok = p && access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* Embedding neighbours for each embedder with a column: the queries are decoded
 * again (their hashes were computed from images already freed). */
static int search_embeddings(ctx *c, const query *qs, int nq, const char *spec, cs_err *err) {
    char **cols = NULL;
    int ncols = 0;
    if (cs_embed_columns(c->store, &cols, &ncols, err)) return -1;
    const char *specs[2];
    int ns = 0;
    for (int i = 0; i < ncols; i++)
        if (!strcmp(cols[i], "tiny") && !(spec && !strcmp(spec, "tiny"))) specs[ns++] = "tiny";
    if (spec) specs[ns++] = spec;
    for (int i = 0; i < ncols; i++) free(cols[i]);
    free(cols);
    int rc = 0;
    for (int e = 0; e < ns && !rc; e++) {
        cs_embedder *em;
        if (cs_embedder_open(&em, c->store, specs[e], err)) return -1;
        int dim = cs_embedder_dim(em);
        emb_family *f = &c->emb[c->nemb++];
        f->column = strdup(cs_embedder_column(em));
        f->ids = malloc(sizeof(int64_t) * (size_t)nq * (size_t)c->k);
        f->scores = malloc(sizeof(float) * (size_t)nq * (size_t)c->k);
        float *q = malloc(sizeof(float) * (size_t)nq * (size_t)dim);
        if (!f->column || !f->ids || !f->scores || !q) rc = cs_fail(err, CS_ENOMEM, "index query: out of memory");
        for (int i = 0; i < nq && !rc; i++) {
            cs_image img;
            if ((rc = cs_image_load(&img, qs[i].path, NULL, err))) break;
            rc = cs_embedder_describe(em, &img, 1, q + (size_t)i * dim, err);
            cs_image_free(&img);
        }
        if (!rc && c->approx && (e == ns - 1 || ann_exists(c->store, f->column))) {
            /* the asked column must have an index; the always-listed tiny uses its own if any */
            cs_ann_search_opts ao = {.nprobe = c->nprobe};
            rc = cs_ann_search_store(c->store, f->column, q, nq, dim, c->k, &ao, f->ids, f->scores, err);
            f->approx = !rc;
        } else if (!rc) {
            rc = cs_embed_search(c->store, f->column, q, nq, dim, c->k, f->ids, f->scores, err);
        }
        if (!rc && c->normalize) { /* the asked column must have a set; others use theirs if any */
            int applied = cs_bg_normalize(c->store, em, q, nq, c->k, f->ids, f->scores, e == ns - 1, err);
            rc = applied < 0 ? -1 : 0;
            f->normalized = applied > 0;
        }
        free(q);
        cs_embedder_free(em);
    }
    return rc;
}

/* ---- output ---- */

/* Source and caption of a reference (pointers valid until the next call). */
static void ref_info(ctx *c, int64_t ref_id, const char **source, const char **caption) {
    cs_ref_lookup_get(c->refs, ref_id, source, caption);
}

static void print_query(ctx *c, const query *q, int qi, const family *fams, int nf) {
    char hex[65];
    cs_pdq_hex(q->h.pdq, hex);
    printf("%s\n  pdq %s  quality %d%s\n", q->path, hex, q->h.pdq_quality,
           q->h.pdq_quality < CS_PDQ_MIN_QUALITY ? "  (low quality: matches unreliable)" : "");
    for (int f = 0; f < nf; f++) {
        const family *fa = &fams[f];
        int n = fa->nhits[qi];
        printf("  %s (distance <= %d of %d)%s\n", fa->name, fa->max_dist, fa->bits,
               n ? ":" : ": no reference within the threshold");
        for (int r = 0; r < n; r++) {
            const cs_hamming_hit *h = &fa->hits[qi * c->k + r];
            const char *src, *cap;
            int64_t id = c->db.ref_ids[h->index];
            ref_info(c, id, &src, &cap);
            printf("    %3d  ref %lld  %s", h->dist, (long long)id, src);
            if (cap) printf("  \"%s\"", cap);
            if (f == 0 && c->db.pdq_quality[h->index] < CS_PDQ_MIN_QUALITY)
                printf("  (low quality %d)", c->db.pdq_quality[h->index]);
            if (fa->variant && fa->variant[qi * c->k + r])
                printf("  [query %s]", cs_pdq_dihedral_names[fa->variant[qi * c->k + r]]);
            printf("\n");
        }
    }
    const cs_an_neighbours *z = fused_of(c, q->path);
    if (z && !z->error) {
        printf("  fused (the analysis's ranking: verdict, then z = -log10 of the chance that an unrelated\n"
               "  pair scores as well; the analysis would say %s%s%s):\n",
               cs_verdict_name(z->verdict), z->rule[0] ? " by " : "", z->rule);
        for (int r = 0; r < z->n && r < c->k; r++) {
            const char *src, *cap;
            ref_info(c, z->ref_id[r], &src, &cap);
            printf("    z %7.2f  %-9s  ref %lld  %s", z->fused[r], cs_verdict_name(z->nb_verdict[r]),
                   (long long)z->ref_id[r], src);
            if (z->share[r] > 0) printf("  (local share %.2f)", z->share[r]);
            printf("\n");
        }
    }
    for (int e = 0; e < c->nemb; e++) {
        const emb_family *f = &c->emb[e];
        printf("  %s embedding (%s, higher is closer%s):\n", f->column,
               f->normalized ? "cosine minus the background set's bias" : "cosine",
               f->approx ? "; approximate index" : "");
        for (int r = 0; r < c->k && f->ids[qi * c->k + r] >= 0; r++) {
            const char *src, *cap;
            int64_t id = f->ids[qi * c->k + r];
            ref_info(c, id, &src, &cap);
            printf("    %.4f  ref %lld  %s", f->scores[qi * c->k + r], (long long)id, src);
            if (cap) printf("  \"%s\"", cap);
            printf("\n");
        }
    }
}

static cJSON *json_query(ctx *c, const query *q, int qi, const family *fams, int nf) {
    cJSON *o = cJSON_CreateObject();
    char hex[65], h64[17];
    cJSON_AddStringToObject(o, "file", q->path);
    cs_pdq_hex(q->h.pdq, hex);
    cJSON_AddStringToObject(o, "pdq", hex);
    cJSON_AddNumberToObject(o, "pdq_quality", q->h.pdq_quality);
    cJSON_AddBoolToObject(o, "low_quality", q->h.pdq_quality < CS_PDQ_MIN_QUALITY);
    cs_hash64_hex(q->h.phash, h64);
    cJSON_AddStringToObject(o, "phash", h64);
    cs_hash64_hex(q->h.dhash, h64);
    cJSON_AddStringToObject(o, "dhash", h64);
    cs_hash64_hex(q->h.ahash, h64);
    cJSON_AddStringToObject(o, "ahash", h64);
    cJSON *m = cJSON_AddObjectToObject(o, "neighbours");
    for (int f = 0; f < nf; f++) {
        const family *fa = &fams[f];
        cJSON *fo = cJSON_AddObjectToObject(m, fa->name);
        cJSON_AddNumberToObject(fo, "bits", fa->bits);
        cJSON_AddNumberToObject(fo, "max_distance", fa->max_dist);
        cJSON *arr = cJSON_AddArrayToObject(fo, "hits");
        for (int r = 0; r < fa->nhits[qi]; r++) {
            const cs_hamming_hit *h = &fa->hits[qi * c->k + r];
            const char *src, *cap;
            int64_t id = c->db.ref_ids[h->index];
            ref_info(c, id, &src, &cap);
            cJSON *ho = cJSON_CreateObject();
            cJSON_AddNumberToObject(ho, "ref_id", (double)id);
            cJSON_AddNumberToObject(ho, "distance", h->dist);
            cJSON_AddStringToObject(ho, "source", src);
            if (cap) cJSON_AddStringToObject(ho, "caption", cap);
            else cJSON_AddNullToObject(ho, "caption");
            if (f == 0) {
                cJSON_AddNumberToObject(ho, "pdq_quality", c->db.pdq_quality[h->index]);
                cJSON_AddBoolToObject(ho, "low_quality",
                                      c->db.pdq_quality[h->index] < CS_PDQ_MIN_QUALITY);
            }
            if (fa->variant)
                cJSON_AddStringToObject(ho, "query_transform",
                                        cs_pdq_dihedral_names[fa->variant[qi * c->k + r]]);
            cJSON_AddItemToArray(arr, ho);
        }
    }
    const cs_an_neighbours *z = fused_of(c, q->path);
    if (z && !z->error) {
        cJSON *fo = cJSON_AddObjectToObject(m, "fused");
        cJSON_AddStringToObject(fo, "verdict", cs_verdict_name(z->verdict));
        cJSON_AddStringToObject(fo, "rule", z->rule);
        cJSON *arr = cJSON_AddArrayToObject(fo, "hits");
        for (int r = 0; r < z->n && r < c->k; r++) {
            const char *src, *cap;
            ref_info(c, z->ref_id[r], &src, &cap);
            cJSON *ho = cJSON_CreateObject();
            cJSON_AddNumberToObject(ho, "ref_id", (double)z->ref_id[r]);
            cJSON_AddNumberToObject(ho, "fused", z->fused[r]);
            cJSON_AddStringToObject(ho, "verdict", cs_verdict_name(z->nb_verdict[r]));
            cJSON_AddNumberToObject(ho, "local_share", z->share[r]);
            if (isfinite(z->d_al[r])) cJSON_AddNumberToObject(ho, "tl2_aligned", z->d_al[r]);
            else cJSON_AddNullToObject(ho, "tl2_aligned");
            if (z->pdq[r] >= 0) cJSON_AddNumberToObject(ho, "pdq", z->pdq[r]);
            else cJSON_AddNullToObject(ho, "pdq");
            cJSON_AddStringToObject(ho, "source", src);
            cJSON_AddItemToArray(arr, ho);
        }
    }
    for (int e = 0; e < c->nemb; e++) {
        const emb_family *f = &c->emb[e];
        cJSON *fo = cJSON_AddObjectToObject(m, f->column);
        cJSON_AddStringToObject(fo, "metric", "cosine");
        cJSON_AddBoolToObject(fo, "normalized", f->normalized);
        cJSON_AddStringToObject(fo, "search", f->approx ? "approximate" : "exact");
        cJSON *arr = cJSON_AddArrayToObject(fo, "hits");
        for (int r = 0; r < c->k && f->ids[qi * c->k + r] >= 0; r++) {
            const char *src, *cap;
            int64_t id = f->ids[qi * c->k + r];
            ref_info(c, id, &src, &cap);
            cJSON *ho = cJSON_CreateObject();
            cJSON_AddNumberToObject(ho, "ref_id", (double)id);
            cJSON_AddNumberToObject(ho, "score", f->scores[qi * c->k + r]);
            cJSON_AddStringToObject(ho, "source", src);
            if (cap) cJSON_AddStringToObject(ho, "caption", cap);
            else cJSON_AddNullToObject(ho, "caption");
            cJSON_AddItemToArray(arr, ho);
        }
    }
    return o;
}

/* ---- the command ---- */

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *e;
    long v = strtol(s, &e, 10);
    if (!*s || *e || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Options into c, *db, *embedder; -1 to go on, else the exit status. */
static int parse_args(ctx *c, int argc, char **argv, const char **db, const char **embedder) {
    static const struct option opts[] = {{"k", required_argument, 0, 'k'},
                                         {"max-distance", required_argument, 0, 'm'},
                                         {"json", no_argument, 0, 'J'},
                                         {"db", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {"embedder", required_argument, 0, 'E'},
                                         {"normalize", no_argument, 0, 'N'},
                                         {"dihedral", no_argument, 0, 'D'},
                                         {"approx", no_argument, 0, 'A'},
                                         {"nprobe", required_argument, 0, 'P'},
                                         {"no-fused", no_argument, 0, 'F'},
                                         {0, 0, 0, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "hk:", opts, NULL)) != -1) {
        switch (o) {
        case 'k':
            if (parse_int(optarg, 1, 100000, &c->k))
                return cli_usage_error("index query: --k wants an integer 1..100000, not '%s'", optarg);
            break;
        case 'm':
            if (parse_int(optarg, 0, 256, &c->max_dist))
                return cli_usage_error("index query: --max-distance wants 0..256, not '%s'", optarg);
            break;
        case 'J': c->json = 1; break;
        case 'D': c->dihedral = 1; break;
        case 'A': c->approx = 1; break;
        case 'P':
            if (parse_int(optarg, 1, 1000000, &c->nprobe))
                return cli_usage_error("index query: --nprobe wants an integer >= 1, not '%s'", optarg);
            break;
        case 'd': *db = optarg; break;
        case 'E': *embedder = optarg; break;
        case 'N': c->normalize = 1; break;
        case 'F': c->no_fused = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_hint("index query");
        }
    }
    if (c->nprobe && !c->approx) return cli_usage_error("index query: --nprobe needs --approx");
    if (optind >= argc) {
        return cli_usage_error("index query: no images given"), cli_usage_hint("index query");
    }
    return -1;
}

/* Every image in command-line order; a failed one as {file, error}. */
static void print_json(ctx *c, const query *qs, int nq, const query *good, const family *fams, int nf) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0, gi = 0; i < nq; i++) {
        if (qs[i].ok) {
            cJSON_AddItemToArray(arr, json_query(c, &good[gi], gi, fams, nf));
            gi++;
        } else {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "file", qs[i].path);
            cJSON_AddStringToObject(e, "error", qs[i].error ? qs[i].error : "failed");
            cJSON_AddItemToArray(arr, e);
        }
    }
    char *s = cJSON_Print(arr);
    if (s) puts(s);
    free(s);
    cJSON_Delete(arr);
}

static int search_hashes(ctx *c, const query *good, int ng, family *fams, int *nf, cs_err *err) {
    *nf = 0;
    return search_pdq(c, good, ng, &fams[(*nf)++], err) || search_hash64(c, good, ng, 0, &fams[(*nf)++], err) ||
                   search_hash64(c, good, ng, 1, &fams[(*nf)++], err) ||
                   search_hash64(c, good, ng, 2, &fams[(*nf)++], err)
               ? -1
               : 0;
}

/* Under mpirun: the rows any family's top-k holds, gathered to rank 0
 * (cli_mpi_gather_hash_rows); the families are freed for the search again. */
static int fan_in(ctx *c, family *fams, int *nf, int ng, int failed, cs_err *err) {
    uint8_t *used = calloc((size_t)(c->db.n > 0 ? c->db.n : 1), 1);
    for (int f = 0; used && !failed && f < *nf; f++)
        for (int q = 0; q < ng; q++)
            for (int r = 0; r < fams[f].nhits[q]; r++) used[fams[f].hits[q * c->k + r].index] = 1;
    for (int f = 0; f < 4; f++) {
        free(fams[f].hits);
        free(fams[f].nhits);
        free(fams[f].variant);
        memset(&fams[f], 0, sizeof fams[f]);
    }
    *nf = 0;
    if (cs_mpi_any(failed || !used)) {
        free(used);
        return failed ? -1 : cs_fail(err, CS_ENOMEM, "index query: out of memory");
    }
    int rc = cli_mpi_gather_hash_rows(&c->db, used, err);
    free(used);
    return rc;
}

int cmd_index_query(int argc, char **argv) {
    ctx c = {.k = 5, .max_dist = CS_PDQ_MATCH_DISTANCE};
    const char *db = NULL, *embedder = NULL;
    int prc = parse_args(&c, argc, argv, &db, &embedder);
    if (prc >= 0) return prc;
    if (!db) db = cli_default_db();
    cs_err err = {0};
    /* CS_MPI_TIMINGS=1: the fan-out's merge beside the whole batch (docs/SCALE.md) */
    double tm[4] = {cs_now_s(), 0, 0, 0};
    if (cs_store_open_indexed(&c.store, db, 0, &err)) return cli_fail(&err);
    int nq = argc - optind, rc = CLI_OK, nf = 0;
    query *qs = calloc((size_t)nq, sizeof *qs);
    family fams[4];
    memset(fams, 0, sizeof fams);
    if (!qs) {
        cs_fail(&err, CS_ENOMEM, "index query: out of memory");
        rc = cli_fail(&err);
        goto out;
    }
    /* under mpirun: each rank its own shard (cli/cli_mpi.h); --dihedral reads the union on rank 0 */
    int64_t total = 0;
    int fan = cs_mpi_size() > 1 && !c.dihedral ? cli_mpi_shard_hash_db(c.store, &c.db, &total, &err) : 0;
    if (!fan && cs_mpi_rank() > 0) goto out;
    if (fan < 0 || (!fan && cs_hash_db_load(c.store, &c.db, &err)) || cs_ref_lookup_open(&c.refs, c.store, &err)) {
        rc = cli_fail(&err);
        goto out;
    }
    if (!fan) total = c.db.n;
    for (int i = 0; i < nq; i++) qs[i].path = argv[optind + i];
    if (hash_queries(qs, nq, c.dihedral)) rc = CLI_FAIL;
    /* the good queries, packed */
    query *good = malloc(sizeof *good * (size_t)nq);
    int ng = 0;
    if (!good) {
        cs_fail(&err, CS_ENOMEM, "index query: out of memory");
        rc = cli_fail(&err);
        goto out;
    }
    for (int i = 0; i < nq; i++)
        if (qs[i].ok) good[ng++] = qs[i];
    tm[1] = cs_now_s();
    int bad = ng && search_hashes(&c, good, ng, fams, &nf, &err);
    tm[2] = cs_now_s();
    if (fan) { /* the shards' candidates to rank 0, which searches them again */
        if (fan_in(&c, fams, &nf, ng, bad, &err) || cs_mpi_rank() > 0) {
            free(good);
            rc = cs_mpi_rank() > 0 ? CLI_OK : cli_fail(&err);
            goto out;
        }
        bad = ng && search_hashes(&c, good, ng, fams, &nf, &err);
    }
    tm[3] = cs_now_s();
    if (bad) {
        free(good);
        rc = cli_fail(&err);
        goto out;
    }
    if (ng && search_embeddings(&c, good, ng, embedder, &err)) {
        free(good);
        rc = cli_fail(&err);
        goto out;
    }
    if (ng && !c.no_fused && c.db.n > 0) { /* the analysis's ranking, recording nothing */
        cs_analyze_opts ao = {0};
        char **paths = malloc(sizeof(char *) * (size_t)ng);
        for (int i = 0; paths && i < ng; i++) paths[i] = (char *)good[i].path;
        ao.image_dirs = paths;
        ao.n_dirs = ng;
        cs_an_settings_default(&ao.set);
        int frc = !paths || cs_analyze_neighbours(c.store, &ao, &c.fz, &c.nfz, &err);
        free(paths);
        if (frc) {
            if (!paths) cs_fail(&err, CS_ENOMEM, "index query: out of memory");
            free(good);
            rc = cli_fail(&err);
            goto out;
        }
    }
    if (c.json) {
        print_json(&c, qs, nq, good, fams, nf);
    } else {
        if (total == 0) printf("(the index at %s holds no hashed references)\n", db);
        for (int i = 0; i < ng; i++) print_query(&c, &good[i], i, fams, nf);
    }
    free(good);
out:
    for (int f = 0; f < 4; f++) {
        free(fams[f].hits);
        free(fams[f].nhits);
        free(fams[f].variant);
    }
    for (int e = 0; e < c.nemb; e++) {
        free(c.emb[e].column);
        free(c.emb[e].ids);
        free(c.emb[e].scores);
    }
    for (int i = 0; qs && i < nq; i++) free(qs[i].error);
    free(qs);
    cs_analyze_neighbours_free(c.fz, c.nfz);
    cs_ref_lookup_close(c.refs);
    cs_hash_db_free(&c.db);
    cs_store_close(c.store);
    const char *tv = getenv("CS_MPI_TIMINGS");
    if (tv && *tv == '1' && cs_mpi_rank() == 0 && tm[3] > 0) {
        double all = cs_now_s() - tm[0];
        fprintf(stderr, "index query: %d queries, %d ranks: open+load+hash %.3f s, search %.3f s, merge (gather + "
                "search of the candidates) %.3f s = %.1f%% of %.3f s\n", nq, cs_mpi_size(), tm[1] - tm[0],
                tm[2] - tm[1], tm[3] - tm[2], all > 0 ? 100 * (tm[3] - tm[2]) / all : 0.0, all);
    }
    return rc;
}
