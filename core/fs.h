/* fs.h — the small file-system helpers every module shares: joining paths,
 * mkdir -p, writing a file that replaces another in one step, a monotonic
 * clock. One copy each; library code returns errors through cs_err. */
#ifndef CS_FS_H
#define CS_FS_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

/* "dir/name", malloc'd (caller frees); NULL when out of memory. */
char *cs_path_join(const char *dir, const char *name);

/* path made absolute, malloc'd (NULL when out of memory): its realpath when
 * it exists, else the current folder joined to it with "./" and "x/.."
 * steps removed. Stored paths are absolute so that every command works
 * from any folder (issue 19). */
char *cs_abs_path(const char *path);

/* mkdir -p: creates path and its missing parents. Fails (CS_EIO) naming the
 * component that could not be created ("a/b: cannot create: ..."), or when
 * path exists and is not a folder. */
int cs_mkdir_p(const char *path, cs_err *err);

/* Seconds on the monotonic clock (for durations only). */
double cs_now_s(void);

/* Writing a file that replaces another in one step: the bytes go to
 * "<path>.tmp.<pid>" and are renamed over path only when all of them were
 * written, so a reader (or a killed writer) sees the old file or the new
 * one, never half of one. */
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

/* The whole of data[len] to path through cs_atomic_open/finish. */
int cs_write_file_atomic(const char *path, const void *data, size_t len, cs_err *err);

#endif
