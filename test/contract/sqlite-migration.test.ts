/**
 * A database written by the first schema (outcomes inside the item rows) opens with the current
 * one: finished outcomes move to `results`, unfinished items stay pending, nothing is lost.
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
        [1, "req_2", null, 0, "DEADLINE_EXCEEDED: late"],
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
    expect(reopened.pragma("user_version", { simple: true })).toBe(2);
    reopened.close();
  });
});
