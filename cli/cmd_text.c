/* cmd_text.c — `copyscope text`: the text regurgitation audit.
 *   text index PATH...            documents -> shards (raw and normal-form suffix arrays)
 *   text prompts ...              prompts cut from the corpus (JSONL), continuations kept
 *   text generate PROMPTS.jsonl   the built-in n-gram model's completions (JSONL)
 *   text audit COMPLETIONS.jsonl  any model's completions: exact figures, spans, verdicts
 *   text trace FILE|-             every span of >= N words of any text found in the corpus */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "analyze/text_audit.h"
#include "analyze/text_corpus.h"
#include "analyze/text_lines.h"
#include "analyze/text_ngram.h"
#include "analyze/text_store.h"
#include "analyze/text_trace.h"
#include "cli/cli.h"
#include "cli/cli_mpi_text.h"
#include "core/mpi_comm.h"
#include "core/parallel.h"
#include "core/progress.h"

static void warn(void *ctx, const char *msg) {
    (void)ctx;
    fprintf(stderr, "copyscope: warning: %s\n", msg);
}

static int parse_int(const char *s, long lo, long hi, long *v) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (!*s || *end || errno || x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *v) {
    char *end;
    double x = strtod(s, &end);
    if (!*s || *end || !(x >= lo && x <= hi)) return -1;
    *v = x;
    return 0;
}

static const char *const HELP[][2] = {
    {"index", "usage: copyscope text index PATH... [--field NAME] [--shard-mb N] [-j N] [--db FILE]\n\n"
              "Indexes folders (recursively) of .txt/.md files (one document each) and JSONL files\n"
              "(one document per line: {\"id\", \"text\"}; --field names another text field), and\n"
              "their .gz forms, read transparently. A document's name is its JSONL id, else its\n"
              "path. Input that is not UTF-8 text (binary, another encoding, a NUL byte, a \\u0000\n"
              "escape, a corrupt .gz) is an error naming the file, as is finding no document\n"
              "with text. Adding documents later adds a shard. The input is split at document\n"
              "boundaries into shards of at most --shard-mb (default 768) sorted in parallel\n"
              "(-j N threads, default all cores); results do not depend on either. Under mpirun\n"
              "(copyscope-mpi) each rank indexes a run of the files.\n"},
    {"prompts", "usage: copyscope text prompts --prefix-words N --continuation-words M [--per-doc K]\n"
                "                              [--docs NAME,NAME..] [--out FILE] [--db FILE]\n\n"
                "Cuts K windows of N + M words from each document (or the named ones); writes the\n"
                "prompts as JSONL {\"prompt_id\", \"prompt\"}; the true continuations stay in the store.\n"},
    {"generate", "usage: copyscope text generate PROMPTS.jsonl --model ngram[:N] [--words W]\n"
                 "                               [--sample --seed S] [--out FILE] [--db FILE]\n\n"
                 "Completions by the built-in order-N word n-gram model over the corpus (default N 8,\n"
                 "greedy): a known memoriser for demos and tests.\n"},
    {"audit", "usage: copyscope text audit COMPLETIONS.jsonl [--out RESULTS.jsonl] [--min-span-words 10]\n"
              "        [--extract-words 50] [--verbatim-span-words 50] [--near-span-words 20]\n"
              "        [--near-rouge 0.7] [--near-edit 0.7] [-v] [--db FILE]\n\n"
              "Audits any model's completions: one JSON object per line, {\"id\" (or \"prompt_id\"),\n"
              "\"prompt\", \"completion\"} with optional \"continuation\" (the true one) and \"doc\" (the\n"
              "source document's name). Without a continuation it is the text after the prompt's\n"
              "end in the corpus. Figures on the raw text: longest_span_chars, longest_span_words,\n"
              "source_doc(s), exact_prefix_words, rouge_l, edit_sim; the whitespace-tolerant\n"
              "figure is under \"normalised\". --out writes one JSON object per input line, in order\n"
              "('-': standard output); offsets are UTF-8 byte offsets. The file may be .gz; one that\n"
              "is not UTF-8 text is an error naming it.\n"},
    {"trace", "usage: copyscope text trace FILE|- [--min-words 8] [--json] [--record] [--db FILE]\n\n"
              "Lists every maximal span of at least --min-words words of any text (a file, or\n"
              "standard input) that occurs in the corpus as whole words, with its documents and\n"
              "byte offsets. --json: one JSON object per span. --record: also keep it as a text\n"
              "audit of its own, so that 'copyscope report' shows the text with the spans in red.\n"},
};

