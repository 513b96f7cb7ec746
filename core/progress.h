/* progress.h — a one-line progress display on stderr.
 *
 * Prints "label done/total  rate unit/s  ETA m:ss": on a terminal redrawn in
 * place at most ~10 times a second; elsewhere (nohup, CI) as a log line
 * "copyscope: label ..." every 30 s (CS_PROGRESS_INTERVAL=seconds; every 2 s
 * with CS_PROGRESS=1). CS_PROGRESS=0 silences it. Safe to call from several
 * threads (updates are atomic adds). */
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
