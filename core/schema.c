/* schema.c — the store's schema as an ordered list of named migrations.
 *
 * Rules: append only. A migration that has been committed to main is never
 * edited or reordered; a change to a table is a new migration below. Each
 * migration runs in one transaction with its bookkeeping row (core/store.c). */
#include "core/store.h"

const cs_migration cs_migrations[] = {
    {"0001-core",
     "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
     /* One row per reference input (image file, or tar member). status:
      * 'ok' = decoded and described; 'error' = recorded and skipped (error says
      * why); 'duplicate' = same sha256 as dup_of. Re-running index add on the
      * same input skips sources already present (source is unique). */
     "CREATE TABLE refs(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  source TEXT NOT NULL UNIQUE,      -- path, or 'shard.tar//member'\n"
     "  sha256 TEXT,                      -- hex of the file bytes\n"
     "  size INTEGER,\n"
     "  caption TEXT,\n"
     "  width INTEGER, height INTEGER,\n"
     "  status TEXT NOT NULL,             -- ok | error | duplicate\n"
     "  error TEXT,\n"
     "  dup_of INTEGER REFERENCES refs(id),\n"
     "  added TEXT NOT NULL DEFAULT (datetime('now'))\n"
     ");\n"
     "CREATE INDEX refs_sha256 ON refs(sha256);\n"
     /* Generation runs and their outputs (pipeline/). */
     "CREATE TABLE runs(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  suite TEXT, suite_sha256 TEXT,\n"
     "  started TEXT NOT NULL DEFAULT (datetime('now')),\n"
     "  finished TEXT,\n"
     "  command TEXT,\n"
     "  model TEXT, model_sha256 TEXT,\n"
     "  settings_json TEXT\n"
     ");\n"
     "CREATE TABLE prompts(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
     "  key TEXT NOT NULL,                -- the suite's prompt id\n"
     "  text TEXT NOT NULL,\n"
     "  negative TEXT,\n"
     "  expect_ref TEXT,                  -- id/source of the reference it is expected to copy\n"
     "  kind TEXT NOT NULL DEFAULT 'txt2img', -- txt2img | img2img | completion\n"
     "  task_json TEXT,                   -- completion/img2img task details\n"
     "  UNIQUE(run_id, key)\n"
     ");\n"
     "CREATE TABLE generations(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
     "  prompt_id INTEGER REFERENCES prompts(id),\n"
     "  seed INTEGER NOT NULL,\n"
     "  sample INTEGER NOT NULL DEFAULT 0,\n"
     "  settings_json TEXT,\n"
     "  path TEXT NOT NULL,\n"
     "  sha256 TEXT,\n"
     "  whitebox REAL,                    -- mean |eps_c - eps_u| over the first k steps\n"
     "  whitebox_json TEXT,               -- per-step signals\n"
     "  created TEXT NOT NULL DEFAULT (datetime('now')),\n"
     "  UNIQUE(run_id, prompt_id, seed, sample)\n"
     ");\n"
     /* Analysis (analyze/). */
     "CREATE TABLE matches(\n"
     "  generation_id INTEGER NOT NULL REFERENCES generations(id),\n"
     "  ref_id INTEGER NOT NULL REFERENCES refs(id),\n"
     "  descriptor TEXT NOT NULL,\n"
     "  score REAL NOT NULL,\n"
     "  rank INTEGER NOT NULL,\n"
     "  PRIMARY KEY(generation_id, descriptor, rank)\n"
     ");\n"
     "CREATE TABLE findings(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  generation_id INTEGER NOT NULL REFERENCES generations(id),\n"
     "  ref_id INTEGER REFERENCES refs(id),\n"
     "  verdict TEXT NOT NULL,            -- copy | near-copy | partial | novel\n"
     "  severity REAL NOT NULL DEFAULT 0,\n"
     "  evidence_json TEXT NOT NULL\n"
     ");\n"
     "CREATE INDEX findings_generation ON findings(generation_id);\n"},
    {"0002-index-hashes",
     /* Per-reference descriptors computed at ingestion (index/). The hash
      * scan loads these into memory; thumbnails feed pixel metrics, the
      * empirical model and reports. */
     "CREATE TABLE ref_hashes(\n"
     "  ref_id INTEGER PRIMARY KEY REFERENCES refs(id),\n"
     "  pdq BLOB NOT NULL,                -- 32 bytes\n"
     "  pdq_quality INTEGER NOT NULL,\n"
     "  phash INTEGER NOT NULL, dhash INTEGER NOT NULL, ahash INTEGER NOT NULL -- uint64 bits as int64\n"
     ");\n"
     "CREATE TABLE ref_thumbs(\n"
     "  ref_id INTEGER PRIMARY KEY REFERENCES refs(id),\n"
     "  w INTEGER NOT NULL, h INTEGER NOT NULL,  -- 64 x 64\n"
     "  rgb BLOB NOT NULL                 -- w*h*3 bytes, area-resized, alpha over white\n"
     ");\n"},
    {"0008-text-audit",
     /* Text regurgitation audit (analyze/text_*.c, issue 8). The corpus lives
      * in shards: <db>.<text_file> holds the normalised text of its documents,
      * each followed by a 0xFF separator; <db>.<sa_file> the sorted word-start
      * suffixes (uint32 offsets). Adding documents adds a shard. */
     "CREATE TABLE text_shards(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  text_file TEXT NOT NULL,          -- sidecar suffix of the text file\n"
     "  sa_file TEXT NOT NULL,            -- sidecar suffix of the suffix array\n"
     "  bytes INTEGER NOT NULL,           -- normalised text bytes, separators included\n"
     "  n_docs INTEGER NOT NULL,\n"
     "  n_suffixes INTEGER NOT NULL,\n"
     "  created TEXT NOT NULL DEFAULT (datetime('now'))\n"
     ");\n"
     /* One row per input document. status: ok | empty (recorded, not indexed)
      * | error (unreadable, broken JSONL line, too large: note says why). */
     "CREATE TABLE text_docs(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  source TEXT NOT NULL UNIQUE,      -- file path, or 'file.jsonl:LINE'\n"
     "  name TEXT,                        -- JSONL id, else the path\n"
     "  status TEXT NOT NULL,             -- ok | empty | error\n"
     "  note TEXT,                        -- e.g. '2 invalid UTF-8 sequences replaced'\n"
     "  shard_id INTEGER REFERENCES text_shards(id),\n"
     "  start INTEGER,                    -- offset of the normalised text in the shard\n"
     "  norm_bytes INTEGER, orig_bytes INTEGER, words INTEGER,\n"
     "  offmap BLOB,                      -- (norm, orig) uint32 LE pairs where the offset delta changes\n"
     "  added TEXT NOT NULL DEFAULT (datetime('now'))\n"
     ");\n"
     "CREATE INDEX text_docs_shard ON text_docs(shard_id, start);\n"
     /* Prompts cut from the corpus; the true continuation stays here. */
     "CREATE TABLE text_prompts(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  key TEXT NOT NULL UNIQUE,         -- the prompt_id written to the JSONL\n"
     "  doc_id INTEGER NOT NULL REFERENCES text_docs(id),\n"
     "  start_word INTEGER NOT NULL,      -- first prefix word, in the document\n"
     "  prefix_words INTEGER NOT NULL, cont_words INTEGER NOT NULL,\n"
     "  prompt TEXT NOT NULL,             -- normalised prefix\n"
     "  continuation TEXT NOT NULL,       -- normalised true continuation\n"
     "  cont_doc_start INTEGER, cont_doc_end INTEGER, -- original byte offsets in the document\n"
     "  created TEXT NOT NULL DEFAULT (datetime('now'))\n"
     ");\n"
     "CREATE INDEX text_prompts_prompt ON text_prompts(prompt);\n"
     "CREATE TABLE text_audits(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  source TEXT NOT NULL,             -- the completions file\n"
     "  started TEXT NOT NULL DEFAULT (datetime('now')),\n"
     "  settings_json TEXT NOT NULL\n"
     ");\n"
     "CREATE TABLE text_completions(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  audit_id INTEGER NOT NULL REFERENCES text_audits(id),\n"
     "  line INTEGER NOT NULL,            -- line in the completions file\n"
     "  prompt_key TEXT,                  -- as given (prompt_id), if any\n"
     "  prompt_id INTEGER REFERENCES text_prompts(id), -- NULL: unknown prompt\n"
     "  model TEXT,\n"
     "  completion TEXT NOT NULL\n"
     ");\n"
     /* One finding per completion: the evidence and the verdict. */
     "CREATE TABLE text_findings(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  audit_id INTEGER NOT NULL REFERENCES text_audits(id),\n"
     "  completion_id INTEGER NOT NULL UNIQUE REFERENCES text_completions(id),\n"
     "  prompt_id INTEGER REFERENCES text_prompts(id),\n"
     "  status TEXT NOT NULL,             -- ok | unknown_prompt | empty_completion\n"
     "  verdict TEXT NOT NULL,            -- verbatim | near-verbatim | novel\n"
     "  longest_chars INTEGER NOT NULL, longest_words INTEGER NOT NULL,\n"
     "  longest_doc_id INTEGER REFERENCES text_docs(id),\n"
     "  longest_doc_start INTEGER, longest_doc_end INTEGER,   -- original byte offsets in the document\n"
     "  longest_comp_start INTEGER, longest_comp_end INTEGER, -- byte offsets in the completion\n"
     "  n_spans INTEGER NOT NULL,         -- maximal spans >= min_span_words (rows in text_spans)\n"
     "  exact_prefix_words INTEGER,       -- NULL when there is no true continuation\n"
     "  rouge_l_f1 REAL, edit_sim REAL,\n"
     "  evidence_json TEXT NOT NULL       -- settings and the reason for the verdict\n"
     ");\n"
     "CREATE INDEX text_findings_audit ON text_findings(audit_id);\n"
     "CREATE TABLE text_spans(\n"
     "  finding_id INTEGER NOT NULL REFERENCES text_findings(id),\n"
     "  rank INTEGER NOT NULL,            -- 0 = first in the completion\n"
     "  comp_start INTEGER NOT NULL, comp_end INTEGER NOT NULL, -- byte offsets in the completion\n"
     "  chars INTEGER NOT NULL, words INTEGER NOT NULL,\n"
     "  doc_id INTEGER NOT NULL REFERENCES text_docs(id),\n"
     "  doc_start INTEGER NOT NULL, doc_end INTEGER NOT NULL,   -- original byte offsets in the document\n"
     "  text TEXT NOT NULL,               -- the span, normalised\n"
     "  PRIMARY KEY(finding_id, rank)\n"
     ");\n"},
    {"0006-analyze",
     /* One row per `copyscope analyze` (analyze/): the thresholds it used and
      * what the index held; files it could not read (recorded, skipped); and
      * the per-prompt summary of the run. matches/findings rows (0001) of a
      * generation are replaced when it is analysed again. */
     "CREATE TABLE analyses(\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
     "  started TEXT NOT NULL DEFAULT (datetime('now')),\n"
     "  finished TEXT,\n"
     "  settings_json TEXT NOT NULL,     -- every threshold used (analyze/settings.c)\n"
     "  descriptors TEXT NOT NULL,       -- comma list: tl2,pdq,phash,dhash,tiny,...\n"
     "  n_refs INTEGER NOT NULL,\n"
     "  n_generations INTEGER NOT NULL DEFAULT 0,\n"
     "  n_skipped INTEGER NOT NULL DEFAULT 0\n"
     ");\n"
     "CREATE TABLE analysis_skipped(\n"
     "  analysis_id INTEGER NOT NULL REFERENCES analyses(id),\n"
     "  path TEXT NOT NULL,\n"
     "  error TEXT NOT NULL\n"
     ");\n"
     "CREATE TABLE prompt_summary(\n"
     "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
     "  prompt_id INTEGER NOT NULL REFERENCES prompts(id),\n"
     "  analysis_id INTEGER NOT NULL REFERENCES analyses(id),\n"
     "  n_generations INTEGER NOT NULL,\n"
     "  n_copy INTEGER NOT NULL, n_near_copy INTEGER NOT NULL,\n"
     "  n_partial INTEGER NOT NULL, n_novel INTEGER NOT NULL,\n"
     "  memorisation_rate REAL NOT NULL, -- (copy + near-copy) / generations\n"
     "  max_similarity REAL,             -- max over generations of 1 - tiled L2 to its reference\n"
     "  min_tl2 REAL,                    -- the same as a distance\n"
     "  max_embed_cos REAL,              -- best embedding cosine, NULL without embeddings\n"
     "  mean_whitebox REAL,              -- mean generations.whitebox, NULL when none recorded\n"
     "  largest_clique INTEGER NOT NULL, -- near-duplicate clique among the prompt's generations\n"
     "  clique_flag INTEGER NOT NULL,    -- 1 when largest_clique >= clique_k\n"
     "  PRIMARY KEY(run_id, prompt_id)\n"
     ");\n"
     "CREATE INDEX matches_ref ON matches(ref_id);\n"},
    {"0019-analyses-interrupted",
     /* An analysis killed before its end keeps finished NULL; the next analysis
      * of the run (which replaces its findings) marks it interrupted = 1, so
      * that an unfinished row always means one running now (issue 19). */
     "ALTER TABLE analyses ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;\n"},
    /* Local features (index/localfeat.h): one CS_LF_RECORD-byte SIFT record
     * per reference, written by index add (issue 13). */
    {"0020-ref-localfeat",
     "CREATE TABLE ref_localfeat(\n"
     "  ref_id INTEGER PRIMARY KEY REFERENCES refs(id),\n"
     "  rec BLOB NOT NULL\n"
     ");\n"},
    /* Paths stored absolute (issue 19): rows written before were relative to
     * the folder copyscope ran from, so that a command from any other folder
     * missed the images (and a rerun regenerated them). cs_abspath (core/
     * store.c) resolves such a path against the current folder, else the
     * store's folder, where the file exists there. */
    /* and the store's side files (<db>.<suffix>, core/store_files.c),
     * recorded when a read-write store closes, so that a copy of the .db
     * without them is detected. */
    {"0019-store-paths",
     "CREATE TABLE store_files(suffix TEXT PRIMARY KEY, added TEXT NOT NULL DEFAULT (datetime('now')));\n"
     "UPDATE generations SET path = cs_abspath(path) WHERE path NOT LIKE '/%';\n"
     "UPDATE runs SET settings_json = json_set(settings_json, '$.out',\n"
     "  cs_abspath(json_extract(settings_json, '$.out')))\n"
     "  WHERE json_valid(settings_json) AND json_type(settings_json, '$.out') = 'text'\n"
     "  AND json_extract(settings_json, '$.out') NOT LIKE '/%';\n"
     "UPDATE prompts SET task_json = json_set(task_json, '$.ref', cs_abspath(json_extract(task_json, '$.ref')))\n"
     "  WHERE json_valid(task_json) AND json_type(task_json, '$.ref') = 'text'\n"
     "  AND json_extract(task_json, '$.ref') NOT LIKE '/%';\n"
     "UPDATE prompts SET task_json = json_set(task_json, '$.mask', cs_abspath(json_extract(task_json, '$.mask')))\n"
     "  WHERE json_valid(task_json) AND json_type(task_json, '$.mask') = 'text'\n"
     "  AND json_extract(task_json, '$.mask') NOT LIKE '/%';\n"},
    /* new migrations go above this line */
    {0, 0},
};
