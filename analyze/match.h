/* match.h — per generation, the nearest references under every descriptor
 * the index holds, and an exact refinement of the candidates they propose.
 *
 * Pipeline for a batch of generations (cs_an_match_batch):
 *  1. candidates: top cand_k by tiled L2 (the image and its mirror; exact
 *     sgemm scan when the index has <= full_scan_max references), by the
 *     8x8 colour layout (robust to crops and shifts), by PDQ / pHash / dHash
 *     Hamming distance (image and mirror), and by embedding cosine when the
 *     caller supplies embedding hits;
 *  2. refinement of every candidate on the thumbnails: tiled L2 as is and
 *     mirrored, then (align = 1) the minimum over crops of the reference of
 *     100..75% of its side at 9 positions, mirrored or not — a crop of a
 *     training image is still a copy of it; per-tile distances at the best
 *     alignment; hash distances to that reference;
 *  3. Gu et al.'s ratio test: d1 / d2 over the two best distinct candidates;
 *  4. the verdict (analyze/verdict.h) of every candidate; the finding is the
 *     most severe one.
 * Rows ("row") index the cs_an_refs arrays; ids[row] is refs.id. */
#ifndef CS_AN_MATCH_H
#define CS_AN_MATCH_H

#include <stdint.h>

#include "analyze/lf_part.h"
#include "analyze/lf_verify.h"
#include "analyze/settings.h"
#include "core/err.h"
#include "core/image.h"
#include "index/hashes.h"
#include "index/tiled_l2.h"

#define CS_AN_K 16         /* max entries of a per-descriptor top list */
#define CS_AN_MAXCAND 64   /* max candidates refined per generation */
#define CS_AN_LAYOUT 8     /* colour layout side (8x8x3 = 192 floats) */
#define CS_AN_ALIGN_TOP 4  /* the first 4 of each descriptor's list get the alignment search */
#define CS_AN_NB 5         /* neighbours (candidates) kept per generation, by fused rank */
#define CS_AN_LFK 8        /* geometrically verified local-feature hits kept per generation */

/* The reference side, built once per analysis. Owns every array. */
typedef struct {
    int64_t n;
    int64_t *ids;        /* [n] refs.id */
    int has_thumbs;      /* 0: hashes/embeddings only (no pixel evidence) */
    int scan;            /* n <= full_scan_max: tl2/lay hold every reference prepared for the
                            exact sgemm scans; else candidates come from hashes/embeddings and
                            are prepared on the fly from the thumbnails */
    uint8_t *thumbs;     /* [n][S*S*3] */
    int thumbs_borrowed; /* thumbs belongs to the caller (cs_an_refs_build_borrow) */
    float *tl2, *tl2_n2; /* [n][S*S*3] prepared (unit), [n][tiles] */
    float *lay, *lay_n2; /* [n][192] colour layout, [n][1] */
    int has_hashes;      /* 1 when hashes were attached */
    uint64_t *pdq;       /* [n][4]: the 32 PDQ bytes packed for index/hamming.h */
    int16_t *pdq_q;      /* [n] PDQ quality, -1 = no hashes for this reference */
    uint64_t *phash, *dhash;
    cs_tl2_cfg cfg;
    /* analyze/fine_ref.h's cs_fine_refs (the references' sources), set by
     * analyze.c after the build: the pixel rules' part veto (part_al,
     * analyze/an_part.h) at the working resolution; NULL: at 64 px only */
    void *fine;
} cs_an_refs;

/* Copies ids and thumbnails (CS_THUMB_SIZE square RGB) and prepares them.
 * grid comes from the settings. n = 0 is allowed (an empty index). thumbs
 * NULL: an index without thumbnails (too large to hold them, e.g. the
 * 1,000,000-reference bench): candidates and verdicts from hashes and
 * embeddings only. */
int cs_an_refs_build(cs_an_refs *r, int64_t n, const int64_t *ids, const uint8_t *thumbs,
                     const cs_an_settings *s, cs_err *err);
