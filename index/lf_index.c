/* lf_index.c — the local-feature vote index (localfeat.h's retrieval):
 * built from the records, kept beside the store (<db>.lfvote), loaded,
 * extended by an incremental add. Its search is lf_scan.c's. */
#include "index/localfeat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "index/faiss_shim.h"
#include "index/lf_index_internal.h"

/* ---- the vote index (its struct: lf_index_internal.h) ---- */

int64_t cs_lf_index_ndesc(const cs_lf_index *ix) { return ix->nd; }

void cs_lf_index_free(cs_lf_index *ix) {
    if (!ix) return;
    cs_faiss_free(ix->f);
    free(ix->owner);
    free(ix->ct);
    free(ix->ict);
    free(ix->icn);
    free(ix);
}

void cs_lf_default_factory(int64_t nd, char *buf, size_t cap, int *nprobe) {
    /* an inverted multi-index of 4^b cells, about CS_LF_PER_CELL descriptors
     * each (b from 5 to 10: 1,024 to 1M cells): b rounded to the nearest
     * cell size on a log scale, i.e. 4^b x CS_LF_PER_CELL within a factor
     * of 2 of nd (b + 1 from nd = 4^b x 2 CS_LF_PER_CELL). Rounded down
     * (session 5), 30M descriptors got 262,144 cells of ~114: 4x the codes
     * scanned per probed cell; now 1M cells of ~29. */
    int b = 5;
    while (b < 10 && ((int64_t)1 << (2 * b)) * 2 * CS_LF_PER_CELL <= nd) b++;
    if (nd < CS_LF_MIN_IMI) {
        snprintf(buf, cap, "Flat");
        *nprobe = 0;
        return;
    }
    snprintf(buf, cap, "IMI2x%d,PQ16np", b);
    *nprobe = CS_LF_NPROBE;
}

int cs_lf_index_set_nprobe(cs_lf_index *ix, int nprobe, cs_err *err) {
    if (cs_faiss_nlist(ix->f) <= 0) return 0;
    return cs_faiss_set_param(ix->f, "nprobe", nprobe, err);
}

void cs_lf_index_describe(const cs_lf_index *ix, char *buf, size_t cap) {
    if (cs_faiss_nlist(ix->f) > 0) snprintf(buf, cap, "%s, nprobe %d", ix->factory, cs_faiss_nprobe(ix->f));
    else snprintf(buf, cap, "%s", ix->factory);
}

/* descriptors [from, from + n) of the records as floats */
static void gather(const uint8_t *recs, const int64_t *first, int64_t nrec, int64_t from, int64_t n, float *x) {
    /* the record holding descriptor `from`: first[] is ascending */
    int64_t lo = 0, hi = nrec - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (first[mid] <= from) lo = mid;
        else hi = mid - 1;
    }
    for (int64_t d = from, i = lo; d < from + n; i++) {
        const uint8_t *rec = recs + (size_t)i * CS_LF_RECORD;
        int nk = rec[0] < CS_LF_REF_KP ? rec[0] : CS_LF_REF_KP;
        for (int k = (int)(d - first[i]); k < nk && d < from + n; k++, d++) {
            const uint8_t *p = rec + LF_HDR + k * LF_KPB + 6;
            for (int j = 0; j < 128; j++) x[(d - from) * 128 + j] = p[j];
        }
    }
}

static int faiss_encode; /* cs_lf_faiss_encode */

void cs_lf_faiss_encode(int on) { faiss_encode = on; }

/* Appends the descriptors of records [from, n) to ix (owners from, from+1,
 * ...): the first from records' descriptors are in it already. */
