/* background.c — the stored background set of an embedding column (see
 * background.h): walking the inputs, deduplicating by content, embedding in
 * batches (embed_internal.h), and the score bias it yields. */
#include "index/background.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/hash_sha256.h"
#include "core/image.h"
#include "core/nn.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "index/embed_internal.h"
#include "index/ingest_internal.h"
#include "index/knn.h"

char *cs_bg_path(cs_store *s, const char *column) {
    char suffix[64];
    snprintf(suffix, sizeof suffix, "vec-%s.bg", column);
    return cs_store_sidecar(s, suffix);
}

/* Row id of an image: its sha256's first 15 hex digits (60 bits, >= 0). */
static int64_t content_id(const uint8_t *data, size_t len) {
    char hex[65];
    cs_sha256_hex(data, len, hex);
    hex[15] = 0;
    return (int64_t)strtoull(hex, NULL, 16);
}

typedef struct {
    emb_batch b;
    emb_idset have; /* ids in the set or queued in this run */
    cs_bg_stats *st;
    cs_progress *pr;
    int64_t total; /* progress total: files, plus shard members as they are met */
    const char *shard;
} bg_run;

static void bg_skip(bg_run *r, const char *why) {
    if (r->st->skipped++ == 0) { /* kept whole when it fits, else cut */
        size_t n = strlen(why), cap = sizeof r->st->skip_example - 1;
        memcpy(r->st->skip_example, why, n < cap ? n : cap);
        r->st->skip_example[n < cap ? n : cap] = 0;
    }
    if (r->pr) cs_progress_add(r->pr, 1);
}

/* One image's bytes (name for messages): deduplicated, decoded, queued. */
static int bg_image(bg_run *r, const char *name, const uint8_t *data, size_t len, cs_err *err) {
    int64_t id = content_id(data, len);
    if (emb_idset_has(&r->have, id)) {
        r->st->present++;
        if (r->pr) cs_progress_add(r->pr, 1);
        return 0;
    }
    cs_err e2 = {0};
    cs_image img;
    if (cs_image_decode(&img, data, len, name, NULL, &e2)) {
        bg_skip(r, e2.msg);
        return 0;
    }
    if (emb_idset_add(&r->have, id, err)) {
        cs_image_free(&img);
        return -1;
    }
    return emb_batch_push(&r->b, id, &img, err);
}

static int bg_want(void *u, const char *member, cs_err *err) {
    (void)member, (void)err;
    bg_run *r = u;
    if (r->pr) cs_progress_set_total(r->pr, ++r->total);
    return 1;
}

static int bg_got(void *u, const char *member, const uint8_t *data, size_t len, const char *problem,
                  cs_err *err) {
    bg_run *r = u;
    char name[1400];
    snprintf(name, sizeof name, "%s//%s", r->shard, member);
    if (!data) {
        char why[2100];
        snprintf(why, sizeof why, "%s: %s", name, problem);
        bg_skip(r, why);
        return 0;
    }
    return bg_image(r, name, data, len, err);
}

static int bg_shard(bg_run *r, const char *path, cs_err *err) {
    ing_tar_visitor v = {.u = r, .want = bg_want, .got = bg_got};
    char problem[1200];
    r->shard = path;
    int rc = ing_tar_visit(path, &v, problem, sizeof problem, err);
    if (rc < 0) return -1;
    if (rc == 1) { /* not opened or broken off: the shard itself counts once */
        if (r->pr) cs_progress_set_total(r->pr, ++r->total);
        bg_skip(r, problem);
    }
    return 0;
}

static int bg_file(bg_run *r, const char *path, cs_err *err) {
    uint8_t *buf;
    size_t len;
    cs_err e2 = {0};
    if (cs_read_file(path, &buf, &len, &e2)) {
        bg_skip(r, e2.msg);
        return 0;
    }
    int rc = bg_image(r, path, buf, len, err);
    free(buf);
    return rc;
}

/* ---- walking the inputs ---- */

typedef struct {
    char **v;
    int64_t n, cap;
} paths;

static int paths_add(paths *p, const char *s, cs_err *err) {
    if (p->n == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 64;
        char **t = realloc(p->v, (size_t)cap * sizeof *t);
        if (!t) return cs_fail(err, CS_ENOMEM, "out of memory");
        p->v = t, p->cap = cap;
    }
    if (!(p->v[p->n] = strdup(s))) return cs_fail(err, CS_ENOMEM, "out of memory");
    p->n++;
    return 0;
}

static void paths_free(paths *p) {
    for (int64_t i = 0; i < p->n; i++) free(p->v[i]);
    free(p->v);
}

