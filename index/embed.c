/* embed.c — embedder registry and filling the vector columns (see embed.h).
 *
 * Reads refs / ref_thumbs directly, in id order and in batches: the refs.h
 * loader holds every thumbnail in memory at once (12 KB each), which does not
 * scale to the millions of references a column is meant for. */
#include "index/embed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/nn.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "index/embed_internal.h"
#include "index/ingest_internal.h"
#include "index/knn.h"
#include "index/refs.h"
#include "index/resnet.h"
#include "index/tinydesc.h"
#include "index/vecstore.h"

enum { EMB_TINY, EMB_SSCD };

typedef struct {
    int kind;
    const char *column;            /* "tiny" / "sscd" */
    const cs_resnet_preproc *pp;   /* sscd */
    char *weights;                 /* sscd, malloc'd */
} emb_spec;

static int parse_spec(const char *spec, emb_spec *o, cs_err *err) {
    memset(o, 0, sizeof *o);
    if (!strcmp(spec, "tiny")) {
        o->kind = EMB_TINY, o->column = "tiny";
        return 0;
    }
    if (!strncmp(spec, "sscd", 4) && (spec[4] == ':' || spec[4] == '@')) {
        const char *p = spec + 4, *colon = strchr(p, ':');
        if (!colon || !colon[1])
            return cs_fail(err, CS_EUSAGE, "embedder %s: expected sscd[@PREPROC]:WEIGHTS.safetensors", spec);
        const char *ppname = CS_RESNET_PREPROC_DEFAULT;
        char buf[64];
        if (*p == '@') {
            size_t n = (size_t)(colon - p - 1);
            if (n >= sizeof buf) n = sizeof buf - 1;
            memcpy(buf, p + 1, n);
            buf[n] = 0;
            ppname = buf;
        }
        o->pp = cs_resnet_preproc_named(ppname);
        if (!o->pp)
            return cs_fail(err, CS_EUSAGE,
                           "embedder %s: unknown preprocessing '%s' (small_288, skew_320, skew_288, center_224)",
                           spec, ppname);
        o->kind = EMB_SSCD, o->column = "sscd";
        o->weights = strdup(colon + 1);
        if (!o->weights) return cs_fail(err, CS_ENOMEM, "out of memory");
        return 0;
    }
    return cs_fail(err, CS_EUSAGE, "unknown embedder '%s' (tiny, sscd:WEIGHTS.safetensors)", spec);
}

/* ---- the embedder object ---------------------------------------------------- */

struct cs_embedder {
    emb_spec spec;
    cs_tinydesc tiny;
    cs_resnet net;
    int dim;
};

static char *tiny_model_path(cs_store *s) { return cs_store_sidecar(s, "tinydesc.safetensors"); }

int cs_embedder_open(cs_embedder **out, cs_store *s, const char *spec, cs_err *err) {
    *out = NULL;
    cs_embedder *e = calloc(1, sizeof *e);
    if (!e) return cs_fail(err, CS_ENOMEM, "out of memory");
    if (parse_spec(spec, &e->spec, err)) {
        free(e);
        return -1;
    }
    int rc;
    if (e->spec.kind == EMB_TINY) {
        char *p = tiny_model_path(s);
        if (!p) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else if (access(p, F_OK))
            rc = cs_fail(err, CS_ENOTFOUND, "%s: missing: run 'copyscope index add --embedder tiny' first", p);
        else rc = cs_tiny_load(&e->tiny, p, err);
        free(p);
        e->dim = e->tiny.dim;
    } else {
        rc = cs_resnet_load(&e->net, e->spec.weights, err);
        e->dim = e->net.dim;
    }
    if (rc) {
        cs_embedder_free(e);
        return -1;
    }
    *out = e;
    return 0;
}

void cs_embedder_free(cs_embedder *e) {
    if (!e) return;
    cs_tiny_free(&e->tiny);
    cs_resnet_free(&e->net);
    free(e->spec.weights);
    free(e);
}

const char *cs_embedder_column(const cs_embedder *e) { return e->spec.column; }
int cs_embedder_dim(const cs_embedder *e) { return e->dim; }
const char *cs_embedder_weights(const cs_embedder *e) { return e->spec.weights; }

