// faiss_shim.cpp — extern "C" layer over FAISS's C++ API (see faiss_shim.h).
// core/err.h is a C header without extern "C" guards
extern "C" {
#include "core/err.h"
}
#include "index/faiss_shim.h"

#include <cstring>
#include <string>
#include <exception>
#include <new>
#include <stdexcept>

#include <faiss/AutoTune.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/utils/utils.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexRefine.h>
#include <faiss/Index.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <vector>
#include <omp.h>

struct cs_faiss {
    faiss::Index *index;
    // the lists of an IVF-PQ we scan ourselves, set by cs_faiss_pq_parts
    // (cs_faiss_list is called per probed list: no casts there)
    const faiss::ArrayInvertedLists *lists;
};

// Runs body, turning any exception into "faiss: <what>: <message>".
template <class F> static int guarded(cs_err *err, const char *what, F body) {
    try {
        body();
        return 0;
    } catch (const std::bad_alloc &) {
        return cs_fail(err, CS_ENOMEM, "faiss: %s: out of memory", what);
    } catch (const std::exception &e) {
        // FAISS messages are multi-line ("Error in ... at file:line: msg"): keep one line
        std::string m = e.what();
        for (char &c : m)
            if (c == '\n') c = ' ';
        return cs_fail(err, CS_EUSAGE, "faiss: %s: %s", what, m.c_str());
    } catch (...) {
        return cs_fail(err, CS_EINTERNAL, "faiss: %s: unknown exception", what);
    }
}

extern "C" int cs_faiss_new(cs_faiss **out, int dim, const char *factory, int inner_product,
                            cs_err *err) {
    *out = nullptr;
    if (dim < 1) return cs_fail(err, CS_EUSAGE, "faiss: bad dimension %d", dim);
    faiss::Index *ix = nullptr;
    if (guarded(err, factory, [&] {
            ix = faiss::index_factory(dim, factory,
                                      inner_product ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2);
        }))
        return -1;
    cs_faiss *f = new (std::nothrow) cs_faiss{ix, nullptr};
    if (!f) {
        delete ix;
        return cs_fail(err, CS_ENOMEM, "faiss: out of memory");
    }
    *out = f;
    return 0;
}

extern "C" int cs_faiss_is_trained(const cs_faiss *f) { return f->index->is_trained; }
extern "C" int64_t cs_faiss_ntotal(const cs_faiss *f) { return f->index->ntotal; }
extern "C" int cs_faiss_dim(const cs_faiss *f) { return f->index->d; }

extern "C" int cs_faiss_train(cs_faiss *f, int64_t n, const float *x, cs_err *err) {
    return guarded(err, "train", [&] { f->index->train(n, x); });
}

extern "C" int cs_faiss_set_train_iters(cs_faiss *f, int niter, cs_err *err) {
    return guarded(err, "train iterations", [&] {
        faiss::Index *ix = f->index;
        if (auto *rf = dynamic_cast<faiss::IndexRefine *>(ix)) ix = rf->base_index; // ",RFlat"
        faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(ix);
        if (!ivf) throw std::runtime_error("not an IVF index");
        ivf->cp.niter = niter;
    });
}

extern "C" int cs_faiss_set_train_sample(cs_faiss *f, int per_centroid, int niter, cs_err *err) {
    return guarded(err, "train sample", [&] {
        faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(f->index);
        if (!ivf) throw std::runtime_error("not an IVF index");
        ivf->cp.max_points_per_centroid = per_centroid;
        ivf->cp.niter = niter;
        if (auto *mi = dynamic_cast<faiss::MultiIndexQuantizer *>(ivf->quantizer)) {
            mi->pq.cp.max_points_per_centroid = per_centroid;
            mi->pq.cp.niter = niter;
        }
        if (auto *pq = dynamic_cast<faiss::IndexIVFPQ *>(ivf)) {
            pq->pq.cp.max_points_per_centroid = per_centroid;
            pq->pq.cp.niter = niter;
        }
        if (auto *fs = dynamic_cast<faiss::IndexIVFPQFastScan *>(ivf)) { // "PQ32x4fs"
            fs->pq.cp.max_points_per_centroid = per_centroid;
            fs->pq.cp.niter = niter;
        }
    });
}

