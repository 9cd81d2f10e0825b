/**
 * The SQLite store's list pages read an index in page order and nothing else: whatever the table
 * holds, a page costs its own rows. Checked on SQLite's query plans (a property of the schema and
 * the statements, the same on every machine) and against a brute-force listing of the same data.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BatchRecord, BatchStatus, ListQuery } from "../../src/engine/index.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import { listStatement } from "../../src/store/sqlite-rows.js";

const OWNERS = ["a", "b", "c"];
const STATUSES: BatchStatus[] = ["queued", "processing", "completed", "failed", "cancelled"];

let dir: string;
let store: SqliteJobStore;
let db: Database.Database;
const all: BatchRecord[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bp-queries-"));
  store = new SqliteJobStore({ dataDir: dir });
  for (let i = 0; i < 600; i++) {
    const { record } = await store.createBatch(
      {
        owner: OWNERS[i % 3] as string,
        batchId: `b${i}`,
        modelId: "default",
        priority: "normal",
        timeoutMs: 5000,
        // Ties in created_at, so pages must also order by pk.
        createdAt: 1000 + Math.floor(i / 4),
        deadline: 6000,
        total: 1,
        metadata: { pad: "x".repeat(i % 7 === 0 ? 4000 : 10) },
        payloadHash: null,
      },
      [{ index: 0, requestId: "req_1", input: Float32Array.from([i]), shape: [1] }],
    );
    const status = STATUSES[i % 5] as BatchStatus;
    if (status !== "queued")
      await store.save(
        [],
        [{ pk: record.pk, status, error: null, startedAt: 1, completedAt: null }],
      );
    all.push({ ...record, status, startedAt: status === "queued" ? null : 1 });
  }
  db = new Database(join(dir, "batch-processor.db"), { readonly: true });
});

afterAll(async () => {
  db.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const shapes: ListQuery[] = [];
for (const owner of [undefined, "b"])
  for (const statuses of [undefined, ["failed"], ["queued", "processing"]] as const)
    shapes.push({ owner, statuses, limit: 7 });

function plan(query: ListQuery): string[] {
  const { sql, params } = listStatement(query);
  return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map(
    (row) => row.detail,
  );
}

function brute(query: ListQuery): BatchRecord[] {
  return all
    .filter((r) => query.owner === undefined || r.owner === query.owner)
    .filter((r) => query.statuses === undefined || query.statuses.includes(r.status))
    .sort((x, y) => y.createdAt - x.createdAt || y.pk - x.pk);
}

describe("SqliteJobStore list pages", () => {
  it.each(shapes)("read an index in page order: %o", (query) => {
    for (const cursor of [undefined, Buffer.from("1100:300").toString("base64url")]) {
      const steps = plan({ ...query, cursor });
      const reads = steps.filter((step) => /\bbatches\b/.test(step));
      expect(reads.length).toBeGreaterThan(0);
      for (const step of reads) expect(step).toMatch(/USING (COVERING )?INDEX batches_/);
      // Only several statuses sort: each branch its own page of at most limit + 1 rows, before
      // the branches merge.
      const statuses = query.statuses?.length ?? 0;
      const sorts = steps.filter((step) => step.includes("TEMP B-TREE"));
      expect(sorts.length).toBe(statuses > 1 ? statuses : 0);
      if (statuses > 1) expect(steps).toContain("MERGE (UNION ALL)");
    }
  });

  it.each(shapes)("page through exactly what a full scan finds: %o", async (query) => {
    const pages: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.listBatches({ ...query, cursor });
      pages.push(...page.batches.map((b) => b.batchId));
      expect(page.batches.length).toBeLessThanOrEqual(query.limit);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    expect(pages).toEqual(brute(query).map((r) => r.batchId));
  });

  it("never reads a batch's metadata back", async () => {
    const { batches } = await store.listBatches({ limit: 50 });
    for (const batch of batches) expect(batch).not.toHaveProperty("metadata");
    expect(listStatement({ limit: 1 }).sql).not.toMatch(/\bmetadata\b|\*/);
  });
});