/* The same, taking the thumbnails instead of copying them (the reference
 * thumbnails are the analysis's largest allocation: 12 KiB per reference):
 * *thumbs (malloc'd, or NULL) becomes r->thumbs, freed by cs_an_refs_free,
 * or is freed on failure; *thumbs is set to NULL either way. */
int cs_an_refs_build_take(cs_an_refs *r, int64_t n, const int64_t *ids, uint8_t **thumbs,
                          const cs_an_settings *s, cs_err *err);
/* The same, using the caller's thumbnails in place (e.g. the memory mapping
 * of index/refs.h): they must outlive r and are not freed by it. */
int cs_an_refs_build_borrow(cs_an_refs *r, int64_t n, const int64_t *ids, const uint8_t *thumbs,
                            const cs_an_settings *s, cs_err *err);
/* Attaches hashes: h[i] for refs.id hid[i] (any order, m rows); references
 * without a row keep pdq_q = -1 and are skipped by the hash scans. */
int cs_an_refs_set_hashes(cs_an_refs *r, const int64_t *hid, const cs_hashes *h, int64_t m,
                          cs_err *err);
void cs_an_refs_free(cs_an_refs *r);

/* One generation, as the matcher sees it. */
typedef struct {
    uint8_t thumb[64 * 64 * 3]; /* area-resized like the references' thumbnails */
    int img_w, img_h;           /* the image's size (0: square), for the derotated views */
    int has_hashes;
    cs_hashes h, hm;            /* hashes of the image and of its mirror image */
    /* optional embedding hits supplied by the caller (rows into cs_an_refs) */
    int n_emb;
    int32_t emb_row[CS_AN_K];
    float emb_cos[CS_AN_K];
    int emb_calibrated;         /* 1: embed_near is calibrated for these cosines (index/embed.h:
                                 * cs_embedder_calibrated); 0: they rank, the verdict ignores them */
    /* optional local-feature hits supplied by the caller: the references
     * whose keypoints verified geometrically (analyze/lf_verify.h), by
     * share of verified keypoints descending; log10_nfa1 already holds the
     * number of false alarms over every test made (analyze.c adds them) */
    int n_lf;
    int32_t lf_row[CS_AN_LFK];
    cs_lfv_match lf[CS_AN_LFK];
    /* set by the local-feature stage (an_local.c), which has the decoded
     * image: hit k's part measurement at the working resolution
     * (analyze/fine_ref.h; fine = CS_FINE_OK), or why not (fine) */
    cs_lfp lf_part[CS_AN_LFK];
    /* the generation's file (analyze.c, after cs_an_query_init), re-read
     * for part_al at the working resolution; NULL: unknown (64 px) */
    const char *src;
} cs_an_query;

/* Thumbnail (and, when want_hashes, hashes of the image and its mirror). */
int cs_an_query_init(cs_an_query *q, const cs_image *img, int want_hashes, cs_err *err);

/* Rotated copies (issue 13: "rotation within +-15 degrees tolerated"). A
 * picture rotated by a with its canvas grown (the usual "rotate, expand")
 * holds the original, turned, at its centre, and fill in the corners; the
 * tiled L2 of 64 px thumbnails sees the corners and the turn and misses it.
 * The generation is also compared derotated: its thumbnail turned back by
 * each angle of cs_an_rot_deg and the original's rectangle cut from the
 * centre (cs_an_derotate), in the tiled-L2 scan (the hits of the views join
 * the as-is list, each reference at its smallest distance) and in the
 * refinement (an alignment: d_al, never d_id, cs_an_refine). The
 * angles are +-7.5 and +-12.5 degrees: every angle in 5..15 is within 2.5
 * degrees of one of them, and 0..5 within 3.75 of 0 or 7.5 (2.5 degrees move
 * a 64 px thumbnail's corner by 1.4 px, a tenth of a 16 px tile); a view
 * counts only where it matches better than as is. */
#define CS_AN_NROT 4
extern const float cs_an_rot_deg[CS_AN_NROT];

/* out (64x64 RGB): thumb (64x64, the area-resized image of img_w x img_h;
 * 0: square) turned back by deg degrees, the rectangle the original had
 * before a rotation by deg with the canvas grown, stretched to 64x64 as its
 * own thumbnail would be. Returns -1 (out untouched) where no such rectangle
 * exists (an image too elongated for the angle). */
