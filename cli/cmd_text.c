/* cmd_text.c — `copyscope text`: the text regurgitation audit.
 *   text index PATH...            documents -> shards of a word-aligned suffix array
 *   text prompts ...              prompts cut from the corpus (JSONL), continuations kept
 *   text generate PROMPTS.jsonl   the built-in n-gram model's completions (JSONL)
 *   text audit COMPLETIONS.jsonl  spans, metrics and verdicts into text_findings */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/text_audit.h"
#include "analyze/text_corpus.h"
#include "analyze/text_ngram.h"
#include "cli/cli.h"
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

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope text <subcommand> [options]\n\n"
            "  index PATH... [--shard-mb N]\n"
            "      index folders of .txt/.md files (one document each) and JSONL files\n"
            "      ({\"id\", \"text\"} per line); adding documents later adds a shard\n"
            "  prompts --prefix-words N --continuation-words M [--per-doc K] [--docs ID,ID..] [--out FILE]\n"
            "      write prompts {\"prompt_id\", \"prompt\"} as JSONL; true continuations stay in the store\n"
            "  generate PROMPTS.jsonl --model ngram[:N] [--words W] [--sample --seed S] [--out FILE]\n"
            "      the built-in order-N word n-gram model over the corpus (default N 8, greedy)\n"
            "  audit COMPLETIONS.jsonl [--min-span-words 10] [--extract-words 50]\n"
            "        [--verbatim-span-words 50] [--near-span-words 20] [--near-rouge 0.7]\n"
            "        [--near-edit 0.7] [-v]\n"
            "      lines {\"prompt_id\" or \"prompt\", \"completion\"}: verbatim spans, exact prefix,\n"
            "      ROUGE-L F1, edit similarity and a verdict per completion, into text_findings\n\n"
            "common: --db FILE (default $COPYSCOPE_DB or ./copyscope.db), --help\n");
}

static int open_all(const char *db, cs_store **s, cs_text_corpus *c, int need_docs) {
    cs_err err = {0};
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

static int text_index(int argc, char **argv) {
    static const struct option lo[] = {
        {"db", required_argument, 0, 'd'}, {"shard-mb", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'}, {0}};
    const char *db = cli_default_db();
    long shard_mb = 1024;
    int ch;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'd') db = optarg;
        else if (ch == 's') {
            if (parse_int(optarg, 1, 2047, &shard_mb)) return cli_usage_error("text index: --shard-mb: 1..2047");
        } else if (ch == 'h') {
            usage(stdout);
            return CLI_OK;
        } else
            return CLI_USAGE;
    }
    if (optind >= argc) return cli_usage_error("text index: no PATH given (see copyscope text --help)");
    cs_err err = {0};
    cs_store *s;
    if (cs_store_open(&s, db, &err)) return cli_fail(&err);
    cs_text_index_opts o = {.shard_bytes = (uint64_t)shard_mb << 20, .note = warn, .progress = 1};
    cs_text_index_stats st;
    int rc = cs_text_index(s, (const char *const *)argv + optind, argc - optind, &o, &st, &err);
    cs_store_close(s);
    if (rc) return cli_fail(&err);
    printf("indexed %lld documents (%.1f MB read, %.1f MB normalised) into %lld new shard%s; "
           "%lld empty, %lld errors, %lld already indexed\n",
           (long long)st.docs_ok, st.bytes_in / 1e6, st.bytes_norm / 1e6, (long long)st.shards,
           st.shards == 1 ? "" : "s", (long long)st.docs_empty, (long long)st.docs_error,
           (long long)st.docs_skipped);
    return CLI_OK;
}

static int parse_ids(const char *s, int64_t **ids, size_t *n) {
    size_t cap = 16;
    *n = 0;
    *ids = malloc(cap * sizeof **ids);
    if (!*ids) return -1;
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v <= 0 || (*end && *end != ',')) return -1;
        if (*n == cap) {
            cap *= 2;
            int64_t *p = realloc(*ids, cap * sizeof *p);
            if (!p) return -1;
            *ids = p;
        }
        (*ids)[(*n)++] = v;
        s = *end ? end + 1 : end;
    }
    return *n ? 0 : -1;
}