static void usage(FILE *f, const char *sub) {
    for (size_t i = 0; sub && i < sizeof HELP / sizeof HELP[0]; i++)
        if (!strcmp(sub, HELP[i][0])) {
            fprintf(f, "%s\ncommon: --db FILE (default $COPYSCOPE_DB or ./copyscope.db), --help, --json (the\n"
                       "summary as one JSON object on stdout, the rest on stderr; prompts, generate and\n"
                       "audit need --out FILE with it; trace's --json is one object per span)\n", HELP[i][1]);
            return;
        }
    fprintf(f, "usage: copyscope text <subcommand> [options]\n\n"
               "  index PATH...               documents into the corpus\n"
               "  prompts --prefix-words N --continuation-words M   prompts cut from the corpus\n"
               "  generate PROMPTS.jsonl      the built-in n-gram memoriser's completions\n"
               "  audit COMPLETIONS.jsonl     any model's completions against the corpus\n"
               "  trace FILE|-                spans of any text found in the corpus\n\n"
               "copyscope text <subcommand> --help tells more.\n");
}

/* need_docs: the command reads the corpus, so a missing store is an error
 * (opening would create an empty one and answer "novel" from nothing) and
 * so is a store with no text indexed. */
static int open_all(const char *db, cs_store **s, cs_text_corpus *c, int need_docs) {
    cs_err err = {0};
    if (need_docs && access(db, F_OK) != 0) {
        fprintf(stderr, "copyscope: %s: no such store (run 'copyscope text index PATH' first)\n", db);
        return CLI_FAIL;
    }
    if (cs_store_open(s, db, &err)) return cli_fail(&err);
    if (cs_text_corpus_open(c, *s, &err)) {
        cs_store_close(*s);
        return cli_fail(&err);
    }
    if (need_docs && c->n_shards == 0) {
        cs_text_corpus_close(c);
        cs_store_close(*s);
        fprintf(stderr, "copyscope: %s: no text indexed yet (run 'copyscope text index PATH')\n", db);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* The one option parser of every text subcommand. The options they share
 * (--db, --out, --json, --verbose, --help) are read here; the rest go to
 * the subcommand's own(ctx, ch, arg): 0, a CLI_USAGE status, or OPT_UNKNOWN.
 * Returns OPTS_OK when the command goes on, else its exit status (--help:
 * CLI_OK after the subcommand's help; a usage error). */
#define OPTS_OK (-1)
#define OPT_UNKNOWN (-2)
typedef struct {
    const char *sub;     /* "index", "audit", ... */
    const char *shorts;  /* getopt's short options ("v" for audit's -v) */
    const char *db, *outp;
    int json, verbose;
} text_opts;
typedef int (*text_own_fn)(void *ctx, int ch, const char *arg);

static int parse_text_opts(int argc, char **argv, const struct option *lo, text_opts *t, text_own_fn own, void *ctx) {
    char name[32];
    snprintf(name, sizeof name, "text %s", t->sub);
    t->db = cli_default_db();
    int ch, rc;
    optind = 0;
    while ((ch = getopt_long(argc, argv, t->shorts, lo, NULL)) != -1) {
        switch (ch) {
        case 'd': t->db = optarg; break;
        case 'o': t->outp = optarg; break;
        case 'J': t->json = 1; break;
        case 'v': t->verbose = 1; break;
        case 'h': usage(stdout, t->sub); return CLI_OK;
        default:
            rc = ch != '?' && own ? own(ctx, ch, optarg) : OPT_UNKNOWN;
            if (rc == OPT_UNKNOWN) return cli_usage_hint(name);
            if (rc) return rc;
        }
    }
    return OPTS_OK;
}

typedef struct {
    const char *field;
    long shard_mb;
    int jobs;
} index_args;

static int index_opt(void *ctx, int ch, const char *arg) {
    index_args *a = ctx;
    if (ch == 'f') a->field = arg;
    else if (ch == 'j') {
        if ((a->jobs = cli_parse_jobs(arg)) < 0) return cli_usage_error("text index: bad -j '%s'", arg);
    } else if (ch == 's') {
        if (parse_int(arg, 1, 2047, &a->shard_mb)) return cli_usage_error("text index: --shard-mb: 1..2047");
    } else
        return OPT_UNKNOWN;
    return 0;
}

static int text_index(int argc, char **argv) {
    static const struct option lo[] = {
        {"db", required_argument, 0, 'd'}, {"shard-mb", required_argument, 0, 's'}, {"field", required_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},     {"json", no_argument, 0, 'J'}, {"jobs", required_argument, 0, 'j'}, {0}};
    text_opts t = {.sub = "index", .shorts = "j:"};
    index_args a = {0}; /* shard_mb 0: the library's default */
    int prc = parse_text_opts(argc, argv, lo, &t, index_opt, &a);
    if (prc != OPTS_OK) return prc;
    const char *db = t.db, *field = a.field;
    long shard_mb = a.shard_mb;
    int json = t.json;
    if (optind >= argc) return cli_usage_error("text index: no PATH given (see copyscope text --help)");
    if (a.jobs > 0) cs_set_threads(a.jobs);
    cs_err err = {0};
    cs_store *s;
    cs_text_index_opts o = {.shard_bytes = (uint64_t)shard_mb << 20, .note = warn, .progress = 1, .field = field};
    cs_text_index_stats st;
    int rc;
    if (cs_mpi_size() > 1) { /* copyscope-mpi: each rank indexes a run of the files; rank 0 gathers them */
        if (json && cs_mpi_rank() == 0) cli_json_begin();
        rc = cli_mpi_text_index(db, argv + optind, argc - optind, &o, &st, &err);
        if (cs_mpi_rank() > 0) return rc ? CLI_FAIL : CLI_OK; /* a rank's own failure: said by it */
    } else {
        if (json) cli_json_begin();
        if (cs_store_open(&s, db, &err)) return cli_fail(&err);
        rc = cs_text_index(s, (const char *const *)argv + optind, argc - optind, &o, &st, &err);
        cs_store_close(s);
    }
    if (rc) return cli_fail(&err);
    if (!st.docs_ok && !st.docs_skipped) { /* an empty corpus is a mistake, not a success */
        fprintf(stderr, "copyscope: %s%s: no document with text to index (%lld empty, %lld errors; "
                "text index reads .txt/.md files and JSONL {\"id\", \"text\"}, and their .gz forms)\n",
                argv[optind], argc - optind > 1 ? " ..." : "", (long long)st.docs_empty, (long long)st.docs_error);
        return CLI_FAIL;
    }
    printf("indexed %lld documents (%.1f MB read, %.1f MB normalised) into %lld new shard%s; "
           "%lld empty, %lld errors, %lld already indexed\n",
           (long long)st.docs_ok, st.bytes_in / 1e6, st.bytes_norm / 1e6, (long long)st.shards,
           st.shards == 1 ? "" : "s", (long long)st.docs_empty, (long long)st.docs_error,
           (long long)st.docs_skipped);
    if (!json) return CLI_OK;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "documents", (double)st.docs_ok);
    cJSON_AddNumberToObject(j, "bytes_read", (double)st.bytes_in);
    cJSON_AddNumberToObject(j, "bytes_normalised", (double)st.bytes_norm);
    cJSON_AddNumberToObject(j, "new_shards", (double)st.shards);
    cJSON_AddNumberToObject(j, "empty", (double)st.docs_empty);
    cJSON_AddNumberToObject(j, "errors", (double)st.docs_error);
    cJSON_AddNumberToObject(j, "already_indexed", (double)st.docs_skipped);
    return cli_json_end(j);
}

/* --json of a command whose output file may be stdout: it needs --out FILE. */
static int json_needs_out(const char *sub, const char *outp) {
    if (outp && strcmp(outp, "-")) return 0;
    return cli_usage_error("text %s: --json needs --out FILE (stdout carries the JSON summary)", sub),
           cli_usage_hint(sub[0] == 'p' ? "text prompts" : sub[0] == 'g' ? "text generate" : "text audit");
}

/* The {"<what>": n, "out": path} summary of text prompts / generate. */
static int json_count(const char *what, long long n, const char *outp) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, what, (double)n);
    cJSON_AddStringToObject(j, "out", outp);
    return cli_json_end(j);
}