extern "C" int cs_faiss_add(cs_faiss *f, int64_t n, const float *x, cs_err *err) {
    if (!f->index->is_trained) return cs_fail(err, CS_EUSAGE, "faiss: add: index is not trained");
    return guarded(err, "add", [&] { f->index->add(n, x); });
}

extern "C" int cs_faiss_set_param(cs_faiss *f, const char *name, double value, cs_err *err) {
    return guarded(err, name, [&] {
        // FAISS 1.7.3's ParameterSpace does not know the refine stage's k_factor
        auto *rf = dynamic_cast<faiss::IndexRefine *>(f->index);
        faiss::IndexIVF *ivf = faiss::ivflib::try_extract_index_ivf(f->index);
        auto *pq = dynamic_cast<faiss::IndexIVFPQ *>(ivf);
        auto *fs = dynamic_cast<faiss::IndexIVFFastScan *>(ivf); // a "PQ..x4fs" fast-scan code
        if (rf && !strcmp(name, "k_factor")) rf->k_factor = (float)value;
        else if (!strcmp(name, "by_residual") && pq && !pq->is_trained) pq->by_residual = value != 0;
        else if (!strcmp(name, "by_residual") && fs && !fs->is_trained) fs->by_residual = value != 0;
        else faiss::ParameterSpace().set_index_parameter(f->index, name, value);
    });
}

extern "C" int cs_faiss_search(cs_faiss *f, int64_t nq, const float *q, int k, float *scores,
                               int64_t *rows, cs_err *err) {
    if (k < 1) return cs_fail(err, CS_EUSAGE, "faiss: search: k = %d", k);
    static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "idx_t is 64-bit");
    return guarded(err, "search", [&] {
        f->index->search(nq, q, k, scores, reinterpret_cast<faiss::Index::idx_t *>(rows));
    });
}

extern "C" int cs_faiss_write(const cs_faiss *f, const char *path, cs_err *err) {
    return guarded(err, path, [&] { faiss::write_index(f->index, path); });
}

extern "C" int cs_faiss_read(cs_faiss **out, const char *path, cs_err *err) {
    *out = nullptr;
    faiss::Index *ix = nullptr;
    if (guarded(err, path, [&] { ix = faiss::read_index(path); })) return -1;
    cs_faiss *f = new (std::nothrow) cs_faiss{ix, nullptr};
    if (!f) {
        delete ix;
        return cs_fail(err, CS_ENOMEM, "faiss: out of memory");
    }
    *out = f;
    return 0;
}

extern "C" void cs_faiss_free(cs_faiss *f) {
    if (!f) return;
    delete f->index;
    delete f;
}

extern "C" void cs_faiss_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}

// The IVF inside an index (through a refine stage or a pre-transform), or null.
static const faiss::IndexIVF *ivf_of(const faiss::Index *ix) {
    if (auto *rf = dynamic_cast<const faiss::IndexRefine *>(ix)) ix = rf->base_index;
    return faiss::ivflib::try_extract_index_ivf(ix);
}

extern "C" int cs_faiss_write_fp(const cs_faiss *f, FILE *fp, const char *what, cs_err *err) {
    return guarded(err, what, [&] { faiss::write_index(f->index, fp); });
}

static int wrap_index(cs_faiss **out, faiss::Index *ix, cs_err *err) {
    cs_faiss *f = new (std::nothrow) cs_faiss{ix, nullptr};
    if (!f) {
        delete ix;
        return cs_fail(err, CS_ENOMEM, "faiss: out of memory");
    }
    *out = f;
    return 0;
}

extern "C" int cs_faiss_read_fp(cs_faiss **out, FILE *fp, const char *what, cs_err *err) {
    *out = nullptr;
    faiss::Index *ix = nullptr;
    if (guarded(err, what, [&] { ix = faiss::read_index(fp); })) return -1;
    return wrap_index(out, ix, err);
}

extern "C" int cs_faiss_read_mmap(cs_faiss **out, const char *path, cs_err *err) {
    *out = nullptr;
    faiss::Index *ix = nullptr;
    if (guarded(err, path, [&] { ix = faiss::read_index(path, faiss::IO_FLAG_MMAP); })) return -1;
    return wrap_index(out, ix, err);
}

