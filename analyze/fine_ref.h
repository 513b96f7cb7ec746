/* fine_ref.h — the pixels of a (generation, reference) pair at the working
 * resolution, CS_LF_SIDE (256 px), for the checks that follow a verified
 * geometry (issue 13: the replaced-part veto at 64 px saw a template twin's
 * other emblem or glyph as 0-3 differing cells; at 256 px the same part has
 * 16x the pixels).
 *
 * The store keeps 64 px thumbnails only. The reference's pixels at 256 px
 * come from its source, re-read (refs.source, the file index add read) and
 * checked against refs.sha256 as cs_ref_thumb does for a --no-thumbs store
 * (core/shard.h), so they are the bytes the keypoints were extracted from,
 * never other ones. The generation is decoded from its file by analyze; the
 * local-feature stage (an_local.c) keeps the decoded image, and only the
 * few pairs that can reach a local verdict are measured (the cost is one
 * decode of the reference's file a pair).
 *
 * Both sides are resized to S x S (aspect not kept) with the filter of the
 * local features' extraction (index/localfeat.c: area when shrinking,
 * bicubic when enlarging): the format of the 64 px thumbnails (analyze/
 * lf_colour.h takes S x S images of w x h originals and the verified
 * geometry in original pixels, cs_lfv_match.m_orig), so the geometry's
 * coordinates apply at any S as they are.
 *
 * A source that cannot be read (moved, deleted, changed since index add, a
 * tar member, which has no file of its own to re-read) is no error: the
 * check falls back to the 64 px thumbnails, as before, and the evidence
 * says so (part_lf.fine, analyze/evidence.md). */
#ifndef CS_FINE_REF_H
#define CS_FINE_REF_H

#include <pthread.h>
#include <stdint.h>

#include "core/image.h"
#include "core/store.h"

#define CS_FINE_SIDE 256 /* index/localfeat.h's CS_LF_SIDE (checked in fine_ref.c) */

/* Where a pair's fine pixels came from (cs_lfp.fine). */
enum {
    CS_FINE_NOT_ASKED = 0, /* the pair was not measured at 256 px (no local verdict to decide) */
    CS_FINE_OK,            /* measured at 256 px */
    CS_FINE_MISSING,       /* the reference's file cannot be read: 64 px */
    CS_FINE_CHANGED,       /* its bytes differ from the sha256 of index add: 64 px */
    CS_FINE_TAR,           /* a tar member (shard//member): 64 px */
    CS_FINE_UNDECODABLE,   /* decoding or resizing failed (or no memory): 64 px */
    CS_FINE_COARSE,        /* part_al without a significant verified geometry: the tiled-L2
                              box is too coarse for 256 px (an_part.c): 64 px */
    CS_FINE_LOWRES,        /* part_al: an image under 256 px on a side (no detail beyond its thumbnail): 64 px */
};
/* "256", "source missing", ...: the evidence's words for a status */
const char *cs_fine_name(int status);

/* The store's sources, read by id under a lock (one prepared statement on
 * the store's connection, which the other stages do not use meanwhile). */
typedef struct {
    cs_store *s;
    pthread_mutex_t lock;
    void *st; /* sqlite3_stmt */
    int ok;   /* 0: no statement (every load answers CS_FINE_MISSING) */
} cs_fine_refs;

void cs_fine_open(cs_fine_refs *F, cs_store *s);
void cs_fine_close(cs_fine_refs *F);

/* The reference id's image at S x S RGB into out (S * S * 3 bytes).
 * Returns a CS_FINE_* status; out is valid only for CS_FINE_OK. */
int cs_fine_ref_load(cs_fine_refs *F, int64_t id, int S, uint8_t *out, int *orig_w, int *orig_h);

/* A decoded image at S x S RGB into out, as cs_fine_ref_load resizes.
 * Returns 0, or -1 (no memory, empty image). */
int cs_fine_image(const cs_image *img, int S, uint8_t *out);

#endif
