/**
 * The JobStore contract: every implementation runs this same suite (SQLite on disk and in memory
 * today; Redis joins when it lands).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { failure, type JobStore, type NewBatch, type StoredInput } from "../../src/engine/index.js";
import { RedisJobStore } from "../../src/store/redis-job-store.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";

interface StoreFactory {
  readonly name: string;
  /** Whether what it stores outlives the store object (then `reopen` reads it back). */
  readonly durable: boolean;
  create(): Promise<{
    store: JobStore;
    reopen?: () => Promise<JobStore>;
    cleanup: () => void | Promise<void>;
  }>;
}

const factories: StoreFactory[] = [
  {
    name: "SqliteJobStore (file)",
    durable: true,
    async create() {
      const dir = mkdtempSync(join(tmpdir(), "bp-store-"));
      return {
        store: new SqliteJobStore({ dataDir: dir }),
        reopen: async () => new SqliteJobStore({ dataDir: dir }),
        cleanup: () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: "SqliteJobStore (:memory:)",
    durable: false,
    async create() {
      return { store: new SqliteJobStore({ dataDir: ":memory:" }), cleanup: () => {} };
    },
  },
  {
    name: "RedisJobStore",
    durable: true,
    async create() {
      // A prefix of its own per test, on the shared Redis (REDIS_URL, else the local one).
      const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
      const prefix = `test-store-${process.pid}-${++counter}`;
      const open = () => {
        const store = new RedisJobStore({ url, prefix });
        return store.ready().then(() => store);
      };
      return {
        store: await open(),
        reopen: open,
        cleanup: async () => {
          const redis = new Redis(url);
          const keys = await redis.keys(`${prefix}:*`);
          if (keys.length > 0) await redis.del(...keys);
          await redis.quit();
        },
      };
    },
  },
];

let counter = 0;
function newBatch(overrides: Partial<NewBatch> = {}): NewBatch {
  counter++;
  return {
    owner: "owner-a",
    batchId: `b-${counter}`,
    modelId: "default",
    priority: "normal",
    timeoutMs: 5000,
    createdAt: 1_700_000_000_000 + counter,
    deadline: 1_700_000_005_000 + counter,
    total: 3,
    metadata: { user_id: "u1", nested: { a: [1, 2] } },
    payloadHash: "h1",
    ...overrides,
  };
}

const ok = { confidence: 0.9, processingTimeMs: 2, error: null } as const;
const failed = { confidence: 0, processingTimeMs: 0, error: failure("INTERNAL", "boom") } as const;

function inputs(n: number): StoredInput[] {
  return Array.from({ length: n }, (_, index) => ({
    index,
    requestId: `req_${index + 1}`,
    input: Float32Array.from([index, index + 0.5, -index]),
    shape: [3],
  }));
}

for (const factory of factories) {
  describe(`JobStore contract: ${factory.name}`, () => {
    let store: JobStore;
    let reopen: (() => Promise<JobStore>) | undefined;
    let cleanup: () => void | Promise<void>;

    beforeEach(async () => {
      ({ store, reopen, cleanup } = await factory.create());
    });
    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    it("creates a batch with its items and reads it back", async () => {
      const batch = newBatch();
      const { created, record } = await store.createBatch(batch, inputs(3));
      expect(created).toBe(true);
      const { metadata: _written, ...fields } = batch;
      expect(record).not.toHaveProperty("metadata");
      expect(record).toMatchObject({
        ...fields,
        status: "queued",
        error: null,
        startedAt: null,
        completedAt: null,
        succeeded: 0,
        failed: 0,
      });
      expect(await store.findBatch("owner-a", batch.batchId)).toEqual(record);
    });

    it("returns the existing record instead of creating a duplicate (owner, batch_id)", async () => {
      const batch = newBatch();
      const first = await store.createBatch(batch, inputs(3));
      const second = await store.createBatch(
        { ...batch, payloadHash: "other", total: 9 },
        inputs(9),
      );
      expect(second.created).toBe(false);
      expect(second.record).toEqual(first.record);
      expect(await store.getResults(first.record.pk, false)).toHaveLength(3);
    });

    it("keeps batch ids apart per owner, and finds any owner's for admins", async () => {
      const a = await store.createBatch(newBatch({ batchId: "same", owner: "x" }), inputs(1));
      const b = await store.createBatch(newBatch({ batchId: "same", owner: "y" }), inputs(1));
      expect(b.created).toBe(true);
      expect(a.record.pk).not.toBe(b.record.pk);
      expect((await store.findBatch("y", "same"))?.pk).toBe(b.record.pk);
      expect((await store.findBatch(undefined, "same"))?.pk).toBe(a.record.pk);
      expect(await store.findBatch("z", "same")).toBeUndefined();
    });

    it("writes outcomes and batch state in one save, with counters that follow the outcomes", async () => {
      const { record } = await store.createBatch(newBatch(), inputs(3));
      await store.save(
        [
          {
            pk: record.pk,
            index: 0,
            output: Float32Array.from([0.25, 0.75]),
            confidence: 0.75,
            processingTimeMs: 1.5,
            error: null,
          },
          {
            pk: record.pk,
            index: 2,
            output: null,
            confidence: 0,
            processingTimeMs: 0,
            error: { code: "DEADLINE_EXCEEDED", message: "late" },
          },
        ],
        [{ pk: record.pk, status: "processing", error: null, startedAt: 10, completedAt: null }],
      );
      const after = await store.findBatch("owner-a", record.batchId);
      expect(after).toMatchObject({ status: "processing", startedAt: 10, succeeded: 1, failed: 1 });
      const finished = await store.getResults(record.pk, true);
      expect(finished.map((r) => r.index)).toEqual([0, 2]);
      expect(Array.from(finished[0]?.output ?? [])).toEqual([0.25, 0.75]);
      expect(finished[1]).toMatchObject({
        output: null,
        error: { code: "DEADLINE_EXCEEDED", message: "late" },
        requestId: "req_3",
      });
      const all = await store.getResults(record.pk, false);
      expect(all).toHaveLength(3);
      expect(all[1]).toMatchObject({ output: null, error: null });
    });

    it("keeps the first outcome of an item and ignores later ones", async () => {
      const { record } = await store.createBatch(newBatch(), inputs(1));
      const write = (v: number) => ({
        pk: record.pk,
        index: 0,
        output: Float32Array.from([v]),
        confidence: v,
        processingTimeMs: 1,
        error: null,
      });
      await store.save([write(1)], []);
      await store.save([write(2)], []);
      const [result] = await store.getResults(record.pk, true);
      expect(Array.from(result?.output ?? [])).toEqual([1]);
      expect((await store.findBatch("owner-a", record.batchId))?.succeeded).toBe(1);
    });

    describe("a batch's status never contradicts its outcomes, whoever writes", () => {
      const ok = (pk: number, index: number) => ({
        pk,
        index,
        output: Float32Array.from([index]),
        confidence: 1,
        processingTimeMs: 1,
        error: null,
      });
      const bad = (pk: number, index: number, code: "DEADLINE_EXCEEDED" | "INVALID_ARGUMENT") => ({
        pk,
        index,
        output: null,
        confidence: 0,
        processingTimeMs: 0,
        error: failure(code, `item ${index}`),
      });
      const state = (
        pk: number,
        status: "queued" | "processing" | "completed" | "failed" | "cancelled",
        at: number,
      ) => ({
        pk,
        status,
        error:
          status === "failed" || status === "cancelled" ? failure("INTERNAL", "said so") : null,
        startedAt: 10,
        completedAt: status === "queued" || status === "processing" ? null : at,
      });

      it("answers each batch written as it stands after the save", async () => {
        const { record } = await store.createBatch(newBatch(), inputs(3));
        const [after] = await store.save([ok(record.pk, 0)], [state(record.pk, "processing", 0)]);
        expect(after).toEqual({
          ...record,
          status: "processing",
          startedAt: 10,
          succeeded: 1,
        });
        // Only batches with a state written are answered, and only those that exist.
        expect(await store.save([ok(record.pk, 1)], [])).toEqual([]);
        expect(await store.save([], [state(record.pk + 1000, "processing", 0)])).toEqual([]);
      });

      it("keeps an ended batch as it ended: later states, outcomes and runs are ignored", async () => {
        const { record } = await store.createBatch(newBatch(), inputs(3));
        await store.save(
          [ok(record.pk, 0), ok(record.pk, 1), ok(record.pk, 2)],
          [state(record.pk, "completed", 50)],
        );
        const [late] = await store.save(
          [bad(record.pk, 0, "INVALID_ARGUMENT")],
          [state(record.pk, "failed", 60)],
          [{ pk: record.pk, lo: 0, hi: 2 }],
        );
        expect(late).toMatchObject({ status: "completed", error: null, completedAt: 50 });
        const [back] = await store.save([], [state(record.pk, "processing", 0)]);
        expect(back).toMatchObject({ status: "completed", succeeded: 3, failed: 0 });
        const results = await store.getResults(record.pk, true);
        expect(results.map((r) => r.error)).toEqual([null, null, null]);
        expect(await store.loadUnfinished()).toEqual([]);
      });

      it("never moves a batch back to queued", async () => {
        const { record } = await store.createBatch(newBatch({ total: 2 }), inputs(2));
        await store.save([], [state(record.pk, "processing", 0)]);
        const [after] = await store.save(
          [],
          [{ ...state(record.pk, "queued", 0), startedAt: null }],
        );
        expect(after).toMatchObject({ status: "processing", startedAt: 10 });
      });

      it("ends completed a batch whose every item has an output, whatever end was written", async () => {
        for (const end of ["failed", "cancelled"] as const) {
          const { record } = await store.createBatch(newBatch({ total: 2 }), inputs(2));
          const [after] = await store.save(
            [ok(record.pk, 0), ok(record.pk, 1)],
            [state(record.pk, end, 70)],
          );
          expect(after).toMatchObject({ status: "completed", error: null, completedAt: 70 });
        }
      });

      it("ends failed a batch written completed while an item has an error, naming the first", async () => {
        const { record } = await store.createBatch(newBatch(), inputs(3));
        await store.save([bad(record.pk, 2, "INVALID_ARGUMENT")], []);
        const [after] = await store.save(
          [ok(record.pk, 0), bad(record.pk, 1, "DEADLINE_EXCEEDED")],
          [state(record.pk, "completed", 80)],
        );
        expect(after).toMatchObject({
          status: "failed",
          succeeded: 1,
          failed: 2,
          error: { code: "DEADLINE_EXCEEDED", message: "2 of 3 items failed" },
        });
      });

      it("keeps a written failure or cancel where an item has no output", async () => {
        const { record } = await store.createBatch(newBatch({ total: 2 }), inputs(2));
        const [after] = await store.save(
          [ok(record.pk, 0), bad(record.pk, 1, "DEADLINE_EXCEEDED")],
          [state(record.pk, "cancelled", 90)],
        );
        expect(after).toMatchObject({
          status: "cancelled",
          error: { code: "INTERNAL", message: "said so" },
        });
      });
    });

    it("returns unfinished batches with exactly the items that have no outcome", async () => {
      const { record } = await store.createBatch(newBatch(), inputs(3));
      const ended = await store.createBatch(newBatch(), inputs(1));
      await store.save(
        [
          {
            pk: record.pk,
            index: 1,
            output: Float32Array.from([1]),
            confidence: 1,
            processingTimeMs: 1,
            error: null,
          },
        ],
        [
          {
            pk: ended.record.pk,
            status: "cancelled",
            error: { code: "CANCELLED", message: "by request" },
            startedAt: null,
            completedAt: 5,
          },
        ],
      );
      const unfinished = await store.loadUnfinished();
      expect(unfinished.map((u) => u.batch.pk)).toEqual([record.pk]);
      expect(unfinished[0]?.pending.map((p) => p.index)).toEqual([0, 2]);
      expect(Array.from(unfinished[0]?.pending[1]?.input ?? [])).toEqual([2, 2.5, -2]);
      expect(unfinished[0]?.pending[1]?.shape).toEqual([3]);
    });

    it("gives back each pending item its own input, whatever the shapes and the given order", async () => {
      const mixed: StoredInput[] = [
        { index: 2, requestId: "c", input: Float32Array.from([7, 8, 9, 10]), shape: [2, 2] },
        { index: 0, requestId: "a", input: Float32Array.from([1]), shape: [1] },
        { index: 1, requestId: "b", input: Float32Array.from([2, 3, 4, 5, 6]), shape: [5] },
      ];
      const { record } = await store.createBatch(newBatch({ total: 3 }), mixed);
      const [batch] = await store.loadUnfinished();
      expect(batch?.batch.pk).toBe(record.pk);
      expect(
        batch?.pending.map((p) => [p.index, p.requestId, p.shape, Array.from(p.input)]),
      ).toEqual([
        [0, "a", [1], [1]],
        [1, "b", [5], [2, 3, 4, 5, 6]],
        [2, "c", [2, 2], [7, 8, 9, 10]],
      ]);
    });

    it("keeps items of typed tensors and outputs by name, each in its datatype, and the names asked for", async () => {
      const tensors = (k: number): StoredInput => ({
        index: k,
        requestId: `t${k}`,
        input: new Float32Array(0),
        shape: [],
        tensors: [
          {
            name: "",
            datatype: "INT64",
            shape: [k + 1],
            data: BigInt64Array.from({ length: k + 1 }, (_, j) => BigInt(j) - 2n ** 62n),
          },
          { name: "mask", datatype: "BOOL", shape: [k + 1], data: new Uint8Array(k + 1).fill(1) },
          { name: "text", datatype: "BYTES", shape: [1], data: [`é${k}`] },
        ],
      });
      const items = [tensors(1), tensors(0), tensors(2)];
      const { record } = await store.createBatch(newBatch({ outputs: ["logits", "ids"] }), items);
      expect(record.outputs).toEqual(["logits", "ids"]);
      expect(await store.findBatch("owner-a", record.batchId)).toEqual(record);
      const outputs = [
        { name: "logits", datatype: "FP16", shape: [2], data: Uint16Array.from([0x3c00, 0xbc00]) },
        { name: "ids", datatype: "INT64", shape: [1], data: BigInt64Array.from([2n ** 60n + 1n]) },
      ] as const;
      await store.save(
        [
          { pk: record.pk, index: 0, output: Float32Array.from([1, -1]), outputs, ...ok },
          { pk: record.pk, index: 1, output: null, ...failed },
        ],
        [],
      );
      const pending = (await store.loadBatch(record.pk))?.pending ?? [];
      expect(pending.map((p) => [p.index, p.requestId])).toEqual([[2, "t2"]]);
      expect(pending[0]?.tensors).toEqual(tensors(2).tensors);
      const results = await store.getResults(record.pk, false);
      expect(results[0]).toMatchObject({ output: null, outputs, confidence: 0.9 });
      expect(results[1]).toMatchObject({ output: null, error: { code: "INTERNAL" } });
      expect(results[1]?.outputs).toBeUndefined();
      expect(results[2]).toMatchObject({ output: null, error: null });
      // A batch of float vectors answered in the shorthand keeps its numbers and `output`.
      const { record: plain } = await store.createBatch(newBatch(), inputs(3));
      expect(plain.outputs).toBeNull();
      await store.save([{ pk: plain.pk, index: 0, output: Float32Array.from([4]), ...ok }], []);
      expect((await store.getResults(plain.pk, true))[0]?.output).toEqual(Float32Array.from([4]));
    });

    it("keeps the node that ran a batch, the latest one written", async () => {
      const { record } = await store.createBatch(newBatch({ total: 1 }), inputs(1));
      expect(record.node).toBeNull();
      const write = (node: string | undefined, status: "processing" | "completed") => ({
        pk: record.pk,
        status,
        error: null,
        startedAt: 1,
        completedAt: status === "completed" ? 2 : null,
        node,
      });
      const [started] = await store.save([], [write("node-a", "processing")]);
      expect(started?.node).toBe("node-a");
      await store.save([], [write("node-b", "processing")]);
      // A write that names no node keeps the one kept.
      await store.save(
        [{ pk: record.pk, index: 0, output: Float32Array.from([1]), ...ok }],
        [write(undefined, "completed")],
      );
      expect(await store.findBatch("owner-a", record.batchId)).toMatchObject({
        status: "completed",
        node: "node-b",
      });
    });

    it("stores inputs that are views of one shared buffer, and only their part of it", async () => {
      const shared = Float32Array.from([99, 1, 2, 3, 4, 5, 99]);
      const views: StoredInput[] = [
        { index: 0, requestId: "a", input: shared.subarray(1, 3), shape: [2] },
        { index: 1, requestId: "b", input: shared.subarray(3, 6), shape: [3] },
      ];
      await store.createBatch(newBatch({ total: 2 }), views);
      shared.fill(0); // the store must have written the values, not kept the memory
      const [batch] = await store.loadUnfinished();
      expect(batch?.pending.map((p) => Array.from(p.input))).toEqual([
        [1, 2],
        [3, 4, 5],
      ]);
    });

    it("lists newest first, filtered by owner and status, in pages", async () => {
      const made = [];
      for (let i = 0; i < 5; i++)
        made.push(
          (await store.createBatch(newBatch({ owner: i === 4 ? "other" : "owner-a" }), inputs(1)))
            .record,
        );
      await store.save(
        [],
        [
          {
            pk: made[0]?.pk as number,
            status: "failed",
            error: { code: "INTERNAL", message: "x" },
            startedAt: 1,
            completedAt: 2,
          },
        ],
      );
      const page1 = await store.listBatches({ owner: "owner-a", limit: 2 });
      expect(page1.batches.map((b) => b.pk)).toEqual([made[3]?.pk, made[2]?.pk]);
      const page2 = await store.listBatches({
        owner: "owner-a",
        limit: 2,
        cursor: page1.nextCursor,
      });
      expect(page2.batches.map((b) => b.pk)).toEqual([made[1]?.pk, made[0]?.pk]);
      expect(page2.nextCursor).toBeUndefined();
      expect((await store.listBatches({ limit: 10 })).batches).toHaveLength(5);
      expect(
        (
          await store.listBatches({ owner: "owner-a", statuses: ["failed"], limit: 10 })
        ).batches.map((b) => b.pk),
      ).toEqual([made[0]?.pk]);
      await expect(store.listBatches({ limit: 1, cursor: "not-a-cursor" })).rejects.toThrow(
        RangeError,
      );
    });

    it("purges batches that ended before a time, and their items", async () => {
      const old = await store.createBatch(newBatch(), inputs(2));
      const recent = await store.createBatch(newBatch(), inputs(2));
      const live = await store.createBatch(newBatch(), inputs(2));
      await store.save(
        [],
        [
          { pk: old.record.pk, status: "completed", error: null, startedAt: 1, completedAt: 100 },
          {
            pk: recent.record.pk,
            status: "completed",
            error: null,
            startedAt: 1,
            completedAt: 300,
          },
        ],
      );
      expect(await store.purgeFinished(200, 10)).toBe(1);
      expect(await store.purgeFinished(200, 10)).toBe(0);
      expect(await store.findBatch("owner-a", old.record.batchId)).toBeUndefined();
      expect(await store.getResults(old.record.pk, false)).toEqual([]);
      expect(await store.findBatch("owner-a", recent.record.batchId)).toBeDefined();
      expect(await store.findBatch("owner-a", live.record.batchId)).toBeDefined();
    });

    it("purges at most `limit` batches per call, oldest first", async () => {
      const made = [];
      for (let i = 0; i < 5; i++)
        made.push((await store.createBatch(newBatch(), inputs(1))).record);
      await store.save(
        [],
        made.map((r, i) => ({
          pk: r.pk,
          status: "completed" as const,
          error: null,
          startedAt: 1,
          completedAt: 10 + i,
        })),
      );
      expect(await store.purgeFinished(100, 2)).toBe(2);
      expect(await store.findBatch("owner-a", made[1]?.batchId as string)).toBeUndefined();
      expect(await store.findBatch("owner-a", made[2]?.batchId as string)).toBeDefined();
      expect(await store.purgeFinished(100, 2)).toBe(2);
      expect(await store.purgeFinished(100, 2)).toBe(1);
      expect(await store.listBatches({ limit: 10 })).toEqual({
        batches: [],
        nextCursor: undefined,
      });
    });

    it("tells unfinished items that were handed to a thread from those that never started", async () => {
      const { record } = await store.createBatch(newBatch({ total: 5 }), inputs(5));
      await store.save(
        [],
        [{ pk: record.pk, status: "processing", error: null, startedAt: 7, completedAt: null }],
        [
          { pk: record.pk, lo: 0, hi: 1 },
          { pk: record.pk, lo: 3, hi: 3 },
        ],
      );
      await store.save(
        [
          {
            pk: record.pk,
            index: 0,
            output: Float32Array.from([1]),
            confidence: 1,
            processingTimeMs: 1,
            error: null,
          },
        ],
        [],
        [{ pk: record.pk, lo: 3, hi: 3 }],
      );
      const [unfinished] = await store.loadUnfinished();
      expect(unfinished?.batch).toMatchObject({ status: "processing", startedAt: 7 });
      expect(unfinished?.pending.map((p) => [p.index, p.started])).toEqual([
        [1, true],
        [2, false],
        [3, true],
        [4, false],
      ]);
    });

    it("loads one batch with its pending items, and counts the active work", async () => {
      const a = await store.createBatch(newBatch({ total: 3 }), inputs(3));
      const b = await store.createBatch(newBatch({ total: 2 }), inputs(2));
      expect(await store.activity()).toEqual({ activeBatches: 2, pendingItems: 5 });
      const outcome = (pk: number, index: number) => ({
        pk,
        index,
        output: Float32Array.from([index]),
        confidence: 1,
        processingTimeMs: 1,
        error: null,
      });
      await store.save([outcome(a.record.pk, 0), outcome(a.record.pk, 2)], []);
      await store.save(
        [outcome(b.record.pk, 0), outcome(b.record.pk, 1)],
        [{ pk: b.record.pk, status: "completed", error: null, startedAt: 1, completedAt: 2 }],
      );
      expect(await store.activity()).toEqual({ activeBatches: 1, pendingItems: 1 });
      const loaded = await store.loadBatch(a.record.pk);
      expect(loaded?.batch.pk).toBe(a.record.pk);
      expect(loaded?.pending.map((p) => [p.index, [...p.input]])).toEqual([[1, [1, 1.5, -1]]]);
      expect((await store.loadBatch(b.record.pk))?.pending).toEqual([]);
      expect(await store.loadBatch(999_999)).toBeUndefined();
    });

    it("tells the work a batch waits behind, per class and ahead in its own class", async () => {
      const outcome = (pk: number, index: number) => ({
        pk,
        index,
        output: null,
        confidence: 0,
        processingTimeMs: 0,
        error: failure("CANCELLED", "cancelled"),
      });
      const low1 = await store.createBatch(newBatch({ total: 4, priority: "low" }), inputs(4));
      const critical = await store.createBatch(
        newBatch({ total: 2, priority: "critical" }),
        inputs(2),
      );
      const low2 = await store.createBatch(newBatch({ total: 3, priority: "low" }), inputs(3));
      const low3 = await store.createBatch(newBatch({ total: 5, priority: "low" }), inputs(5));
      expect(await store.backlog(low3.record.pk)).toEqual({
        pending: { critical: 2, high: 0, normal: 0, low: 7 },
        aheadInClass: 7,
      });
      expect(await store.backlog(low2.record.pk)).toEqual({
        pending: { critical: 2, high: 0, normal: 0, low: 9 },
        aheadInClass: 4,
      });
      // The first low batch finishes one item, then ends: what waits ahead shrinks with it.
      await store.save([outcome(low1.record.pk, 0)], []);
      expect((await store.backlog(low3.record.pk))?.aheadInClass).toBe(6);
      await store.save(
        [1, 2, 3].map((i) => outcome(low1.record.pk, i)),
        [{ pk: low1.record.pk, status: "cancelled", error: null, startedAt: 1, completedAt: 2 }],
      );
      expect(await store.backlog(low3.record.pk)).toEqual({
        pending: { critical: 2, high: 0, normal: 0, low: 3 },
        aheadInClass: 3,
      });
      expect(await store.backlog(critical.record.pk)).toEqual({
        pending: { critical: 0, high: 0, normal: 0, low: 8 },
        aheadInClass: 0,
      });
      expect(await store.backlog(999_999)).toBeUndefined();
    });

    it("stores settings", async () => {
      expect(await store.getSetting("batching")).toBeUndefined();
      await store.putSetting("batching", '{"a":1}');
      await store.putSetting("batching", '{"a":2}');
      expect(await store.getSetting("batching")).toBe('{"a":2}');
    });

    // Only durable stores promise this; an in-memory store has nothing to reopen.
    if (factory.durable) {
      it("keeps everything across a reopen", async () => {
        if (reopen === undefined) throw new Error(`${factory.name} is durable but cannot reopen`);
        const { record } = await store.createBatch(newBatch(), inputs(2));
        await store.putSetting("k", "v");
        await store.close();
        store = await reopen();
        expect(await store.findBatch("owner-a", record.batchId)).toEqual(record);
        expect(await store.getSetting("k")).toBe("v");
        expect((await store.loadUnfinished()).map((u) => u.pending.length)).toEqual([2]);
      });
    }
  });
}
