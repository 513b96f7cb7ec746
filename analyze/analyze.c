/* analyze.c — `copyscope analyze` as stages over one an_state (see
 * analyze.h for what it does, analyze_internal.h for the state and the
 * other files). cs_analyze_run at the end is the whole flow. */
#include "analyze/analyze.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analyze_internal.h"
#include "analyze/clique.h"
#include "core/image.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "core/sorted.h"
#include "index/background.h"
#include "index/knn.h"

/* ---- helpers of the stages ---- */

typedef struct {
    items *it;
    int64_t off;
    cs_an_query *q;     /* item i's query is q[i - qoff] */
    int64_t qoff;
    int want_hashes;
    cs_image *imgs;     /* [AN_CHUNK] kept for the embedder, or NULL */
    int read_params;
    cs_progress *prog;
} dec_ctx;

static void decode_one(void *vctx, int64_t j, int thread) {
    (void)thread;
    dec_ctx *c = vctx;
    int64_t i = c->off + j;
    item *x = &c->it->v[i];
    cs_err err = {0};
    cs_image img = {0};
    if (cs_image_load(&img, x->path, NULL, &err) ||
        cs_an_query_init(&c->q[i - c->qoff], &img, c->want_hashes && !x->old, &err)) {
        x->error = strdup(err.msg[0] ? err.msg : "cannot decode");
        cs_image_free(&img);
        cs_progress_add(c->prog, 1);
        return;
    }
    x->ok = 1;
    c->q[i - c->qoff].src = x->path; /* re-read for part_al at 256 px (an_part.h) */
    x->img_w = img.w;
    x->img_h = img.h;
    if (c->read_params) {
        char *txt = NULL;
        if (cs_png_read_text(x->path, "parameters", &txt, &err) == 0 && txt) {
            cs_parse_a1111(txt, &x->prompt, &x->seed);
            free(txt);
        }
    }
    if (c->imgs) c->imgs[j] = img;
    else cs_image_free(&img);
    cs_progress_add(c->prog, 1);
}

