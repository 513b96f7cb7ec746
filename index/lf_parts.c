/* lf_parts.c — the vote index in parts, one per MPI rank (issue 17): a
 * part's build and search with the whole index's quantizer, the merge of
 * the parts' nearest lists, and a part kept beside its shard. */
#include "index/localfeat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "index/faiss_shim.h"
#include "index/lf_index_internal.h"
#include "index/lf_quant.h"

/* ---- the vote search in parts (one per MPI rank, issue 17) ----
 * A part indexes the descriptors of some of the records with the whole
 * index's trained quantizer (its cells and PQ codebooks, or "Flat"), so a
 * query descriptor's distance to one of them is the one the whole index
 * computes, bit for bit; each keeps its number in the whole index (its
 * record's first descriptor + its keypoint), and the part's own numbering
 * follows that order, so its ties fall as the whole index's do. The whole
 * index's CS_LF_NN nearest of a query descriptor are then the best
 * CS_LF_NN of the parts' lists by (distance, number): the scan probes the
 * same cells in every part (they come from the quantizer alone) and keeps
 * the best by (distance, number) among the codes it meets, and "Flat"
 * distances of byte descriptors are exact integers in float (every sum is
 * below 2^24) however FAISS orders them. */

static const char QMAGIC[4] = {'C', 'S', 'L', 'Q'};
enum { QHDR = 4 + 64 + 4 };

int cs_lf_index_counts(const cs_lf_index *ix, int64_t nrec, uint8_t *cnt) {
    memset(cnt, 0, (size_t)nrec);
    for (int64_t d = 0; d < ix->nd; d++) {
        if (ix->owner[d] < 0 || ix->owner[d] >= nrec || cnt[ix->owner[d]] == 255) return -1;
        cnt[ix->owner[d]]++;
    }
    return 0;
}

int cs_lf_quantizer_save(const cs_lf_index *ix, uint8_t **buf, size_t *len, cs_err *err) {
    *buf = NULL, *len = 0;
    char *mem = NULL;
    size_t mlen = 0;
    FILE *tmp = NULL, *out = open_memstream(&mem, &mlen);
    cs_faiss *q = NULL;
    int rc = -1;
    if (!out) return cs_fail(err, CS_ENOMEM, "localfeat: out of memory for the quantizer");
    uint8_t h[QHDR] = {0};
    memcpy(h, QMAGIC, 4);
    snprintf((char *)h + 4, 64, "%s", ix->factory);
    put32(h + 68, (uint32_t)cs_faiss_nprobe(ix->f));
    if (fwrite(h, 1, QHDR, out) != QHDR) goto fail;
    if (cs_faiss_nlist(ix->f) > 0) { /* an empty copy of the trained index: written, read back, emptied */
        if (!(tmp = tmpfile())) {
            cs_fail(err, CS_EIO, "localfeat: no temporary file for the quantizer: %s", strerror(errno));
            goto out;
        }
        if (cs_faiss_write_fp(ix->f, tmp, "quantizer", err)) goto out;
        rewind(tmp);
        if (cs_faiss_read_fp(&q, tmp, "quantizer", err) || cs_faiss_reset(q, err) ||
            cs_faiss_write_fp(q, out, "quantizer", err))
            goto out;
    }
    if (fflush(out)) goto fail;
    rc = 0;
    goto out;
fail:
    cs_fail(err, CS_ENOMEM, "localfeat: out of memory for the quantizer");
out:
    cs_faiss_free(q);
    if (tmp) fclose(tmp);
    fclose(out);
    if (rc) free(mem);
    else *buf = (uint8_t *)mem, *len = mlen;
    return rc;
}

int lf_quantizer_read(cs_lf_index *ix, const uint8_t *qb, size_t qlen, cs_err *err) {
    FILE *f = NULL;
    if (qlen < QHDR || memcmp(qb, QMAGIC, 4) || !memchr(qb + 4, 0, 64))
        return cs_fail(err, CS_EFORMAT, "localfeat: not a vote index's quantizer");
    snprintf(ix->factory, sizeof ix->factory, "%s", (const char *)qb + 4);
    if (qlen == QHDR) return cs_faiss_new(&ix->f, 128, ix->factory, 0, err);
    int rc = !(f = fmemopen((void *)(qb + QHDR), qlen - QHDR, "rb")) || cs_faiss_read_fp(&ix->f, f, "quantizer", err);
    if (rc && !err->code) cs_fail(err, CS_ENOMEM, "localfeat: out of memory reading the quantizer");
    if (f) fclose(f);
    return rc ? -1 : 0;
}

