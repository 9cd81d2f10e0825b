/**
 * Jobs in the engine, over the embedded store and a fake pool: uploads line by line, bad lines as
 * outcomes of their own, results in input order from any line, pulling chunks as capacity frees,
 * cancel, the completion window, idempotent ids, and a restart in the middle.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  BatchProcessor,
  CHUNK_LINES,
  type EngineObserver,
  InvalidInputError,
  type JobData,
  JobEndedError,
  JobExistsError,
  JobNotFoundError,
  type JobRequest,
  type JobResultLine,
  type JobView,
  type ModelCatalog,
  type Principal,
  type RawLine,
} from "../../src/engine/index.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import { FakePool, fakeCatalog, until } from "../fixtures/fake-pool.js";

const alice: Principal = { owner: "alice", admin: false };
const bob: Principal = { owner: "bob", admin: false };

const open: BatchProcessor[] = [];
const dirs: string[] = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const p of open.splice(0)) await p.close({ timeoutMs: 100 }).catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(
  options: {
    dataDir?: string;
    pool?: FakePool;
    maxJobItems?: number;
    maxQueueSize?: number;
    clock?: () => number;
    models?: ModelCatalog;
    jobData?: (real: JobData) => JobData;
    observer?: EngineObserver;
  } = {},
) {
  const pool = options.pool ?? new FakePool(2);
  const store = new SqliteJobStore({ dataDir: options.dataDir ?? ":memory:" });
  const processor = await BatchProcessor.create({
    models: options.models ?? fakeCatalog(),
    pool,
    store,
    jobData: options.jobData?.(store.jobs) ?? store.jobs,
    observer: options.observer,
    maxJobItems: options.maxJobItems,
    maxQueueSize: options.maxQueueSize,
    clock: options.clock,
  });
  open.push(processor);
  return { processor, pool, store };
}

/** Lines 1..n, each `[line, 1, 2]` (the fake model outputs [sum, length]). */
function rawLines(n: number, from = 1): RawLine[] {
  return Array.from({ length: n }, (_, k) => ({
    line: from + k,
    value: { input: [from + k, 1, 2] },
  }));
}

async function* upload(...parts: RawLine[][]): AsyncIterable<RawLine[]> {
  for (const part of parts) yield part;
}

async function collect(lines: AsyncIterable<JobResultLine>): Promise<JobResultLine[]> {
  const out: JobResultLine[] = [];
  for await (const line of lines) out.push(line);
  return out;
}

async function settled(processor: BatchProcessor, who: Principal, id: string): Promise<JobView> {
  let last: JobView | undefined;
  for await (const view of processor.jobs.watch(who, id)) last = view;
  return last as JobView;
}

