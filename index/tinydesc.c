/* tinydesc.c — tiny-image descriptor with PCA whitening (see tinydesc.h). */
#include "index/tinydesc.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "index/refs.h"

/* LAPACK's symmetric eigensolver (MRRR), from OpenBLAS (Debian builds it
 * with LAPACK but without LAPACKE, so the Fortran symbol is declared here;
 * the trailing size_t are gfortran's hidden string lengths). */
extern void ssyevr_(const char *jobz, const char *range, const char *uplo, const int *n, float *a,
                    const int *lda, const float *vl, const float *vu, const int *il, const int *iu,
                    const float *abstol, int *m, float *w, float *z, const int *ldz, int *isuppz,
                    float *work, const int *lwork, int *iwork, const int *liwork, int *info,
                    size_t, size_t, size_t);

int cs_tiny_raw(const uint8_t *thumb, float *out) {
    const int S = CS_THUMB_SIZE, T = CS_TINY_SIDE;
    double sum = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++) {
                const uint8_t *p = thumb + ((size_t)(2 * y) * S + 2 * x) * 3 + c;
                float v = (float)(p[0] + p[3] + p[S * 3] + p[S * 3 + 3]) / (4 * 255.0f);
                out[(c * T + y) * T + x] = v;
                sum += v;
            }
    float mean = (float)(sum / CS_TINY_IN);
    double ss = 0;
    for (int i = 0; i < CS_TINY_IN; i++) {
        out[i] -= mean;
        ss += (double)out[i] * out[i];
    }
    /* below half a grey level of spread over the image: constant */
    if (ss < 1e-6) {
        memset(out, 0, CS_TINY_IN * sizeof *out);
        return 0;
    }
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < CS_TINY_IN; i++) out[i] *= inv;
    return 1;
}

int cs_tiny_thumb(const cs_image *img, uint8_t *thumb, cs_err *err) {
    if (img->w == CS_THUMB_SIZE && img->h == CS_THUMB_SIZE) {
        memcpy(thumb, img->rgb, CS_THUMB_SIZE * CS_THUMB_SIZE * 3);
        return 0;
    }
    cs_image t = {0};
    if (cs_image_resize(&t, img, CS_THUMB_SIZE, CS_THUMB_SIZE, CS_RESIZE_AREA, err)) return -1;
    memcpy(thumb, t.rgb, CS_THUMB_SIZE * CS_THUMB_SIZE * 3);
    cs_image_free(&t);
    return 0;
}

int cs_tiny_region_thumbs(const cs_image *img, int reference, int mirror, uint8_t *thumbs, cs_err *err) {
    const int n = reference ? CS_TINY_RREG : CS_TINY_QREG;
    const size_t tb = CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    for (int r = 0; r < n; r++) {
        double f = 1, fx = 0, fy = 0; /* side fraction and offset fractions */
        if (r > 0 && reference) {
            static const double off[5][2] = {{0.075, 0.075}, {0, 0}, {0.15, 0}, {0, 0.15}, {0.15, 0.15}};
            f = 0.85;
            fx = off[r - 1][0];
            fy = off[r - 1][1];
        } else if (r > 0) {
            f = 0.6;
            fx = (r - 1) % 5 * 0.1;
            fy = (r - 1) / 5 * 0.1;
        }
        if (mirror) fx = 1 - f - fx; /* the same region of the mirror image */
        int x0 = (int)lround(fx * img->w), y0 = (int)lround(fy * img->h);
        int w = (int)lround(f * img->w), h = (int)lround(f * img->h);
        if (w < 1) w = 1;
        if (h < 1) h = 1;
        if (x0 + w > img->w) x0 = img->w - w;
        if (y0 + h > img->h) y0 = img->h - h;
        cs_image c = {0};
        if (cs_image_alloc(&c, w, h, err)) return -1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memcpy(c.rgb + ((size_t)y * w + x) * 3,
                       img->rgb + ((size_t)(y0 + y) * img->w + (mirror ? x0 + w - 1 - x : x0 + x)) * 3, 3);
        int rc = cs_tiny_thumb(&c, thumbs + (size_t)r * tb, err);
        cs_image_free(&c);
        if (rc) return -1;
    }
    return 0;
}

float cs_tiny_region_score(const float *q, int nq, const float *r, int nr, int dim) {
    float best = -2;
    for (int side = 0; side < 2; side++) {
        const float *a = side ? r : q, *b = side ? q : r; /* a's regions against b's whole image */
        int na = side ? nr : nq;
        for (int i = 0; i < na; i++) {
            float s = cblas_sdot(dim, a + (size_t)i * dim, 1, b, 1);
            if (s > best) best = s;
        }
    }
    return best;
}

