/* text_corpus.h — the text corpus: documents read from folders of .txt/.md
 * files and JSONL files ({"id", "text"} per line), normalised (text_norm.h)
 * and indexed in shards (text_sa.h) beside the store, plus the rows that
 * describe them (text_shards, text_docs).
 *
 * Building: documents are read in order and split, at document boundaries,
 * into shards of about equal size (the input's size over as few shards as
 * shard_bytes allows). One shard per thread is filled, then each is
 * normalised and sorted on the thread pool (two jobs per shard: the raw
 * text's suffix array; the normal form's word rows, text_sa.h) into
 * temporary files, and the shards are committed in order. Spans never
 * cross documents, so searching every shard and merging in corpus order
 * gives the answers one shard would; the files do not depend on -j.
 *
 * Indexing appends: the new documents go into new shards; existing shards are
 * never rebuilt, and a source already in text_docs is skipped. Each shard is
 * committed in one transaction (row, files renamed into place, documents'
 * rows), so an interrupted run leaves the corpus as of the last committed
 * shard, and running it again indexes the rest. */
#ifndef CS_TEXT_CORPUS_H
#define CS_TEXT_CORPUS_H

#include <stdint.h>

#include "analyze/text_norm.h"
#include "analyze/text_sa.h"
#include "core/err.h"
#include "core/store.h"

typedef struct cs_text_range {
    const char *path; /* as the file is listed (cs_text_list_inputs) */
    uint64_t start, end;
    int64_t first_line;
} cs_text_range;

typedef struct {
    uint64_t shard_bytes; /* most raw bytes per shard; 0 = 768 MiB (the input is split evenly into as few as
                           * that allows; building one needs ~6x in memory, one per thread at once) */
    /* Warnings that do not stop the run (invalid UTF-8, empty document,
     * broken JSONL line with its number): one line each, "<source>: <what>". */
    void (*note)(void *ctx, const char *msg);
    void *note_ctx;
    int progress; /* show a progress line (core/progress.h) */
    const char *field; /* JSONL: the text field (NULL = "text") */
    /* Byte ranges of uncompressed JSONL files (mpirun splits one big file
     * across ranks: cli/cmd_mpi_text_index.c): a file named here is read only
     * for the lines that start in [start, end), the first numbered
     * first_line (its documents keep the sources "path:LINE" that reading
     * the whole file gives them). NULL: every file read whole. */
    const cs_text_range *ranges;
    int n_ranges;
} cs_text_index_opts;

typedef struct {
    int64_t docs_ok, docs_empty, docs_error, docs_skipped; /* skipped: source already indexed */
    int64_t shards;                                         /* shards added */
    uint64_t bytes_in, bytes_norm, suffixes;
    /* Where the build's CPU time went, for the bench (the machine may be
     * shared, so wall time says little): serial_cpu_s on the calling thread
     * outside the sort jobs (reading, decoding, committing); jobs_cpu_s in the
     * jobs (each shard's raw sort, and its normal form + word sort), summed;
     * jobs_2core_s: each batch's jobs laid on two free threads in the order
     * the pool takes them, the makespans summed. serial + jobs_2core is the
     * CPU-bound wall of a quiet 2-core machine (disk waits not counted). */
    double serial_cpu_s, jobs_cpu_s, jobs_2core_s;
} cs_text_index_stats;

/* Indexes every path (folder: its .txt/.md/.jsonl files and their .gz forms,
 * recursively, in name order; a .jsonl file: one document per line; any
 * other file: one document; gzip is read transparently). Fails on I/O, store
 * or memory errors, and on input that is not UTF-8 text (invalid UTF-8, a
 * NUL byte, a \u0000 escape, a corrupt .gz): the error names the file (and
 * line). Empty documents and broken JSONL lines are recorded (status
 * empty/error) and reported through opts->note. */
/* The files `text index PATH...` reads, in the order it reads them: each
 * path named, a folder's .txt/.md/.jsonl files and their .gz forms
 * recursively by name; a file named again (or inside a folder also named)
 * is NULL at its later places. size: bytes on disk; bytes: their sum. */
typedef struct {
    char **path;
    uint64_t *size;
    size_t n, cap;
    uint64_t bytes;
} cs_text_inputs;
int cs_text_list_inputs(const char *const *paths, int n_paths, cs_text_inputs *out, cs_err *err);
void cs_text_inputs_free(cs_text_inputs *l);

/* The side files of text shard ID are "text-ID.EXT" for these four
 * extensions (side text, word suffix array, raw text, raw suffix array);
 * whoever moves shards between stores (the mpirun index) names them so. */
extern const char *const cs_text_shard_ext[4];

int cs_text_index(cs_store *s, const char *const *paths, int n_paths, const cs_text_index_opts *opts,
                  cs_text_index_stats *stats, cs_err *err);

/* The indexed corpus, opened for search: every shard mapped, and per shard
 * its documents' start offsets (sorted) for locating a match. */
typedef struct {
    cs_text_sa sa;       /* word rows over the raw text (and the side text) */
    int64_t id;          /* text_shards.id */
    uint64_t n_docs;
    uint64_t *doc_start; /* side documents: offset in sa.text (the side text); else 0 */
    uint64_t *doc_len;   /* normalised bytes (without the separator) */
    uint64_t *side_docs, n_side; /* the documents in the side text, in order */
    cs_text_anchor **anch;       /* side documents' offset maps (else NULL) */
    size_t *n_anch;
    int64_t *doc_id;     /* text_docs.id */
    char **name;         /* text_docs.name (JSONL id, else the path) */
    cs_text_sa raw;      /* the raw text (documents as read, 0xFF after each), every code point */
    uint64_t *raw_start, *raw_len; /* each document in raw.text */
} cs_text_shard;

typedef struct {
    cs_text_shard *shards;
    int n_shards;
    uint64_t bytes; /* all shards' text */
} cs_text_corpus;

/* Opens every shard listed in the store. An empty corpus is not an error. */
int cs_text_corpus_open(cs_text_corpus *c, cs_store *s, cs_err *err);
void cs_text_corpus_close(cs_text_corpus *c);

/* The document holding word row v of shard sh (index into its arrays, or -1
 * for a damaged row), and the raw offsets in it [*rs, *re) of the l
 * normal-form bytes from the row (l ending at a word's end). */
int64_t cs_text_shard_word(const cs_text_shard *sh, uint64_t v, uint64_t l, uint64_t *rs, uint64_t *re);

/* The document holding raw offset pos of shard sh (index), or -1. */
int64_t cs_text_shard_raw_doc(const cs_text_shard *sh, uint64_t pos);

/* Finds a document by name (the first indexed with it); -1 if none. */
int cs_text_corpus_find_name(const cs_text_corpus *c, const char *name, int *shard, uint64_t *index);

/* 1 if a JSONL line holds the escape \u0000 (cJSON would cut the string). */
int cs_text_json_has_nul(const char *line, size_t len);

/* Finds a document by text_docs.id: *shard, *index; -1 if not indexed. */
int cs_text_corpus_find_doc(const cs_text_corpus *c, int64_t doc_id, int *shard, uint64_t *index);

/* The offset map of a document (text_docs.offmap). Caller frees *a. */
int cs_text_doc_anchors(cs_store *s, int64_t doc_id, cs_text_anchor **a, size_t *n, cs_err *err);

#endif