/* Splits a comma-separated list in place. */
static int split_names(char *s, const char ***v, size_t *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    *v = malloc(cap * sizeof **v);
    *n = 0;
    if (!*v) return -1;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) (*v)[(*n)++] = tok;
    return *n ? 0 : -1;
}

typedef struct {
    char *docs;
    long pw, cw, k;
} prompts_args;

static int prompts_opt(void *ctx, int ch, const char *arg) {
    prompts_args *a = ctx;
    switch (ch) {
    case 'p':
        if (parse_int(arg, 1, 100000, &a->pw)) return cli_usage_error("text prompts: --prefix-words: 1..100000");
        return 0;
    case 'c':
        if (parse_int(arg, 1, CS_TEXT_MAX_CONT_WORDS, &a->cw))
            return cli_usage_error("text prompts: --continuation-words: 1..%d", CS_TEXT_MAX_CONT_WORDS);
        return 0;
    case 'k':
        if (parse_int(arg, 1, 1000000, &a->k)) return cli_usage_error("text prompts: --per-doc: 1..1000000");
        return 0;
    case 'D': a->docs = (char *)arg; return 0;
    default: return OPT_UNKNOWN;
    }
}

static int text_prompts(int argc, char **argv) {
    static const struct option lo[] = {{"db", required_argument, 0, 'd'},
                                       {"prefix-words", required_argument, 0, 'p'},
                                       {"continuation-words", required_argument, 0, 'c'},
                                       {"per-doc", required_argument, 0, 'k'},
                                       {"docs", required_argument, 0, 'D'},
                                       {"out", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'}, {"json", no_argument, 0, 'J'},
                                       {0}};
    text_opts t = {.sub = "prompts", .shorts = ""};
    prompts_args a = {.k = 1};
    int prc = parse_text_opts(argc, argv, lo, &t, prompts_opt, &a);
    if (prc != OPTS_OK) return prc;
    const char *db = t.db, *outp = t.outp;
    char *docs = a.docs;
    long pw = a.pw, cw = a.cw, k = a.k;
    int json = t.json;
    if (!pw || !cw) return cli_usage_error("text prompts: --prefix-words and --continuation-words are required");
    if (optind < argc) return cli_usage_error("text prompts: unexpected argument '%s'", argv[optind]);
    if (json && json_needs_out("prompts", outp)) return CLI_USAGE;
    cs_text_prompt_opts o = {.prefix_words = (int)pw, .cont_words = (int)cw, .per_doc = (int)k, .note = warn};
    const char **ids = NULL;
    if (docs && split_names(docs, &ids, &o.n_names)) {
        free(ids);
        return cli_usage_error("text prompts: --docs: a comma-separated list of document names");
    }
    o.doc_names = ids;
    cs_store *s;
    cs_text_corpus c;
    int rc = open_all(db, &s, &c, 1);
    if (rc) {
        free(ids);
        return rc;
    }
    FILE *out = outp ? fopen(outp, "w") : stdout;
    cs_err err = {0};
    int64_t n = 0;
    if (!out) rc = (cs_fail(&err, CS_EIO, "%s: cannot create: %s", outp, strerror(errno)), cli_fail(&err));
    else if (cs_text_prompts(s, &c, &o, out, &n, &err)) rc = cli_fail(&err);
    if (out && out != stdout && fclose(out) && !rc) {
        cs_fail(&err, CS_EIO, "%s: write failed", outp);
        rc = cli_fail(&err);
    }
    if (!rc) fprintf(stderr, "copyscope: %lld prompts%s%s\n", (long long)n, outp ? " written to " : "", outp ? outp : "");
    cs_text_corpus_close(&c);
    cs_store_close(s);
    free(ids);
    return !rc && json ? json_count("prompts", (long long)n, outp) : rc;
}

/* One completion per prompt line of in, as JSONL on out. */
static int generate_all(const cs_text_corpus *c, const cs_ngram_opts *o, FILE *in, const char *inp, FILE *out,
                        const char *outp, const char *mname, long long *n, long long *bad) {
    cs_err err = {0};
    size_t cap = 0;
    ssize_t k;
    long long lineno = 0;
    char *line = NULL;
    int rc = 0;
    cs_progress *prog = cs_progress_start("text generate", 0, "prompt");
    while (!rc && (k = getline(&line, &cap, in)) >= 0) {
        lineno++;
        cs_progress_add(prog, 1);
        cJSON *j = cJSON_ParseWithLength(line, (size_t)k);
        const cJSON *p = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL;
        if (!cJSON_IsString(p)) {
            int blank = strspn(line, " \t\r\n") == (size_t)k;
            if (!blank) {
                fprintf(stderr, "copyscope: warning: %s:%lld: no \"prompt\" string (skipped)\n", inp, lineno);
                (*bad)++;
            }
            cJSON_Delete(j);
            continue;
        }
        char *comp = NULL;
        if (cs_ngram_generate(c, p->valuestring, strlen(p->valuestring), o, &comp, &err)) rc = cli_fail(&err);
        else {
            cJSON *r = cJSON_CreateObject();
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "prompt_id");
            if (id) cJSON_AddItemToObject(r, "prompt_id", cJSON_Duplicate(id, 1));
            else cJSON_AddStringToObject(r, "prompt", p->valuestring);
            cJSON_AddStringToObject(r, "completion", comp);
            cJSON_AddStringToObject(r, "model", mname);
            char *txt = cJSON_PrintUnformatted(r);
            if (!txt || fprintf(out, "%s\n", txt) < 0)
                rc = (cs_fail(&err, CS_EIO, "%s: write failed", outp ? outp : "stdout"), cli_fail(&err));
            (*n)++;
            free(txt);
            cJSON_Delete(r);
        }
        free(comp);
        cJSON_Delete(j);
    }
    cs_progress_end(prog);
    free(line);
    return rc;
}

