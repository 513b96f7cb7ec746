/* embed_internal.h — what embed.c and background.c share (not part of the API):
 * a batch of decoded images waiting for their vectors, and the weights check
 * that keeps two SSCD models out of one column. */
#ifndef CS_EMBED_INTERNAL_H
#define CS_EMBED_INTERNAL_H

#include <stdint.h>

#include "core/progress.h"
#include "index/embed.h"
#include "index/vecstore.h"

#define EMB_BATCH 32 /* images decoded, then embedded and appended together (sorted by
                        * size inside into ResNet batches of up to 8) */

/* Images queued for one column: a full batch is described and appended at
 * once, so an interrupted run loses at most one batch. */
typedef struct {
    cs_embedder *e;
    cs_vecstore *vs;        /* writable column the vectors go to */
    cs_progress *pr;        /* may be NULL */
    cs_image imgs[EMB_BATCH];
    int64_t ids[EMB_BATCH];
    int nb;
    float *out;             /* [EMB_BATCH][dim] */
    int64_t computed;       /* vectors appended so far */
} emb_batch;

int emb_batch_init(emb_batch *b, cs_embedder *e, cs_vecstore *vs, cs_progress *pr, cs_err *err);
/* Queues img under id, taking the image (*img is zeroed); flushes a full batch. */
int emb_batch_push(emb_batch *b, int64_t id, cs_image *img, cs_err *err);
/* 1 when id is queued and not yet appended. */
int emb_batch_queued(const emb_batch *b, int64_t id);
int emb_batch_flush(emb_batch *b, cs_err *err);
void emb_batch_free(emb_batch *b); /* frees queued images (not appended) */

/* A set of row ids (open addressing), seeded with a column's ids: cs_vecstore_find
 * re-sorts its index after every append, too slow between batches of a
 * million-row column. */
typedef struct {
    int64_t *slot; /* INT64_MIN = empty */
    size_t cap, n;
} emb_idset;

int emb_idset_init(emb_idset *s, const cs_vecstore *vs, cs_err *err);
int emb_idset_has(const emb_idset *s, int64_t id);
int emb_idset_add(emb_idset *s, int64_t id, cs_err *err);
void emb_idset_free(emb_idset *s);

/* The sscd column vs must hold vectors of the weights file named weights:
 * the base name is kept in store meta key (checked when vs has rows,
 * recorded when it has none). */
int emb_check_weights(cs_store *s, const cs_vecstore *vs, const char *key, const char *weights,
                      cs_err *err);

/* The weights path of an "sscd[@PP]:WEIGHTS" spec (into spec), or NULL. */
const char *emb_spec_weights(const char *spec);

#endif