struct cs_lf_part {
    cs_lf_index *ix;  /* the part's descriptors, numbered 0.. in the whole index's order */
    int64_t *gid;     /* [ix->nd] each one's number in the whole index */
    uint8_t *codes;   /* [ix->nd][pq_m] its PQ code (our scan's distances), NULL for "Flat" */
};

void cs_lf_part_free(cs_lf_part *p) {
    if (!p) return;
    cs_lf_index_free(p->ix);
    free(p->gid);
    free(p->codes);
    free(p);
}

int64_t cs_lf_part_ndesc(const cs_lf_part *p) { return p->ix->nd; }

/* each descriptor's code, by its number (our scan returns numbers, not
 * distances), from the part's lists; none for "Flat" */
static int part_codes(cs_lf_part *p, cs_err *err) {
    const int64_t nd = p->ix->nd;
    const int m = p->ix->pq_m;
    if (!p->ix->ct) return 0;
    if (!(p->codes = malloc((size_t)m * (size_t)(nd ? nd : 1))))
        return cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld codes", (long long)nd);
    for (int64_t l = 0, nl = cs_faiss_nlist(p->ix->f); l < nl; l++) {
        const uint8_t *c;
        const int64_t *id;
        int64_t ln = cs_faiss_list(p->ix->f, l, &c, &id);
        for (int64_t e = 0; e < ln; e++)
            if (id[e] >= 0 && id[e] < nd) memcpy(p->codes + (size_t)id[e] * m, c + e * m, (size_t)m);
    }
    return 0;
}

int cs_lf_part_build(cs_lf_part **out, const uint8_t *qb, size_t qlen, int64_t n, const uint8_t *recs,
                     const uint8_t *cnt, const uint8_t *keep, cs_err *err) {
    enum { CHUNK = 1024 }; /* records copied at a time: the kept ones are scattered */
    *out = NULL;
    cs_lf_part *p = calloc(1, sizeof *p);
    uint8_t *buf = malloc((size_t)CHUNK * CS_LF_RECORD);
    int rc = -1;
    if (!p || !buf || !(p->ix = calloc(1, sizeof *p->ix))) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for a part of the vote index");
        goto out;
    }
    p->ix->simd_max = 2;
    if (lf_quantizer_read(p->ix, qb, qlen, err)) goto out;
    int nprobe = (int)get32(qb + 68);
    lf_scan_setup(p->ix); /* the codebooks, for pq_encode */
    int64_t nd = 0, g = 0;
    for (int64_t i = 0; i < n; i++) nd += keep[i] ? cnt[i] : 0;
    if (!(p->gid = malloc(sizeof *p->gid * (size_t)(nd ? nd : 1)))) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld descriptors", (long long)nd);
        goto out;
    }
    for (int64_t i = 0, d = 0, b = 0; i < n; i++) {
        if (keep[i]) {
            if (rec_nk(recs + (size_t)i * CS_LF_RECORD) != cnt[i]) {
                cs_fail(err, CS_EFORMAT, "localfeat: record %lld has %d descriptors, the vote index %d",
                        (long long)i, rec_nk(recs + (size_t)i * CS_LF_RECORD), cnt[i]);
                goto out;
            }
            memcpy(buf + (size_t)b++ * CS_LF_RECORD, recs + (size_t)i * CS_LF_RECORD, CS_LF_RECORD);
            for (int k = 0; k < cnt[i]; k++) p->gid[d++] = g + k;
        }
        g += cnt[i];
        /* index_append numbers its descriptors on from ix->nd in the
         * records' order: the part's numbering keeps the whole index's */
        if ((b == CHUNK || (i == n - 1 && b > 0)) && lf_index_append(p->ix, 0, b, buf, err)) goto out;
        if (b == CHUNK || i == n - 1) b = 0;
    }
    if (p->ix->nd != nd) {
        cs_fail(err, CS_EINTERNAL, "localfeat: %lld descriptors in the part, %lld kept", (long long)p->ix->nd,
                (long long)nd);
        goto out;
    }
    if (cs_faiss_nlist(p->ix->f) > 0 && cs_faiss_set_param(p->ix->f, "nprobe", nprobe, err)) goto out;
    lf_scan_setup(p->ix);
    free(p->ix->owner); /* a part's owners are p->gid's records: the search reads neither */
    p->ix->owner = NULL;
    if (part_codes(p, err)) goto out;
    rc = 0;