typedef struct {
    const char *model;
    cs_ngram_opts o;
} generate_args;

static int generate_opt(void *ctx, int ch, const char *arg) {
    generate_args *a = ctx;
    long v;
    char *end;
    switch (ch) {
    case 'm': a->model = arg; return 0;
    case 'w':
        if (parse_int(arg, 1, 100000, &v)) return cli_usage_error("text generate: --words: 1..100000");
        a->o.max_words = (int)v;
        return 0;
    case 's':
        errno = 0;
        a->o.seed = strtoull(arg, &end, 10);
        if (!*arg || *end || errno) return cli_usage_error("text generate: --seed: an unsigned integer");
        return 0;
    case 'S': a->o.sample = 1; return 0;
    default: return OPT_UNKNOWN;
    }
}

static int text_generate(int argc, char **argv) {
    static const struct option lo[] = {{"db", required_argument, 0, 'd'},    {"model", required_argument, 0, 'm'},
                                       {"out", required_argument, 0, 'o'},   {"words", required_argument, 0, 'w'},
                                       {"seed", required_argument, 0, 's'},  {"sample", no_argument, 0, 'S'},
                                       {"help", no_argument, 0, 'h'},        {"json", no_argument, 0, 'J'},
                                       {0}};
    text_opts t = {.sub = "generate", .shorts = ""};
    generate_args a = {.o = {.order = 8, .max_words = 50}};
    int prc = parse_text_opts(argc, argv, lo, &t, generate_opt, &a);
    if (prc != OPTS_OK) return prc;
    const char *db = t.db, *outp = t.outp, *model = a.model;
    cs_ngram_opts o = a.o;
    long v;
    int json = t.json;
    if (optind != argc - 1) return cli_usage_error("text generate: give one PROMPTS.jsonl file");
    if (json && json_needs_out("generate", outp)) return CLI_USAGE;
    if (!model || strncmp(model, "ngram", 5) || (model[5] && model[5] != ':'))
        return cli_usage_error("text generate: --model ngram[:N] is the built-in model (feed the prompts JSONL to "
                               "any other model yourself)");
    if (model[5] == ':') {
        if (parse_int(model + 6, 2, 64, &v)) return cli_usage_error("text generate: ngram:N needs N in 2..64");
        o.order = (int)v;
    }
    const char *inp = argv[optind];
    FILE *in = fopen(inp, "rb");
    cs_err err = {0};
    if (!in) return (cs_fail(&err, CS_EIO, "%s: cannot open: %s", inp, strerror(errno)), cli_fail(&err));
    cs_store *s;
    cs_text_corpus c;
    int rc = open_all(db, &s, &c, 1);
    if (rc) {
        fclose(in);
        return rc;
    }
    FILE *out = outp ? fopen(outp, "w") : stdout;
    if (!out) rc = (cs_fail(&err, CS_EIO, "%s: cannot create: %s", outp, strerror(errno)), cli_fail(&err));
    char mname[32];
    snprintf(mname, sizeof mname, "ngram:%d%s", o.order, o.sample ? "/sample" : "");
    long long n = 0, bad = 0;
    if (!rc) rc = generate_all(&c, &o, in, inp, out, outp, mname, &n, &bad);
    fclose(in);
    if (out && out != stdout && fclose(out) && !rc)
        rc = (cs_fail(&err, CS_EIO, "%s: write failed", outp), cli_fail(&err));
    if (!rc) fprintf(stderr, "copyscope: %lld completions by %s%s\n", n, mname, bad ? " (some lines skipped)" : "");
    cs_text_corpus_close(&c);
    cs_store_close(s);
    return !rc && json ? json_count("completions", n, outp) : rc;
}