int cs_embedder_describe(cs_embedder *e, const cs_image *imgs, int n, float *out, cs_err *err) {
    /* SSCD: one image per forward pass. A row's bits depend on the batch it
     * is computed in (index/resnet_forward.c tiles a conv's columns by the
     * batch's size, and OpenBLAS rounds by shape): a reference embedded
     * beside 7 others and alone differed in the last bits, so the column
     * changed with the mix of a batch, i.e. with the rank count under
     * mpirun, a rerun's leftovers, or other inputs (tests/test_mpi_sscd.sh
     * fails at 2 ranks with batches of 8). Measured on 16 references:
     * 2.18-2.24 CPU-s in batches of 8, 2.20-2.25 one by one at -j 1
     * (2.20-2.32 / 2.32-2.34 at -j 2), load 12. The preprocessing still
     * runs over all n images on every thread. */
    if (e->spec.kind == EMB_SSCD) return cs_resnet_embed(&e->net, e->spec.pp, imgs, n, 1, out, err);
    const size_t tb = CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    uint8_t *th = malloc((size_t)(n ? n : 1) * tb);
    if (!th) return cs_fail(err, CS_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = cs_tiny_thumb(&imgs[i], th + (size_t)i * tb, err);
    if (!rc) rc = cs_tiny_describe(&e->tiny, th, n, out, err);
    free(th);
    return rc;
}

int cs_embedder_mirrors(const cs_embedder *e) { return e->spec.kind == EMB_TINY; }

int cs_embedder_calibrated(const cs_embedder *e) { return e->spec.kind == EMB_SSCD; }

int cs_embedder_describe_mirror(cs_embedder *e, const cs_image *imgs, int n, float *out, cs_err *err) {
    if (e->spec.kind != EMB_TINY) return cs_fail(err, CS_EUSAGE, "%s: no mirrored description", e->spec.column);
    /* the thumbnail's columns reversed: the thumbnail of the mirror image
     * (the area resize treats both directions alike), so a mirrored copy of
     * a reference gets the reference's own descriptor */
    const size_t tb = CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    uint8_t *th = malloc((size_t)(n ? n : 1) * tb);
    if (!th) return cs_fail(err, CS_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        uint8_t *t = th + (size_t)i * tb;
        if ((rc = cs_tiny_thumb(&imgs[i], t, err))) break;
        for (int y = 0; y < CS_THUMB_SIZE; y++)
            for (int x = 0; x < CS_THUMB_SIZE / 2; x++)
                for (int c = 0; c < 3; c++) {
                    uint8_t *a = t + ((size_t)y * CS_THUMB_SIZE + x) * 3 + c;
                    uint8_t *b = t + ((size_t)y * CS_THUMB_SIZE + CS_THUMB_SIZE - 1 - x) * 3 + c;
                    uint8_t v = *a;
                    *a = *b, *b = v;
                }
    }
    if (!rc) rc = cs_tiny_describe(&e->tiny, th, n, out, err);
    free(th);
    return rc;
}


/* ---- filling a column ------------------------------------------------------- */

static int count_ok(cs_store *s, int64_t *n, cs_err *err) {
    sqlite3_stmt *st;
    if (cs_store_prepare(s, &st, "SELECT count(*) FROM refs WHERE status = 'ok'", err)) return -1;
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : cs_store_fail(s, err, "count refs");
    *n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

/* Thumbnail blob of the current row's column col, or NULL if malformed. */
static const uint8_t *thumb_of(sqlite3_stmt *st, int col) {
    const void *b = sqlite3_column_blob(st, col);
    int len = sqlite3_column_bytes(st, col);
    return b && len == CS_THUMB_SIZE * CS_THUMB_SIZE * 3 ? b : NULL;
}

#define THUMB_SQL                                                                                  \
    "SELECT r.id, t.rgb FROM refs r JOIN ref_thumbs t ON t.ref_id = r.id "                         \
    "WHERE r.status = 'ok' AND t.w = 64 AND t.h = 64 ORDER BY r.id"
/* A rank's rows (ids in (?1, ?2]): its refs rows, each thumbnail a point
 * lookup (a sharded store's ref_thumbs goes to the one shard that holds the
 * id, where a join would scan every shard: core/shard_union.c). */
#define THUMB_RANGE_SQL                                                                            \
    "SELECT id, rgb FROM (SELECT r.id AS id, (SELECT t.rgb FROM ref_thumbs t WHERE t.ref_id = r.id " \
    "AND t.w = 64 AND t.h = 64) AS rgb FROM refs r WHERE r.status = 'ok' AND r.id > ?1 AND r.id <= ?2) " \
    "WHERE rgb IS NOT NULL ORDER BY id"
/* The ids THUMB_SQL lists, in its order (cs_embed_part_merge) */
#define THUMB_IDS_SQL                                                                              \
    "SELECT r.id, NULL FROM refs r JOIN ref_thumbs t ON t.ref_id = r.id "                          \
    "WHERE r.status = 'ok' AND t.w = 64 AND t.h = 64 AND r.id > ?1 AND r.id <= ?2 ORDER BY r.id"

/* Learns the tiny PCA from up to CS_TINY_MAX_TRAIN thumbnails spread evenly
 * over the index (ids first, then the chosen blobs). */
static int tiny_learn_from_store(cs_store *s, cs_tinydesc *m, cs_err *err) {
    sqlite3_stmt *st = NULL, *one = NULL;
    int64_t *ids = NULL, n = 0, cap = 0;
    uint8_t *th = NULL;
    int rc = -1;
    if (cs_store_prepare(s, &st, THUMB_SQL, err)) goto done;
    while (sqlite3_step(st) == SQLITE_ROW) { /* the blob column is never read here */
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            int64_t *t = realloc(ids, (size_t)cap * sizeof *ids);
            if (!t) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
            ids = t;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    int64_t m_n = n < CS_TINY_MAX_TRAIN ? n : CS_TINY_MAX_TRAIN;
    const size_t tb = CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    th = malloc((size_t)(m_n ? m_n : 1) * tb);
    if (!th) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
    if (cs_store_prepare(s, &one, "SELECT rgb FROM ref_thumbs WHERE ref_id = ?", err)) goto done;
    int64_t got = 0;
    for (int64_t i = 0; i < m_n; i++) {
        sqlite3_reset(one);
        sqlite3_bind_int64(one, 1, ids[m_n == n ? i : (int64_t)((double)i * n / m_n)]);
        if (sqlite3_step(one) != SQLITE_ROW) continue;
        const uint8_t *t = thumb_of(one, 0);
        if (t) memcpy(th + (size_t)got++ * tb, t, tb);
    }
    rc = cs_tiny_learn(m, th, got, err);
done:
    sqlite3_finalize(st);
    sqlite3_finalize(one);
    free(ids), free(th);
    return rc;
}

/* Where a run's rows go: the store's own column (part NULL), or under mpirun
 * a float32 part column beside one rank's shard that gets the rows of the ids
 * in (lo, hi] (cs_embed_part_add; rank 0 merges the parts in one-process order). */
typedef struct {
    int64_t lo, hi;
    const char *part;
} emb_where;

static const emb_where EMB_ALL = {INT64_MIN, INT64_MAX, NULL};

/* Opens the column rows go to (out) and seeds have with the ids that need no
 * row: the store column's, plus the part's own when resuming a part. */
static int open_out(cs_store *s, const char *name, int dim, const emb_where *w, cs_vecstore *out, emb_idset *have,
                    cs_err *err) {
    memset(have, 0, sizeof *have);
    if (!w->part) {
        if (cs_vecstore_open_store(out, s, name, dim, 1, err)) return -1;
        if (!emb_idset_init(have, out, err)) return 0;
        cs_vecstore_close(out);
        return -1;
    }
    cs_vecstore m;
    cs_err e2 = {0};
    int has_m = !cs_vecstore_open_store(&m, s, name, dim, 0, &e2);
    if (!has_m && e2.code != CS_ENOTFOUND) return *err = e2, -1;
    if (cs_vecstore_open_dtype(out, w->part, dim, CS_VS_F32, 1, err)) {
        if (has_m) cs_vecstore_close(&m);
        return -1;
    }
    int rc = emb_idset_init(have, has_m ? &m : out, err);
    for (int64_t i = 0; !rc && has_m && i < out->n; i++) rc = emb_idset_add(have, out->ids[i], err);
    if (has_m) cs_vecstore_close(&m);
    if (rc) {
        emb_idset_free(have);
        cs_vecstore_close(out);
    }
    return rc;
}

static int tiny_add(cs_store *s, const emb_where *w, int progress, cs_embed_stats *stats, cs_err *err) {
    cs_tinydesc m = {0};
    cs_vecstore vs;
    char *mp = tiny_model_path(s);
    if (!mp) return cs_fail(err, CS_ENOMEM, "out of memory");
    emb_idset have;
    if (open_out(s, "tiny", CS_TINY_DIM, w, &vs, &have, err)) {
        free(mp);
        return -1;
    }
    int rc = -1;
    sqlite3_stmt *st = NULL;
    uint8_t *th = NULL;
    int64_t *ids = NULL;
    float *out = NULL;
    cs_progress *pr = NULL;
    if (!access(mp, F_OK)) {
        if (cs_tiny_load(&m, mp, err)) goto done;
    } else {
        if (vs.n > 0) {
            cs_fail(err, CS_EFORMAT, "%s: missing, but %s holds %lld vectors made with it: remove both to recompute",
                    mp, vs.path, (long long)vs.n);
            goto done;
        }
        int64_t nok;
        if (count_ok(s, &nok, err)) goto done;
        if (nok == 0) { rc = 0; goto done; } /* nothing to learn from or describe yet */
        if (w->part) { /* learnt from the whole store by rank 0 first (cs_embed_part_prepare) */
            cs_fail(err, CS_EFORMAT, "%s: missing (the tiny PCA of the whole store is learnt first)", mp);
            goto done;
        }
        if (tiny_learn_from_store(s, &m, err) || cs_tiny_save(&m, mp, err)) goto done;
    }
    enum { BATCH = 1024 };
    const size_t tb = CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    th = malloc(BATCH * tb);
    ids = malloc(BATCH * sizeof *ids);
    out = malloc((size_t)BATCH * m.dim * sizeof *out);
    if (!th || !ids || !out) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
    int64_t total;
    if (count_ok(s, &total, err)) goto done;
    if (progress) pr = cs_progress_start("embed tiny", total, "img");
    if (cs_store_prepare(s, &st, w->part ? THUMB_RANGE_SQL : THUMB_SQL, err)) goto done;
    sqlite3_bind_int64(st, 1, w->lo);
    sqlite3_bind_int64(st, 2, w->hi);
    int nb = 0, step;
    for (;;) {
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(st, 0);
            if (emb_idset_has(&have, id)) {
                if (stats) stats->present++;
                if (pr) cs_progress_add(pr, 1);
                continue;
            }
            const uint8_t *t = thumb_of(st, 1);
            if (!t) {
                if (stats) stats->skipped++;
                continue;
            }
            memcpy(th + (size_t)nb * tb, t, tb);
            ids[nb++] = id;
        }
        if (nb == BATCH || (step != SQLITE_ROW && nb > 0)) {
            if (cs_tiny_describe_ids(&m, th, ids, nb, out, err) || cs_vecstore_append(&vs, ids, out, nb, err))
                goto done;
            if (stats) stats->computed += nb;
            if (pr) cs_progress_add(pr, nb);
            nb = 0;
        }
        if (step != SQLITE_ROW) break;
    }
    if (step != SQLITE_DONE) { cs_store_fail(s, err, "reading thumbnails"); goto done; }
    rc = 0;
done:
    cs_progress_end(pr);
    sqlite3_finalize(st);
    free(th), free(ids), free(out), free(mp);
    emb_idset_free(&have);
    cs_tiny_free(&m);
    cs_vecstore_close(&vs);
    return rc;
}

/* ---- batches (embed_internal.h) ---------------------------------------------- */

int emb_batch_init(emb_batch *b, cs_embedder *e, cs_vecstore *vs, cs_progress *pr, cs_err *err) {
    memset(b, 0, sizeof *b);
    b->e = e, b->vs = vs, b->pr = pr;
    b->out = malloc((size_t)EMB_BATCH * cs_embedder_dim(e) * sizeof *b->out);
    return b->out ? 0 : cs_fail(err, CS_ENOMEM, "out of memory");
}

int emb_batch_flush(emb_batch *b, cs_err *err) {
    if (b->nb == 0) return 0;
    if (cs_embedder_describe(b->e, b->imgs, b->nb, b->out, err) ||
        cs_vecstore_append(b->vs, b->ids, b->out, b->nb, err))
        return -1;
    b->computed += b->nb;
    if (b->pr) cs_progress_add(b->pr, b->nb);
    for (int i = 0; i < b->nb; i++) cs_image_free(&b->imgs[i]);
    b->nb = 0;
    return 0;
}

int emb_batch_push(emb_batch *b, int64_t id, cs_image *img, cs_err *err) {
    b->imgs[b->nb] = *img;
    b->ids[b->nb++] = id;
    memset(img, 0, sizeof *img);
    return b->nb == EMB_BATCH ? emb_batch_flush(b, err) : 0;
}

int emb_batch_queued(const emb_batch *b, int64_t id) {
    for (int i = 0; i < b->nb; i++)
        if (b->ids[i] == id) return 1;
    return 0;
}

void emb_batch_free(emb_batch *b) {
    for (int i = 0; i < b->nb; i++) cs_image_free(&b->imgs[i]);
    free(b->out);
    memset(b, 0, sizeof *b);
}

static size_t idset_slot(const emb_idset *s, int64_t id) {
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 17) & (s->cap - 1);
    while (s->slot[i] != INT64_MIN && s->slot[i] != id) i = (i + 1) & (s->cap - 1);
    return i;
}

static int idset_grow(emb_idset *s, size_t want, cs_err *err) {
    if (want * 2 <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 1024;
    while (want * 2 > cap) cap *= 2;
    emb_idset t = {.slot = malloc(cap * sizeof(int64_t)), .cap = cap};
    if (!t.slot) return cs_fail(err, CS_ENOMEM, "out of memory");
    for (size_t i = 0; i < cap; i++) t.slot[i] = INT64_MIN;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slot[i] != INT64_MIN) t.slot[idset_slot(&t, s->slot[i])] = s->slot[i], t.n++;
    free(s->slot);
    *s = t;
    return 0;
}

int emb_idset_add(emb_idset *s, int64_t id, cs_err *err) {
    if (idset_grow(s, s->n + 1, err)) return -1;
    size_t i = idset_slot(s, id);
    if (s->slot[i] == INT64_MIN) s->slot[i] = id, s->n++;
    return 0;
}

int emb_idset_has(const emb_idset *s, int64_t id) { return s->cap && s->slot[idset_slot(s, id)] == id; }

int emb_idset_init(emb_idset *s, const cs_vecstore *vs, cs_err *err) {
    memset(s, 0, sizeof *s);
    if (idset_grow(s, (size_t)vs->n + 1, err)) return -1;
    for (int64_t i = 0; i < vs->n; i++) emb_idset_add(s, vs->ids[i], err); /* cannot grow: sized */
    return 0;
}

void emb_idset_free(emb_idset *s) {
    free(s->slot);
    memset(s, 0, sizeof *s);
}

const char *emb_spec_weights(const char *spec) {
    if (strncmp(spec, "sscd", 4) || (spec[4] != ':' && spec[4] != '@')) return NULL;
    const char *colon = strchr(spec + 4, ':');
    return colon ? colon + 1 : NULL;
}

/* Checks (or records, for a new column) which weights file the sscd column
 * was made with, so two models never mix in one column. */
int emb_check_weights(cs_store *s, const cs_vecstore *vs, const char *key, const char *weights,
                      cs_err *err) {
    const char *base = strrchr(weights, '/');
    base = base ? base + 1 : weights;
    char *have = NULL;
    if (cs_store_meta_get(s, key, &have, err)) return -1;
    int rc = 0;
    if (vs->n > 0 && have && strcmp(have, base))
        rc = cs_fail(err, CS_EUSAGE, "%s: made with weights %s, not %s: remove it to recompute", vs->path,
                     have, base);
    else if (!have || vs->n == 0)
        rc = cs_store_meta_set(s, key, base, err);
    free(have);
    return rc;
}

/* ---- sscd: references decoded from their source ------------------------------ */

typedef struct {
    emb_batch b;
    emb_idset have; /* ids with a vector when the run began */
    cs_embed_stats *stats;
} sscd_run;

static void skip_ref(sscd_run *r, const char *why) {
    if (r->stats) {
        if (r->stats->skipped++ == 0) snprintf(r->stats->skip_example, sizeof r->stats->skip_example, "%s", why);
    }
    if (r->b.pr) cs_progress_add(r->b.pr, 1);
}

/* Whether reference id had a vector when the run began (counted as present). */
static int already_present(sscd_run *r, int64_t id) {
    if (!emb_idset_has(&r->have, id)) return 0;
    if (r->stats) r->stats->present++;
    if (r->b.pr) cs_progress_add(r->b.pr, 1);
    return 1;
}

#define SSCD_FILES_SQL                                                                             \
    "SELECT id, source FROM refs WHERE status = 'ok' AND (source IS NULL OR instr(source, '//') = 0) " \
    "AND id > ?1 AND id <= ?2 ORDER BY id"
#define SSCD_SHARDS_SQL                                                                            \
    "SELECT id, source FROM refs WHERE status = 'ok' AND instr(source, '//') > 0 "                 \
    "AND id > ?1 AND id <= ?2 ORDER BY source"

/* References whose source is a file, in id order. */
static int sscd_files(cs_store *s, const emb_where *w, sscd_run *r, cs_err *err) {
    sqlite3_stmt *st = NULL;
    if (cs_store_prepare(s, &st, SSCD_FILES_SQL, err)) return -1;
    sqlite3_bind_int64(st, 1, w->lo);
    sqlite3_bind_int64(st, 2, w->hi);
    int step, rc = -1;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *src = (const char *)sqlite3_column_text(st, 1);
        if (already_present(r, id)) continue;
        cs_err e2 = {0};
        cs_image img;
        if (!src) {
            skip_ref(r, "a reference without a source");
            continue;
        }
        if (cs_image_load(&img, src, NULL, &e2)) { /* moved or changed since ingest */
            skip_ref(r, e2.msg);
            continue;
        }
        if (emb_batch_push(&r->b, id, &img, err)) goto done;
    }
    if (step != SQLITE_DONE) { cs_store_fail(s, err, "reading refs"); goto done; }
    rc = emb_batch_flush(&r->b, err);
done:
    sqlite3_finalize(st);
    return rc;
}

