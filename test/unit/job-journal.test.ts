/**
 * The journal on its own, over a store that records and fails on demand: what a failed write
 * answers, what it logs and counts, and how the end of a job whose write failed is saved later.
 */
import { describe, expect, it } from "vitest";
import type { BatchWrite, ItemWrite, JobStore, StartedRun } from "../../src/engine/index.js";
import { ITEM_FAILURES } from "../../src/engine/jobs/item-failures.js";
import { Job, type JobItem } from "../../src/engine/jobs/job.js";
import { batchWrite, JobJournal, startedRuns } from "../../src/engine/jobs/job-journal.js";

/** The part of a store the journal writes to, failing while `failing` is set. */
class RecordingStore {
  failing = false;
  readonly saves: { items: readonly ItemWrite[]; batches: readonly BatchWrite[] }[] = [];

  async save(
    items: readonly ItemWrite[],
    batches: readonly BatchWrite[],
    _started?: readonly StartedRun[],
  ) {
    this.saves.push({ items, batches });
    if (this.failing) throw new Error("SQLITE_FULL: database or disk is full");
    return [];
  }
}

function journal() {
  const store = new RecordingStore();
  const errors: Record<string, unknown>[] = [];
  const lines: string[] = [];
  let storeErrors = 0;
  const j = new JobJournal({
    store: store as unknown as JobStore,
    log: {
      debug: (_f, message) => lines.push(`debug ${message}`),
      info: (_f, message) => lines.push(`info ${message}`),
      warn: (_f, message) => lines.push(`warn ${message}`),
      error: (fields, message) => {
        errors.push({ ...fields });
        lines.push(`error ${message}`);
      },
    },
    onStoreError: () => storeErrors++,
  });
  return { j, store, errors, lines, storeErrors: () => storeErrors };
}

function storedJob(pk: number, total = 3): Job {
  const now = Date.now();
  return new Job({
    pk,
    batchId: `b${pk}`,
    owner: "alice",
    priority: "normal",
    modelId: "default",
    createdAt: now,
    deadline: now + 1000,
    timeoutMs: 1000,
    total,
  });
}

const write = (pk: number, index: number): ItemWrite => ({
  pk,
  index,
  output: Float32Array.of(1),
  confidence: 0,
  processingTimeMs: 1,
  error: null,
});

describe("JobJournal", () => {
  it("writes nothing when there is nothing to write", async () => {
    const { j, store } = journal();
    expect(await j.save([storedJob(1)], [], [])).toEqual({ records: [] });
    expect(store.saves).toEqual([]);
  });

  it("saves a job's writes in one call and answers what the store answered", async () => {
    const { j, store } = journal();
    const job = storedJob(1);
    expect(await j.save([job], [write(1, 0), write(1, 1)], [batchWrite(job)])).toEqual({
      records: [],
    });
    expect(store.saves).toHaveLength(1);
    expect(store.saves[0]?.items).toHaveLength(2);
  });

  it("answers a failed write with an INTERNAL failure whose error id is logged with the batches, and counts it", async () => {
    const { j, store, errors, storeErrors } = journal();
    store.failing = true;
    const saved = await j.save([storedJob(1), storedJob(2)], [write(1, 0)], []);
    const f = "failure" in saved ? saved.failure : undefined;
    expect(f?.code).toBe("INTERNAL");
    const errorId = /\(error_id ([0-9a-f-]{36})\)$/.exec(f?.message ?? "")?.[1];
    expect(errorId).toBeDefined();
    expect(errors).toEqual([expect.objectContaining({ errorId, batchIds: ["b1", "b2"] })]);
    expect(storeErrors()).toBe(1);
  });

  it("logs an outage once: the first failed write, not the ones after it, and the recovery", async () => {
    const { j, store, lines, storeErrors } = journal();
    store.failing = true;
    for (let i = 0; i < 5; i++) await j.save([storedJob(1)], [write(1, i)], []);
    store.failing = false;
    await j.save([storedJob(1)], [write(1, 5)], []);
    await j.save([storedJob(1)], [write(1, 6)], []);
    expect(lines.filter((l) => !l.startsWith("debug"))).toEqual([
      "error saving batch progress failed",
      "info the store takes writes again",
    ]);
    expect(storeErrors()).toBe(5);
  });

  it("saves the failure of a held job on retry, its items and its end, and lets it go only once saved", async () => {
    const { j, store } = journal();
    const job = storedJob(7, 3);
    const f = ITEM_FAILURES.modelUnavailable;
    job.end("failed", f, Date.now());
    job.markUnrecorded(f, [0, 2]);
    j.hold(job);
    expect(j.unsavedCount).toBe(1);
    store.failing = true;
    expect(await j.retry()).toEqual([]);
    expect(j.unsavedCount).toBe(1);
    store.failing = false;
    expect(await j.retry()).toEqual([job]);
    expect(j.unsavedCount).toBe(0);
    const last = store.saves.at(-1);
    expect(last?.items.map((w) => [w.pk, w.index, w.error])).toEqual([
      [7, 0, f],
      [7, 2, f],
    ]);
    expect(last?.batches).toEqual([expect.objectContaining({ pk: 7, status: "failed", error: f })]);
    expect(await j.retry()).toEqual([]);
  });
});

describe("startedRuns", () => {
  it("groups the stored items of a model batch into runs of consecutive indices, per job", () => {
    const a = storedJob(1, 10);
    const b = storedJob(2, 10);
    const infer = new Job({ ...storedJob(3), pk: undefined });
    const item = (job: Job, index: number) => ({ job, index }) as unknown as JobItem;
    expect(
      startedRuns([
        item(a, 0),
        item(a, 1),
        item(a, 2),
        item(b, 5),
        item(infer, 0),
        item(a, 4),
        item(b, 6),
      ]),
    ).toEqual([
      { pk: 1, lo: 0, hi: 2 },
      { pk: 2, lo: 5, hi: 5 },
      { pk: 1, lo: 4, hi: 4 },
      { pk: 2, lo: 6, hi: 6 },
    ]);
  });
});