static void list_one(void *ctx, const cs_text_listed *r) {
    (void)ctx;
    printf("line %d %s: %s (%s); longest span %lld words / %lld chars, doc %s [%lld, %lld)", r->line, r->key,
           r->verdict, r->status, (long long)r->words, (long long)r->chars, r->doc, (long long)r->doc_start,
           (long long)r->doc_end);
    if (r->has_cont)
        printf("; exact prefix %lld words, ROUGE-L %.3f, edit sim %.3f", (long long)r->exact, r->rouge, r->edit);
    printf("\n");
}

static int audit_opt(void *ctx, int ch, const char *arg) {
    cs_text_audit_opts *o = ctx;
    long v;
    int bad = 0;
    switch (ch) {
    case 'm': bad = parse_int(arg, 1, 1000000, &v), o->min_span_words = (int)v; break;
    case 'x': bad = parse_int(arg, 1, 1000000, &v), o->extract_words = (int)v; break;
    case 'V': bad = parse_int(arg, 1, 1000000, &v), o->verbatim_span_words = (int)v; break;
    case 'n': bad = parse_int(arg, 1, 1000000, &v), o->near_span_words = (int)v; break;
    case 'r': bad = parse_double(arg, 0, 1, &o->near_rouge); break;
    case 'e': bad = parse_double(arg, 0, 1, &o->near_edit); break;
    default: return OPT_UNKNOWN;
    }
    return bad ? cli_usage_error("text audit: bad value '%s' (word counts >= 1, similarities in 0..1)", arg) : 0;
}