/* The members of one shard that lack a vector, sorted by name (strcmp). */
typedef struct {
    sscd_run *r;
    const char *shard;
    int64_t *ids;
    char **names;
    uint8_t *done;
    int64_t n, cap;
} shard_work;

static int64_t work_find(const shard_work *t, const char *name) {
    int64_t lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->names[mid], name);
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int work_want(void *u, const char *member, cs_err *err) {
    (void)err;
    shard_work *t = u;
    int64_t i = work_find(t, member);
    return i >= 0 && !t->done[i];
}

static int work_got(void *u, const char *member, const uint8_t *data, size_t len, const char *problem,
                    cs_err *err) {
    shard_work *t = u;
    int64_t i = work_find(t, member);
    if (i < 0) return 0;
    t->done[i] = 1;
    char why[1200];
    if (!data) {
        snprintf(why, sizeof why, "%s//%s: %s", t->shard, member, problem);
        skip_ref(t->r, why);
        return 0;
    }
    cs_err e2 = {0};
    cs_image img;
    snprintf(why, sizeof why, "%s//%s", t->shard, member);
    if (cs_image_decode(&img, data, len, why, NULL, &e2)) {
        skip_ref(t->r, e2.msg);
        return 0;
    }
    return emb_batch_push(&t->r->b, t->ids[i], &img, err);
}