/* Long: sample, centre, covariance, eigenpairs, projection: one PCA, step by step. */
static int tiny_learn(cs_tinydesc *m, const uint8_t *thumbs, int64_t n, cs_err *err) {
    memset(m, 0, sizeof *m);
    const int D = CS_TINY_IN, d = CS_TINY_DIM;
    const size_t tb = CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    int64_t want = n < CS_TINY_MAX_TRAIN ? n : CS_TINY_MAX_TRAIN;
    float *X = malloc((size_t)(want ? want : 1) * D * sizeof *X);
    float *C = malloc((size_t)D * D * sizeof *C);
    m->mean = calloc(D, sizeof *m->mean);
    m->proj = calloc((size_t)d * D, sizeof *m->proj);
    float *w = malloc(D * sizeof *w), *z = malloc((size_t)D * d * sizeof *z);
    int *isuppz = malloc(2 * (size_t)d * sizeof *isuppz);
    float *work = NULL;
    int *iwork = NULL;
    int rc = -1;
    if (!X || !C || !m->mean || !m->proj || !w || !z || !isuppz) {
        cs_fail(err, CS_ENOMEM, "tiny: out of memory learning the PCA");
        goto done;
    }
    /* an evenly spaced subset, constant thumbnails left out */
    int64_t k = 0;
    for (int64_t i = 0; i < want; i++) {
        int64_t src = want == n ? i : (int64_t)((double)i * n / want);
        if (cs_tiny_raw(thumbs + (size_t)src * tb, X + (size_t)k * D)) k++;
    }
    if (k < 2) {
        cs_fail(err, CS_EUSAGE, "tiny: need at least 2 non-constant references to learn the PCA (have %lld)",
                (long long)k);
        goto done;
    }
    for (int64_t i = 0; i < k; i++)
        for (int j = 0; j < D; j++) m->mean[j] += X[(size_t)i * D + j];
    for (int j = 0; j < D; j++) m->mean[j] /= (float)k;
    for (int64_t i = 0; i < k; i++)
        for (int j = 0; j < D; j++) X[(size_t)i * D + j] -= m->mean[j];
    /* Top eigenpairs of the covariance C = Xc^T Xc / (k-1) [D x D], or, with
     * fewer samples than dimensions, of the Gram matrix G = Xc Xc^T / (k-1)
     * [k x k] (same non-zero eigenvalues; v = Xc^T u / sqrt((k-1) lambda)),
     * which is far cheaper to decompose. Row-major upper = LAPACK lower. */
    int gram = k < D;
    int N = gram ? (int)k : D, nev = N < d ? N : d;
    if (gram) cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, N, D, 1.0f / (float)(k - 1), X, D, 0.0f, C, N);
    else cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, D, (int)k, 1.0f / (float)(k - 1), X, D, 0.0f, C, D);
    int il = N - nev + 1, iu = N, mfound = 0, info = 0, lwork = -1, liwork = -1, iwq;
    float vl = 0, vu = 0, abstol = 0, wq;
    ssyevr_("V", "I", "L", &N, C, &N, &vl, &vu, &il, &iu, &abstol, &mfound, w, z, &N, isuppz, &wq,
            &lwork, &iwq, &liwork, &info, 1, 1, 1);
    lwork = (int)wq, liwork = iwq;
    work = malloc((size_t)lwork * sizeof *work);
    iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        cs_fail(err, CS_ENOMEM, "tiny: out of memory for the eigensolver");
        goto done;
    }
    ssyevr_("V", "I", "L", &N, C, &N, &vl, &vu, &il, &iu, &abstol, &mfound, w, z, &N, isuppz, work,
            &lwork, iwork, &liwork, &info, 1, 1, 1);
    if (info != 0 || mfound != nev) {
        cs_fail(err, CS_EINTERNAL, "tiny: eigensolver failed (info %d, %d of %d values)", info, mfound, nev);
        goto done;
    }
    /* ascending eigenvalues: row r of proj is eigenvector nev-1-r */
    float l1 = w[nev - 1];
    for (int r = 0; r < nev; r++) {
        int j = nev - 1 - r;
        if (!(l1 > 0) || !(w[j] > 1e-6f * l1)) continue; /* no variance: zero row */
        float s = 1.0f / sqrtf(w[j] + CS_TINY_WHITEN_EPS * l1);
        float *row = m->proj + (size_t)r * D;
        if (gram) {
            /* v = Xc^T u / sqrt((k-1) lambda) */
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, D, 1.0f, X, D, z + (size_t)j * N, 1, 0.0f, row, 1);
            s /= sqrtf((float)(k - 1) * w[j]);
            for (int t = 0; t < D; t++) row[t] *= s;
        } else {
            for (int t = 0; t < D; t++) row[t] = z[(size_t)j * D + t] * s;
        }
    }
    m->dim = d;
    m->n_train = (int)k;
    rc = 0;