static int want(const char *list, const char *name) {
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !strncmp(p, name, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int check_descriptors(const char *list, const holds *h, const char *db, cs_err *err) {
    if (!list) return 0;
    char have[512] = "";
    size_t hl = 0;
    if (h->tl2) hl += (size_t)snprintf(have + hl, sizeof have - hl, "tl2,layout,");
    if (h->hashes) hl += (size_t)snprintf(have + hl, sizeof have - hl, "pdq,phash,dhash,");
    for (int i = 0; i < h->n_emb && hl < sizeof have; i++)
        hl += (size_t)snprintf(have + hl, sizeof have - hl, "%s,", h->emb[i]);
    if (hl && hl < sizeof have) have[hl - 1] = 0;
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(l < 63 ? l : 63), p);
        if (l > 0 && !want(have[0] ? have : "", name))
            return cs_fail(err, CS_EUSAGE, "%s: the index has no '%s' descriptor (it holds: %s)", db, name,
                           have[0] ? have : "nothing");
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int cmp_prompt(const void *a, const void *b) {
    const item *x = *(item *const *)a, *y = *(item *const *)b;
    if (x->prompt_id != y->prompt_id) return x->prompt_id < y->prompt_id ? -1 : 1;
    return x->gen_id < y->gen_id ? -1 : x->gen_id > y->gen_id;
}

/* Cliques per prompt among the decoded generations; fills item.clique*. */
static int find_cliques(item **by_prompt, int64_t n, const cs_an_query *q, const item *base,
                        const cs_tl2_cfg *cfg, float delta, cs_err *err) {
    const int D = cs_tl2_dim(cfg), T = cs_tl2_tiles(cfg);
    for (int64_t a = 0; a < n;) {
        int64_t b = a;
        while (b < n && by_prompt[b]->prompt_id == by_prompt[a]->prompt_id) b++;
        /* files without a prompt (--images, no PNG parameters) share no prompt with any other */
        int64_t m = 0;
        for (int64_t j = a; j < b; j++) m += !by_prompt[j]->no_prompt;
        if (m >= 2 && m < b - a) { /* those with a prompt first, each part in its order */
            item **tmp = malloc(sizeof(item *) * (size_t)(b - a));
            if (!tmp) return cs_fail(err, CS_ENOMEM, "cliques: out of memory");
            int64_t k = 0;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t j = a; j < b; j++)
                    if (by_prompt[j]->no_prompt == pass) tmp[k++] = by_prompt[j];
            memcpy(by_prompt + a, tmp, sizeof(item *) * (size_t)(b - a));
            free(tmp);
        }
        if (m >= 2) {
            float *p = malloc(sizeof(float) * D * m), *n2 = malloc(sizeof(float) * T * m);
            if (!p || !n2) {
                free(p);
                free(n2);
                return cs_fail(err, CS_ENOMEM, "cliques: out of memory");
            }
            for (int64_t j = 0; j < m; j++)
                cs_tl2_prepare(p + j * D, n2 + j * T, q[by_prompt[a + j] - base].thumb, cfg);
            cs_cliques c;
            int rc = cs_cliques_find(&c, p, n2, m, cfg, delta, err);
            free(p);
            free(n2);
            if (rc) return -1;
            for (int64_t j = 0; j < m; j++) {
                item *x = by_prompt[a + j];
                int64_t g = c.clique_of[j];
                if (g < 0) continue;
                x->clique = g;
                x->clique_size = c.start[g + 1] - c.start[g];
                x->clique_seed = by_prompt[a + c.members[c.start[g]]]->gen_id;
            }
            cs_cliques_free(&c);
        }
        a = b;
    }
    return 0;
}

static int64_t row_of_id(const cs_an_refs *r, int64_t id) { return cs_sorted_find(r->ids, 8, r->n, id); }

/* Embeds every readable image under dir with e: *out [*n][dim], caller frees. */
static int embed_background(cs_embedder *e, const char *dir, int threads, float **out, int64_t *n,
                            cs_err *err) {
    items bg = {0};
    char *dirs[1] = {(char *)dir};
    *out = NULL;
    *n = 0;
    if (an_list_images(dirs, 1, &bg, err)) {
        an_items_free(&bg);
        return -1;
    }
    const int dim = cs_embedder_dim(e);
    float *v = malloc(sizeof(float) * (size_t)(bg.n ? bg.n : 1) * dim);
    cs_image *imgs = calloc(AN_CHUNK, sizeof(cs_image));
    cs_an_query *q = malloc(sizeof(cs_an_query) * AN_CHUNK);
    int rc = -1;
    if (!v || !imgs || !q) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    for (int64_t off = 0; off < bg.n; off += AN_CHUNK) {
        int64_t m = bg.n - off < AN_CHUNK ? bg.n - off : AN_CHUNK;
        dec_ctx dc = {.it = &bg, .off = off, .q = q, .qoff = off, .want_hashes = 0, .imgs = imgs};
        cs_parallel_for(threads, m, decode_one, &dc);
        cs_image batch[AN_CHUNK];
        int nb = 0;
        for (int64_t j = 0; j < m; j++)
            if (bg.v[off + j].ok) batch[nb++] = imgs[j];
        int bad = nb > 0 && cs_embedder_describe(e, batch, nb, v + *n * dim, err);
        for (int64_t j = 0; j < m; j++) cs_image_free(&imgs[j]);
        if (bad) goto out;
        *n += nb;
    }
    if (*n == 0) {
        cs_fail(err, CS_ENOTFOUND, "%s: no readable images for the background set", dir);
        goto out;
    }
    *out = v;
    v = NULL;
    rc = 0;
out:
    free(v);
    free(imgs);
    free(q);
    an_items_free(&bg);
    return rc;
}

/* ---- load: the reference side ---- */

/* Thumbnails, hashes and embedding columns of the index, prepared for the
 * matcher (refs); the descriptors asked for must all be there. */
int an_load_refs(an_state *A, cs_err *err) {
    cs_store *s = A->s;
    const cs_analyze_opts *o = A->o;
    if ((o->load_thumbs ? o->load_thumbs(o->match_ctx, s, &A->th, err) : cs_refs_load_thumbs(s, &A->th, err)) ||
        cs_hash_db_load(s, &A->hdb, err) ||
        cs_embed_columns(s, &A->h.emb, &A->h.n_emb, err))
        return -1;
    A->h.tl2 = A->th.n > 0;
    A->h.hashes = A->hdb.n > 0;
    if (check_descriptors(o->descriptors, &A->h, cs_store_path(s), err)) return -1;
    /* the mapped thumbnails are used in place; malloc'd ones are taken */
    cs_an_settings bs = *A->set;
    if (o->match && o->match_scans) bs.full_scan_max = -1; /* no prepared floats: o->match scans */
    if (A->th.map ? cs_an_refs_build_borrow(&A->refs, A->th.n, A->th.ids, A->th.rgb, &bs, err)
                  : cs_an_refs_build_take(&A->refs, A->th.n, A->th.ids, &A->th.rgb, &bs, err))
        return -1;
    A->use_hashes = A->h.hashes && want(o->descriptors, "pdq");
    if (!A->use_hashes) return 0;
    const cs_hash_db *hdb = &A->hdb;
    cs_hashes *hh = malloc(sizeof(cs_hashes) * (hdb->n ? hdb->n : 1));
    if (!hh) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    for (int64_t i = 0; i < hdb->n; i++) {
        memcpy(hh[i].pdq, hdb->pdq + i * 4, 32);
        hh[i].pdq_quality = hdb->pdq_quality[i];
        hh[i].phash = hdb->phash[i];
        hh[i].dhash = hdb->dhash[i];
        hh[i].ahash = hdb->ahash[i];
    }
    int rc = cs_an_refs_set_hashes(&A->refs, hdb->ref_ids, hh, hdb->n, err);
    free(hh);
    return rc;
}

/* The embedder (--embedder, else the index's "tiny" column) and the
 * background set its cosines are normalised with (--background, else the
 * column's stored set). */
static int load_embedder(an_state *A, cs_err *err) {
    const cs_analyze_opts *o = A->o;
    if (o->embedder) {
        if (cs_embedder_open(&A->emb, A->s, o->embedder, err)) return -1;
    } else {
        for (int i = 0; i < A->h.n_emb; i++)
            if (!strcmp(A->h.emb[i], "tiny") && want(o->descriptors, "tiny")) {
                if (cs_embedder_open(&A->emb, A->s, "tiny", err)) return -1;
                break;
            }
    }
    if (A->emb) A->emb_name = cs_embedder_column(A->emb);
    if (o->background) {
        if (!A->emb)
            return cs_fail(err, CS_EUSAGE, "%s: a background set needs an embedding column in the index "
                           "(copyscope index add --embedder tiny)", o->background);
        if (embed_background(A->emb, o->background, A->threads, &A->bgv, &A->nbg, err)) return -1;
        A->bgp = A->bgv;
        A->bg = (bg_info){"folder", o->background, A->nbg};
    } else if (A->emb) { /* the column's stored set (copyscope index background), when there is one */
        int have = cs_bg_open(&A->bgvs, A->s, A->emb, err);
        if (have < 0) return -1;
        if (have) {
            A->bgvs_open = 1;
            A->bgp = A->bgvs.vecs;
            A->nbg = A->bgvs.n;
            A->bg = (bg_info){A->nbg > 0 ? "stored" : NULL, A->bgvs.path, A->nbg};
        }
    }
    return 0;
}

static int stage_load_index(an_state *A, cs_err *err) {
    if (an_load_refs(A, err) || load_embedder(A, err)) return -1;
    /* part_al at 256 px (an_part.h) re-reads the generation's file
     * (cs_an_query.src) and the reference's source; under mpirun the ranks
     * get the paths with the queries and open their own (cli/cmd_mpi_analyze.c) */
    if (A->th.n > 0) {
        cs_fine_open(&A->fine, A->s);
        A->fine_open = 1;
        A->refs.fine = &A->fine;
    }
    if (want(A->o->descriptors, "local") && an_local_load(A, err)) return -1;
    cs_analyze_summary *sum = A->sum;
    size_t l = 0;
    char *d = sum->descriptors;
    if (A->th.n > 0) l += (size_t)snprintf(d + l, sizeof sum->descriptors - l, "tl2,layout,");
    if (A->use_hashes) l += (size_t)snprintf(d + l, sizeof sum->descriptors - l, "pdq,phash,dhash,");
    if (A->emb_name) l += (size_t)snprintf(d + l, sizeof sum->descriptors - l, "%s,", A->emb_name);
    if (A->lfx) l += (size_t)snprintf(d + l, sizeof sum->descriptors - l, "local,");
    if (l) d[l - 1] = 0;
    sum->n_refs = A->th.n;
    return 0;
}

/* ---- load: the generations ---- */

/* A completion audit compares the withheld region with every reference
 * (completion.c): where o->load_thumbs gave thumbnails that are filled in
 * per batch (copyscope-mpi), the refs get the whole index's instead, read
 * as one process reads them (the matcher sees refs.thumbs move off the
 * range it fills and leaves it alone). */
static int an_thumbs_whole(an_state *A, cs_err *err) {
    cs_ref_thumbs full;
    if (cs_refs_load_thumbs(A->s, &full, err)) return -1;
    int same = full.n == A->th.n && (full.n == 0 || !memcmp(full.ids, A->th.ids, sizeof *full.ids * (size_t)full.n));
    if (!same || !A->refs.thumbs_borrowed) {
        cs_ref_thumbs_free(&full);
        return same ? 0 : cs_fail(err, CS_EIO, "%s: references changed while reading thumbnails", cs_store_path(A->s));
    }
    cs_ref_thumbs_free_pixels(&A->th);
    A->th.rgb = full.rgb, A->th.map = full.map, A->th.map_len = full.map_len;
    full.rgb = NULL, full.map = NULL, full.map_len = 0;
    A->refs.thumbs = A->th.rgb;
    cs_ref_thumbs_free(&full);
    return 0;
}

/* The run's generations and completion tasks (only_new: marks the ones with
 * a finding, sets nothing_new when that is all of them), or every file
 * under the image folders. */
static int stage_load_generations(an_state *A, cs_err *err) {
    const cs_analyze_opts *o = A->o;
    items *it = &A->it;
    if (o->run_id > 0) {
        if (an_store_load_run(A->s, o->run_id, it, err) ||
            an_store_load_tasks(A->s, o->run_id, it, &A->tasks, &A->th, err))
            return -1;
        if (A->tasks.n && o->load_thumbs && !o->completion_audit && an_thumbs_whole(A, err)) return -1;
        if (it->n == 0) return cs_fail(err, CS_ENOTFOUND, "run %lld: no generations to analyse", (long long)o->run_id);
        if (o->only_new) {
            if (an_store_keep_old(A->s, o->run_id, it, A->emb_name, err)) return -1;
            A->sum->run_id = o->run_id;
            for (int64_t i = 0; i < it->n; i++) A->sum->n_kept += it->v[i].old;
            if (A->sum->n_kept == it->n) {
                A->nothing_new = 1;
                return 0;
            }
            an_drop_untouched_prompts(it);
        }
    } else { /* paths and prompts only: the rest is streamed slice by slice (stage_images) */
        if (an_list_images(o->image_dirs, o->n_dirs, it, err)) return -1;
        if (it->n == 0)
            return cs_fail(err, CS_ENOTFOUND, "%s: no files to analyse", o->n_dirs ? o->image_dirs[0] : "(none)");
        an_read_image_prompts(it, A->threads);
        A->streaming = 1;
        return 0;
    }
    A->q = calloc((size_t)it->n, sizeof *A->q);
    A->res = calloc((size_t)it->n, sizeof *A->res);
    if (!A->q || !A->res)
        return cs_fail(err, CS_ENOMEM, "analyze: out of memory for %lld generations", (long long)it->n);
    return 0;
}

/* ---- describe and search ---- */

/* Scratch of the embedding search of one chunk. */
typedef struct {
    int edim, ek;
    cs_image *imgs;  /* [AN_CHUNK] the decoded images, for the embedder */
    int mirror;      /* the embedder is not mirror-invariant: its mirror images are searched too */
    float *ev;       /* [2 AN_CHUNK][edim] their embeddings (rows nb.. 2nb: mirrored) */
    int64_t *eid;    /* [2 AN_CHUNK][CS_AN_K] the column's nearest ids */
    float *esc;      /* ... and cosines */
} emb_scratch;

/* One generation's candidates from its as-is and mirrored lists (k each,
 * minus each one's background bias): every reference once with the larger of
 * its two scores, the k best by (score, then id) in out. As the hashes take
 * the nearer of the query and its mirror (analyze/match.c). */
static int merge_mirrored(const int64_t *id, const float *sc, int k, int64_t *out_id, float *out_sc) {
    int64_t cid[2 * CS_AN_K];
    float csc[2 * CS_AN_K];
    int n = 0;
    for (int i = 0; i < 2 * k; i++) {
        if (id[i] < 0) continue;
        int j = 0;
        while (j < n && cid[j] != id[i]) j++;
        if (j == n) cid[n] = id[i], csc[n++] = sc[i];
        else if (sc[i] > csc[j]) csc[j] = sc[i];
    }
    for (int i = 1; i < n; i++) /* insertion sort: score descending, id ascending */
        for (int j = i; j > 0 && (csc[j] > csc[j - 1] || (csc[j] == csc[j - 1] && cid[j] < cid[j - 1])); j--) {
            int64_t ti = cid[j];
            float ts = csc[j];
            cid[j] = cid[j - 1], csc[j] = csc[j - 1], cid[j - 1] = ti, csc[j - 1] = ts;
        }
    if (n > k) n = k;
    memcpy(out_id, cid, (size_t)n * sizeof *out_id);
    memcpy(out_sc, csc, (size_t)n * sizeof *out_sc);
    return n;
}

/* search: embeds the chunk's decoded new generations, finds their nearest
 * references in the column, and hands them to the matcher as candidates
 * (cosine minus the background bias). */
static int search_embeddings(an_state *A, emb_scratch *e, int64_t off, int64_t n, cs_err *err) {
    cs_image batch[AN_CHUNK];
    int64_t idx[AN_CHUNK];
    int nb = 0, fail = 0;
    for (int64_t j = 0; j < n; j++)
        if (A->it.v[off + j].ok && !A->it.v[off + j].old) {
            batch[nb] = e->imgs[j];
            idx[nb++] = off + j;
        }
    const cs_analyze_opts *o = A->o;
    const int nv = e->mirror ? 2 * nb : nb; /* rows nb + b: generation b mirrored */
    if (nb > 0 && (cs_embedder_describe(A->emb, batch, nb, e->ev, err) ||
                   (e->mirror && cs_embedder_describe_mirror(A->emb, batch, nb, e->ev + (size_t)nb * e->edim, err)) ||
                   (o->embed_search ? o->embed_search(o->match_ctx, &A->refs, A->emb_name, e->ev, nv, e->edim, e->ek,
                                                      e->eid, e->esc, err)
                                    : cs_embed_search(A->s, A->emb_name, e->ev, nv, e->edim, e->ek, e->eid, e->esc,
                                                      err))))
        fail = 1;
    float bias[AN_CHUNK]; /* of the generation as is, for both orientations (the evidence's raw cosine) */
    memset(bias, 0, sizeof bias);
    if (!fail && A->nbg > 0 && nb > 0 &&
        cs_knn_background_bias(A->bgp, A->nbg, e->edim, e->ev, nb, A->threads, bias, err))
        fail = 1;
    for (int b = 0; b < nb && !fail; b++) {
        cs_an_query *qq = &A->q[idx[b]];
        item *x = &A->it.v[idx[b]];
        x->emb_bias = (float)A->set->sscd_beta * bias[b];
        qq->emb_calibrated = cs_embedder_calibrated(A->emb); /* may embed_near count these cosines */
        int64_t mid[2 * CS_AN_K];
        float msc[2 * CS_AN_K];
        int nm = e->ek;
        for (int k = 0; k < e->ek; k++) {
            mid[k] = e->eid[b * e->ek + k];
            msc[k] = e->esc[b * e->ek + k] - x->emb_bias;
            if (!e->mirror) continue;
            mid[e->ek + k] = e->eid[(nb + b) * e->ek + k];
            msc[e->ek + k] = e->esc[(nb + b) * e->ek + k] - x->emb_bias;
        }
        if (e->mirror) nm = merge_mirrored(mid, msc, e->ek, mid, msc);
        for (int k = 0; k < nm; k++) {
            int64_t id = mid[k];
            int64_t row = id >= 0 ? row_of_id(&A->refs, id) : -1;
            if (row < 0) continue;
            qq->emb_row[qq->n_emb] = (int32_t)row;
            qq->emb_cos[qq->n_emb++] = msc[k];
        }
    }
    return fail ? -1 : 0;
}

/* describe: decodes every generation into its query (thumbnail, hashes;
 * PNG parameters for --images), then search, chunk by chunk. */
static int stage_describe(an_state *A, cs_err *err) {
    items *it = &A->it;
    cs_progress *prog = A->streaming ? A->prog : A->o->progress ? cs_progress_start("decode", it->n, "img") : NULL;
    emb_scratch e = {0};
    int fail = 0;
    if (A->emb || A->lfx) e.imgs = calloc(AN_CHUNK, sizeof(cs_image)); /* kept for the embedder, local features */
    if ((A->emb || A->lfx) && !e.imgs) fail = cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    if (A->emb) {
        e.edim = cs_embedder_dim(A->emb);
        e.ek = (int)A->set->cand_k < CS_AN_K ? (int)A->set->cand_k : CS_AN_K;
        e.mirror = cs_embedder_mirrors(A->emb);
        e.ev = malloc(sizeof(float) * 2 * AN_CHUNK * e.edim);
        e.eid = malloc(sizeof(int64_t) * 2 * AN_CHUNK * CS_AN_K);
        e.esc = malloc(sizeof(float) * 2 * AN_CHUNK * CS_AN_K);
        if (!e.ev || !e.eid || !e.esc) fail = cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    }
    for (int64_t off = 0; off < it->n && !fail; off += AN_CHUNK) {
        int64_t n = it->n - off < AN_CHUNK ? it->n - off : AN_CHUNK;
        dec_ctx dc = {.it = it, .off = off, .q = A->q, .want_hashes = A->use_hashes, .imgs = e.imgs,
                      .read_params = A->o->run_id <= 0 && !A->streaming, .prog = prog};
        for (int64_t j = 0; j < n; j++) it->v[off + j].clique = -1;
        cs_parallel_for(A->threads, n, decode_one, &dc);
        if (A->emb && search_embeddings(A, &e, off, n, err)) fail = 1;
        if (!fail && A->lfx && an_local_search(A, e.imgs, off, n, err)) fail = 1;
        if (e.imgs)
            for (int64_t j = 0; j < n; j++) cs_image_free(&e.imgs[j]);
    }
    free(e.imgs);
    free(e.ev);
    free(e.eid);
    free(e.esc);
    if (!A->streaming) cs_progress_end(prog);
    return fail ? -1 : 0;
}

/* Counts the decoded and unreadable generations; none readable (and none
 * kept) is an error naming the first unreadable file. */
static int count_readable(an_state *A, int must_have_one, cs_err *err) {
    cs_analyze_summary *sum = A->sum;
    const item *bad = NULL;
    for (int64_t i = 0; i < A->it.n; i++) {
        const item *x = &A->it.v[i];
        if (x->old) continue;
        if (x->ok) sum->n_generations++;
        else {
            sum->n_skipped++;
            if (!bad) bad = x;
        }
    }
    if (must_have_one && sum->n_generations == 0 && !(A->o->only_new && sum->n_kept > 0))
        return cs_fail(err, CS_ENOTFOUND, "%s: no generations to analyse (%lld files could not be read, e.g. %s: %s)",
                       A->o->run_id > 0 ? "run" : A->o->image_dirs[0], (long long)sum->n_skipped,
                       bad ? bad->path : "?", bad && bad->error ? bad->error : "?");
    return 0;
}

/* The run (--images: recorded now), the analyses row and the skipped files. */
static int stage_record(an_state *A, cs_err *err) {
    const cs_analyze_opts *o = A->o;
    if (count_readable(A, 1, err)) return -1;
    A->sum->run_id = o->run_id;
    return an_store_begin_analysis(A, err);
}

/* ---- cliques ---- */

/* Near-duplicate cliques per prompt over the decoded generations (old ones
 * included), and the list of new ones to match, in prompt order. */
static int stage_cliques(an_state *A, cs_err *err) {
    items *it = &A->it;
    free(A->byp);
    free(A->pending);
    A->pending = NULL;
    A->byp = malloc(sizeof(item *) * (size_t)(it->n ? it->n : 1));
    if (!A->byp) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    A->nok = 0;
    for (int64_t i = 0; i < it->n; i++)
        if (it->v[i].ok) A->byp[A->nok++] = &it->v[i];
    qsort(A->byp, (size_t)A->nok, sizeof *A->byp, cmp_prompt);
    if (find_cliques(A->byp, A->nok, A->q, it->v, &A->refs.cfg, (float)A->set->clique_delta, err)) return -1;
    A->pending = malloc(sizeof(item *) * (size_t)(A->nok ? A->nok : 1));
    if (!A->pending) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    A->npending = 0;
    for (int64_t j = 0; j < A->nok; j++)
        if (!A->byp[j]->old) {
            A->byp[j]->res_i = A->npending;
            A->pending[A->npending++] = A->byp[j];
        }
    return 0;
}

/* ---- match: search, refine, decide (match.c), completions ---- */

/* The batch through the caller's matcher (cs_analyze_opts.match), else here. */
static int an_match(an_state *A, const cs_an_query *q, int64_t n, cs_an_result *res, cs_err *err) {
    const cs_analyze_opts *o = A->o;
    if (o->match) return o->match(o->match_ctx, &A->refs, q, n, A->set, A->threads, res, err);
    return cs_an_match_batch(&A->refs, q, n, A->set, A->threads, res, err);
}

/* Completion generations: the verdict is about the filled region, against
 * the original the task withheld it from (completion.h). */
static int stage_completions(an_state *A, item *const *cx, const cs_an_query *cq, cs_an_result *cr, int64_t n,
                             cs_err *err) {
    for (int64_t j = 0; j < n; j++) {
        item *x = cx[j];
        const an_task *t = x->task;
        if (!t || t->error) continue;
        uint8_t rw[CS_THUMB_SIZE * CS_THUMB_SIZE];
        if (!t->withheld)
            cs_an_region_from_rect(rw, t->rect, t->ref_w > 0 ? t->ref_w : x->img_w,
                                   t->ref_h > 0 ? t->ref_h : x->img_h);
        const uint8_t *wh = t->withheld ? t->withheld : rw;
        if (A->o->completion_audit) { /* the caller's (copyscope-mpi: over the ranks), the same audit */
            if (A->o->completion_audit(A->o->match_ctx, &x->comp, &A->refs, cq[j].thumb, t->orig_row, wh, A->set, err))
                return -1;
        } else
            cs_an_completion_audit(&x->comp, &A->refs, cq[j].thumb, t->orig_row, wh, A->set);
        x->audited = 1;
        cr[j].verdict = x->comp.verdict;
        float d = x->comp.verdict == CS_V_PARTIAL ? x->comp.d_other : x->comp.d_orig;
        cr[j].severity = (float)x->comp.verdict + 0.99f * (isfinite(d) && d < 1 ? 1 - d : 0);
    }
    return 0;
}

/* Chunk by chunk: match (candidates, refinement, verdicts), completion
 * audits, then the chunk's matches and findings written in one transaction
 * (an interrupted analysis keeps every finished chunk). */
static int stage_match_and_write(an_state *A, cs_err *err) {
    if (!A->w.ins_f && an_writer_open(A, err)) return -1; /* once: a streamed analysis comes here per slice */
    cs_progress *prog = A->o->progress && !A->streaming ? cs_progress_start("analyze", A->npending, "img") : NULL;
    /* a round: the batches one call of the caller's matcher takes (one without it) */
    int64_t round = (int64_t)AN_CHUNK * (A->o->match && A->o->match_batches > 1 ? A->o->match_batches : 1);
    cs_an_query *cq = malloc(sizeof(cs_an_query) * (size_t)round);
    int fail = !cq;
    if (!cq) cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    for (int64_t off = 0; off < A->npending && !fail; off += round) {
        int64_t n = A->npending - off < round ? A->npending - off : round;
        for (int64_t j = 0; j < n; j++) cq[j] = A->q[A->pending[off + j] - A->it.v];
        if (an_match(A, cq, n, A->res + off, err)) fail = 1;
        for (int64_t c = 0; c < n && !fail; c += AN_CHUNK) {
            int64_t m = n - c < AN_CHUNK ? n - c : AN_CHUNK;
            item *const *cx = A->pending + off + c;
            cs_an_result *cr = A->res + off + c;
            if (an_rt_judge(A, cx, cq + c, cr, m, err)) { fail = 1; break; } /* the model's own round trip of each candidate */
            if (stage_completions(A, cx, cq + c, cr, m, err)) { fail = 1; break; }
            if (an_store_write_chunk(A, cx, cr, m, err)) fail = 1;
            else cs_progress_add(prog, m);
        }
    }
    free(cq);
    cs_progress_end(prog);
    return fail ? -1 : 0;
}

/* ---- summarise ---- */

/* Adds item x (new: its result; old: what keep_old read) to its prompt's p
 * and the new ones to the summary's verdict counts. */
static void psum_add(psum *p, const item *x, const cs_an_result *res, cs_analyze_summary *sum) {
    p->n++;
    if (x->old) {
        p->count[x->old_verdict]++;
        if (x->old_dal < p->min_tl2) p->min_tl2 = x->old_dal;
        if (x->old_cos > p->max_cos) p->max_cos = x->old_cos;
    } else {
        const cs_an_result *r = &res[x->res_i];
        p->count[r->verdict]++;
        sum->count[r->verdict]++;
        if (r->verdict > sum->worst) sum->worst = r->verdict;
        if (r->has_best && r->best.d_al < p->min_tl2) p->min_tl2 = r->best.d_al;
        for (int k = 0; k < r->n_emb; k++)
            if (r->emb[k].score > p->max_cos) p->max_cos = r->emb[k].score;
    }
    if (x->has_whitebox) {
        p->wb_sum += x->whitebox;
        p->wb_n++;
    }
    if (x->clique >= 0 && x->clique_size > p->largest_clique) p->largest_clique = x->clique_size;
}

/* The per-prompt summaries of A->it (*ps by prompt id, malloc'd): the
 * decoded generations and (only_new) the kept ones that could not be
 * decoded. */
static int prompt_sums(an_state *A, psum **ps_out, int64_t *np_out, cs_err *err) {
    int64_t nsum = A->nok;
    item **byp = A->byp;
    for (int64_t i = 0; i < A->it.n; i++)
        if (A->it.v[i].old && !A->it.v[i].ok) byp[nsum++] = &A->it.v[i];
    qsort(byp, (size_t)nsum, sizeof *byp, cmp_prompt);
    psum *ps = calloc((size_t)(nsum ? nsum : 1), sizeof *ps);
    if (!ps) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    int64_t np = 0;
    for (int64_t j = 0; j < nsum; j++) {
        if (np == 0 || ps[np - 1].prompt_id != byp[j]->prompt_id) {
            ps[np].prompt_id = byp[j]->prompt_id;
            ps[np].min_tl2 = INFINITY;
            ps[np].max_cos = -2;
            np++;
        }
        psum_add(&ps[np - 1], byp[j], A->res, A->sum);
    }
    *ps_out = ps;
    *np_out = np;
    return 0;
}

/* Per-prompt summary over every generation of the prompt; then the
 * analysis is stamped finished. */
static int stage_summarise(an_state *A, cs_err *err) {
    psum *ps;
    int64_t np;
    if (prompt_sums(A, &ps, &np, err)) return -1;
    A->sum->n_prompts = np;
    int rc = an_store_finish(A, ps, np, err);
    free(ps);
    return rc;
}

/* ---- --images, streamed ---- */

/* b's counts into a (the same prompt, seen in another slice). */
static void psum_merge(psum *a, const psum *b) {
    a->n += b->n;
    for (int k = 0; k < 4; k++) a->count[k] += b->count[k];
    if (b->min_tl2 < a->min_tl2) a->min_tl2 = b->min_tl2;
    if (b->max_cos > a->max_cos) a->max_cos = b->max_cos;
    a->wb_sum += b->wb_sum;
    a->wb_n += b->wb_n;
    if (b->largest_clique > a->largest_clique) a->largest_clique = b->largest_clique;
}

/* Merges the sorted s[ns] into the sorted running summaries *all[*na]. */
static int psums_merge(psum **all, int64_t *na, const psum *s, int64_t ns, cs_err *err) {
    psum *m = malloc(sizeof(psum) * (size_t)(*na + ns + 1));
    if (!m) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    int64_t i = 0, j = 0, k = 0;
    while (i < *na || j < ns) {
        if (j >= ns || (i < *na && (*all)[i].prompt_id < s[j].prompt_id)) m[k++] = (*all)[i++];
        else if (i >= *na || s[j].prompt_id < (*all)[i].prompt_id) m[k++] = s[j++];
        else {
            m[k] = (*all)[i++];
            psum_merge(&m[k++], &s[j++]);
        }
    }
    free(*all);
    *all = m;
    *na = k;
    return 0;
}

/* The files of slice [idx[a], idx[b]) moved out of all into A->it. */
static int slice_take(an_state *A, items *all, const int64_t *idx, int64_t a, int64_t b, cs_err *err) {
    A->it.v = calloc((size_t)(b - a), sizeof(item));
    A->it.n = A->it.cap = b - a;
    A->q = calloc((size_t)(b - a), sizeof *A->q);
    A->res = calloc((size_t)(b - a), sizeof *A->res);
    if (!A->it.v || !A->q || !A->res) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    for (int64_t j = a; j < b; j++) {
        A->it.v[j - a] = all->v[idx[j]];
        item *x = &all->v[idx[j]]; /* owned by the slice now */
        x->path = x->prompt = x->error = NULL;
    }
    return 0;
}

/* The slice's files that could not be read, kept (path, error) until the end. */
typedef struct {
    char **path, **error;
    int64_t n, cap;
} skipped_list;

static int keep_skipped(skipped_list *k, items *it, cs_err *err) {
    for (int64_t i = 0; i < it->n; i++) {
        item *x = &it->v[i];
        if (x->ok) continue;
        if (k->n == k->cap) {
            int64_t c = k->cap ? k->cap * 2 : 64;
            char **np = realloc(k->path, sizeof(char *) * (size_t)c), **ne = np ? realloc(k->error, sizeof(char *) * (size_t)c) : NULL;
            if (np) k->path = np;
            if (ne) k->error = ne;
            if (!np || !ne) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
            k->cap = c;
        }
        k->path[k->n] = x->path;
        k->error[k->n++] = x->error;
        x->path = x->error = NULL;
    }
    return 0;
}

static void skipped_free(skipped_list *k) {
    for (int64_t i = 0; i < k->n; i++) {
        free(k->path[i]);
        free(k->error[i]);
    }
    free(k->path);
    free(k->error);
}

/* The slice in A->it: describe, record its generations (the run and the
 * analysis rows at the first readable file), cliques, match and write,
 * then its prompts' summaries added to *ps. Memory is the slice's. */
static int stage_images_slice(an_state *A, int64_t *np_rows, psum **ps, int64_t *nps, skipped_list *sk,
                              cs_err *err) {
    const cs_analyze_opts *o = A->o;
    if (stage_describe(A, err)) return -1;
    int64_t before = A->sum->n_generations;
    count_readable(A, 0, err);
    if (keep_skipped(sk, &A->it, err)) return -1;
    if (A->sum->n_generations == before) return 0; /* nothing readable in this slice */
    if (!A->sum->analysis_id) {
        if (cs_store_begin(A->s, err)) return -1;
        if (an_store_images_run_begin(A->s, o->image_dirs, o->n_dirs, &A->sum->run_id, err) ||
            cs_store_commit(A->s, err)) {
            cs_store_rollback(A->s);
            return -1;
        }
        items none = A->it; /* the analyses row; skipped files are added at the end */
        A->it.n = 0;
        int rc = an_store_begin_analysis(A, err);
        A->it = none;
        if (rc) return -1;
    }
    if (an_store_images_add(A->s, A->sum->run_id, &A->it, np_rows, err) || stage_cliques(A, err) ||
        stage_match_and_write(A, err))
        return -1;
    psum *s;
    int64_t ns;
    if (prompt_sums(A, &s, &ns, err)) return -1;
    int rc = psums_merge(ps, nps, s, ns, err);
    free(s);
    return rc;
}

/* --images: slices of whole prompt groups, one after the other, each freed
 * before the next (memory does not grow with the number of files); then
 * the skipped files and the prompt summaries, and the analysis finished. */
static int stage_images(an_state *A, cs_err *err) {
    items all = A->it;
    A->it = (items){0};
    int64_t *idx = NULL, *cut = NULL, nsl = 0, np_rows = 0, nps = 0;
    psum *ps = NULL;
    skipped_list sk = {0};
    int rc = -1;
    if (an_image_slices(&all, &idx, &cut, &nsl)) {
        cs_fail(err, CS_ENOMEM, "analyze: out of memory");
        goto out;
    }
    A->prog = A->o->progress ? cs_progress_start("analyze", all.n, "img") : NULL;
    for (int64_t k = 0; k < nsl; k++) {
        int fail = slice_take(A, &all, idx, cut[k], cut[k + 1], err) ||
                   stage_images_slice(A, &np_rows, &ps, &nps, &sk, err);
        an_items_free(&A->it);
        A->it = (items){0};
        free(A->q);
        free(A->res);
        A->q = NULL;
        A->res = NULL;
        if (fail) goto out;
    }
    if (!A->sum->analysis_id) { /* nothing could be read */
        cs_fail(err, CS_ENOTFOUND, "%s: no generations to analyse (%lld files could not be read, e.g. %s: %s)",
                A->o->image_dirs[0], (long long)A->sum->n_skipped, sk.n ? sk.path[0] : "?",
                sk.n && sk.error[0] ? sk.error[0] : "?");
        goto out;
    }
    A->sum->n_prompts = nps;
    if (an_store_add_skipped(A, sk.path, sk.error, sk.n, err) || an_store_finish(A, ps, nps, err)) goto out;
    rc = 0;
out:
    if (A->prog) cs_progress_end(A->prog);
    A->prog = NULL;
    skipped_free(&sk);
    free(ps);
    free(idx);
    free(cut);
    an_items_free(&all);
    return rc;
}

/* ---- the analysis ---- */

static void an_state_free(an_state *A) {
    an_rt_free(A);
    an_writer_close(&A->w);
    free(A->byp);
    free(A->pending);
    free(A->q);
    free(A->res);
    an_items_free(&A->it);
    an_tasks_free(&A->tasks);
    free(A->bgv);
    if (A->bgvs_open) cs_vecstore_close(&A->bgvs);
    cs_embedder_free(A->emb);
    an_local_free(A);
    for (int i = 0; i < A->h.n_emb; i++) free(A->h.emb[i]);
    free(A->h.emb);
    cs_an_refs_free(&A->refs);
    if (A->fine_open) cs_fine_close(&A->fine);
    cs_hash_db_free(&A->hdb);
    cs_ref_thumbs_free(&A->th);
}

int cs_analyze_run(cs_store *s, const cs_analyze_opts *o, cs_analyze_summary *sum, cs_err *err) {
    memset(sum, 0, sizeof *sum);
    sum->worst = -1;
    an_state A = {.s = s, .o = o, .set = &o->set, .threads = o->threads > 0 ? o->threads : cs_threads(),
                  .sum = sum};
    int rc = -1;
    if (stage_load_index(&A, err)) goto out;       /* load: thumbnails, hashes, embedder */
    if (stage_load_generations(&A, err)) goto out; /* load: the run's rows or the folders */
    if (A.nothing_new) {                           /* only_new with every finding kept */
        rc = 0;
        goto out;
    }
    if (A.streaming) {                             /* --images: all that follows, slice by slice */
        rc = stage_images(&A, err);
        goto out;
    }
    if (an_rt_open(&A, err)) goto out;             /* the run's model's autoencoder, if it has one */
    if (stage_describe(&A, err)) goto out;         /* describe + search: thumbnails, hashes, embedding kNN */
    if (stage_record(&A, err)) goto out;           /* the run (--images), analyses row, skipped files */
    if (stage_cliques(&A, err)) goto out;          /* near-duplicate cliques per prompt */
    if (stage_match_and_write(&A, err)) goto out;  /* refine, decide, completions; write findings */
    if (stage_summarise(&A, err)) goto out;        /* prompt_summary; the analysis finished */
    rc = 0;
out:
    an_state_free(&A);
    return rc;
}

/* ---- neighbours without recording (index query) ---- */

_Static_assert(CS_AN_NB == 5, "cs_an_neighbours holds CS_AN_NB neighbours");

static void neighbours_of(const an_state *A, const item *x, const cs_an_result *r, cs_an_neighbours *o) {
    o->path = strdup(x->path);
    o->verdict = r->verdict;
    o->rule = r->has_best ? r->best.rule : "";
    o->n = r->n_nb;
    for (int k = 0; k < r->n_nb; k++) {
        const cs_an_nb *nb = &r->nb[k];
        o->ref_id[k] = A->refs.ids[nb->row];
        o->nb_verdict[k] = nb->verdict;
        o->fused[k] = nb->fused;
        o->share[k] = nb->lf_share;
        o->d_al[k] = nb->d_al;
        o->pdq[k] = nb->pdq;
    }
}

int cs_analyze_neighbours(cs_store *s, const cs_analyze_opts *o, cs_an_neighbours **out, int64_t *nout, cs_err *err) {
    cs_analyze_summary sum;
    memset(&sum, 0, sizeof sum);
    an_state A = {.s = s, .o = o, .set = &o->set, .threads = o->threads > 0 ? o->threads : cs_threads(), .sum = &sum};
    *out = NULL;
    *nout = 0;
    int rc = -1;
    cs_an_query *cq = NULL;
    cs_an_result *cr = NULL;
    if (stage_load_index(&A, err) || stage_load_generations(&A, err)) goto out;
    if (A.streaming) { /* query files: few, described at once (no slices: nothing is recorded) */
        A.q = calloc((size_t)A.it.n, sizeof *A.q);
        A.res = calloc((size_t)A.it.n, sizeof *A.res);
        if (!A.q || !A.res) {
            cs_fail(err, CS_ENOMEM, "index query: out of memory for %lld files", (long long)A.it.n);
            goto out;
        }
    }
    if (stage_describe(&A, err)) goto out;
    cs_an_neighbours *v = calloc((size_t)A.it.n, sizeof *v);
    cq = malloc(sizeof(cs_an_query) * AN_CHUNK);
    cr = malloc(sizeof(cs_an_result) * AN_CHUNK);
    if (!v || !cq || !cr) {
        free(v);
        cs_fail(err, CS_ENOMEM, "index query: out of memory");
        goto out;
    }
    *out = v;
    *nout = A.it.n;
    for (int64_t off = 0; off < A.it.n; off += AN_CHUNK) {
        int64_t idx[AN_CHUNK], m = 0;
        for (int64_t i = off; i < A.it.n && i < off + AN_CHUNK; i++) {
            const item *x = &A.it.v[i];
            if (!x->ok) {
                v[i].path = strdup(x->path);
                v[i].error = strdup(x->error ? x->error : "cannot decode");
                v[i].rule = "";
                continue;
            }
            cq[m] = A.q[i];
            idx[m++] = i;
        }
        if (m && cs_an_match_batch(&A.refs, cq, m, A.set, A.threads, cr, err)) goto out;
        for (int64_t j = 0; j < m; j++) neighbours_of(&A, &A.it.v[idx[j]], &cr[j], &v[idx[j]]);
    }
    rc = 0;
out:
    if (rc) {
        cs_analyze_neighbours_free(*out, *nout);
        *out = NULL;
        *nout = 0;
    }
    free(cq);
    free(cr);
    an_state_free(&A);
    return rc;
}

void cs_analyze_neighbours_free(cs_an_neighbours *v, int64_t n) {
    for (int64_t i = 0; v && i < n; i++) {
        free(v[i].path);
        free(v[i].error);
    }
    free(v);
}
