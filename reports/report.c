/* report.c — format selection, rendering dispatch, safe output (report.h). */
#include "reports/report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "reports/escape.h"
#include "reports/formats.h"
#include "reports/memo.h"

int cs_report_format_parse(const char *s) {
    if (!s) return -1;
    if (!strcasecmp(s, "html") || !strcasecmp(s, "htm")) return CS_REPORT_HTML;
    if (!strcasecmp(s, "json")) return CS_REPORT_JSON;
    if (!strcasecmp(s, "csv")) return CS_REPORT_CSV;
    if (!strcasecmp(s, "md") || !strcasecmp(s, "markdown")) return CS_REPORT_MD;
    return -1;
}

int cs_report_format_from_path(const char *path) {
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/')) return -1;
    return cs_report_format_parse(dot + 1);
}

const char *cs_report_verdict_class(const char *v) {
    static const char *const text[] = {"verbatim", "near-verbatim"};
    for (int i = 0; i < 4; i++)
        if (v && !strcmp(v, cs_rv_names[i])) return cs_rv_names[i];
    for (int i = 0; i < 2; i++)
        if (v && !strcmp(v, text[i])) return text[i];
    return "other";
}

static int cmp_range(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

size_t cs_report_highlight(cs_buf *b, const char *s, const int64_t (*ranges)[2], int n) {
    if (!s) return 0;
    const int64_t len = (int64_t)strlen(s);
    int64_t(*r)[2] = n > 0 ? malloc(sizeof *r * (size_t)n) : NULL;
    int k = 0;
    for (int i = 0; r && i < n; i++) {
        int64_t a = ranges[i][0], e = ranges[i][1];
        if (a < 0) a = 0;
        if (e > len) e = len;
        if (a >= e) continue;
        while (a > 0 && ((unsigned char)s[a] & 0xC0) == 0x80) a--; /* whole characters only */
        while (e < len && ((unsigned char)s[e] & 0xC0) == 0x80) e++;
        r[k][0] = a;
        r[k][1] = e;
        k++;
    }
    if (k) qsort(r, (size_t)k, sizeof *r, cmp_range);
    int64_t pos = 0;
    size_t marked = 0;
    for (int i = 0; i < k; i++) {
        int64_t a = r[i][0] < pos ? pos : r[i][0], e = r[i][1];
        while (i + 1 < k && r[i + 1][0] <= e) { /* merge overlapping and touching ranges */
            if (r[i + 1][1] > e) e = r[i + 1][1];
            i++;
        }
        if (a >= e) continue;
        cs_esc_html_n(b, s + pos, (size_t)(a - pos));
        cs_buf_puts(b, "<span class=\"verb\">");
        cs_esc_html_n(b, s + a, (size_t)(e - a));
        cs_buf_puts(b, "</span>");
        marked += (size_t)(e - a);
        pos = e;
    }
    cs_esc_html_n(b, s + pos, (size_t)(len - pos));
    free(r);
    return marked;
}

int cs_report_render(cs_store *s, const cs_report_opts *o, cs_buf *out, cs_err *err) {
    cs_rmodel m;
    cs_rmodel_opts mo = {o->run_id, o->top > 0 ? o->top : CS_REPORT_DEFAULT_TOP, o->text_audit};
    if (cs_rmodel_load(&m, s, &mo, err)) return -1;
    cs_memo memo = {0};
    if (m.has_run && cs_memo_load(&memo, s, &m, err)) {
        cs_rmodel_free(&m);
        return -1;
    }
    m.memo = &memo;
    int rc = 0;
    switch (o->format) {
    case CS_REPORT_HTML: rc = cs_report_html(out, &m, s, o, err); break;
    case CS_REPORT_JSON: rc = cs_report_json(out, &m, o, err); break;
    case CS_REPORT_CSV: cs_report_csv(out, &m); break;
    case CS_REPORT_MD: cs_report_md(out, &m, o); break;
    default: rc = cs_fail(err, CS_EUSAGE, "report: unknown format %d", (int)o->format);
    }
    cs_memo_free(&memo);
    cs_rmodel_free(&m);
    if (rc == 0 && out->oom) rc = cs_fail(err, CS_ENOMEM, "report: out of memory building the report");
    return rc;
}

/* The folder part of path ("." when there is none); caller frees. */
static char *parent_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int cs_report_check_out(const char *path, cs_err *err) {
    if (!path || !*path) return cs_fail(err, CS_EUSAGE, "report: the output path is empty");
    size_t n = strlen(path);
    if (path[n - 1] == '/') return cs_fail(err, CS_EUSAGE, "%s: is a directory; give a file name", path);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return cs_fail(err, CS_EUSAGE, "%s: is a directory; give a file name", path);
        if (!S_ISREG(st.st_mode)) return cs_fail(err, CS_EUSAGE, "%s: exists and is not a regular file", path);
    }
    char *dir = parent_of(path);
    if (!dir) return cs_fail(err, CS_ENOMEM, "report: out of memory");
    int bad = stat(dir, &st) != 0 || !S_ISDIR(st.st_mode);
    if (bad) cs_fail(err, CS_EUSAGE, "%s: the folder %s does not exist", path, dir);
    free(dir);
    return bad ? -1 : 0;
}

/* ".tmp.<pid>" (core/fs.h's writer) or ".tmp-XXXXXX" (mkstemp, older copyscope). */
static int is_tmp_suffix(const char *s) {
    if (!strncmp(s, ".tmp-", 5)) return strlen(s) == 11;
    if (strncmp(s, ".tmp.", 5) || !s[5]) return 0;
    for (s += 5; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* Removes "<path>.tmp.<pid>" / "<path>.tmp-XXXXXX" files a killed writer left (more than ten
 * minutes old: a live writer renders first and writes its temporary file in
 * one go, so an old one is nobody's). Best effort: errors are ignored. */
static void clean_stale_tmp(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path + (slash == path)) : 1, slash ? path : ".");
    const char *base = slash ? slash + 1 : path;
    size_t bn = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, base, bn) || !is_tmp_suffix(e->d_name + bn)) continue;
        char p[8192];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < now - 600) unlink(p);
    }
    closedir(d);
}

int cs_report_save(const char *path, const char *data, size_t len, cs_err *err) {
    if (cs_report_check_out(path, err)) return -1;
    clean_stale_tmp(path);
    return cs_write_file_atomic(path, data, len, err);
}