extern "C" int cs_faiss_reset(cs_faiss *f, cs_err *err) {
    return guarded(err, "reset", [&] { f->index->reset(); });
}

extern "C" int64_t cs_faiss_nlist(const cs_faiss *f) {
    const faiss::IndexIVF *ivf = ivf_of(f->index);
    return ivf ? (int64_t)ivf->nlist : 0;
}

extern "C" int cs_faiss_nprobe(const cs_faiss *f) {
    const faiss::IndexIVF *ivf = ivf_of(f->index);
    return ivf ? (int)ivf->nprobe : 0;
}

// The IVF-PQ of f whose scan we can do ourselves, or null.
static const faiss::IndexIVFPQ *plain_ivfpq(const cs_faiss *f) {
    auto *pq = dynamic_cast<const faiss::IndexIVFPQ *>(ivf_of(f->index));
    if (!pq || pq->by_residual || pq->pq.nbits != 8 || pq->pq.ksub != 256) return nullptr;
    if (!dynamic_cast<const faiss::ArrayInvertedLists *>(pq->invlists)) return nullptr;
    if (f->index != pq) return nullptr; // no refine stage or pre-transform in between
    return pq;
}

extern "C" int cs_faiss_add_codes(cs_faiss *f, int64_t n, const float *x, const uint8_t *codes, cs_err *err) {
    auto *pq = const_cast<faiss::IndexIVFPQ *>(plain_ivfpq(f));
    if (!pq || pq->direct_map.type != faiss::DirectMap::NoMap)
        return cs_fail(err, CS_EUSAGE, "faiss: add codes: not a plain IVF-PQ");
    return guarded(err, "add", [&] {
        std::vector<faiss::Index::idx_t> idx((size_t)n);
        pq->quantizer->assign(n, x, idx.data()); // IndexIVF::add_with_ids's cells
        for (int64_t i = 0; i < n; i++)
            if (idx[i] >= 0) pq->invlists->add_entry(idx[i], pq->ntotal + i, codes + (size_t)i * pq->code_size);
        pq->ntotal += n;
    });
}

extern "C" int cs_faiss_list_append(cs_faiss *f, int64_t l, int64_t n, const int64_t *ids, const uint8_t *codes,
                                    cs_err *err) {
    auto *pq = const_cast<faiss::IndexIVFPQ *>(plain_ivfpq(f));
    if (!pq || pq->direct_map.type != faiss::DirectMap::NoMap || l < 0 || l >= (int64_t)pq->nlist)
        return cs_fail(err, CS_EUSAGE, "faiss: list append: not a plain IVF-PQ or no list %lld", (long long)l);
    return guarded(err, "list append", [&] {
        pq->invlists->add_entries(l, n, reinterpret_cast<const faiss::Index::idx_t *>(ids), codes);
        pq->ntotal += n;
    });
}

// FAISS 1.7's IndexIVF::train, cut in its steps: train_q1, then
// IndexIVFPQ::train_residual (without residuals: the PQ trained on
// fvecs_maybe_subsample of x, ProductQuantizer::train's Train_default
// k-means of each slice), then is_trained
static faiss::IndexIVFPQ *untrained_pq(cs_faiss *f) {
    auto *pq = const_cast<faiss::IndexIVFPQ *>(plain_ivfpq(f));
    if (!pq || pq->is_trained || pq->by_residual || pq->do_polysemous_training ||
        pq->pq.train_type != faiss::ProductQuantizer::Train_default || pq->pq.assign_index)
        return nullptr;
    return pq;
}

extern "C" int cs_faiss_train_coarse(cs_faiss *f, int64_t n, const float *x, float **s, int64_t *ns, cs_err *err) {
    *s = nullptr, *ns = 0;
    faiss::IndexIVFPQ *pq = untrained_pq(f);
    if (!pq) return cs_fail(err, CS_EUSAGE, "faiss: train in steps: not an untrained plain IVF-PQ");
    return guarded(err, "train", [&] {
        pq->train_q1((size_t)n, x, pq->verbose, pq->metric_type);
        size_t m = (size_t)n;
        const float *t = faiss::fvecs_maybe_subsample((size_t)pq->d, &m, pq->pq.cp.max_points_per_centroid * pq->pq.ksub,
                                                      x, pq->verbose, pq->pq.cp.seed);
        float *c = static_cast<float *>(malloc(sizeof(float) * (m ? m : 1) * (size_t)pq->d));
        if (c) memcpy(c, t, sizeof(float) * m * (size_t)pq->d);
        if (t != x) delete[] t;
        if (!c) throw std::bad_alloc();
        *s = c, *ns = (int64_t)m;
    });
}