static int text_audit(int argc, char **argv) {
    static const struct option lo[] = {{"db", required_argument, 0, 'd'},
                                       {"out", required_argument, 0, 'o'},
                                       {"min-span-words", required_argument, 0, 'm'},
                                       {"extract-words", required_argument, 0, 'x'},
                                       {"verbatim-span-words", required_argument, 0, 'V'},
                                       {"near-span-words", required_argument, 0, 'n'},
                                       {"near-rouge", required_argument, 0, 'r'},
                                       {"near-edit", required_argument, 0, 'e'},
                                       {"verbose", no_argument, 0, 'v'},
                                       {"json", no_argument, 0, 'J'},
                                       {"help", no_argument, 0, 'h'},
                                       {0}};
    cs_text_audit_opts o;
    cs_text_audit_defaults(&o);
    o.note = warn;
    o.progress = 1;
    text_opts t = {.sub = "audit", .shorts = "v"};
    int rc = parse_text_opts(argc, argv, lo, &t, audit_opt, &o);
    if (rc != OPTS_OK) return rc;
    const char *db = t.db, *outp = t.outp;
    int verbose = t.verbose, json = t.json;
    if (optind != argc - 1) return cli_usage_error("text audit: give one COMPLETIONS.jsonl file");
    if (json && json_needs_out("audit", outp)) return CLI_USAGE;
    /* copyscope-mpi: the other ranks score shares of rank 0's rounds of lines */
    if (cs_mpi_rank() > 0) return cli_mpi_text_audit_worker(db, argv[optind], &o);
    if (json) cli_json_begin();
    cs_store *s;
    cs_text_corpus c;
    if ((rc = open_all(db, &s, &c, 1))) return cli_mpi_text_audit_stop(), rc;
    cs_err err = {0};
    cs_text_audit_stats st;
    int to_stdout = outp && !strcmp(outp, "-"), mpi = cs_mpi_size() > 1;
    FILE *out = to_stdout ? stdout : outp ? fopen(outp, "w") : NULL;
    if (outp && !out) {
        rc = (cs_fail(&err, CS_EIO, "%s: cannot create: %s", outp, strerror(errno)), cli_fail(&err));
        cli_mpi_text_audit_stop();
    } else if (mpi ? cli_mpi_text_audit(s, &c, argv[optind], &o, out, &st, json || to_stdout, &err)
                   : cs_text_audit(s, &c, argv[optind], &o, out, &st, &err))
        rc = cli_fail(&err);
    if (out && (to_stdout ? fflush(out) : fclose(out)) && !rc)
        rc = (cs_fail(&err, CS_EIO, "%s: write failed", outp), cli_fail(&err));
    if (!rc && verbose && cs_text_list_findings(s, st.audit_id, list_one, NULL, &err)) rc = cli_fail(&err);
    if (!rc) {
        double ms = st.bytes_spans ? st.seconds_spans * 1e3 / (st.bytes_spans / 1024.0) : 0;
        fprintf(to_stdout ? stderr : stdout,
               "audit %lld: %lld completions: %lld verbatim, %lld near-verbatim, %lld novel; %lld unknown prompts, "
               "%lld empty, %lld bad lines; search %.2f ms per KB%s%s\n",
               (long long)st.audit_id, (long long)st.completions, (long long)st.verbatim,
               (long long)st.near_verbatim, (long long)st.novel, (long long)st.unknown_prompt, (long long)st.empty,
               (long long)st.bad_lines, ms, outp ? "; results in " : "", outp ? outp : "");
    }
    cs_text_corpus_close(&c);
    cs_store_close(s);
    if (rc || !json) return rc;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "audit_id", (double)st.audit_id);
    cJSON_AddNumberToObject(j, "completions", (double)st.completions);
    cJSON_AddNumberToObject(j, "verbatim", (double)st.verbatim);
    cJSON_AddNumberToObject(j, "near-verbatim", (double)st.near_verbatim);
    cJSON_AddNumberToObject(j, "novel", (double)st.novel);
    cJSON_AddNumberToObject(j, "unknown_prompts", (double)st.unknown_prompt);
    cJSON_AddNumberToObject(j, "empty", (double)st.empty);
    cJSON_AddNumberToObject(j, "bad_lines", (double)st.bad_lines);
    cJSON_AddStringToObject(j, "out", outp);
    return cli_json_end(j);
}

