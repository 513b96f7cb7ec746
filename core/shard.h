/* shard.h — a store split into shards (docs/SCALE.md, index/shard.h).
 *
 * A sharded store is the file DB (the manifest: every table as usual, with
 * the refs rows of all shards under their global ids, and the meta keys
 * 'shards' = N and 'shard_offsets' = "o1 o2 ... oN") beside the folder
 * DB.shards/ holding K-of-N.db, K = 1..N: ordinary stores, each with the
 * refs, ref_hashes, ref_thumbs and ref_localfeat rows of its inputs under
 * local ids (global id = local id + oK).
 *
 * Opening the manifest (core/store.c) puts TEMP views named ref_hashes,
 * ref_thumbs and ref_localfeat over the shards (read-only, through
 * core/shard_union.c: no ATTACH, so any number of shards), which
 * shadow the manifest's empty tables: every reader's SQL then sees the union
 * under global ids, with only the rows whose refs row is 'ok' (a reference
 * one shard kept that another shard already had is a duplicate). */
#ifndef CS_SHARD_H
#define CS_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/store.h"

/* index/refs.h's CS_THUMB_SIZE (checked there): the size of the thumbnails
 * a --no-thumbs store re-reads from source (the meta key thumbs = 'source'
 * makes ref_thumbs a view that does it; core/shard.c). */
#define CS_STORE_THUMB 64

/* A tar member kept without a thumbnail (index add --no-thumbs) has a
 * ref_thumbs row with w = h = 0 whose rgb is this locator, not pixels:
 *   magic[8] "CSTARLC1" (an uncompressed shard) or "CSTARGZ1" (a gzip'd
 *   one), u64 offset of the member's data in the shard file (gzip'd: in its
 *   uncompressed stream), u64 its size, u32 the length of the shard's path
 *   at the start of refs.source ("PATH//NAME"), all little-endian.
 * cs_ref_thumb re-reads those bytes, checks their sha256 against refs.sha256
 * (a shard changed or rewritten since is an error naming the member, never
 * other pixels) and decodes them as index add did. A gzip'd shard's member
 * is inflated from the nearest of the shard's access points (table
 * tar_points of the store, or of the store's shard, that holds the row;
 * core/gzidx.h), or from the file's start when it has none before it. */
#define CS_TAR_LOC_BYTES 28
void cs_tar_loc_pack(unsigned char out[CS_TAR_LOC_BYTES], uint64_t off, uint64_t len, uint32_t plen, int gz);
/* 0 and the fields when b is a locator, -1 when it is not. */
int cs_tar_loc_unpack(const unsigned char *b, size_t n, uint64_t *off, uint64_t *len, uint32_t *plen, int *gz);

/* The table of a gzip'd shard's access points (written by index add
 * --no-thumbs, index/ingest_tar.c): one row a point, window raw (length =
 * wlen) or deflated by zlib's compress2 (shorter). Once per point, not per
 * reference: the spacing (ingest_tar.c) amortises its 32 KiB windows. */
#define CS_TAR_POINTS_SQL                                                                                  \
    "CREATE TABLE IF NOT EXISTS main.tar_points(shard TEXT NOT NULL, out_off INTEGER NOT NULL, "         \
    "in_off INTEGER NOT NULL, bits INTEGER NOT NULL, wlen INTEGER NOT NULL, window BLOB NOT NULL, "       \
    "PRIMARY KEY(shard, out_off))"

/* "<db>.shards/<k+1>-of-<n>.db" for k = 0..n-1; caller frees. */
char *cs_shard_path(const char *db, int k, int n);
/* "<db>.shards"; caller frees. */
char *cs_shard_dir(const char *db);
/* Number of shards of an opened store (meta 'shards'), 0 when not sharded. */
int cs_store_shards(cs_store *s);
/* The n numbers of meta 'shard_offsets' (global id = local id + off[k]);
 * -1 when the store has none or fewer. */
int cs_store_shard_offsets(cs_store *s, long long *off, int n);
/* Checks the shards are there and creates the views when s is a manifest;
 * 0 (and nothing) when it is not. Called by every cs_store_open*. */
int cs_store_attach_shards(cs_store *s, cs_err *err);
/* Drops the views (before the catalogue is rewritten). */
void cs_store_detach_shards(cs_store *s);
/* Registers the virtual table module cs_shard_union on db (core/shard_union.c):
 * `CREATE VIRTUAL TABLE temp.X USING cs_shard_union(ref_hashes|ref_thumbs|
 * ref_localfeat)` is that table of the n shards of manifest, ids offset by
 * off[k] (copied), each shard opened read-only on first use by a connection of
 * its own. */
int cs_shard_union_register(sqlite3 *db, const char *manifest, int n, const long long *off, cs_err *err);

#endif