/* Streams one shard, embedding its members in t; those never met are skipped. */
static int work_run(shard_work *t, cs_err *err) {
    if (t->n == 0) return 0;
    t->done = calloc((size_t)t->n, 1);
    if (!t->done) return cs_fail(err, CS_ENOMEM, "out of memory");
    ing_tar_visitor v = {.u = t, .want = work_want, .got = work_got};
    char problem[1200];
    int rc = ing_tar_visit(t->shard, &v, problem, sizeof problem, err);
    if (rc < 0) return -1;
    for (int64_t i = 0; i < t->n; i++) {
        if (t->done[i]) continue;
        char why[1600];
        if (rc == 1 && !strncmp(problem, t->shard, strlen(t->shard)) && problem[strlen(t->shard)] == ':')
            snprintf(why, sizeof why, "%s//%s: %s", t->shard, t->names[i], problem + strlen(t->shard) + 2);
        else
            snprintf(why, sizeof why, "%s//%s: %s", t->shard, t->names[i],
                     rc == 1 ? problem : "no longer in the shard");
        skip_ref(t->r, why);
    }
    return emb_batch_flush(&t->r->b, err);
}

static void work_clear(shard_work *t) {
    for (int64_t i = 0; i < t->n; i++) free(t->names[i]);
    free(t->done);
    t->done = NULL;
    t->n = 0;
}