done:
    free(X), free(C), free(w), free(z), free(isuppz), free(work), free(iwork);
    if (rc) cs_tiny_free(m);
    return rc;
}

static int describe_rows(const cs_tinydesc *m, const uint8_t *thumbs, int64_t n, float *out,
                         cs_err *err) {
    enum { BLK = 1024 };
    const int D = CS_TINY_IN, d = m->dim;
    const size_t tb = CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    float *X = malloc((size_t)BLK * D * sizeof *X);
    char *flat = malloc(BLK);
    if (!X || !flat) {
        free(X), free(flat);
        return cs_fail(err, CS_ENOMEM, "tiny: out of memory");
    }
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        int nb = (int)(n - i0 < BLK ? n - i0 : BLK);
        for (int i = 0; i < nb; i++) {
            float *x = X + (size_t)i * D;
            flat[i] = !cs_tiny_raw(thumbs + (size_t)(i0 + i) * tb, x);
            for (int j = 0; j < D; j++) x[j] -= m->mean[j];
        }
        float *o = out + (size_t)i0 * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, d, D, 1.0f, X, D, m->proj, D, 0.0f, o, d);
        for (int i = 0; i < nb; i++) {
            float *r = o + (size_t)i * d;
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double)r[j] * r[j];
            if (flat[i] || ss < 1e-24) {
                memset(r, 0, (size_t)d * sizeof *r);
                continue;
            }
            float inv = (float)(1.0 / sqrt(ss));
            for (int j = 0; j < d; j++) r[j] *= inv;
        }
    }
    free(X), free(flat);
    return 0;
}

/* The product runs on tiles of a fixed TILE rows, unused rows zero: OpenBLAS
 * picks its kernels by the matrix shape, and inside one a row's last bits
 * still depend on its place in the tile (measured: the same thumbnail at
 * place 6 and place 10 differs by 2e-7). So with ids, a row goes to place
 * id % TILE of the tile of id / TILE: a reference's descriptor is then the
 * same whichever batch computes it, and a store built in pieces (index add
 * under mpirun, each rank its shard) holds the bytes of one process.
 * Without ids (queries: one image, or a region set), one product of n rows:
 * no padding work, the bits of the queries unchanged. */
static int tiny_describe(const cs_tinydesc *m, const uint8_t *thumbs, const int64_t *ids, int64_t n, float *out,
                         cs_err *err) {
    enum { TILE = 32 };
    const int D = CS_TINY_IN, d = m->dim;
    const size_t tb = CS_THUMB_SIZE * CS_THUMB_SIZE * 3;
    float *X = malloc((size_t)TILE * D * sizeof *X), *o = malloc((size_t)TILE * d * sizeof *o);
    int64_t row[TILE]; /* the input row at each place, -1 = unused */
    char flat[TILE];
    if (!X || !o) {
        free(X), free(o);
        return cs_fail(err, CS_ENOMEM, "tiny: out of memory");
    }
    if (!ids) {
        free(X), free(o);
        return describe_rows(m, thumbs, n, out, err);
    }
    for (int64_t i = 0; i < n;) {
        for (int p = 0; p < TILE; p++) row[p] = -1;
        int64_t key = ids ? ids[i] / TILE : 0;
        for (int p = 0; i < n; i++) { /* places increase inside a tile */
            int q = ids ? (int)(((ids[i] % TILE) + TILE) % TILE) : p;
            if (q >= TILE || (ids && (ids[i] / TILE != key || (p > 0 && q < p)))) break;
            row[q] = i;
            p = q + 1;
        }
        for (int p = 0; p < TILE; p++) {
            float *x = X + (size_t)p * D;
            if (row[p] < 0) {
                memset(x, 0, (size_t)D * sizeof *x);
                continue;
            }
            flat[p] = !cs_tiny_raw(thumbs + (size_t)row[p] * tb, x);
            for (int j = 0; j < D; j++) x[j] -= m->mean[j];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TILE, d, D, 1.0f, X, D, m->proj, D, 0.0f, o, d);
        for (int p = 0; p < TILE; p++) {
            if (row[p] < 0) continue;
            float *r = out + (size_t)row[p] * d;
            memcpy(r, o + (size_t)p * d, (size_t)d * sizeof *r);
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double)r[j] * r[j];
            if (flat[p] || ss < 1e-24) {
                memset(r, 0, (size_t)d * sizeof *r);
                continue;
            }
            float inv = (float)(1.0 / sqrt(ss));
            for (int j = 0; j < d; j++) r[j] *= inv;
        }
    }
    free(X), free(o);
    return 0;
}

