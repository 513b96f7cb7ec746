/* clique.c — near-duplicate cliques among a prompt's generations (clique.h). */
#include "analyze/clique.h"

#include <stdlib.h>
#include <string.h>

enum { BLK = 256 };

int cs_cliques_adjacency(uint8_t *adj, const float *prep, const float *n2, int64_t n,
                         const cs_tl2_cfg *cfg, float delta, cs_err *err) {
    const int D = cs_tl2_dim(cfg), T = cs_tl2_tiles(cfg);
    float *work = malloc(sizeof(float) * BLK * BLK), *dm = malloc(sizeof(float) * BLK * BLK);
    if (!work || !dm) {
        free(work);
        free(dm);
        return cs_fail(err, CS_ENOMEM, "cliques: out of memory");
    }
    memset(adj, 0, (size_t)(n * n));
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        int64_t ni = n - i0 < BLK ? n - i0 : BLK;
        for (int64_t j0 = i0; j0 < n; j0 += BLK) { /* upper triangle of blocks, mirrored */
            int64_t nj = n - j0 < BLK ? n - j0 : BLK;
            cs_tl2_block(dm, nj, NULL, prep + i0 * D, n2 + i0 * T, ni, prep + j0 * D, n2 + j0 * T, nj,
                         work, cfg);
            for (int64_t a = 0; a < ni; a++)
                for (int64_t b = 0; b < nj; b++) {
                    int64_t i = i0 + a, j = j0 + b;
                    if (i == j || dm[a * nj + b] > delta) continue;
                    adj[i * n + j] = adj[j * n + i] = 1;
                }
        }
    }
    free(work);
    free(dm);
    return 0;
}

void cs_cliques_adjacency_scalar(uint8_t *adj, const float *prep, int64_t n, const cs_tl2_cfg *cfg,
                                 float delta) {
    const int D = cs_tl2_dim(cfg);
    memset(adj, 0, (size_t)(n * n));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++)
            if (cs_tl2_pair(NULL, prep + i * D, prep + j * D, cfg) <= delta)
                adj[i * n + j] = adj[j * n + i] = 1;
}

void cs_cliques_free(cs_cliques *c) {
    if (!c) return;
    free(c->start);
    free(c->members);
    free(c->clique_of);
    memset(c, 0, sizeof *c);
}

static const int64_t *g_deg;
static int by_degree(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (g_deg[x] != g_deg[y]) return g_deg[x] > g_deg[y] ? -1 : 1;
    return (x > y) - (x < y);
}

int cs_cliques_find(cs_cliques *out, const float *prep, const float *n2, int64_t n,
                    const cs_tl2_cfg *cfg, float delta, cs_err *err) {
    memset(out, 0, sizeof *out);
    size_t m = n > 0 ? (size_t)n : 1;
    uint8_t *adj = malloc(m * m);
    int64_t *deg = calloc(m, sizeof *deg), *order = malloc(m * sizeof *order);
    out->clique_of = malloc(m * sizeof *out->clique_of);
    out->members = malloc(m * sizeof *out->members);
    out->start = malloc((m + 1) * sizeof *out->start);
    if (!adj || !deg || !order || !out->clique_of || !out->members || !out->start) {
        free(adj);
        free(deg);
        free(order);
        cs_cliques_free(out);
        return cs_fail(err, CS_ENOMEM, "cliques: out of memory for %lld generations", (long long)n);
    }
    if (n > 0 && cs_cliques_adjacency(adj, prep, n2, n, cfg, delta, err)) {
        free(adj);
        free(deg);
        free(order);
        cs_cliques_free(out);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        out->clique_of[i] = -1;
        order[i] = i;
        for (int64_t j = 0; j < n; j++) deg[i] += adj[i * n + j];
        out->edges += deg[i];
    }
    out->edges /= 2;
    g_deg = deg; /* qsort has no context argument; this module is not re-entrant across threads */
    qsort(order, (size_t)n, sizeof *order, by_degree);
    int64_t nm = 0;
    out->start[0] = 0;
    for (int64_t oi = 0; oi < n; oi++) {
        int64_t v = order[oi];
        if (out->clique_of[v] >= 0 || deg[v] == 0) continue;
        int64_t first = nm;
        out->members[nm++] = v;
        for (int64_t oj = 0; oj < n; oj++) { /* neighbours by degree */
            int64_t u = order[oj];
            if (u == v || out->clique_of[u] >= 0 || !adj[v * n + u]) continue;
            int ok = 1;
            for (int64_t p = first; p < nm && ok; p++) ok = adj[out->members[p] * n + u];
            if (ok) out->members[nm++] = u;
        }
        if (nm - first < 2) { /* all its neighbours were taken */
            nm = first;
            continue;
        }
        for (int64_t p = first; p < nm; p++) out->clique_of[out->members[p]] = out->n_cliques;
        out->start[++out->n_cliques] = nm;
    }
    free(adj);
    free(deg);
    free(order);
    return 0;
}