int cs_an_derotate(uint8_t *out, const uint8_t *thumb, int img_w, int img_h, float deg);
/* the map of cs_an_derotate: a point (x, y) of the derotated thumbnail
 * (continuous px, 0..64) is (m[0] x + m[1] y + m[2], m[3] x + m[4] y + m[5])
 * of the generation's thumbnail; -1 where no rectangle exists */
int cs_an_derotate_map(double m[6], int img_w, int img_h, float deg);

typedef struct {
    int32_t row;
    float score;
} cs_an_hit;

/* Everything measured between a generation and one candidate reference. */
typedef struct {
    int32_t row;
    float d_id;          /* tiled L2, best of as-is and mirrored */
    int id_mirrored;
    float d_rot;         /* tiled L2 of the best derotated view (cs_an_derotate), INFINITY: not tried */
    float rot_deg;       /* its angle (degrees), 0: none */
    float d_al;          /* tiled L2 at the best alignment (<= d_id) */
    int al_mirrored;
    float box[3];        /* reference crop of the best alignment: x0, y0, side (px) */
    float tile_d[CS_TL2_MAX_TILES]; /* per-tile L2 at the best alignment */
    int best_tile, worst_tile;
    int tiles_informative, tiles_matched;
    int tiles_content;   /* tiles informative in the reference or in the generation (the partial rule's denominator) */
    int pdq, phash, dhash; /* Hamming (best of mirror), -1 = no hashes */
    int pdq_q_ref;
    float emb_cos;       /* -2 = no embedding score for this pair */
    int emb_calibrated;  /* the query's emb_calibrated: embed_near may count emb_cos */
    cs_lfv_match lf;     /* local-feature verification (inliers 0: none for this pair) */
    cs_lfp part_al;      /* replaced part after the pixel alignment (box), analyze/lf_part.h; cells 0: not measured */
    cs_lfp part_lf;      /* ... after the verified local-feature geometry */
    int ambiguous;       /* CS_AN_AMBIG_*: another, distinct reference is as close (cs_an_mark_ambiguous) */
    int verdict;
    const char *rule;    /* the setting that decided the verdict ("copy_tl2", ...) */
} cs_an_cand;

/* 1 when c's aligned distance d_al is its derotated view's */
int cs_an_cand_derotated(const cs_an_cand *c);

enum { CS_AN_AMBIG_TL2 = 1, CS_AN_AMBIG_TILES = 2 };

/* One neighbour of a generation: every descriptor's score for the pair and
 * the fused score (analyze/fuse.h: z = -log10 of the chance an unrelated
 * pair scores as well; the larger of the local-feature and PDQ z). */
typedef struct {
    int32_t row;
    int verdict;
    const char *rule;
    float d_id, d_al;    /* tiled L2 (INFINITY without thumbnails) */
    int pdq, phash, dhash;
    float emb_cos;       /* -2: none */
    float lf_share;      /* 0: no verified local features */
    int lf_inliers;
    float lf_coverage;
    float z_local, z_pdq, fused;
    float d_rot, rot_deg; /* the best derotated view's tiled L2 and angle (INFINITY, 0: not tried) */
} cs_an_nb;

typedef struct {
    /* per-descriptor top lists, best first (rows into cs_an_refs) */
    cs_an_hit tl2[CS_AN_K];   int n_tl2;   /* tiled L2: the smallest of as-is/mirrored and derotated
                                            * (the evidence's tl2 and tl2_derotated), ascending */
    cs_an_hit lay[CS_AN_K];   int n_lay;   /* colour layout RMS, ascending */
    cs_an_hit pdq[CS_AN_K];   int n_pdq;   /* Hamming, ascending */
    cs_an_hit phash[CS_AN_K]; int n_phash;
    cs_an_hit dhash[CS_AN_K]; int n_dhash;
    cs_an_hit emb[CS_AN_K];   int n_emb;   /* cosine, descending */
    cs_an_hit lf[CS_AN_LFK];  int n_lf;    /* share of reference keypoints verified, descending */
    int gen_pdq_quality;      /* -1 without hashes */
    /* the finding */
    int has_best;
    cs_an_cand best;          /* most severe candidate (ties: smallest d_al) */
    float d2;                 /* second-best distinct candidate's d_al (INFINITY if none) */
    int32_t second_row;
    float ratio;              /* best.d_al / d2 (0 when d2 is infinite) */
    int ratio_pass;           /* ratio < ratio_max and d_al <= ratio_tl2 */
    int verdict;
    float severity;           /* verdict level + closeness in [0, 1) */
    int n_cand;
    cs_an_nb nb[CS_AN_NB];    /* the candidates ranked as the finding is chosen (verdict, fused
                                 score, aligned tiled L2 within ratio_tl2, verified inliers below
                                 significance, aligned tiled L2: match.c cmp_ranked), best first */
    int n_nb;
} cs_an_result;