/* All of a file, or of standard input ("-"), through zlib: FILE.gz reads
 * as FILE, as text index reads it. */
static char *slurp(const char *path, size_t *len, cs_err *err) {
    int fd = strcmp(path, "-") ? -1 : dup(STDIN_FILENO);
    gzFile f = fd >= 0 ? gzdopen(fd, "rb") : strcmp(path, "-") ? gzopen(path, "rb") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        return (cs_fail(err, CS_EIO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOMEM)), NULL);
    }
    size_t cap = 1 << 16, n = 0;
    int k = 0;
    char *buf = malloc(cap);
    while (buf && (k = gzread(f, buf + n, (unsigned)(cap - n))) > 0)
        if ((n += (size_t)k) == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    int bad = k < 0 || cs_text_gz_truncated(f);
    if (!buf || bad) {
        free(buf);
        cs_fail(err, CS_EIO, "%s: cannot read: %s", path, buf ? cs_text_gz_error(f, path) : "out of memory");
        gzclose(f);
        return NULL;
    }
    gzclose(f);
    *len = n;
    return buf;
}

static void print_traced(const cs_text_corpus *c, const char *text, const cs_text_traced *t, int json) {
    if (json) {
        cJSON *o = cJSON_CreateObject(), *occ;
        cJSON_AddNumberToObject(o, "start", (double)t->start);
        cJSON_AddNumberToObject(o, "end", (double)t->end);
        cJSON_AddNumberToObject(o, "words", (double)t->words);
        cJSON_AddNumberToObject(o, "chars", (double)t->chars);
        char *span = strndup(text + t->start, t->end - t->start);
        cJSON_AddStringToObject(o, "text", span ? span : "");
        free(span);
        cJSON_AddNumberToObject(o, "occurrences", (double)t->total_occ);
        occ = cJSON_AddArrayToObject(o, "docs");
        for (size_t i = 0; i < t->n_occ; i++) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "doc", c->shards[t->occ[i].shard].name[t->occ[i].doc]);
            cJSON_AddNumberToObject(d, "doc_start", (double)t->occ[i].comp_start);
            cJSON_AddNumberToObject(d, "doc_end", (double)t->occ[i].comp_end);
            cJSON_AddItemToArray(occ, d);
        }
        char *line = cJSON_PrintUnformatted(o);
        if (line) printf("%s\n", line);
        free(line);
        cJSON_Delete(o);
        return;
    }
    printf("[%llu, %llu) %llu words, %llu chars: \"%.*s\"\n", (unsigned long long)t->start,
           (unsigned long long)t->end, (unsigned long long)t->words, (unsigned long long)t->chars,
           (int)(t->end - t->start), text + t->start);
    for (size_t i = 0; i < t->n_occ; i++)
        printf("    %s [%llu, %llu)\n", c->shards[t->occ[i].shard].name[t->occ[i].doc],
               (unsigned long long)t->occ[i].comp_start, (unsigned long long)t->occ[i].comp_end);
    if (t->total_occ > t->n_occ) printf("    ... %llu places in all\n", (unsigned long long)t->total_occ);
}