static int text_prompts(int argc, char **argv) {
    static const struct option lo[] = {{"db", required_argument, 0, 'd'},
                                       {"prefix-words", required_argument, 0, 'p'},
                                       {"continuation-words", required_argument, 0, 'c'},
                                       {"per-doc", required_argument, 0, 'k'},
                                       {"docs", required_argument, 0, 'D'},
                                       {"out", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'},
                                       {0}};
    const char *db = cli_default_db(), *outp = NULL, *docs = NULL;
    long pw = 0, cw = 0, k = 1;
    int ch;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': db = optarg; break;
        case 'p':
            if (parse_int(optarg, 1, 100000, &pw)) return cli_usage_error("text prompts: --prefix-words: 1..100000");
            break;
        case 'c':
            if (parse_int(optarg, 1, CS_TEXT_MAX_CONT_WORDS, &cw))
                return cli_usage_error("text prompts: --continuation-words: 1..%d", CS_TEXT_MAX_CONT_WORDS);
            break;
        case 'k':
            if (parse_int(optarg, 1, 1000000, &k)) return cli_usage_error("text prompts: --per-doc: 1..1000000");
            break;
        case 'D': docs = optarg; break;
        case 'o': outp = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (!pw || !cw) return cli_usage_error("text prompts: --prefix-words and --continuation-words are required");
    if (optind < argc) return cli_usage_error("text prompts: unexpected argument '%s'", argv[optind]);
    cs_text_prompt_opts o = {.prefix_words = (int)pw, .cont_words = (int)cw, .per_doc = (int)k, .note = warn};
    int64_t *ids = NULL;
    if (docs && parse_ids(docs, &ids, &o.n_docs)) {
        free(ids);
        return cli_usage_error("text prompts: --docs: a comma-separated list of document ids");
    }
    o.docs = ids;
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
    return rc;
}

static int text_generate(int argc, char **argv) {
    static const struct option lo[] = {{"db", required_argument, 0, 'd'},    {"model", required_argument, 0, 'm'},
                                       {"out", required_argument, 0, 'o'},   {"words", required_argument, 0, 'w'},
                                       {"seed", required_argument, 0, 's'},  {"sample", no_argument, 0, 'S'},
                                       {"help", no_argument, 0, 'h'},        {0}};
    const char *db = cli_default_db(), *outp = NULL, *model = NULL;
    cs_ngram_opts o = {.order = 8, .max_words = 50};
    long v;
    int ch;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': db = optarg; break;
        case 'm': model = optarg; break;
        case 'o': outp = optarg; break;
        case 'w':
            if (parse_int(optarg, 1, 100000, &v)) return cli_usage_error("text generate: --words: 1..100000");
            o.max_words = (int)v;
            break;
        case 's': {
            char *end;
            errno = 0;
            o.seed = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno) return cli_usage_error("text generate: --seed: an unsigned integer");
            break;
        }
        case 'S': o.sample = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1) return cli_usage_error("text generate: give one PROMPTS.jsonl file");
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
    char *line = NULL, mname[32];
    snprintf(mname, sizeof mname, "ngram:%d%s", o.order, o.sample ? "/sample" : "");
    size_t cap = 0;
    ssize_t k;
    long long lineno = 0, n = 0, bad = 0;
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
                bad++;
            }
            cJSON_Delete(j);
            continue;
        }
        char *comp = NULL;
        if (cs_ngram_generate(&c, p->valuestring, strlen(p->valuestring), &o, &comp, &err)) rc = cli_fail(&err);
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
            n++;
            free(txt);
            cJSON_Delete(r);
        }
        free(comp);
        cJSON_Delete(j);
    }
    cs_progress_end(prog);
    free(line);
    fclose(in);
    if (out && out != stdout && fclose(out) && !rc)
        rc = (cs_fail(&err, CS_EIO, "%s: write failed", outp), cli_fail(&err));
    if (!rc) fprintf(stderr, "copyscope: %lld completions by %s%s\n", n, mname, bad ? " (some lines skipped)" : "");
    cs_text_corpus_close(&c);
    cs_store_close(s);
    return rc;
}

