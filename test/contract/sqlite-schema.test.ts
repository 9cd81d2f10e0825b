/**
 * A database an earlier version of the server wrote: the versions this one extends gain what they
 * lack and keep what they hold; any other version is refused with the reason, never read wrongly.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { NewBatch } from "../../src/engine/index.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bp-schema-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const batch = (batchId: string, outputs?: string[]): NewBatch => ({
  owner: "o",
  batchId,
  modelId: "default",
  priority: "normal",
  timeoutMs: 5000,
  createdAt: 1000,
  deadline: 6000,
  total: 1,
  metadata: {},
  payloadHash: null,
  outputs,
});
const one = [{ index: 0, requestId: "r", input: Float32Array.from([1, 2]), shape: [2] }];

/** Rewrites the database as version `version` wrote it: without the columns it lacked. */
function downgrade(version: number): void {
  const db = new Database(join(dir, "batch-processor.db"));
  db.exec("ALTER TABLE batches DROP COLUMN outputs");
  db.pragma(`user_version = ${version}`);
  db.close();
}

it("opens a version 4 database, keeps its batches and answers new ones by name", async () => {
  let store = new SqliteJobStore({ dataDir: dir });
  const { record: old } = await store.createBatch(batch("old"), one);
  await store.close();
  downgrade(4);
  store = new SqliteJobStore({ dataDir: dir });
  expect(await store.findBatch("o", "old")).toEqual(old);
  expect(old.outputs).toBeNull();
  const { record } = await store.createBatch(batch("new", ["logits"]), one);
  expect(record.outputs).toEqual(["logits"]);
  expect((await store.loadUnfinished()).map((u) => u.pending[0]?.input)).toEqual([
    Float32Array.from([1, 2]),
    Float32Array.from([1, 2]),
  ]);
  await store.close();
  const db = new Database(join(dir, "batch-processor.db"));
  expect(db.pragma("user_version", { simple: true })).toBe(5);
  db.close();
});

it("refuses a database of a version it does not extend, saying what to do", async () => {
  const store = new SqliteJobStore({ dataDir: dir });
  await store.close();
  downgrade(2);
  expect(() => new SqliteJobStore({ dataDir: dir })).toThrow(
    /the database has schema version 2 and this server reads version 5: move it out of DATA_DIR/,
  );
});
