/**
 * The SQLite store's tables. A batch's inputs are one BLOB written once at submit; each outcome
 * is a small row of its own.
 */
import type Database from "better-sqlite3";

/**
 * A batch's inputs are one BLOB (the items' float32 values back to back, in item order), written
 * once at submit: one row of 2 MiB is far cheaper to write than 1,000 rows of 2 KiB. Outcomes
 * have their own small rows, so writing one never rewrites a page that holds inputs. `started`
 * holds the index ranges handed to an inference thread, so that after a crash an item without an
 * outcome is known to have run (its result was lost) or not.
 *
 * Lists read newest first by owner and status: each filter has an index in that order, so a page
 * reads its rows and no others, however large the table.
 */
/**
 * Jobs: a row each, their lines in chunks of one BLOB written once at upload, and each chunk's
 * outcomes in a BLOB of their own written once when it has run (so that writing them never
 * rewrites the pages of the lines).
 */
const JOB_SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  pk INTEGER PRIMARY KEY,
  owner TEXT NOT NULL,
  job_id TEXT NOT NULL,
  model_id TEXT NOT NULL,
  priority TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  error_code TEXT,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  completed_at INTEGER,
  expires_at INTEGER NOT NULL,
  total INTEGER NOT NULL DEFAULT 0,
  completed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  invalid INTEGER NOT NULL DEFAULT 0,
  chunks INTEGER NOT NULL DEFAULT 0,
  payload_hash TEXT,
  callback_url TEXT,
  callback_secret TEXT,
  keep_ms INTEGER,
  UNIQUE (owner, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_job_id ON jobs (job_id, created_at, pk);
CREATE INDEX IF NOT EXISTS jobs_newest ON jobs (created_at, pk);
CREATE INDEX IF NOT EXISTS jobs_owner_newest ON jobs (owner, created_at, pk);
CREATE INDEX IF NOT EXISTS jobs_completed ON jobs (completed_at) WHERE completed_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_lines (
  job_pk INTEGER NOT NULL REFERENCES jobs (pk) ON DELETE CASCADE,
  chunk INTEGER NOT NULL,
  first_line INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (job_pk, chunk)
);
CREATE TABLE IF NOT EXISTS job_outcomes (
  job_pk INTEGER NOT NULL REFERENCES jobs (pk) ON DELETE CASCADE,
  chunk INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (job_pk, chunk)
);
`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS batches (
  pk INTEGER PRIMARY KEY,
  owner TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  model_id TEXT NOT NULL,
  priority TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  error_code TEXT,
  timeout_ms INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  deadline INTEGER NOT NULL,
  started_at INTEGER,
  completed_at INTEGER,
  total INTEGER NOT NULL,
  succeeded INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  metadata TEXT NOT NULL,
  payload_hash TEXT,
  outputs TEXT,
  node TEXT,
  UNIQUE (owner, batch_id)
);
CREATE INDEX IF NOT EXISTS batches_batch_id ON batches (batch_id, created_at, pk);
CREATE INDEX IF NOT EXISTS batches_completed ON batches (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_newest ON batches (created_at, pk);
CREATE INDEX IF NOT EXISTS batches_owner_newest ON batches (owner, created_at, pk);
CREATE INDEX IF NOT EXISTS batches_status_newest ON batches (status, created_at, pk);
CREATE INDEX IF NOT EXISTS batches_owner_status_newest ON batches (owner, status, created_at, pk);
CREATE TABLE IF NOT EXISTS items (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  shape TEXT NOT NULL,
  PRIMARY KEY (batch_pk, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inputs (
  batch_pk INTEGER PRIMARY KEY REFERENCES batches (pk) ON DELETE CASCADE,
  data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  output BLOB,
  confidence REAL NOT NULL,
  processing_ms REAL NOT NULL,
  error TEXT,
  error_code TEXT,
  PRIMARY KEY (batch_pk, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS started (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE,
  lo INTEGER NOT NULL,
  hi INTEGER NOT NULL,
  PRIMARY KEY (batch_pk, lo, hi)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
${JOB_SCHEMA}`;

/** `PRAGMA user_version` of {@link SCHEMA}. */
const SCHEMA_VERSION = 5;
/**
 * Versions this one extends without rewriting anything: 3 lacked the job tables, 4 the
 * `outputs` and `node` columns of batches (a batch answered by name, the node that ran it);
 * both gain what they lack.
 */
const ADDITIVE_FROM: readonly number[] = [3, 4];

/**
 * Creates the tables of a new database, or checks that an existing one has this schema: a
 * database another schema version wrote is refused with the reason, never opened and read
 * wrongly.
 */
export function applySchema(db: Database.Database): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
  if (tables.length > 0 && version !== SCHEMA_VERSION && !ADDITIVE_FROM.includes(version))
    throw new Error(
      `the database has schema version ${version} and this server reads version ${SCHEMA_VERSION}: move it out of DATA_DIR to start with a new one`,
    );
  db.transaction(() => {
    db.exec(SCHEMA);
    const columns = db.prepare("SELECT name FROM pragma_table_info('batches')").pluck().all();
    for (const column of ["outputs", "node"])
      if (!columns.includes(column)) db.exec(`ALTER TABLE batches ADD COLUMN ${column} TEXT`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}
