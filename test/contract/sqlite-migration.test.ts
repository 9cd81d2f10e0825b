/**
 * Databases written by earlier schemas open with the current one, losing nothing: version 0 kept
 * outcomes inside the item rows, versions before 3 kept each failure as one `"CODE: message"` text.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";

const VERSION_0 = `
CREATE TABLE batches (
  pk INTEGER PRIMARY KEY, owner TEXT NOT NULL, batch_id TEXT NOT NULL, model_id TEXT NOT NULL,
  priority TEXT NOT NULL, status TEXT NOT NULL, error TEXT, timeout_ms INTEGER NOT NULL,
  created_at INTEGER NOT NULL, deadline INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER,
  total INTEGER NOT NULL, succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
  metadata TEXT NOT NULL, payload_hash TEXT, UNIQUE (owner, batch_id)
);
CREATE TABLE items (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE,
  idx INTEGER NOT NULL, request_id TEXT NOT NULL, shape TEXT NOT NULL, input BLOB NOT NULL,
  output BLOB, confidence REAL NOT NULL DEFAULT 0, processing_ms REAL NOT NULL DEFAULT 0,
  error TEXT, done INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (batch_pk, idx)
) WITHOUT ROWID;
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** The schema versions 2 wrote (inputs as one BLOB, failures as one text). */
const VERSION_2 = `
CREATE TABLE batches (
  pk INTEGER PRIMARY KEY, owner TEXT NOT NULL, batch_id TEXT NOT NULL, model_id TEXT NOT NULL,
  priority TEXT NOT NULL, status TEXT NOT NULL, error TEXT, timeout_ms INTEGER NOT NULL,
  created_at INTEGER NOT NULL, deadline INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER,
  total INTEGER NOT NULL, succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
  metadata TEXT NOT NULL, payload_hash TEXT, UNIQUE (owner, batch_id)
);
CREATE INDEX batches_status ON batches (status);
CREATE TABLE items (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE, idx INTEGER NOT NULL,
  request_id TEXT NOT NULL, shape TEXT NOT NULL, PRIMARY KEY (batch_pk, idx)
) WITHOUT ROWID;
CREATE TABLE inputs (batch_pk INTEGER PRIMARY KEY REFERENCES batches (pk) ON DELETE CASCADE, data BLOB NOT NULL);
CREATE TABLE results (
  batch_pk INTEGER NOT NULL REFERENCES batches (pk) ON DELETE CASCADE, idx INTEGER NOT NULL,
  output BLOB, confidence REAL NOT NULL, processing_ms REAL NOT NULL, error TEXT,
  PRIMARY KEY (batch_pk, idx)
) WITHOUT ROWID;
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

const blob = (values: number[]) => Buffer.from(Float32Array.from(values).buffer);

describe("SqliteJobStore schema migration", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("moves finished outcomes of a version-0 database to results and keeps the rest pending", async () => {
    dir = mkdtempSync(join(tmpdir(), "bp-migrate-"));
    const old = new Database(join(dir, "batch-processor.db"));
    old.exec(VERSION_0);
    old
      .prepare(
        `INSERT INTO batches (pk, owner, batch_id, model_id, priority, status, timeout_ms, created_at, deadline, total, succeeded, failed, metadata)
         VALUES (1, 'o', 'b1', 'default', 'normal', 'processing', 5000, 1, 5001, 3, 1, 1, '{}')`,
      )
      .run();
    const insert = old.prepare(
      "INSERT INTO items (batch_pk, idx, request_id, shape, input, output, confidence, processing_ms, error, done) VALUES (1, ?, ?, '2', ?, ?, ?, ?, ?, ?)",
    );
    insert.run(0, "req_1", blob([1, 2]), blob([0.25, 0.75]), 0.75, 3.5, null, 1);
    insert.run(1, "req_2", blob([3, 4]), null, 0, 0, "DEADLINE_EXCEEDED: late", 1);
    insert.run(2, "req_3", blob([5, 6]), null, 0, 0, null, 0);
    old.close();

    const store = new SqliteJobStore({ dataDir: dir });
    try {
      const results = await store.getResults(1, false);
      expect(
        results.map((r) => [
          r.index,
          r.requestId,
          r.output && [...r.output],
          r.confidence,
          r.error,
        ]),
      ).toEqual([
        [0, "req_1", [0.25, 0.75], 0.75, null],
        [1, "req_2", null, 0, { code: "DEADLINE_EXCEEDED", message: "late" }],
        [2, "req_3", null, 0, null],
      ]);
      expect((await store.getResults(1, true)).map((r) => r.index)).toEqual([0, 1]);
      const unfinished = await store.loadUnfinished();
      expect(unfinished.map((u) => u.pending.map((p) => [p.index, [...p.input]]))).toEqual([
        [[2, [5, 6]]],
      ]);
      // The first outcome still wins after the move.
      await store.save(
        [
          {
            pk: 1,
            index: 0,
            output: Float32Array.from([9, 9]),
            confidence: 1,
            processingTimeMs: 1,
            error: null,
          },
        ],
        [],
      );
      expect([...((await store.getResults(1, true))[0]?.output ?? [])]).toEqual([0.25, 0.75]);
    } finally {
      await store.close();
    }
    const reopened = new Database(join(dir, "batch-processor.db"), { readonly: true });
    expect(reopened.pragma("user_version", { simple: true })).toBe(3);
    reopened.close();
  });

  it("splits the failures of a version-2 database into a code and a message", async () => {
    dir = mkdtempSync(join(tmpdir(), "bp-migrate-"));
    const old = new Database(join(dir, "batch-processor.db"));
    old.exec(VERSION_2);
    old.pragma("user_version = 2");
    const batch = old.prepare(
      `INSERT INTO batches (pk, owner, batch_id, model_id, priority, status, error, timeout_ms, created_at, deadline, total, metadata)
       VALUES (?, 'o', ?, 'default', 'normal', ?, ?, 5000, ?, 5001, 2, '{}')`,
    );
    batch.run(1, "cancelled", "cancelled", "CANCELLED: cancelled by request", 1);
    batch.run(2, "mixed", "failed", "2 of 2 items failed; first: INTERNAL: model crashed", 2);
    batch.run(3, "queued", "queued", null, 3);
    old
      .prepare(
        "INSERT INTO results (batch_pk, idx, output, confidence, processing_ms, error) VALUES (2, 0, NULL, 0, 0, ?)",
      )
      .run("INTERNAL: model crashed");
    old
      .prepare("INSERT INTO items (batch_pk, idx, request_id, shape) VALUES (2, 0, 'req_1', '3')")
      .run();
    old.close();

    const store = new SqliteJobStore({ dataDir: dir });
    try {
      expect((await store.findBatch("o", "cancelled"))?.error).toEqual({
        code: "CANCELLED",
        message: "cancelled by request",
      });
      expect((await store.findBatch("o", "mixed"))?.error).toEqual({
        code: "INTERNAL",
        message: "2 of 2 items failed; first: INTERNAL: model crashed",
      });
      expect((await store.findBatch("o", "queued"))?.error).toBeNull();
      expect((await store.getResults(2, true))[0]?.error).toEqual({
        code: "INTERNAL",
        message: "model crashed",
      });
    } finally {
      await store.close();
    }
  });
});