int lf_index_append(cs_lf_index *ix, int64_t from, int64_t n, const uint8_t *recs, cs_err *err) {
    enum { CHUNK = 65536 };
    int64_t add = 0;
    for (int64_t i = from; i < n; i++) add += rec_nk(recs + (size_t)i * CS_LF_RECORD);
    if (add == 0) return 0;
    int32_t *ow = realloc(ix->owner, sizeof(int32_t) * (size_t)(ix->nd + add));
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(n - from + 1));
    float *x = malloc(sizeof(float) * 128 * (size_t)(add < CHUNK ? add : CHUNK));
    /* the PQ codes ours (pq_encode: FAISS's own encoder is a scalar
     * distance per centroid, ~2/3 of a 1M-reference build), the cells
     * FAISS's: the same index, byte for byte (test_lf_index) */
    int own = !faiss_encode && ix->ct && ix->pq_m * ix->pq_dsub == 128;
    uint8_t *codes = own ? malloc((size_t)ix->pq_m * (size_t)(add < CHUNK ? add : CHUNK)) : NULL;
    int rc = -1;
    if (ow) ix->owner = ow;
    if (!ow || !first || !x || (own && !codes)) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld descriptors", (long long)(ix->nd + add));
        goto out;
    }
    int64_t d = 0;
    for (int64_t i = from; i < n; i++) {
        first[i - from] = d;
        for (int k = rec_nk(recs + (size_t)i * CS_LF_RECORD); k > 0; k--) ix->owner[ix->nd + d++] = (int32_t)i;
    }
    first[n - from] = d;
    for (int64_t at = 0; at < add; at += CHUNK) {
        int64_t m = add - at < CHUNK ? add - at : CHUNK;
        gather(recs + (size_t)from * CS_LF_RECORD, first, n - from, at, m, x);
        if (own ? lf_pq_encode(ix, m, x, codes) || cs_faiss_add_codes(ix->f, m, x, codes, err)
                : cs_faiss_add(ix->f, m, x, err)) {
            if (own && !err->code) cs_fail(err, CS_ENOMEM, "localfeat: out of memory encoding descriptors");
            goto out;
        }
    }
    ix->nd += add;
    rc = 0;
out:
    free(codes);
    free(x);
    free(first);
    return rc;
}

int64_t *lf_desc_first(int64_t n, const uint8_t *recs) {
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!first) return NULL;
    int64_t nd = 0;
    for (int64_t i = 0; i < n; i++) {
        first[i] = nd;
        nd += rec_nk(recs + (size_t)i * CS_LF_RECORD);
    }
    first[n] = nd;
    return first;
}

float *lf_train_sample(int64_t n, const uint8_t *recs, const int64_t *first, int64_t *nt) {
    int64_t nd = first[n];
    *nt = nd < CS_LF_MAX_TRAIN ? nd : CS_LF_MAX_TRAIN;
    float *x = malloc(sizeof(float) * 128 * (size_t)(*nt ? *nt : 1));
    if (!x) return NULL;
    /* an evenly spaced subset: the records follow the sources' order */
    for (int64_t i = 0; i < *nt; i++) gather(recs, first, n, i * nd / *nt, 1, x + i * 128);
    return x;
}

int lf_faiss_untrained(cs_faiss **f, const char *factory, cs_err *err) {
    if (cs_faiss_new(f, 128, factory, 0, err)) return -1;
    if (!cs_faiss_is_trained(*f) && cs_faiss_nlist(*f) > 0 &&
        (cs_faiss_set_train_sample(*f, 64, 10, err) || cs_faiss_set_param(*f, "by_residual", 0, err))) {
        cs_faiss_free(*f);
        *f = NULL;
        return -1;
    }
    return 0;
}