/* References that are tar-shard members ("shard.tar//member"): ordered by
 * source, each shard's members are contiguous, so one shard's work list is
 * held at a time and each shard is streamed once. */
static int sscd_shards(cs_store *s, const emb_where *w, sscd_run *r, cs_err *err) {
    sqlite3_stmt *st = NULL;
    shard_work t = {.r = r};
    char *shard = NULL;
    int step, rc = -1;
    if (cs_store_prepare(s, &st, SSCD_SHARDS_SQL, err)) return -1;
    sqlite3_bind_int64(st, 1, w->lo);
    sqlite3_bind_int64(st, 2, w->hi);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *src = (const char *)sqlite3_column_text(st, 1);
        if (already_present(r, id)) continue;
        const char *sep = strstr(src, "//");
        size_t sl = (size_t)(sep - src);
        if (!shard || strlen(shard) != sl || strncmp(shard, src, sl)) {
            t.shard = shard;
            if (work_run(&t, err)) goto done;
            work_clear(&t);
            free(shard);
            shard = strndup(src, sl);
            if (!shard) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
        }
        if (t.n == t.cap) {
            int64_t cap = t.cap ? 2 * t.cap : 256;
            int64_t *ni = realloc(t.ids, (size_t)cap * sizeof *ni);
            if (ni) t.ids = ni;
            char **nn = realloc(t.names, (size_t)cap * sizeof *nn);
            if (nn) t.names = nn;
            if (!ni || !nn) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
            t.cap = cap;
        }
        t.names[t.n] = strdup(sep + 2);
        if (!t.names[t.n]) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
        t.ids[t.n++] = id;
    }
    if (step != SQLITE_DONE) { cs_store_fail(s, err, "reading refs"); goto done; }
    t.shard = shard;
    rc = work_run(&t, err);
