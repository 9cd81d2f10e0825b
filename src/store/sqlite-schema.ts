/**
 * The SQLite store's tables, and the migration of databases an earlier version wrote. A batch's
 * inputs are one BLOB written once at submit; each outcome is a small row of its own.
 */
import type Database from "better-sqlite3";
import { OUTCOME_CODES, type OutcomeCode } from "../engine/errors.js";

const ITEMS_TABLE = (name: string) => `
CREATE TABLE IF NOT EXISTS ${name} (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  shape TEXT NOT NULL,
  PRIMARY KEY (batch_pk, idx)
) WITHOUT ROWID;`;

const RESULTS_TABLE = `
CREATE TABLE IF NOT EXISTS results (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  output BLOB,
  confidence REAL NOT NULL,
  processing_ms REAL NOT NULL,
  error TEXT,
  error_code TEXT,
  PRIMARY KEY (batch_pk, idx)
) WITHOUT ROWID;`;

const INPUTS_TABLE = `
CREATE TABLE IF NOT EXISTS inputs (
  batch_pk INTEGER PRIMARY KEY REFERENCES batches (pk) ON DELETE CASCADE,
  data BLOB NOT NULL
);`;

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
  UNIQUE (owner, batch_id)
);
DROP INDEX IF EXISTS batches_status;
CREATE INDEX IF NOT EXISTS batches_batch_id ON batches (batch_id, created_at, pk);
CREATE INDEX IF NOT EXISTS batches_completed ON batches (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_newest ON batches (created_at, pk);
CREATE INDEX IF NOT EXISTS batches_owner_newest ON batches (owner, created_at, pk);
CREATE INDEX IF NOT EXISTS batches_status_newest ON batches (status, created_at, pk);
CREATE INDEX IF NOT EXISTS batches_owner_status_newest ON batches (owner, status, created_at, pk);
${ITEMS_TABLE("items")}
${INPUTS_TABLE}
${RESULTS_TABLE}
CREATE TABLE IF NOT EXISTS started (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE,
  lo INTEGER NOT NULL,
  hi INTEGER NOT NULL,
  PRIMARY KEY (batch_pk, lo, hi)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** `PRAGMA user_version` of {@link SCHEMA}. */
const SCHEMA_VERSION = 3;

/**
 * Brings a database written by an earlier version to {@link SCHEMA_VERSION}, in one transaction,
 * losing nothing.
 */
function migrate(db: Database.Database): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version >= SCHEMA_VERSION) return;
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
  if (!tables.includes("batches")) return; // a new database: SCHEMA creates everything
  db.transaction(() => {
    migrateItemRows(db);
    splitFailureCodes(db);
  })();
}

/**
 * Version 0 kept each item's input and outcome in its row: finished outcomes move to `results`,
 * each batch's inputs are joined into its `inputs` BLOB, and `items` keeps the rest.
 */
function migrateItemRows(db: Database.Database): void {
  const columns = db.prepare("SELECT name FROM pragma_table_info('items')").pluck().all();
  if (!columns.includes("done")) return;
  db.exec(`${RESULTS_TABLE}
    INSERT INTO results (batch_pk, idx, output, confidence, processing_ms, error)
      SELECT batch_pk, idx, output, confidence, processing_ms, error FROM items WHERE done = 1;
    ${INPUTS_TABLE}`);
  const inputsOf = db.prepare("SELECT input FROM items WHERE batch_pk = ? ORDER BY idx").pluck();
  const insert = db.prepare("INSERT INTO inputs (batch_pk, data) VALUES (?, ?)");
  for (const pk of db.prepare("SELECT DISTINCT batch_pk FROM items").pluck().all())
    insert.run(pk, Buffer.concat(inputsOf.all(pk) as Buffer[]));
  db.exec(`${ITEMS_TABLE("items_v2")}
    INSERT INTO items_v2 (batch_pk, idx, request_id, shape)
      SELECT batch_pk, idx, request_id, shape FROM items;
    DROP TABLE items;
    ALTER TABLE items_v2 RENAME TO items;`);
}

/**
 * Versions before 3 kept a failure as one text, `"CODE: message"`; the code now has its own
 * column. Texts without a known code prefix (a batch's summary) keep their whole text as the
 * message, with the code of the first item failure they quote.
 */
function splitFailureCodes(db: Database.Database): void {
  for (const table of ["batches", "results"]) {
    const columns = db.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all();
    if (!columns.includes("error_code")) db.exec(`ALTER TABLE ${table} ADD COLUMN error_code TEXT`);
    const key = table === "batches" ? "pk" : "batch_pk, idx";
    const where = table === "batches" ? "pk = ?" : "batch_pk = ? AND idx = ?";
    const update = db.prepare(`UPDATE ${table} SET error_code = ?, error = ? WHERE ${where}`);
    const rows = db
      .prepare(`SELECT ${key}, error FROM ${table} WHERE error IS NOT NULL AND error_code IS NULL`)
      .raw()
      .all() as unknown[][];
    for (const row of rows) {
      const { code, message } = legacyFailure(row.at(-1) as string);
      update.run(code, message, ...row.slice(0, -1));
    }
  }
}

function legacyFailure(text: string): { code: OutcomeCode; message: string } {
  const prefixed = /^([A-Z_]+): ([\s\S]*)$/.exec(text);
  if (prefixed !== null && isOutcomeCode(prefixed[1]))
    return { code: prefixed[1], message: prefixed[2] as string };
  const quoted = /first: ([A-Z_]+): /.exec(text)?.[1];
  return { code: isOutcomeCode(quoted) ? quoted : "INTERNAL", message: text };
}

/** True for the codes a failure may carry. */
export function isOutcomeCode(code: unknown): code is OutcomeCode {
  return (OUTCOME_CODES as readonly unknown[]).includes(code);
}

/** Brings `db` to the current schema: migrates an earlier one, creates what is missing. */
export function applySchema(db: Database.Database): void {
  migrate(db);
  db.exec(SCHEMA);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}