int cs_lf_index_build(cs_lf_index **out, int64_t n, const uint8_t *recs, const char *factory, cs_err *err) {
    *out = NULL;
    cs_lf_index *ix = calloc(1, sizeof *ix);
    if (ix) ix->simd_max = 2;
    int64_t *first = lf_desc_first(n, recs);
    float *x = NULL;
    int rc = -1;
    if (!ix || !first) {
        cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld records", (long long)n);
        goto out;
    }
    int64_t nd = first[n], nt = 0;
    int nprobe = CS_LF_NPROBE;
    if (!factory) cs_lf_default_factory(nd, ix->factory, sizeof ix->factory, &nprobe);
    else snprintf(ix->factory, sizeof ix->factory, "%s", factory);
    if (lf_faiss_untrained(&ix->f, ix->factory, err)) goto out;
    if (!cs_faiss_is_trained(ix->f)) {
        if (!(x = lf_train_sample(n, recs, first, &nt))) {
            cs_fail(err, CS_ENOMEM, "localfeat: out of memory for %lld descriptors", (long long)nt);
            goto out;
        }
        if (cs_faiss_train(ix->f, nt, x, err)) goto out;
        free(x);
        x = NULL;
    }
    lf_scan_setup(ix); /* the trained codebooks, for pq_encode */
    if (lf_index_append(ix, 0, n, recs, err)) goto out;
    if (cs_faiss_nlist(ix->f) > 0 && cs_faiss_set_param(ix->f, "nprobe", nprobe, err)) goto out;
    lf_scan_setup(ix);
    rc = 0;
out:
    free(x);
    free(first);
    if (rc) cs_lf_index_free(ix);
    else *out = ix;
    return rc;
}

/* ---- the vote index beside the store ---- */

static const char VMAGIC[4] = {'C', 'S', 'L', 'V'};
enum { VHDR = 4 + 4 + 4 + 4 + 8 + 8 + 8 + 64 + 4 };

/* The end of a side file whose head was written (ok): the FAISS index, then
 * the magic and the FAISS part's length, so that a truncated file is refused
 * before FAISS reads it (faiss::read_index leaks what it had read when a file
 * ends early). The file takes its place only when all of it was written. */
int lf_finish_with_faiss(cs_atomic_file *a, int ok, const cs_lf_index *ix, const char magic[4], const char *path,
                         cs_err *err) {
    long at = ok ? ftell(a->f) : -1;
    int bad = at < 0 || cs_faiss_write_fp(ix->f, a->f, path, err);
    if (!bad) {
        uint8_t tail[12];
        memcpy(tail, magic, 4);
        put64(tail + 4, (uint64_t)(ftell(a->f) - at));
        bad = fwrite(tail, 1, 12, a->f) != 12;
    }
    if (bad) {
        cs_err e2 = {0};
        cs_atomic_finish(a, 0, &e2);
        return err->code ? -1 : cs_fail(err, CS_EIO, "%s: write failed", path);
    }
    return cs_atomic_finish(a, 1, err);
}

int cs_lf_index_save(const cs_lf_index *ix, const char *path, uint64_t fp, int64_t nref, cs_err *err) {
    cs_atomic_file a;
    if (cs_atomic_open(&a, path, err)) return -1;
    uint8_t h[VHDR] = {0};
    memcpy(h, VMAGIC, 4);
    put32(h + 4, 1);
    put32(h + 8, CS_LF_RECORD);
    put32(h + 12, CS_LF_REF_KP);
    put64(h + 16, fp);
    put64(h + 24, (uint64_t)nref);
    put64(h + 32, (uint64_t)ix->nd);
    memcpy(h + 40, ix->factory, 63);
    put32(h + 104, (uint32_t)(cs_faiss_nlist(ix->f) > 0 ? cs_faiss_nprobe(ix->f) : 0));
    int ok = fwrite(h, 1, sizeof h, a.f) == sizeof h;
    for (int64_t d = 0; ok && d < ix->nd; d++) {
        uint8_t b[4];
        put32(b, (uint32_t)ix->owner[d]);
        ok = fwrite(b, 1, 4, a.f) == 4;
    }
    return lf_finish_with_faiss(&a, ok, ix, VMAGIC, path, err);
}

/* the header of a side file: 0 and *nd when it is one built from records
 * with fingerprint fp (nref of them), else an error saying why not */