describe("jobs", () => {
  it("runs every line and reads the outcomes back in input order, from any line", async () => {
    const { processor } = await start();
    const n = 2 * CHUNK_LINES + 17;
    const created = await processor.jobs.create(alice, { jobId: "j1" }, upload(rawLines(n)));
    expect(created).toMatchObject({ jobId: "j1", status: "queued", priority: "low" });
    expect(created.counts).toEqual({ total: n, completed: 0, failed: 0, invalid: 0 });
    const done = await settled(processor, alice, "j1");
    expect(done.status).toBe("completed");
    expect(done.counts).toEqual({ total: n, completed: n, failed: 0, invalid: 0 });
    expect(done.progress).toBe(1);
    const all = await collect(processor.jobs.results(alice, "j1", 0));
    expect(all.map((r) => r.line)).toEqual(Array.from({ length: n }, (_, k) => k + 1));
    expect(all.every((r) => r.output !== null && r.output[0] === r.line + 3)).toBe(true);
    const tail = await collect(processor.jobs.results(alice, "j1", CHUNK_LINES + 5));
    expect(tail[0]?.line).toBe(CHUNK_LINES + 5);
    expect(tail).toHaveLength(n - CHUNK_LINES - 4);
  });

  it("gives a bad line an INVALID_ARGUMENT outcome naming the line and the field; the rest run", async () => {
    const { processor } = await start();
    const lines: RawLine[] = [
      ...rawLines(2),
      { line: 3, value: { input: [1, "x", 3] } },
      { line: 5, malformed: "not valid JSON" },
      { line: 6, value: [4, 5] },
      { line: 7, value: { input: [1, 2, 3, 4, 5], id: "four" } },
    ];
    await processor.jobs.create(alice, { jobId: "bad", modelId: "fixed4" }, upload(lines));
    const done = await settled(processor, alice, "bad");
    expect(done.counts).toEqual({ total: 6, completed: 0, failed: 0, invalid: 6 });
    const results = await collect(processor.jobs.results(alice, "bad", 0));
    expect(results.map((r) => [r.line, r.error?.code])).toEqual([
      [1, "INVALID_ARGUMENT"],
      [2, "INVALID_ARGUMENT"],
      [3, "INVALID_ARGUMENT"],
      [5, "INVALID_ARGUMENT"],
      [6, "INVALID_ARGUMENT"],
      [7, "INVALID_ARGUMENT"],
    ]);
    expect(results[2]?.error?.message).toBe('line 3: input[1]: expected a finite number, got "x"');
    expect(results[5]).toMatchObject({ id: "four" });
    expect(results[5]?.error?.message).toContain("line 7: input: expected 4 numbers");

    await processor.jobs.create(alice, { jobId: "mixed" }, upload([...lines]));
    const mixed = await settled(processor, alice, "mixed");
    expect(mixed.counts).toEqual({ total: 6, completed: 4, failed: 0, invalid: 2 });
  });

  it("refuses a whole upload with its first bad lines when on_invalid=reject, storing nothing", async () => {
    const { processor } = await start();
    const lines: RawLine[] = [...rawLines(3), { line: 4, value: { input: [] } }];
    const refused = processor.jobs.create(
      alice,
      { jobId: "strict", onInvalid: "reject" },
      upload(lines),
    );
    await expect(refused).rejects.toThrow(InvalidInputError);
    await expect(refused).rejects.toThrow(/line 4: input: must contain at least 1 number/);
    await expect(processor.jobs.get(alice, "strict")).rejects.toThrow(JobNotFoundError);
  });

  it("names the field of a bad spec, and refuses an empty upload or one over MAX_JOB_ITEMS", async () => {
    const { processor } = await start({ maxJobItems: 10 });
    const bad: [JobRequest, RegExp][] = [
      [{ completionWindow: "5s" }, /completion_window: must be from 1m to 7d/],
      [{ completionWindow: "soon" }, /completion_window: expected a duration/],
      [{ priority: "urgent" }, /priority: expected one of/],
      [{ onInvalid: "drop" }, /on_invalid: expected keep or reject/],
      [{ modelId: "nope" }, /model_id: model "nope" not found/],
      [{ callbackUrl: "ftp://x" }, /callback_url: expected an http\(s\) URL/],
      [{ jobId: "a b" }, /job_id: may contain only/],
    ];
    for (const [request, message] of bad)
      await expect(processor.jobs.create(alice, request, upload(rawLines(1)))).rejects.toThrow(
        message,
      );
    await expect(processor.jobs.create(alice, { jobId: "e" }, upload([]))).rejects.toThrow(
      /lines: the upload holds no lines/,
    );
    await expect(
      processor.jobs.create(alice, { jobId: "big" }, upload(rawLines(11))),
    ).rejects.toThrow(/at most 10 lines/);
    expect((await processor.jobs.list(alice, {})).jobs).toEqual([]);
  });

  it("treats job_id as an idempotency key per owner", async () => {
    const { processor } = await start();
    const first = await processor.jobs.create(alice, { jobId: "same" }, upload(rawLines(5)));
    const again = await processor.jobs.create(alice, { jobId: "same" }, upload(rawLines(5)));
    expect(again.jobId).toBe(first.jobId);
    await expect(
      processor.jobs.create(alice, { jobId: "same" }, upload(rawLines(6))),
    ).rejects.toThrow(JobExistsError);
    // Another owner's job of the same id is another job, and each sees only its own.
    await processor.jobs.create(bob, { jobId: "same" }, upload(rawLines(2)));
    expect((await settled(processor, bob, "same")).counts.total).toBe(2);
    expect((await settled(processor, alice, "same")).counts.total).toBe(5);
    await expect(processor.jobs.get(bob, first.jobId === "same" ? "none" : "same")).rejects.toThrow(
      JobNotFoundError,
    );
    expect((await processor.jobs.list(bob, {})).jobs.map((j) => j.jobId)).toEqual(["same"]);
  });

  it("pulls chunks as capacity frees: a job never meets the queue limit and keeps few chunks queued", async () => {
    const pool = new FakePool(1);
    const { processor } = await start({ pool, maxQueueSize: 100 });
    pool.hold();
    const n = 12 * CHUNK_LINES;
    await processor.jobs.create(alice, { jobId: "big" }, upload(rawLines(n)));
    let most = 0;
    await until(() => pool.heldCount > 0);
    for (let round = 0; round < 40; round++) {
      most = Math.max(most, processor.stats().pending);
      pool.release();
      pool.hold();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    pool.release();
    const done = await settled(processor, alice, "big");
    expect(done.counts.completed).toBe(n);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(3 * CHUNK_LINES);
  });

  it("keeps enough chunks queued for the threads its model runs on, its own where it has them", async () => {
    // The shared set has 1 thread; the model has 32 of its own: 2 × 32 batches of 64 in flight
    // need 4 chunks, and one more waits ready.
    const pool = new FakePool(1);
    pool.lanes.set("default", 32);
    const { processor } = await start({ pool, maxQueueSize: 100_000 });
    pool.hold();
    const warmUp = pool.received.length; // the start's warm-up batches
    await processor.jobs.create(alice, { jobId: "wide" }, upload(rawLines(12 * CHUNK_LINES)));
    const taken = () =>
      processor.stats().pending +
      pool.received.slice(warmUp).reduce((n, b) => n + (b.dims[0] as number), 0);
    await until(() => taken() >= 5 * CHUNK_LINES);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(taken()).toBe(5 * CHUNK_LINES);
    pool.release();
    expect((await settled(processor, alice, "wide")).counts.completed).toBe(12 * CHUNK_LINES);
  });

  it("streams the finished prefix while the job runs", async () => {
    const pool = new FakePool(1);
    const { processor } = await start({ pool });
    pool.hold();
    await processor.jobs.create(alice, { jobId: "p" }, upload(rawLines(4 * CHUNK_LINES)));
    await until(() => pool.heldCount > 0);
    // Let model batches through until the first chunk has been written.
    await until(async () => {
      pool.release();
      pool.hold();
      return (await processor.jobs.get(alice, "p")).counts.completed >= CHUNK_LINES;
    });
    const prefix = await collect(processor.jobs.results(alice, "p", 0));
    expect(prefix.length).toBeGreaterThanOrEqual(CHUNK_LINES);
    expect(prefix.length).toBeLessThan(4 * CHUNK_LINES);
    expect(prefix.map((r) => r.line)).toEqual(
      Array.from({ length: prefix.length }, (_, k) => k + 1),
    );
    pool.release();
    await settled(processor, alice, "p");
  });

  it("cancels: lines that ran keep their outputs, the others end CANCELLED, and the counts add up", async () => {
    const pool = new FakePool(1);
    const { processor } = await start({ pool });
    pool.hold();
    const n = 5 * CHUNK_LINES;
    await processor.jobs.create(alice, { jobId: "c" }, upload(rawLines(n)));
    await until(async () => {
      pool.release();
      pool.hold();
      return (await processor.jobs.get(alice, "c")).counts.completed >= CHUNK_LINES;
    });
    const cancelling = processor.jobs.cancel(alice, "c");
    pool.release();
    const view = await cancelling;
    expect(view.status).toBe("cancelled");
    expect(view.error?.code).toBe("CANCELLED");
    const { counts } = view;
    expect(counts.completed + counts.failed + counts.invalid).toBe(n);
    expect(counts.completed).toBeGreaterThanOrEqual(CHUNK_LINES);
    expect(counts.failed).toBeGreaterThan(0);
    const results = await collect(processor.jobs.results(alice, "c", 0));
    expect(results).toHaveLength(n);
    expect(results.filter((r) => r.output !== null)).toHaveLength(counts.completed);
    expect(results.filter((r) => r.error?.code === "CANCELLED")).toHaveLength(counts.failed);
    await expect(processor.jobs.cancel(alice, "c")).rejects.toThrow(JobEndedError);
    await expect(processor.jobs.cancel(bob, "c")).rejects.toThrow(JobNotFoundError);
  });

  it("ends the job expired when its completion window ends, keeping what ran", async () => {
    vi.useFakeTimers({
      toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"],
    });
    const pool = new FakePool(1);
    const { processor } = await start({ pool });
    pool.hold();
    const n = 3 * CHUNK_LINES;
    await processor.jobs.create(alice, { jobId: "x", completionWindow: "1m" }, upload(rawLines(n)));
    await vi.advanceTimersByTimeAsync(100);
    await vi.advanceTimersByTimeAsync(61_000);
    pool.release();
    await vi.advanceTimersByTimeAsync(1000);
    const view = await processor.jobs.get(alice, "x");
    expect(view.status).toBe("expired");
    expect(view.error?.code).toBe("DEADLINE_EXCEEDED");
    expect(view.counts.completed + view.counts.failed).toBe(n);
    expect(view.counts.failed).toBeGreaterThan(0);
    const results = await collect(processor.jobs.results(alice, "x", 0));
    expect(results).toHaveLength(n);
    expect(results.filter((r) => r.error?.code === "DEADLINE_EXCEEDED").length).toBe(
      view.counts.failed,
    );
  });

  it("keeps a job for its own result_ttl, or RESULT_TTL, after it ends", async () => {
    let skew = 0;
    const { processor } = await start({ clock: () => Date.now() + skew });
    await processor.jobs.create(alice, { jobId: "short", resultTtl: "1m" }, upload(rawLines(3)));
    await processor.jobs.create(alice, { jobId: "default" }, upload(rawLines(3)));
    await settled(processor, alice, "short");
    await settled(processor, alice, "default");
    await expect(
      processor.jobs.create(alice, { resultTtl: "2y" }, upload(rawLines(1))),
    ).rejects.toThrow(/result_ttl: expected a duration/);
    skew = 2 * 60_000;
    await processor.purge();
    await expect(processor.jobs.get(alice, "short")).rejects.toThrow(JobNotFoundError);
    expect((await processor.jobs.get(alice, "default")).status).toBe("completed");
    skew = 25 * 3_600_000;
    await processor.purge();
    await expect(processor.jobs.get(alice, "default")).rejects.toThrow(JobNotFoundError);
  });

  it("ends a job failed, visibly, when a chunk's outcomes cannot be written", async () => {
    let failures = 0;
    let storeErrors = 0;
    const pool = new FakePool(1);
    const { processor } = await start({
      pool,
      observer: { onStoreError: () => storeErrors++ },
      jobData: (real) =>
        new Proxy(real, {
          get(target, name, receiver) {
            if (name === "saveChunk" && failures === 0)
              return async () => {
                failures++;
                throw Object.assign(new Error("SQLITE_FULL: database or disk is full"), {
                  code: "SQLITE_FULL",
                });
              };
            const value = Reflect.get(target, name, receiver);
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
    });
    const n = 3 * CHUNK_LINES;
    await processor.jobs.create(alice, { jobId: "full" }, upload(rawLines(n)));
    const view = await settled(processor, alice, "full");
    expect(view.status).toBe("failed");
    expect(view.error?.code).toBe("INTERNAL");
    expect(view.error?.message).toMatch(/a write to the store failed/);
    expect(view.counts.completed + view.counts.failed).toBe(n);
    expect(storeErrors).toBe(1);
    const results = await collect(processor.jobs.results(alice, "full", 0));
    expect(results).toHaveLength(n);
    expect(results.filter((r) => r.error?.code === "UNAVAILABLE")).toHaveLength(view.counts.failed);
  });

  it("ends a job failed when its model goes away, keeping what ran", async () => {
    const catalog = fakeCatalog();
    let available = true;
    const models: ModelCatalog = {
      get: (name) => {
        const model = catalog.get(name);
        return model === undefined || name !== "fixed4" ? model : { ...model, available };
      },
      list: () => catalog.list(),
    };
    const pool = new FakePool(1);
    const { processor } = await start({ pool, models });
    pool.hold();
    const lines = Array.from({ length: 4 * CHUNK_LINES }, (_, k) => ({
      line: k + 1,
      value: { input: [k, 1, 2, 3] },
    }));
    await processor.jobs.create(alice, { jobId: "gone", modelId: "fixed4" }, upload(lines));
    await until(async () => {
      pool.release();
      pool.hold();
      return (await processor.jobs.get(alice, "gone")).counts.completed >= CHUNK_LINES;
    });
    available = false;
    pool.release();
    const view = await settled(processor, alice, "gone");
    expect(view.status).toBe("failed");
    expect(view.error?.message).toMatch(/the job's model is no longer available/);
    expect(view.counts.completed).toBeGreaterThanOrEqual(CHUNK_LINES);
    expect(view.counts.completed + view.counts.failed).toBe(4 * CHUNK_LINES);
  });

  it("goes on after a restart from where it stopped, every line with exactly one outcome", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "bp-jobs-"));
    dirs.push(dataDir);
    const pool = new FakePool(1);
    const first = await start({ dataDir, pool });
    pool.hold();
    const n = 4 * CHUNK_LINES;
    await first.processor.jobs.create(alice, { jobId: "r" }, upload(rawLines(n)));
    await until(async () => {
      pool.release();
      pool.hold();
      return (await first.processor.jobs.get(alice, "r")).counts.completed >= CHUNK_LINES;
    });
    await first.processor.close({ timeoutMs: 0 });
    const second = await start({ dataDir });
    const done = await settled(second.processor, alice, "r");
    expect(done.status).toBe("completed");
    expect(done.counts).toEqual({ total: n, completed: n, failed: 0, invalid: 0 });
    const results = await collect(second.processor.jobs.results(alice, "r", 0));
    expect(results.map((r) => r.line)).toEqual(Array.from({ length: n }, (_, k) => k + 1));
  });
});