/* Merges a generation's as-is and mirrored top-k lists (ia/da, ib/db: k
 * entries each, rows < 0 skipped) into out[*nout <= k], ascending, each row
 * once at its smaller score; k is clamped to CS_AN_K. */
void cs_an_merge_topk(cs_an_hit *out, int *nout, int k, const int32_t *ia, const float *da,
                      const int32_t *ib, const float *db);

/* Matches nq generations against the references (threads for the non-BLAS
 * parts; <= 0 = cs_threads()). res[nq] is filled. */
int cs_an_match_batch(const cs_an_refs *r, const cs_an_query *q, int64_t nq,
                      const cs_an_settings *s, int threads, cs_an_result *res, cs_err *err);

/* Verification of the candidates elsewhere (cli/cmd_mpi_analyze.c: on the
 * rank that owns each reference). Between the scans and the verdicts of a
 * batch, pend[i] holds generation i's candidates: cand[m].row, emb_cos and lf
 * set, align[m] whether it gets the alignment search. */
typedef struct {
    cs_an_cand *cand;
    int nc;
    uint8_t align[CS_AN_MAXCAND];
} cs_an_pending;
/* Must verify every pending candidate as cs_an_verify does (res[i] holds the
 * generation's lists and gen_pdq_quality). */
typedef int (*cs_an_verify_fn)(void *ctx, const cs_an_query *q, int64_t nq, const cs_an_result *res,
                               cs_an_pending *pend, cs_err *err);
/* cs_an_match_batch with the verification done by verify (NULL: here). */
int cs_an_match_batch_v(const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s, int threads,
                        cs_an_result *res, cs_an_verify_fn verify, void *verify_ctx, cs_err *err);
/* The scans alone, for a process that holds a shard of the references
 * (cli/cmd_mpi_analyze.c: each rank scans its own, rank 0 merges). A
 * batch's raw lists: CS_AN_NLIST lists (tiled L2, layout, PDQ, pHash, dHash)
 * x 2nq queries (2i: generation i as is, 2i + 1: mirrored) x k hits, at
 * raw[(l * 2nq + j) * k + t], ordered by (score, row) as cs_tl2_topk and
 * cs_hamming_topk order them, empty {-1, INFINITY} last. Both scans give a
 * reference the same score and place whatever else is scanned, so the
 * merge of the shards' lists is the whole index's list exactly; hash hits
 * on references without hashes keep their place and are dropped after the
 * merge, as in one process. k <= CS_AN_K. */
#define CS_AN_NLIST 5
enum { CS_AN_SCAN_PIX = 1, CS_AN_SCAN_HASH = 2 };
/* The scans a batch against the whole index r runs with s (0 when r is
 * empty): tiled L2 and layout when r->n <= full_scan_max (whether or not r
 * holds the prepared floats), hashes when r has them. */
int cs_an_scan_what(const cs_an_refs *r, const cs_an_settings *s);
int64_t cs_an_raw_len(int64_t nq, int k); /* entries of a batch's raw lists */
void cs_an_raw_clear(cs_an_hit *raw, int64_t nq, int k);
/* Merges nlists sorted lists of k (src) into acc, keeping the best k. */
void cs_an_raw_merge(cs_an_hit *acc, const cs_an_hit *src, int64_t nlists, int k);
/* Scans rows [lo, hi) of r (what: CS_AN_SCAN_*, less what r lacks) and
 * merges the hits into raw, each row reported as grow[row] (NULL: row);
 * grow must ascend (ties then break as they would in the whole index). */