static int cmp_names(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* Images and shards under dir, in byte order; symbolic links to folders are
 * not followed (a link cycle cannot loop). */
static int walk(const char *dir, int depth, paths *out, cs_err *err) {
    if (depth > 64) return 0;
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, cmp_names);
    if (n < 0) return 0; /* unreadable folder: nothing from it */
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (!rc && name[0] != '.') {
            char *p = cs_path_join(dir, name);
            if (!p) rc = cs_fail(err, CS_ENOMEM, "out of memory");
            else {
                struct stat ls, st;
                if (lstat(p, &ls) == 0 && S_ISDIR(ls.st_mode)) rc = walk(p, depth + 1, out, err);
                else if (stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
                         (ing_is_image_name(name) || ing_is_tar_name(name)))
                    rc = paths_add(out, p, err);
                free(p);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

static int list_inputs(const char *const *in, int nin, paths *out, cs_err *err) {
    for (int i = 0; i < nin; i++) {
        struct stat st;
        if (stat(in[i], &st)) return cs_fail(err, CS_ENOTFOUND, "%s: no such file or folder", in[i]);
        int rc = S_ISDIR(st.st_mode) ? walk(in[i], 0, out, err) : paths_add(out, in[i], err);
        if (rc) return -1;
    }
    return 0;
}

int cs_bg_add(cs_store *s, const char *spec, const char *const *in, int nin, int jobs, int progress,
              cs_bg_stats *st, cs_err *err) {
    memset(st, 0, sizeof *st);
    paths ps = {0};
    if (list_inputs(in, nin, &ps, err)) {
        paths_free(&ps);
        return -1;
    }
    nn_set_threads(jobs > 0 ? jobs : cs_threads());
    cs_embedder *e = NULL;
    if (cs_embedder_open(&e, s, spec, err)) {
        paths_free(&ps);
        return -1;
    }
    cs_vecstore vs;
    char *path = cs_bg_path(s, cs_embedder_column(e));
    int rc = -1;
    bg_run r = {.st = st};
    if (!path) {
        cs_fail(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    if (cs_vecstore_open(&vs, path, cs_embedder_dim(e), 1, err)) goto out;
    if (cs_embedder_weights(e) &&
        emb_check_weights(s, &vs, "embed.sscd.bg.weights", cs_embedder_weights(e), err))
        goto close;
    r.total = ps.n;
    if (progress) r.pr = cs_progress_start("background", r.total, "img");
    if (emb_batch_init(&r.b, e, &vs, r.pr, err) || emb_idset_init(&r.have, &vs, err)) goto close;
    for (int64_t i = 0; i < ps.n; i++) {
        if (ing_is_tar_name(ps.v[i])) {
            if (r.pr) cs_progress_set_total(r.pr, --r.total); /* its members count instead */
            if (bg_shard(&r, ps.v[i], err)) goto close;
        } else if (bg_file(&r, ps.v[i], err)) {
            goto close;
        }
    }
    if (emb_batch_flush(&r.b, err)) goto close;
    rc = 0;
close:
    st->computed = r.b.computed;
    st->total = vs.n;
    emb_batch_free(&r.b);
    emb_idset_free(&r.have);
    cs_progress_end(r.pr);
    cs_vecstore_close(&vs);
out:
    free(path);
    cs_embedder_free(e);
    paths_free(&ps);
    return rc;
}

int cs_bg_open(cs_vecstore *vs, cs_store *s, const cs_embedder *e, cs_err *err) {
    char *path = cs_bg_path(s, cs_embedder_column(e));
    if (!path) return cs_fail(err, CS_ENOMEM, "out of memory");
    struct stat st;
    int absent = stat(path, &st) != 0;
    int rc = absent ? 0 : cs_vecstore_open(vs, path, cs_embedder_dim(e), 0, err) ? -1 : 1;
    free(path);
    if (rc != 1 || !cs_embedder_weights(e)) return rc;
    const char *w = cs_embedder_weights(e), *base = strrchr(w, '/');
    base = base ? base + 1 : w;
    char *have = NULL;
    if (cs_store_meta_get(s, "embed.sscd.bg.weights", &have, err)) rc = -1;
    else if (have && strcmp(have, base))
        rc = cs_fail(err, CS_EUSAGE, "%s: background set made with weights %s, not %s: remove it to recompute",
                     vs->path, have, base);
    free(have);
    if (rc != 1) cs_vecstore_close(vs);
    return rc;
}

int cs_bg_bias(cs_store *s, const cs_embedder *e, const float *q, int64_t nq, float *bias,
               int64_t *nbg, cs_err *err) {
    *nbg = 0;
    for (int64_t i = 0; i < nq; i++) bias[i] = 0;
    cs_vecstore vs;
    int have = cs_bg_open(&vs, s, e, err);
    if (have <= 0) return have;
    *nbg = vs.n;
    int rc = vs.n > 0 ? cs_knn_background_bias(vs.vecs, vs.n, vs.dim, q, nq, 0, bias, err) : 0;
    cs_vecstore_close(&vs);
    return rc;
}

int cs_bg_normalize(cs_store *s, const cs_embedder *e, const float *q, int64_t nq, int k,
                    const int64_t *ids, float *scores, int required, cs_err *err) {
    float *bias = malloc(sizeof(float) * (size_t)(nq ? nq : 1));
    if (!bias) return cs_fail(err, CS_ENOMEM, "out of memory");
    int64_t nbg = 0;
    int rc = cs_bg_bias(s, e, q, nq, bias, &nbg, err);
    if (!rc && nbg == 0 && required) {
        char *p = cs_bg_path(s, cs_embedder_column(e));
        rc = cs_fail(err, CS_ENOTFOUND, "%s: no background set: make one with 'copyscope index background "
                     "--embedder %s DIR' (images known not to be copies)", p ? p : "background",
                     cs_embedder_weights(e) ? "sscd:WEIGHTS" : "tiny");
        free(p);
    }
    if (!rc) cs_knn_apply_bias(scores, ids, nq, k, bias, CS_SSCD_BETA);
    free(bias);
    return rc ? -1 : nbg > 0;
}