out:
    free(buf);
    if (rc) cs_lf_part_free(p);
    else *out = p;
    return rc;
}

/* sorts list d[K], g[K] by (distance, number), -1 (INFINITY) last */
static void part_sort(float *d, int64_t *g) {
    for (int i = 1; i < CS_LF_NN; i++)
        for (int j = i; j > 0; j--) {
            int64_t a = g[j - 1] < 0 ? INT64_MAX : g[j - 1], b = g[j] < 0 ? INT64_MAX : g[j];
            if (d[j] < d[j - 1] || (d[j] == d[j - 1] && b < a)) {
                float t = d[j];
                d[j] = d[j - 1], d[j - 1] = t;
                int64_t u = g[j];
                g[j] = g[j - 1], g[j - 1] = u;
            } else {
                break;
            }
        }
}

int cs_lf_part_knn(cs_lf_part *p, int64_t n, const uint8_t *desc, float *dist, int64_t *gid, cs_err *err) {
    const int K = CS_LF_NN;
    cs_lf_index *ix = p->ix;
    float *x = malloc(sizeof(float) * 128 * (size_t)(n ? n : 1));
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)(n ? n : 1) * K);
    float *lut = ix->ct ? malloc(sizeof(float) * (size_t)ix->pq_m * 256) : NULL;
    int rc = -1;
    if (!x || !rows || (ix->ct && !lut)) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < 128 * n; i++) x[i] = desc[i];
    for (int64_t i = 0; i < n * K; i++) rows[i] = -1, dist[i] = INFINITY;
    if (n > 0 && ix->nd > 0 && lf_nearest(ix, n, x, rows, dist, err)) goto out;
    for (int64_t i = 0; i < n; i++) {
        if (ix->ct) /* the distance as the scan sums it: from 0, sub-quantizer by sub-quantizer */
            lf_scan_lut(ix, x + i * 128, lut);
        for (int k = 0; k < K; k++) {
            int64_t r = rows[i * K + k];
            if (r < 0 || r >= ix->nd) {
                gid[i * K + k] = -1, dist[i * K + k] = INFINITY;
                continue;
            }
            if (ix->ct) {
                float d = 0;
                for (int s = 0; s < ix->pq_m; s++) d += lut[s * 256 + p->codes[(size_t)r * ix->pq_m + s]];
                dist[i * K + k] = d;
            }
            gid[i * K + k] = p->gid[r];
        }
        part_sort(dist + i * K, gid + i * K);
    }
    rc = 0;
out:
    free(x);
    free(rows);
    free(lut);
    return rc;
}

void cs_lf_part_merge(float *acc_d, int64_t *acc_g, const float *d, const int64_t *g, int64_t n) {
    const int K = CS_LF_NN;
    for (int64_t i = 0; i < n; i++) {
        float md[CS_LF_NN];
        int64_t mg[CS_LF_NN];
        const float *ad = acc_d + i * K, *bd = d + i * K;
        const int64_t *ag = acc_g + i * K, *bg = g + i * K;
        for (int k = 0, a = 0, b = 0; k < K; k++) { /* two sorted lists: the best K of both (K from each) */
            int64_t ga = ag[a] < 0 ? INT64_MAX : ag[a], gb = bg[b] < 0 ? INT64_MAX : bg[b];
            if (ad[a] < bd[b] || (ad[a] == bd[b] && ga <= gb)) md[k] = ad[a], mg[k] = ag[a++];
            else md[k] = bd[b], mg[k] = bg[b++];
        }
        memcpy(acc_d + i * K, md, sizeof md);
        memcpy(acc_g + i * K, mg, sizeof mg);
    }
}