done:
    work_clear(&t);
    free(t.ids), free(t.names), free(shard);
    sqlite3_finalize(st);
    return rc;
}

static int sscd_add(cs_store *s, const emb_where *w, const char *spec, int progress, cs_embed_stats *stats,
                    cs_err *err) {
    cs_embedder *e;
    if (cs_embedder_open(&e, s, spec, err)) return -1;
    cs_vecstore vs;
    sscd_run r = {.stats = stats};
    if (open_out(s, "sscd", cs_embedder_dim(e), w, &vs, &r.have, err)) {
        cs_embedder_free(e);
        return -1;
    }
    cs_progress *pr = NULL;
    int rc = -1;
    int64_t total;
    /* a part's weights were checked against the store's column by rank 0 (cs_embed_part_prepare) */
    if (!w->part && emb_check_weights(s, &vs, "embed.sscd.weights", emb_spec_weights(spec), err)) goto done;
    if (count_ok(s, &total, err)) goto done;
    if (progress) pr = cs_progress_start("embed sscd", total, "img");
    if (emb_batch_init(&r.b, e, &vs, pr, err)) goto done;
    rc = sscd_files(s, w, &r, err) || sscd_shards(s, w, &r, err) ? -1 : 0;
    if (stats) stats->computed = r.b.computed;
done:
    emb_batch_free(&r.b);
    emb_idset_free(&r.have);
    cs_progress_end(pr);
    cs_vecstore_close(&vs);
    cs_embedder_free(e);
    return rc;
}

static int embed_add(cs_store *s, const emb_where *w, const char *spec, int jobs, int progress, cs_embed_stats *st,
                     cs_err *err) {
    if (st) memset(st, 0, sizeof *st);
    emb_spec sp;
    if (parse_spec(spec, &sp, err)) return -1;
    nn_set_threads(jobs > 0 ? jobs : cs_threads());
    int rc = sp.kind == EMB_TINY ? tiny_add(s, w, progress, st, err) : sscd_add(s, w, spec, progress, st, err);
    free(sp.weights);
    return rc;
}

int cs_embed_index_add_ex(cs_store *s, const char *spec, int jobs, int progress,
                          cs_embed_stats *st, cs_err *err) {
    return embed_add(s, &EMB_ALL, spec, jobs, progress, st, err);
}

/* ---- under mpirun: parts per rank, merged by rank 0 (embed.h) ------------------ */

