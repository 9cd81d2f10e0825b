/**
 * Jobs on a cluster: one job's chunks spread over the nodes, any node answering for it, a cancel
 * from another node, and a node killed (SIGKILL) mid-job without a line lost or run twice into
 * the results.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import {
  CHUNK_LINES,
  type JobResultLine,
  type JobView,
  type Principal,
  type RawLine,
} from "../../src/engine/index.js";
import {
  REDIS_URL,
  TestClusters,
  type TestNode,
  type TestNodeOptions,
} from "../fixtures/cluster-node.js";
import { until } from "../fixtures/fake-pool.js";

const CHILD = fileURLToPath(new URL("../fixtures/cluster-node.ts", import.meta.url));
const alice: Principal = { owner: "alice", admin: false };
const bob: Principal = { owner: "bob", admin: false };

const clusters = new TestClusters("cjobs");
const newPrefix = () => clusters.prefix();
const node = (options: TestNodeOptions) => clusters.node(options);

afterEach(async () => {
  await clusters.cleanup();
});

/** Lines 1..n, each `[line, 1, 2]` (the fake model answers [sum, length]). */
async function* upload(n: number): AsyncIterable<RawLine[]> {
  for (let from = 1; from <= n; from += CHUNK_LINES) {
    const part: RawLine[] = [];
    for (let line = from; line < Math.min(n + 1, from + CHUNK_LINES); line++)
      part.push({ line, value: { input: [line, 1, 2] } });
    yield part;
  }
}

async function settled(n: TestNode, jobId: string): Promise<JobView> {
  let last: JobView | undefined;
  for await (const view of n.processor.jobs.watch(alice, jobId)) last = view;
  return last as JobView;
}

async function results(n: TestNode, jobId: string): Promise<JobResultLine[]> {
  const out: JobResultLine[] = [];
  for await (const line of n.processor.jobs.results(alice, jobId, 0)) out.push(line);
  return out;
}

describe("jobs on a cluster", () => {
  it("spreads one job's chunks over the nodes, and any node answers for it", async () => {
    const prefix = newPrefix();
    const a = await node({ prefix, batchDelayMs: 1 });
    const b = await node({ prefix, batchDelayMs: 1 });
    const lines = 12 * CHUNK_LINES;
    const created = await a.processor.jobs.create(alice, { jobId: "shared" }, upload(lines));
    expect(created.status).toBe("queued");
    const done = await settled(b, "shared");
    expect(done).toMatchObject({
      status: "completed",
      counts: { total: lines, completed: lines, failed: 0, invalid: 0 },
    });
    // Both nodes ran model batches of it.
    expect(a.pool.received.some((r) => r.dims[1] === 3)).toBe(true);
    expect(b.pool.received.some((r) => r.dims[1] === 3)).toBe(true);
    const out = await results(b, "shared");
    expect(out.map((r) => r.line)).toEqual(Array.from({ length: lines }, (_, k) => k + 1));
    expect(out.every((r) => r.output?.[0] === r.line + 3)).toBe(true);
    await expect(b.processor.jobs.get(bob, "shared")).rejects.toThrow(/not found/);
    // An ended job leaves no timer of its window behind.
    const redis = new Redis(REDIS_URL);
    try {
      expect(await redis.zcard(`${prefix}:job-chunks:delayed`)).toBe(0);
      expect(await redis.keys(`${prefix}:job-chunks:e[0-9]*`)).toEqual([]);
    } finally {
      redis.disconnect();
    }
    expect((await a.processor.jobs.list(alice, { status: "completed" })).jobs).toHaveLength(1);
  });

  it("cancels a job from another node than the one that stored it", async () => {
    const prefix = newPrefix();
    const a = await node({ prefix, batchDelayMs: 5 });
    const b = await node({ prefix, batchDelayMs: 5 });
    const lines = 40 * CHUNK_LINES;
    await a.processor.jobs.create(alice, { jobId: "stop-me" }, upload(lines));
    await until(
      async () => (await b.processor.jobs.get(alice, "stop-me")).counts.completed > 0,
      20_000,
    );
    const view = await b.processor.jobs.cancel(alice, "stop-me");
    expect(view.status).toBe("cancelled");
    const { counts } = view;
    expect(counts.completed + counts.failed + counts.invalid).toBe(lines);
    expect(counts.failed).toBeGreaterThan(0);
    const out = await results(a, "stop-me");
    expect(out).toHaveLength(lines);
    expect(out.filter((r) => r.output !== null)).toHaveLength(counts.completed);
    expect(out.filter((r) => r.error?.code === "CANCELLED")).toHaveLength(counts.failed);
  });

  it("loses no line when a node is killed mid-job", async () => {
    const prefix = newPrefix();
    const proc = spawn(process.execPath, ["--import", "tsx", CHILD, prefix, "1000", "2"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const state = { out: "", exited: new Promise((resolve) => proc.on("exit", resolve)) };
    proc.stdout.on("data", (chunk: Buffer) => (state.out += chunk.toString()));
    proc.stderr.on("data", (chunk: Buffer) => (state.out += chunk.toString()));
    try {
      const survivor = await node({ prefix, lockMs: 1000, batchDelayMs: 2 });
      await until(() => state.out.includes("STARTED"), 20_000);
      const lines = 30 * CHUNK_LINES;
      await survivor.processor.jobs.create(alice, { jobId: "survives" }, upload(lines));
      // Killed while it holds chunks with model batches done and items still to run.
      await until(() => /RAN [1-9]\d\d/.test(state.out), 20_000);
      proc.kill("SIGKILL");
      await state.exited;
      const done = await settled(survivor, "survives");
      expect(done).toMatchObject({
        status: "completed",
        counts: { total: lines, completed: lines, failed: 0, invalid: 0 },
      });
      const out = await results(survivor, "survives");
      expect(out.map((r) => r.line)).toEqual(Array.from({ length: lines }, (_, k) => k + 1));
      expect(out.every((r) => r.output?.[0] === r.line + 3)).toBe(true);
    } finally {
      proc.kill("SIGKILL");
      await state.exited;
    }
  }, 60_000);
});
