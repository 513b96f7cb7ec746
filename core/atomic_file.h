/* atomic_file.h — writing a file that replaces another in one step: the
 * bytes go to "<path>.tmp.<pid>" and are renamed over path only when all
 * of them were written, so a reader (or a killed writer) sees the old file
 * or the new one, never half of one. */
#ifndef CS_ATOMIC_FILE_H
#define CS_ATOMIC_FILE_H

#include <stdio.h>

#include "core/err.h"

typedef struct {
    FILE *f;   /* write here */
    char *tmp; /* the temporary file's name (for error messages) */
    const char *path;
} cs_atomic_file;

/* Opens the temporary file beside path for writing. */
int cs_atomic_open(cs_atomic_file *a, const char *path, cs_err *err);

/* ok != 0: flushes, fsyncs, closes and renames over path; ok == 0 (or any
 * failure there): closes and removes the temporary file. Returns 0 when
 * path now holds the new bytes. Frees a either way. */
int cs_atomic_finish(cs_atomic_file *a, int ok, cs_err *err);

#endif
