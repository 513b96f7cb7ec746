/* an_mpi.c — the matcher alone (analyze.h: cs_an_matcher), for the other
 * ranks of copyscope-mpi: no MPI here (the CLI moves the bytes), only the
 * reference side loaded as cs_analyze_run loads it, so that a batch matched
 * here gives the results rank 0 would have computed itself. */
#include <stdlib.h>

#include "analyze/analyze.h"
#include "analyze/analyze_internal.h"
#include "core/parallel.h"

struct cs_an_matcher {
    an_state A;
};

int cs_an_matcher_open(cs_an_matcher **out, cs_store *s, const cs_analyze_opts *o, cs_err *err) {
    cs_an_matcher *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m) return cs_fail(err, CS_ENOMEM, "analyze: out of memory");
    m->A = (an_state){.s = s, .o = o, .set = &o->set, .threads = o->threads > 0 ? o->threads : cs_threads()};
    if (an_load_refs(&m->A, err)) {
        cs_an_matcher_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int cs_an_matcher_run(cs_an_matcher *m, const cs_an_query *q, int64_t nq, cs_an_result *res, cs_err *err) {
    return cs_an_match_batch(&m->A.refs, q, nq, m->A.set, m->A.threads, res, err);
}

const cs_an_refs *cs_an_matcher_refs(const cs_an_matcher *m) { return &m->A.refs; }
const cs_an_settings *cs_an_matcher_settings(const cs_an_matcher *m) { return m->A.set; }

void cs_an_matcher_free(cs_an_matcher *m) {
    if (!m) return;
    an_state *A = &m->A;
    for (int i = 0; i < A->h.n_emb; i++) free(A->h.emb[i]);
    free(A->h.emb);
    cs_an_refs_free(&A->refs);
    cs_hash_db_free(&A->hdb);
    cs_ref_thumbs_free(&A->th);
    free(m);
}