int cs_embed_part_prepare(cs_store *s, const char *spec, cs_err *err) {
    emb_spec sp;
    if (parse_spec(spec, &sp, err)) return -1;
    int rc = -1;
    if (sp.kind == EMB_TINY) { /* the model, as a one-process run learns it (from the whole store) */
        char *mp = tiny_model_path(s);
        cs_vecstore vs;
        cs_tinydesc m = {0};
        int64_t nok = 0;
        if (!mp) rc = cs_fail(err, CS_ENOMEM, "out of memory");
        else if (!access(mp, F_OK)) rc = 0;
        else if (!cs_vecstore_open_store(&vs, s, "tiny", CS_TINY_DIM, 1, err)) {
            if (vs.n > 0)
                cs_fail(err, CS_EFORMAT, "%s: missing, but %s holds %lld vectors made with it: remove both to recompute",
                        mp, vs.path, (long long)vs.n);
            else if (!count_ok(s, &nok, err))
                rc = nok == 0 || (!tiny_learn_from_store(s, &m, err) && !cs_tiny_save(&m, mp, err)) ? 0 : -1;
            cs_vecstore_close(&vs);
        }
        cs_tiny_free(&m);
        free(mp);
    } else {
        cs_embedder *e;
        cs_vecstore vs;
        if (!cs_embedder_open(&e, s, spec, err)) {
            if (!cs_vecstore_open_store(&vs, s, "sscd", cs_embedder_dim(e), 1, err)) {
                rc = emb_check_weights(s, &vs, "embed.sscd.weights", emb_spec_weights(spec), err);
                cs_vecstore_close(&vs);
            }
            cs_embedder_free(e);
        }
    }
    free(sp.weights);
    return rc;
}

int cs_embed_part_add(cs_store *s, const char *spec, int jobs, int64_t lo, int64_t hi, const char *part,
                      cs_embed_stats *st, cs_err *err) {
    emb_where w = {lo, hi, part};
    return embed_add(s, &w, spec, jobs, 0, st, err);
}

typedef struct {
    int64_t part, row;
} part_row;

static int cmp_part_row(const void *a, const void *b) {
    const part_row *x = a, *y = b;
    if (x->part != y->part) return (x->part > y->part) - (x->part < y->part);
    return (x->row > y->row) - (x->row < y->row);
}

/* Appends one group of rows (sorted by part, then row: the order each part
 * computed them in) to out. */
static int merge_group(cs_vecstore *out, cs_vecstore *parts, part_row *g, int64_t ng, int64_t *ids, float *buf,
                       int64_t *merged, cs_err *err) {
    qsort(g, (size_t)ng, sizeof *g, cmp_part_row);
    size_t d = (size_t)out->dim;
    for (int64_t i = 0; i < ng; i++) {
        const cs_vecstore *p = &parts[g[i].part];
        ids[i] = p->ids[g[i].row];
        memcpy(buf + (size_t)i * d, p->vecs + (size_t)g[i].row * d, d * sizeof *buf);
    }
    *merged += ng;
    return cs_vecstore_append(out, ids, buf, ng, err);
}

/* The order of one process: tiny in id order; sscd files in id order, then the
 * tar members shard by shard (a shard's members in the order it was streamed,
 * which is the order its part holds them in: a tar is one unit of one rank). */
static int merge_order(cs_store *s, cs_vecstore *out, const char *sql, int grouped, cs_vecstore *parts, int n,
                       int64_t *merged, cs_err *err) {
    enum { CHUNK = 1024 };
    sqlite3_stmt *st = NULL;
    part_row *g = malloc(CHUNK * sizeof *g);
    int64_t *ids = malloc(CHUNK * sizeof *ids), ng = 0;
    float *buf = malloc((size_t)CHUNK * (size_t)out->dim * sizeof *buf);
    char *key = NULL;
    emb_idset have = {0};
    int rc = -1, step;
    if (!g || !ids || !buf) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
    if (emb_idset_init(&have, out, err) || cs_store_prepare(s, &st, sql, err)) goto done;
    sqlite3_bind_int64(st, 1, INT64_MIN);
    sqlite3_bind_int64(st, 2, INT64_MAX);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *src = (const char *)sqlite3_column_text(st, 1), *sep = src ? strstr(src, "//") : NULL;
        size_t kl = sep ? (size_t)(sep - src) : 0;
        int same = grouped && key && sep && strlen(key) == kl && !strncmp(key, src, kl);
        /* a tar's group may outgrow a chunk: flushed then, each part's rows stay in order */
        if ((!same || ng == CHUNK) && ng > 0) {
            if (merge_group(out, parts, g, ng, ids, buf, merged, err)) goto done;
            ng = 0;
        }
        if (!same && grouped && sep) {
            free(key);
            if (!(key = strndup(src, kl))) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
        }
        if (emb_idset_has(&have, id)) continue; /* merged before a crash, or computed by one process */
        for (int k = 0; k < n; k++) {
            int64_t r = cs_vecstore_find(&parts[k], id);
            if (r == -2) { cs_fail(err, CS_ENOMEM, "out of memory"); goto done; }
            if (r < 0) continue;
            g[ng++] = (part_row){k, r};
            break;
        }
        if (!grouped && ng == CHUNK) {
            if (merge_group(out, parts, g, ng, ids, buf, merged, err)) goto done;
            ng = 0;
        }
    }
    if (step != SQLITE_DONE) { cs_store_fail(s, err, "reading refs"); goto done; }
    rc = ng > 0 ? merge_group(out, parts, g, ng, ids, buf, merged, err) : 0;
