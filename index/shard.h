/* shard.h — building a sharded store (`index add` under mpirun, or
 * --shards N in one process). The layout is core/shard.h's.
 *
 * 1. cs_shard_prepare (once, rank 0): DB.shards/, and a check that DB is
 *    not already sharded another way.
 * 2. cs_ingest_add with opts.shard_k/shard_n into cs_shard_path(DB, k, n)
 *    (each rank its own): each shard holds a contiguous run of the inputs
 *    in input order (index/ingest.h), so the shards in order are the rows
 *    one process would have written, in its order.
 * 3. cs_shard_finish (once, rank 0, after every shard is done): the
 *    manifest's refs catalogue: shard K's rows under global id = local id +
 *    (sum of the earlier shards' largest ids), which is the id one process
 *    gives when every shard was built from scratch; then the duplicates
 *    across shards (same sha256 as an 'ok' row with a smaller global id)
 *    become 'duplicate' with dup_of = that row, as one process records them.
 *    Idempotent: a rerun rewrites the same rows. */
#ifndef CS_INDEX_SHARD_H
#define CS_INDEX_SHARD_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    int64_t refs, ok, duplicate, error; /* the catalogue after the merge */
    int64_t cross_dups;                 /* rows one shard kept, that were duplicates across shards */
} cs_shard_totals;

int cs_shard_prepare(const char *db, int n, cs_err *err);
int cs_shard_finish(const char *db, int n, cs_shard_totals *t, cs_err *err);

#endif