/* OpenBLAS splits a product over as many threads as the process may use
 * (its CPU affinity), and the split changes the last bits: one thread, so
 * the projection and the descriptors are the same under any machine share
 * (mpirun binds each rank to one core), as in tiled_l2.c. */
int cs_tiny_learn(cs_tinydesc *m, const uint8_t *thumbs, int64_t n, cs_err *err) {
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
    int rc = tiny_learn(m, thumbs, n, err);
    openblas_set_num_threads(saved);
    return rc;
}

int cs_tiny_describe(const cs_tinydesc *m, const uint8_t *thumbs, int64_t n, float *out, cs_err *err) {
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
    int rc = tiny_describe(m, thumbs, NULL, n, out, err);
    openblas_set_num_threads(saved);
    return rc;
}

int cs_tiny_describe_ids(const cs_tinydesc *m, const uint8_t *thumbs, const int64_t *ids, int64_t n, float *out,
                         cs_err *err) {
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
    int rc = tiny_describe(m, thumbs, ids, n, out, err);
    openblas_set_num_threads(saved);
    return rc;
}

int cs_tiny_save(const cs_tinydesc *m, const char *path, cs_err *err) {
    cs_safetensors_out t[2] = {{"mean", CS_DT_F32, 1, {CS_TINY_IN}, m->mean},
                      {"proj", CS_DT_F32, 2, {m->dim, CS_TINY_IN}, m->proj}};
    char meta[160];
    snprintf(meta, sizeof meta,
             "{\"descriptor\":\"tiny\",\"version\":\"1\",\"n_train\":\"%d\",\"whiten_eps\":\"%g\"}",
             m->n_train, (double)CS_TINY_WHITEN_EPS);
    return cs_safetensors_write(path, t, 2, meta, err);
}

int cs_tiny_load(cs_tinydesc *m, const char *path, cs_err *err) {
    memset(m, 0, sizeof *m);
    cs_safetensors st;
    if (cs_safetensors_open(&st, path, err)) return -1;
    int64_t ms[1] = {CS_TINY_IN}, ps[2] = {CS_TINY_DIM, CS_TINY_IN};
    const float *mean = NULL, *proj = NULL;
    int mo = 0, po = 0, rc = -1;
    if (!cs_safetensors_get_f32(&st, "mean", 1, ms, &mean, &mo, err) &&
        !cs_safetensors_get_f32(&st, "proj", 2, ps, &proj, &po, err)) {
        m->mean = malloc(CS_TINY_IN * sizeof *m->mean);
        m->proj = malloc((size_t)CS_TINY_DIM * CS_TINY_IN * sizeof *m->proj);
        if (!m->mean || !m->proj) {
            cs_fail(err, CS_ENOMEM, "%s: out of memory", path);
        } else {
            memcpy(m->mean, mean, CS_TINY_IN * sizeof *m->mean);
            memcpy(m->proj, proj, (size_t)CS_TINY_DIM * CS_TINY_IN * sizeof *m->proj);
            m->dim = CS_TINY_DIM;
            rc = 0;
            for (size_t i = 0; i < (size_t)CS_TINY_DIM * CS_TINY_IN && !rc; i++)
                if (!isfinite(m->proj[i]) || (i < CS_TINY_IN && !isfinite(m->mean[i])))
                    rc = cs_fail(err, CS_EFORMAT, "%s: non-finite value", path);
        }
    }
    if (mo) free((void *)mean);
    if (po) free((void *)proj);
    cs_safetensors_close(&st);
    if (rc) cs_tiny_free(m);
    return rc;
}

void cs_tiny_free(cs_tinydesc *m) {
    free(m->mean);
    free(m->proj);
    memset(m, 0, sizeof *m);
}
