/* clique.h — Carlini et al. 2023's generate-and-filter test among one
 * prompt's generations: a graph with an edge between two generations whose
 * tiled L2 (index/tiled_l2.h) is <= delta, and its cliques. A large clique
 * (>= k) means the model keeps producing the same image for the prompt:
 * memorisation, flagged even without the training data at hand.
 *
 * Distances come from blocked sgemm (cs_tl2_block, 256 x 256 blocks), the
 * graph is an n x n bit matrix. Cliques are found greedily: repeatedly take
 * the unassigned generation of highest degree and grow a clique with its
 * unassigned neighbours in order of degree, keeping a neighbour only if it is
 * adjacent to every member so far. Every reported group is a true clique
 * (all pairs within delta); its size is a lower bound on the maximum clique
 * (exact when near-duplicates form separate tight clusters, the case the
 * test is for; maximum clique is NP-hard in general). */
#ifndef CS_AN_CLIQUE_H
#define CS_AN_CLIQUE_H

#include <stdint.h>

#include "core/err.h"
#include "index/tiled_l2.h"

typedef struct {
    int64_t n_cliques;   /* groups of size >= 2, in the order found */
    int64_t *start;      /* [n_cliques + 1] offsets into members */
    int64_t *members;    /* item indices; the first member of each group is its seed, the
                            generation with the most near-duplicates (its representative) */
    int64_t *clique_of;  /* [n] group of each item, -1 when in none */
    int64_t edges;       /* pairs within delta */
} cs_cliques;

/* prep: [n][dim] prepared thumbnails (cs_tl2_prepare), n2: [n][tiles]. */
int cs_cliques_find(cs_cliques *out, const float *prep, const float *n2, int64_t n,
                    const cs_tl2_cfg *cfg, float delta, cs_err *err);
void cs_cliques_free(cs_cliques *c);

/* The same graph by a plain scalar O(n^2) loop of cs_tl2_pair (the anchor
 * of the bench; also the test's reference). adj: n*n bytes, caller's. */
void cs_cliques_adjacency_scalar(uint8_t *adj, const float *prep, int64_t n, const cs_tl2_cfg *cfg,
                                 float delta);
/* Adjacency by blocked sgemm into adj (n*n bytes), for comparison with the above. */
int cs_cliques_adjacency(uint8_t *adj, const float *prep, const float *n2, int64_t n,
                         const cs_tl2_cfg *cfg, float delta, cs_err *err);

#endif
