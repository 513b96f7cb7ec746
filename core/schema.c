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
    /* new migrations go above this line */
    {0, 0},
};