static int vote_header(FILE *f, const char *path, uint64_t fp, int64_t nref, uint8_t h[VHDR], cs_err *err) {
    if (fread(h, 1, VHDR, f) != VHDR || memcmp(h, VMAGIC, 4))
        return cs_fail(err, CS_EFORMAT, "%s: not a local-feature vote index (bad header)", path);
    if (get32(h + 4) != 1 || get32(h + 8) != CS_LF_RECORD || get32(h + 12) != CS_LF_REF_KP)
        return cs_fail(err, CS_EFORMAT, "%s: vote index of another version (%u)", path, get32(h + 4));
    if (get64(h + 16) != fp || get64(h + 24) != (uint64_t)nref)
        return cs_fail(err, CS_ENOTFOUND, "%s: built for another reference set (%llu references, now %lld)", path,
                       (unsigned long long)get64(h + 24), (long long)nref);
    if (get64(h + 32) > (uint64_t)nref * CS_LF_REF_KP || h[40 + 63] != 0)
        return cs_fail(err, CS_EFORMAT, "%s: corrupt header", path);
    return 0;
}

int cs_lf_index_load(cs_lf_index **out, const char *path, uint64_t fp, int64_t nref, cs_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cs_fail(err, CS_ENOTFOUND, "%s: missing", path);
    uint8_t h[VHDR];
    cs_lf_index *ix = NULL;
    int rc = -1;
    if (vote_header(f, path, fp, nref, h, err)) goto out;
    if (!(ix = calloc(1, sizeof *ix))) goto nomem;
    ix->simd_max = 2;
    ix->nd = (int64_t)get64(h + 32);
    memcpy(ix->factory, h + 40, 64);
    if (!(ix->owner = malloc(sizeof(int32_t) * (size_t)(ix->nd ? ix->nd : 1)))) goto nomem;
    for (int64_t d = 0, prev = 0; d < ix->nd; d++) {
        uint8_t b[4];
        if (fread(b, 1, 4, f) != 4) {
            cs_fail(err, CS_EFORMAT, "%s: truncated (owners)", path);
            goto out;
        }
        int64_t o = (int32_t)get32(b);
        if (o < prev || o >= nref) {
            cs_fail(err, CS_EFORMAT, "%s: corrupt (descriptor %lld of reference %lld)", path, (long long)d, (long long)o);
            goto out;
        }
        ix->owner[d] = (int32_t)(prev = o);
    }
    uint8_t tail[12];
    long at = ftell(f), end = -1;
    if (at < 0 || fseek(f, -12, SEEK_END) || (end = ftell(f)) < at || fread(tail, 1, 12, f) != 12 ||
        memcmp(tail, VMAGIC, 4) || get64(tail + 4) != (uint64_t)(end - at) || fseek(f, at, SEEK_SET)) {
        cs_fail(err, CS_EFORMAT, "%s: truncated or corrupt (bad end)", path);
        goto out;
    }
    if (cs_faiss_read_fp(&ix->f, f, path, err)) goto out;
    if (cs_faiss_ntotal(ix->f) != ix->nd || cs_faiss_dim(ix->f) != 128 || ftell(f) != end) {
        cs_fail(err, CS_EFORMAT, "%s: corrupt (index of %lld descriptors, %lld expected, or bad end)", path,
                (long long)cs_faiss_ntotal(ix->f), (long long)ix->nd);
        goto out;
    }
    int np = (int)get32(h + 104);
    if (np > 0 && cs_faiss_nlist(ix->f) > 0 && cs_faiss_set_param(ix->f, "nprobe", np, err)) goto out;
    lf_scan_setup(ix);
    rc = 0;
    goto out;
nomem:
    cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
out:
    fclose(f);
    if (rc) cs_lf_index_free(ix);
    else *out = ix;
    return rc;
}