static int text_audit(int argc, char **argv) {
    static const struct option lo[] = {{"db", required_argument, 0, 'd'},
                                       {"min-span-words", required_argument, 0, 'm'},
                                       {"extract-words", required_argument, 0, 'x'},
                                       {"verbatim-span-words", required_argument, 0, 'V'},
                                       {"near-span-words", required_argument, 0, 'n'},
                                       {"near-rouge", required_argument, 0, 'r'},
                                       {"near-edit", required_argument, 0, 'e'},
                                       {"verbose", no_argument, 0, 'v'},
                                       {"help", no_argument, 0, 'h'},
                                       {0}};
    const char *db = cli_default_db();
    cs_text_audit_opts o;
    cs_text_audit_defaults(&o);
    o.note = warn;
    o.progress = 1;
    int verbose = 0, ch;
    long v;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "v", lo, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'd': db = optarg; break;
        case 'm': bad = parse_int(optarg, 1, 1000000, &v), o.min_span_words = (int)v; break;
        case 'x': bad = parse_int(optarg, 1, 1000000, &v), o.extract_words = (int)v; break;
        case 'V': bad = parse_int(optarg, 1, 1000000, &v), o.verbatim_span_words = (int)v; break;
        case 'n': bad = parse_int(optarg, 1, 1000000, &v), o.near_span_words = (int)v; break;
        case 'r': bad = parse_double(optarg, 0, 1, &o.near_rouge); break;
        case 'e': bad = parse_double(optarg, 0, 1, &o.near_edit); break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
        if (bad) return cli_usage_error("text audit: bad value '%s' (word counts >= 1, similarities in 0..1)", optarg);
    }
    if (optind != argc - 1) return cli_usage_error("text audit: give one COMPLETIONS.jsonl file");
    cs_store *s;
    cs_text_corpus c;
    int rc = open_all(db, &s, &c, 0);
    if (rc) return rc;
    if (!c.n_shards) fprintf(stderr, "copyscope: warning: %s: no text indexed: spans will be empty\n", db);
    cs_err err = {0};
    cs_text_audit_stats st;
    if (cs_text_audit(s, &c, argv[optind], &o, &st, &err)) rc = cli_fail(&err);
    if (!rc && verbose) {
        sqlite3_stmt *q;
        if (!cs_store_prepare(s, &q,
                              "SELECT c.line, coalesce(c.prompt_key, ''), f.verdict, f.status, f.longest_words, "
                              "f.longest_chars, coalesce(f.longest_doc_id, 0), coalesce(f.longest_doc_start, 0), "
                              "coalesce(f.longest_doc_end, 0), f.exact_prefix_words, f.rouge_l_f1, f.edit_sim "
                              "FROM text_findings f JOIN text_completions c ON c.id = f.completion_id "
                              "WHERE f.audit_id = ? ORDER BY c.line",
                              &err)) {
            sqlite3_bind_int64(q, 1, st.audit_id);
            while (sqlite3_step(q) == SQLITE_ROW) {
                printf("line %d %s: %s (%s); longest span %d words / %d chars, doc %lld [%lld, %lld)", sqlite3_column_int(q, 0),
                       sqlite3_column_text(q, 1), sqlite3_column_text(q, 2), sqlite3_column_text(q, 3),
                       sqlite3_column_int(q, 4), sqlite3_column_int(q, 5), (long long)sqlite3_column_int64(q, 6),
                       (long long)sqlite3_column_int64(q, 7), (long long)sqlite3_column_int64(q, 8));
                if (sqlite3_column_type(q, 9) != SQLITE_NULL)
                    printf("; exact prefix %d words, ROUGE-L %.3f, edit sim %.3f", sqlite3_column_int(q, 9),
                           sqlite3_column_double(q, 10), sqlite3_column_double(q, 11));
                printf("\n");
            }
            sqlite3_finalize(q);
        }
    }
    if (!rc) {
        double ms = st.bytes_spans ? st.seconds_spans * 1e3 / (st.bytes_spans / 1024.0) : 0;
        printf("audit %lld: %lld completions: %lld verbatim, %lld near-verbatim, %lld novel; %lld unknown prompts, "
               "%lld empty, %lld bad lines; span search %.2f ms per KB\n",
               (long long)st.audit_id, (long long)st.completions, (long long)st.verbatim,
               (long long)st.near_verbatim, (long long)st.novel, (long long)st.unknown_prompt, (long long)st.empty,
               (long long)st.bad_lines, ms);
    }
    cs_text_corpus_close(&c);
    cs_store_close(s);
    return rc;
}

int cmd_text(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(sub, "index")) return text_index(argc - 1, argv + 1);
    if (!strcmp(sub, "prompts")) return text_prompts(argc - 1, argv + 1);
    if (!strcmp(sub, "generate")) return text_generate(argc - 1, argv + 1);
    if (!strcmp(sub, "audit")) return text_audit(argc - 1, argv + 1);
    return cli_usage_error("text: unknown subcommand '%s' (index, prompts, generate, audit)", sub);
}