int cs_lf_part_votes(const int64_t *first, int64_t nrec, const cs_lf_set *q, int64_t nq, const int64_t *gid,
                     int max_out, cs_lf_vote *out, int *nout, cs_err *err) {
    const int K = CS_LF_NN, M = CS_LF_QUERY_KP;
    int32_t *hit = malloc(sizeof(int32_t) * M * K), *own = malloc(sizeof(int32_t) * M * K);
    int64_t *loc = malloc(sizeof(int64_t) * M * K);
    cs_lf_vote *v = malloc(sizeof(cs_lf_vote) * M * K);
    if (!hit || !own || !loc || !v) {
        free(hit), free(own), free(loc), free(v);
        return cs_fail(err, CS_ENOMEM, "localfeat: out of memory");
    }
    /* lf_vote() of cs_lf_retrieve, on an index of one query set's nearest:
     * descriptor j of it is the j-th nearest, owned by its record */
    cs_lf_index one = {.owner = own, .nd = (int64_t)M * K};
    for (int64_t i = 0, at = 0; i < nq; at += q[i].n, i++) {
        nout[i] = 0;
        for (int64_t j = 0; j < (int64_t)q[i].n * K; j++) {
            int64_t g = gid[at * K + j];
            int64_t lo = 0, hi = nrec - 1; /* the record holding descriptor g: first[] ascends */
            while (lo < hi) {
                int64_t mid = (lo + hi + 1) / 2;
                if (first[mid] <= g) lo = mid;
                else hi = mid - 1;
            }
            loc[j] = g < 0 || nrec == 0 ? -1 : j;
            own[j] = (int32_t)lo;
        }
        if (q[i].n > 0) nout[i] = lf_vote(&one, loc, q[i].n, hit, v, max_out, out + i * max_out);
    }
    free(hit), free(own), free(loc), free(v);
    return 0;
}

/* ---- the whole index put together from its parts (lf_quant.h) ---- */

int cs_lf_part_into(cs_lf_index *ix, const cs_lf_part *p, cs_err *err) {
    const int m = p->ix->pq_m;
    if (!p->ix->ct || !ix->ct || ix->pq_m != m || cs_faiss_nlist(ix->f) != cs_faiss_nlist(p->ix->f))
        return cs_fail(err, CS_EUSAGE, "localfeat: a part of %s put into an index of %s", p->ix->factory,
                       ix->factory);
    int64_t *g = NULL;
    int64_t cap = 0;
    for (int64_t l = 0, nl = cs_faiss_nlist(p->ix->f); l < nl; l++) {
        const uint8_t *c, *wc;
        const int64_t *id, *wid;
        int64_t ln = cs_faiss_list(p->ix->f, l, &c, &id), wn = cs_faiss_list(ix->f, l, &wc, &wid);
        if (ln == 0) continue;
        if (ln > cap) {
            int64_t *t = realloc(g, sizeof *g * (size_t)ln);
            if (!t) {
                free(g);
                return cs_fail(err, CS_ENOMEM, "localfeat: out of memory for a list of %lld", (long long)ln);
            }
            g = t, cap = ln;
        }
        /* the part's ids number its descriptors in the whole index's order
         * (cs_lf_part_build), so its list ascends in numbers too; it must
         * start above the whole list's last: the entries stay in add order */
        for (int64_t e = 0; e < ln; e++) {
            g[e] = id[e] >= 0 && id[e] < p->ix->nd ? p->gid[id[e]] : -1;
            if (g[e] < 0 || g[e] >= ix->nd || (e ? g[e] <= g[e - 1] : wn > 0 && g[e] <= wid[wn - 1])) {
                free(g);
                return cs_fail(err, CS_EUSAGE, "localfeat: list %lld of a part is not above the index's", (long long)l);
            }
        }
        if (cs_faiss_list_append(ix->f, l, ln, g, c, err)) {
            free(g);
            return -1;
        }
    }
    free(g);
    return 0;
}

/* ---- a part kept beside its shard (<db>.shards/K-of-N.db.lfpart) ----
 * A header ("CSLP", version 1, the two fingerprints, the descriptor count,
 * nprobe, the factory), each descriptor's number in the whole index (8 B,
 * ascending), the part's FAISS index (cells and codebooks, its lists: code
 * and part-local id), and the end as <db>.lfvote's: the magic and the FAISS
 * part's length, so that a cut file is refused before FAISS reads it. */

static const char PMAGIC[4] = {'C', 'S', 'L', 'P'};
enum { PHDR = 4 + 4 + 8 + 8 + 8 + 4 + 64 };

