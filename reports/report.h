/* report.h — `copyscope report`: a run's findings from the store as one
 * self-contained HTML file, JSON (versioned schema, reports/report-schema.md),
 * CSV (one row per finding, image and text, RFC 4180) or a Markdown summary.
 *
 * reports/ reads the store only and does not know how any score was
 * computed. The report is built in memory and written once: to a temporary
 * file beside the output, then renamed over it, so a failed report never
 * leaves half a file. Nothing else is written. */
#ifndef CS_REPORT_H
#define CS_REPORT_H

#include <stdint.h>

#include "core/err.h"
#include "core/store.h"
#include "reports/buf.h"

typedef enum { CS_REPORT_HTML, CS_REPORT_JSON, CS_REPORT_CSV, CS_REPORT_MD } cs_report_format;

#define CS_REPORT_SCHEMA_VERSION 1
#define CS_REPORT_DEFAULT_TOP 200

typedef struct {
    int64_t run_id;           /* 0: the latest run with findings */
    int64_t top;              /* findings shown in the HTML gallery (and Markdown); <= 0: default */
    int64_t text_audit;       /* text findings of: 0 every audit, > 0 that audit, < 0 none */
    cs_report_format format;
    const char *generator;    /* e.g. "copyscope 0.1.0", shown in the report; NULL ok */
    int threads;              /* pictures are made in parallel; <= 0: cs_threads() */
    int progress;             /* progress line on stderr while making pictures */
} cs_report_opts;

/* "html" | "json" | "csv" | "md" (also "markdown", "htm"); -1 if unknown. */
int cs_report_format_parse(const char *name);
/* The format a file name's extension implies; -1 if none does. */
int cs_report_format_from_path(const char *path);

/* Renders the report into out (appended; caller frees with cs_buf_free). */
int cs_report_render(cs_store *s, const cs_report_opts *o, cs_buf *out, cs_err *err);

/* Checks an output path before any work: not empty, not a directory, its
 * parent folder exists. CS_EUSAGE with "PATH: <why>" otherwise. */
int cs_report_check_out(const char *path, cs_err *err);
/* Writes data to path atomically (temporary file in the same folder, then
 * rename). The temporary file is removed on failure. */
int cs_report_save(const char *path, const char *data, size_t len, cs_err *err);

#endif