extern "C" int cs_faiss_pq_train_sub(cs_faiss *f, int m, int64_t ns, const float *s, float *centroids, cs_err *err) {
    faiss::IndexIVFPQ *pq = untrained_pq(f);
    if (!pq || m < 0 || (size_t)m >= pq->pq.M) return cs_fail(err, CS_EUSAGE, "faiss: train in steps: no sub-quantizer %d", m);
    const faiss::ProductQuantizer &P = pq->pq;
    return guarded(err, "train", [&] {
        std::vector<float> xs((size_t)ns * P.dsub);
        for (int64_t j = 0; j < ns; j++)
            memcpy(xs.data() + (size_t)j * P.dsub, s + (size_t)j * P.d + (size_t)m * P.dsub, P.dsub * sizeof(float));
        faiss::Clustering clus(P.dsub, P.ksub, P.cp);
        faiss::IndexFlatL2 index(P.dsub);
        clus.train((faiss::Index::idx_t)ns, xs.data(), index);
        memcpy(centroids, clus.centroids.data(), sizeof(float) * P.ksub * P.dsub);
    });
}

extern "C" int cs_faiss_pq_set_sub(cs_faiss *f, int m, const float *centroids, int last, cs_err *err) {
    faiss::IndexIVFPQ *pq = untrained_pq(f);
    if (!pq || m < 0 || (size_t)m >= pq->pq.M) return cs_fail(err, CS_EUSAGE, "faiss: train in steps: no sub-quantizer %d", m);
    pq->pq.set_params(centroids, m);
    if (last) pq->is_trained = true;
    return 0;
}

extern "C" int cs_faiss_pq_parts(cs_faiss *f, int *m, int *dsub, const float **centroids) {
    const faiss::IndexIVFPQ *pq = plain_ivfpq(f);
    if (!pq) return -1;
    f->lists = static_cast<const faiss::ArrayInvertedLists *>(pq->invlists);
    *m = (int)pq->pq.M, *dsub = (int)pq->pq.dsub, *centroids = pq->pq.centroids.data();
    return 0;
}

extern "C" int cs_faiss_coarse(cs_faiss *f, int64_t nq, const float *x, int nprobe, int64_t *lists, cs_err *err) {
    const faiss::IndexIVF *ivf = ivf_of(f->index);
    if (!ivf) return cs_fail(err, CS_EUSAGE, "faiss: coarse: not an IVF index");
    return guarded(err, "coarse search", [&] {
        std::vector<float> d((size_t)nq * nprobe);
        ivf->quantizer->search(nq, x, nprobe, d.data(), reinterpret_cast<faiss::Index::idx_t *>(lists));
    });
}

extern "C" int64_t cs_faiss_list(const cs_faiss *f, int64_t l, const uint8_t **codes, const int64_t **ids) {
    const faiss::ArrayInvertedLists *al = f->lists;
    static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "idx_t is 64-bit");
    *codes = al->codes[l].data();
    *ids = reinterpret_cast<const int64_t *>(al->ids[l].data());
    return (int64_t)al->ids[l].size();
}

extern "C" int cs_faiss_imi_parts(const cs_faiss *f, int *nbits, const float **centroids) {
    const faiss::IndexIVFPQ *pq = plain_ivfpq(f);
    auto *mi = pq ? dynamic_cast<const faiss::MultiIndexQuantizer *>(pq->quantizer) : nullptr;
    if (!mi || mi->pq.M != 2 || mi->pq.dsub * 2 != (size_t)pq->d || mi->pq.ksub != ((size_t)1 << mi->pq.nbits))
        return -1;
    *nbits = (int)mi->pq.nbits, *centroids = mi->pq.centroids.data();
    return 0;
}