int cs_an_scan_rows(const cs_an_refs *r, int64_t lo, int64_t hi, const int32_t *grow, const cs_an_query *q,
                    int64_t nq, int k, int what, int threads, cs_an_hit *raw, cs_err *err);
/* Fills raw (cleared) with the whole index's lists for the scans in what. */
typedef int (*cs_an_scan_fn)(void *ctx, const cs_an_query *q, int64_t nq, int k, int what, cs_an_hit *raw,
                             cs_err *err);
/* cs_an_match_batch_v with the scans done by scan (NULL: here); r is the
 * whole index all the same (its row count, hash qualities and, for the
 * rivals, thumbnails), though it need not hold the prepared floats when scan
 * is set (built with full_scan_max < 0: verification then prepares each
 * candidate's, the same floats). */
int cs_an_match_batch_sv(const cs_an_refs *r, const cs_an_query *q, int64_t nq, const cs_an_settings *s, int threads,
                         cs_an_result *res, cs_an_scan_fn scan, void *scan_ctx, cs_an_verify_fn verify,
                         void *verify_ctx, cs_err *err);
#define CS_AN_Q16 (64 / 4 * 64 / 4 * 3) /* floats of a 16 px prepared thumbnail */
/* A generation's prepared thumbnail and mirror (cs_tl2_dim(cfg) floats each,
 * NULL: skipped) and both at 16 px (q16: 2 * CS_AN_Q16 floats). */
void cs_an_query_prep(float *qid, float *qmir, float *q16, const cs_an_query *q, const cs_tl2_cfg *cfg);
/* One candidate (c->row, emb_cos and lf set) refined and given both verdicts,
 * the replaced-part veto included where it decides (analyze/an_part.h), as
 * cs_an_match_batch does; r needs only hold the candidate's row. */
void cs_an_verify(cs_an_cand *c, const cs_an_refs *r, int do_align, const float *qid, const float *qmir,
                  const float *q16, const cs_an_query *q, int gen_pdq_quality, const cs_an_settings *s);

/* Refines one candidate (exposed for tests and completion audits). qid/qmir:
 * the generation's prepared thumbnail and its mirror (r->cfg); q16id/q16mir
 * the same at 16 px (cs_an_prep16), for the coarse alignment search (NULL:
 * no alignment). do_align: search crops/shifts (when s->align). */
void cs_an_refine(cs_an_cand *c, const cs_an_refs *r, int32_t row, const float *qid,
                  const float *qmir, const float *q16id, const float *q16mir, int do_align,
                  const cs_an_query *q, const cs_an_settings *s);
/* 16 px prepared form of a 64 px thumbnail (16*16*3 floats). */
/* Lowe's ratio test (2004 s7.1, 0.8 = CS_LFV_RATIO) one level up, for the
 * pixel rules near_tl2 and partial_min_tiles: a candidate is ambiguous when
 * another candidate whose reference is a distinct picture (the two
 * references further apart than near_tl2) is about as close (its aligned
 * distance within 1/0.8 of this one's; for tiles, at least 0.8 of the matched
 * tiles). A template shared by a family of references (a page, a folder) or
 * a twin drawn in another colour fits several of them alike; a copy fits its
 * source clearly best. Sets cand[].ambiguous and re-runs both verdict rules
 * on the candidates it changes. */
void cs_an_mark_ambiguous(cs_an_cand *cand, int nc, const cs_an_refs *r, int gen_pdq_quality,
                          const cs_an_settings *s);

void cs_an_prep16(float *out, const uint8_t *thumb, const cs_tl2_cfg *cfg);

/* Renders the crop box (x0, y0, side in pixels) of an S x S RGB image back to
 * S x S by bilinear sampling (the inverse of "crop, then resize"). */
void cs_an_render_crop(uint8_t *out, const uint8_t *rgb, int S, float x0, float y0, float side);

#endif