/* An incremental add: the side file at path when it was built from the
 * first m < n of these records (references added since: new ones come last,
 * by refs.id) and the default factory for all n records' descriptors is the
 * one it has (its cells, trained on the first m records, stay the right
 * size); then *out holds it and m is returned, else -1. */
static int64_t prefix_index(cs_lf_index **out, const char *path, int64_t n, const int64_t *ids,
                            const uint8_t *recs) {
    *out = NULL;
    FILE *f = path ? fopen(path, "rb") : NULL;
    uint8_t h[VHDR];
    if (!f) return -1;
    int ok = fread(h, 1, VHDR, f) == VHDR && !memcmp(h, VMAGIC, 4);
    fclose(f);
    int64_t m = ok ? (int64_t)get64(h + 24) : -1;
    if (m <= 0 || m >= n) return -1;
    int64_t nd = 0;
    for (int64_t i = 0; i < n; i++) nd += rec_nk(recs + (size_t)i * CS_LF_RECORD);
    char fac[64];
    int np;
    cs_lf_default_factory(nd, fac, sizeof fac, &np);
    if (h[40 + 63] != 0 || strcmp(fac, (const char *)h + 40)) return -1; /* the cells would be too big */
    cs_err e = {0};
    if (cs_lf_index_load(out, path, cs_lf_fingerprint(m, ids, recs), m, &e)) return -1;
    return m;
}

int cs_lf_index_open(cs_lf_index **out, const char *path, int64_t n, const int64_t *ids, const uint8_t *recs,
                     char *note, size_t cap, cs_err *err) {
    return cs_lf_index_open_fp(out, path, n, ids, recs, cs_lf_fingerprint(n, ids, recs), note, cap, err);
}

int cs_lf_index_open_fp(cs_lf_index **out, const char *path, int64_t n, const int64_t *ids, const uint8_t *recs,
                        uint64_t fp, char *note, size_t cap, cs_err *err) {
    cs_err why = {0};
    if (note && cap) note[0] = 0;
    if (out) {
        if (!cs_lf_index_load(out, path, fp, n, &why)) return 0;
    } else { /* only make sure the file is current: its header says */
        FILE *f = fopen(path, "rb");
        uint8_t h[VHDR];
        if (!f) {
            cs_fail(&why, CS_ENOTFOUND, "%s: missing", path);
        } else {
            int bad = vote_header(f, path, fp, n, h, &why);
            fclose(f);
            if (!bad) return 0;
        }
    }
    cs_lf_index *ix;
    int64_t m = why.code == CS_ENOTFOUND ? prefix_index(&ix, path, n, ids, recs) : -1;
    if (m >= 0) {
        if (lf_index_append(ix, m, n, recs, err)) {
            cs_lf_index_free(ix);
            return -1;
        }
    } else if (cs_lf_index_build(&ix, n, recs, NULL, err)) {
        return -1;
    }
    cs_err se = {0};
    int saved = path && !cs_lf_index_save(ix, path, fp, n, &se);
    if (!path) cs_fail(&se, CS_EUSAGE, "no path");
    char what[96];
    if (m >= 0) snprintf(what, sizeof what, "%lld appended to it", (long long)(n - m));
    else snprintf(what, sizeof what, "rebuilt");
    if (note && cap)
        snprintf(note, cap, "local-feature vote index: %s; %s%s for %lld references%s%s", why.msg, what,
                 saved ? " and saved" : "", (long long)n, saved ? "" : " (not saved: ", saved ? "" : se.msg);
    if (note && cap && !saved && strlen(note) + 2 < cap) strcat(note, ")");
    if (out) *out = ix;
    else cs_lf_index_free(ix);
    return 0;
}

void cs_lf_index_drop_search(cs_lf_index *ix) {
    cs_faiss_free(ix->f);
    ix->f = NULL;
    free(ix->owner), free(ix->ct), free(ix->ict), free(ix->icn);
    ix->owner = NULL, ix->ct = ix->ict = ix->icn = NULL;
}

