/* evidence_text.h — a finding's evidence (analyze/evidence.md, schema
 * copyscope.evidence/1) and its descriptors' scores as sentences a reader
 * understands without the code: what each number measures, which way is
 * closer, the threshold it was held against and the rule that decided the
 * verdict (for novel: every rule that did not fire, and by how much).
 *
 * Output is plain UTF-8 text (strings from the evidence included as they
 * are): the caller escapes it for its format. Keys the evidence lacks are
 * left out of the sentences, never guessed. */
#ifndef CS_REPORT_EVIDENCE_TEXT_H
#define CS_REPORT_EVIDENCE_TEXT_H

#include <cjson/cJSON.h>

#include "reports/buf.h"
#include "reports/report_model.h"

/* What a descriptor's score measures and its direction, e.g. for "tl2"
 * "tiled L2: RMS of the worst 16 px tile on 0–1 grey, 0 = identical"; an
 * unknown name is taken for an embedding column (cosine). */
const char *cs_rdesc_scale(const char *desc);
/* The short unit shown beside a score: "tiled L2, 0 = identical" ... */
const char *cs_rdesc_unit(const char *desc);
/* Appends " of 256 bits" / " of 64 bits" for the hashes, nothing otherwise. */
const char *cs_rdesc_of(const char *desc);
/* The verdict thresholds of a descriptor drawn on its histogram: up to 2
 * values (NAN skipped) with their labels ("copy ≤ 0.04"); returns how many. */
int cs_rdesc_thresholds(const char *desc, const cs_rthresh *t, double v[2], char label[2][48]);

/* The verdict's rule as one sentence: "copy: tiled L2 0.000 ≤ copy_tl2 0.04
 * (as is)", or for novel "no rule fired: best aligned tiled L2 0.31 > 0.12
 * near-copy bound; ...". ev may be NULL (the rule is then unknown). */
void cs_rev_rule(cs_buf *b, const cJSON *ev, const char *verdict, const cs_rthresh *t);
/* The evidence as short sentences, one per line ('\n' after each). */
void cs_rev_sentences(cs_buf *b, const cJSON *ev, const cs_rthresh *t);
/* The severity scale, one sentence (no trailing newline). */
extern const char cs_rseverity_scale[];

#endif