static uint64_t fnv64(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

void cs_lf_part_keys(const uint8_t *q, size_t qlen, uint64_t fp, int64_t n, const uint8_t *keep,
                     uint64_t key[2]) {
    const uint64_t h0 = 0xcbf29ce484222325ull;
    uint8_t b[16];
    key[0] = fnv64(fnv64(h0, "quantizer", 9), q, qlen);
    put64(b, fp);
    put64(b + 8, (uint64_t)n);
    key[1] = fnv64(fnv64(h0, b, 16), keep, (size_t)n);
    if (!key[1]) key[1] = 1; /* 0 stays "no key" */
}

int cs_lf_part_save(const cs_lf_part *p, const char *path, const uint64_t key[2], cs_err *err) {
    cs_atomic_file a;
    if (cs_atomic_open(&a, path, err)) return -1;
    const cs_lf_index *ix = p->ix;
    uint8_t h[PHDR] = {0};
    memcpy(h, PMAGIC, 4);
    put32(h + 4, 1);
    put64(h + 8, key[0]);
    put64(h + 16, key[1]);
    put64(h + 24, (uint64_t)ix->nd);
    put32(h + 32, (uint32_t)(cs_faiss_nlist(ix->f) > 0 ? cs_faiss_nprobe(ix->f) : 0));
    memcpy(h + 36, ix->factory, 63);
    int ok = fwrite(h, 1, sizeof h, a.f) == sizeof h;
    for (int64_t d = 0; ok && d < ix->nd; d++) {
        uint8_t b[8];
        put64(b, (uint64_t)p->gid[d]);
        ok = fwrite(b, 1, 8, a.f) == 8;
    }
    return lf_finish_with_faiss(&a, ok, ix, PMAGIC, path, err);
}

int cs_lf_part_load(cs_lf_part **out, const char *path, const uint64_t key[2], int64_t total, cs_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_ENOTFOUND, "%s: missing", path);
    uint8_t h[PHDR], tail[12];
    cs_lf_part *p = NULL;
    int rc = -1;
    if (fread(h, 1, PHDR, f) != PHDR || memcmp(h, PMAGIC, 4) || get32(h + 4) != 1 || h[36 + 63] != 0) {
        cs_fail(err, CS_EFORMAT, "%s: not a vote index part (bad header)", path);
        goto out;
    }
    if (get64(h + 8) != key[0] || get64(h + 16) != key[1]) {
        cs_fail(err, CS_ENOTFOUND, "%s: built with another quantizer or for other records", path);
        goto out;
    }
    const int64_t nd = (int64_t)get64(h + 24);
    if (nd < 0 || nd > total) {
        cs_fail(err, CS_EFORMAT, "%s: corrupt header (%lld descriptors of %lld)", path, (long long)nd,
                (long long)total);
        goto out;
    }
    if (!(p = calloc(1, sizeof *p)) || !(p->ix = calloc(1, sizeof *p->ix)) ||
        !(p->gid = malloc(sizeof *p->gid * (size_t)(nd ? nd : 1)))) {
        cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    p->ix->simd_max = 2;
    p->ix->nd = nd;
    memcpy(p->ix->factory, h + 36, 64);
    for (int64_t d = 0; d < nd; d++) {
        uint8_t b[8];
        if (fread(b, 1, 8, f) != 8) {
            cs_fail(err, CS_EFORMAT, "%s: truncated (numbers)", path);
            goto out;
        }
        p->gid[d] = (int64_t)get64(b);
        if (p->gid[d] < (d ? p->gid[d - 1] + 1 : 0) || p->gid[d] >= total) { /* ascending, in the whole index */
            cs_fail(err, CS_EFORMAT, "%s: corrupt (descriptor %lld)", path, (long long)d);
            goto out;
        }
    }
    long at = ftell(f), end = -1;
    if (at < 0 || fseek(f, -12, SEEK_END) || (end = ftell(f)) < at || fread(tail, 1, 12, f) != 12 ||
        memcmp(tail, PMAGIC, 4) || get64(tail + 4) != (uint64_t)(end - at) || fseek(f, at, SEEK_SET)) {
        cs_fail(err, CS_EFORMAT, "%s: truncated or corrupt (bad end)", path);
        goto out;
    }
    if (cs_faiss_read_fp(&p->ix->f, f, path, err)) goto out;
    if (cs_faiss_ntotal(p->ix->f) != nd || cs_faiss_dim(p->ix->f) != 128 || ftell(f) != end) {
        cs_fail(err, CS_EFORMAT, "%s: corrupt (index of %lld descriptors, %lld expected, or bad end)", path,
                (long long)cs_faiss_ntotal(p->ix->f), (long long)nd);
        goto out;
    }
    int np = (int)get32(h + 32);
    if (np > 0 && cs_faiss_nlist(p->ix->f) > 0 && cs_faiss_set_param(p->ix->f, "nprobe", np, err)) goto out;
    lf_scan_setup(p->ix);
    if (part_codes(p, err)) goto out;
    rc = 0;
out:
    fclose(f);
    if (rc) cs_lf_part_free(p);
    else *out = p;
    return rc;
}