done:
    sqlite3_finalize(st);
    emb_idset_free(&have);
    free(g), free(ids), free(buf), free(key);
    return rc;
}

int cs_embed_part_merge(cs_store *s, const char *spec, const char *const *paths, int n, int64_t *merged,
                        cs_err *err) {
    *merged = 0;
    emb_spec sp;
    if (parse_spec(spec, &sp, err)) return -1;
    free(sp.weights);
    cs_vecstore *parts = calloc((size_t)(n > 0 ? n : 1), sizeof *parts), out;
    if (!parts) return cs_fail(err, CS_ENOMEM, "out of memory");
    int rc = 0, k = 0, dim = 0;
    for (; k < n && !rc; k++) {
        cs_err e2 = {0};
        if (cs_vecstore_open(&parts[k], paths[k], 0, 0, &e2)) { /* a rank with nothing to add wrote none */
            memset(&parts[k], 0, sizeof parts[k]);
            if (e2.code != CS_ENOTFOUND) rc = (*err = e2, -1);
        } else if (dim && parts[k].dim != dim) {
            rc = cs_fail(err, CS_EFORMAT, "%s: dimension %d, expected %d", paths[k], parts[k].dim, dim);
        } else dim = parts[k].dim;
    }
    if (!rc && dim && !(rc = cs_vecstore_open_store(&out, s, sp.column, dim, 1, err))) {
        if (sp.kind == EMB_TINY) rc = merge_order(s, &out, THUMB_IDS_SQL, 0, parts, n, merged, err);
        if (!rc && sp.kind == EMB_SSCD)
            rc = merge_order(s, &out, SSCD_FILES_SQL, 0, parts, n, merged, err) ||
                 merge_order(s, &out, SSCD_SHARDS_SQL, 1, parts, n, merged, err) ? -1 : 0;
        cs_vecstore_close(&out);
    }
    for (int i = 0; i < k; i++)
        if (parts[i].path) cs_vecstore_close(&parts[i]);
    free(parts);
    for (int i = 0; !rc && i < n; i++) { /* merged: the parts go */
        unlink(paths[i]);
        size_t l = strlen(paths[i]) + 5;
        char *ip = malloc(l);
        if (ip) snprintf(ip, l, "%s.ids", paths[i]), unlink(ip);
        free(ip);
    }
    return rc;
}

int cs_embed_index_add(cs_store *s, const char *spec, int jobs, cs_err *err) {
    return cs_embed_index_add_ex(s, spec, jobs, 1, NULL, err);
}

/* ---- querying ----------------------------------------------------------------- */

int cs_embed_columns(cs_store *s, char ***names, int *n, cs_err *err) {
    static const char *known[] = {"tiny", "sscd"};
    *names = calloc(2, sizeof **names);
    *n = 0;
    if (!*names) return cs_fail(err, CS_ENOMEM, "out of memory");
    for (int i = 0; i < 2; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "vec-%s", known[i]);
        char *p = cs_store_sidecar(s, suffix);
        if (p && !access(p, F_OK)) (*names)[(*n)++] = strdup(known[i]);
        free(p);
    }
    return 0;
}

int cs_embed_search(cs_store *s, const char *column, const float *q, int nq, int dim, int k,
                    int64_t *ref_ids, float *scores, cs_err *err) {
    cs_vecstore vs;
    /* a q8 column stays at 8 bits in memory (the same scores as decoded) */
    if (cs_vecstore_open_store_raw(&vs, s, column, dim, err)) return -1;
    int64_t *rows = malloc((size_t)(nq ? nq : 1) * k * sizeof *rows);
    if (!rows) {
        cs_vecstore_close(&vs);
        return cs_fail(err, CS_ENOMEM, "out of memory");
    }
    int rc = vs.q8 ? cs_knn_exact_q8(vs.q8, vs.n, vs.dim, q, nq, k, 0, scores, rows, err)
                   : cs_knn_exact(vs.vecs, vs.n, vs.dim, q, nq, k, 0, scores, rows, err);
    for (int64_t i = 0; !rc && i < (int64_t)nq * k; i++) ref_ids[i] = rows[i] >= 0 ? vs.ids[rows[i]] : -1;
    free(rows);
    cs_vecstore_close(&vs);
    return rc;
}

int cs_embed_default_ready(cs_store *s, int *ready, int64_t *n_ok, cs_err *err) {
    char *mp = tiny_model_path(s);
    if (!mp) return cs_fail(err, CS_ENOMEM, "out of memory");
    int have_model = !access(mp, F_OK);
    free(mp);
    if (count_ok(s, n_ok, err)) return -1;
    /* A PCA learnt from k references has at most k - 1 components; it is kept
     * for every later add (old and new rows must stay comparable), so one
     * learnt from fewer than CS_TINY_DIM + 1 would leave some of the
     * CS_TINY_DIM dimensions zero for good. The default waits for that many
     * (an explicit --embedder tiny learns from what is there). */
    *ready = have_model || *n_ok >= CS_TINY_DIM + 1;
    return 0;
}
