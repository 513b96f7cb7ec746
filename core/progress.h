/* progress.h — a one-line progress display on stderr.
 *
 * Shown only when stderr is a terminal (or CS_PROGRESS=1 forces it); prints
 * "label done/total  rate unit/s  ETA m:ss", redrawn at most ~10 times a
 * second. Safe to call from several threads (updates are atomic adds). */
#ifndef CS_PROGRESS_H
#define CS_PROGRESS_H

#include <stdint.h>

typedef struct cs_progress cs_progress;

/* total may be 0 when unknown. unit names what is counted ("img", "step"). */
cs_progress *cs_progress_start(const char *label, int64_t total, const char *unit);
void cs_progress_add(cs_progress *p, int64_t n);       /* done += n */
void cs_progress_set_total(cs_progress *p, int64_t total);
void cs_progress_end(cs_progress *p);                   /* final line, frees p; NULL ok */

#endif