typedef struct {
    long minw;
    int record;
} trace_args;

static int trace_opt(void *ctx, int ch, const char *arg) {
    trace_args *a = ctx;
    if (ch == 'r') a->record = 1;
    else if (ch == 'm') {
        if (parse_int(arg, 1, 1000000, &a->minw)) return cli_usage_error("text trace: --min-words: 1..1000000");
    } else
        return OPT_UNKNOWN;
    return 0;
}

static int text_trace(int argc, char **argv) {
    static const struct option lo[] = {{"db", required_argument, 0, 'd'}, {"min-words", required_argument, 0, 'm'},
                                       {"json", no_argument, 0, 'J'},     {"help", no_argument, 0, 'h'},
                                       {"record", no_argument, 0, 'r'},   {0}};
    text_opts t = {.sub = "trace", .shorts = ""};
    trace_args a = {.minw = 8};
    int rc = parse_text_opts(argc, argv, lo, &t, trace_opt, &a);
    if (rc != OPTS_OK) return rc;
    const char *db = t.db;
    long minw = a.minw;
    int json = t.json, record = a.record;
    if (optind != argc - 1) return cli_usage_error("text trace: give one FILE (or - for standard input)");
    cs_err err = {0};
    size_t len;
    char *text = slurp(argv[optind], &len, &err);
    if (!text) return cli_fail(&err);
    if (cs_text_check(text, len) != (size_t)-1) {
        free(text);
        return (cs_fail(&err, CS_EFORMAT, "%s: not UTF-8 text", argv[optind]), cli_fail(&err));
    }
    cs_store *s;
    cs_text_corpus c;
    if ((rc = open_all(db, &s, &c, 1))) {
        free(text);
        return rc;
    }
    cs_text_traced *v;
    size_t n;
    if (cs_text_trace(s, &c, text, len, (int)minw, &v, &n, &err)) rc = cli_fail(&err);
    for (size_t i = 0; !rc && i < n; i++) print_traced(&c, text, &v[i], json);
    if (!rc) {
        cs_text_trace_free(v, n);
        fflush(stdout);
        fprintf(stderr, "copyscope: %zu span%s of >= %ld words found in the corpus\n", n, n == 1 ? "" : "s", minw);
    }
    if (!rc && record) { /* a text audit of its own: reports show the spans in red */
        cs_text_audit_opts o;
        cs_text_audit_defaults(&o);
        o.min_span_words = (int)minw;
        cs_text_audit_stats st;
        char src[4200];
        snprintf(src, sizeof src, "trace:%s", argv[optind]);
        if (cs_text_audit_text(s, &c, src, text, len, &o, &st, &err)) rc = cli_fail(&err);
        else fprintf(stderr, "copyscope: recorded as text audit %lld ('copyscope report' shows it)\n",
                     (long long)st.audit_id);
    }
    cs_text_corpus_close(&c);
    cs_store_close(s);
    free(text);
    return rc;
}

int cmd_text(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("text: give a subcommand (index, prompts, generate, audit, trace)"),
                      cli_usage_hint("text");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        usage(stdout, NULL);
        return CLI_OK;
    }
    if (!strcmp(sub, "index")) return text_index(argc - 1, argv + 1);
    if (!strcmp(sub, "prompts")) return text_prompts(argc - 1, argv + 1);
    if (!strcmp(sub, "generate")) return text_generate(argc - 1, argv + 1);
    if (!strcmp(sub, "audit")) return text_audit(argc - 1, argv + 1);
    if (!strcmp(sub, "trace")) return text_trace(argc - 1, argv + 1);
    return cli_usage_error("text: unknown subcommand '%s' (index, prompts, generate, audit, trace)", sub),
           cli_usage_hint("text");
}
