/**
 * Several engine nodes sharing one Redis: a batch runs on whichever node takes it, any node
 * answers for it, cancels and configuration reach the node that needs them, and a node that
 * leaves (shut down, or killed) hands its batches to the others without losing or repeating an
 * outcome.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type BatchProcessor,
  type BatchView,
  type Principal,
  QueueFullError,
} from "../../src/engine/index.js";
import {
  dropCluster,
  REDIS_URL,
  TestClusters,
  type TestNodeOptions,
} from "../fixtures/cluster-node.js";
import { until } from "../fixtures/fake-pool.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

/** The operator's owner secret of the test clusters. */
const OWNER_SECRET = "test-owner-secret-of-at-least-32-characters";
const CHILD = fileURLToPath(new URL("../fixtures/cluster-node.ts", import.meta.url));
const alice: Principal = { owner: "alice", admin: false };
const admin: Principal = { owner: "root", admin: true };

const clusters = new TestClusters("cluster");
const newPrefix = () => clusters.prefix();
const node = (options: TestNodeOptions) => clusters.node(options);

const items = (n: number, first = 0) =>
  Array.from({ length: n }, (_, i) => ({ input: [first + i, 1, 2] }));

async function settle(processor: BatchProcessor, batchId: string): Promise<BatchView> {
  let last: BatchView | undefined;
  for await (const view of processor.watch(alice, batchId)) last = view;
  return last as BatchView;
}

/** Every string and hash value under `prefix`, joined (what a copy of Redis would show). */
async function dumpStrings(prefix: string): Promise<string> {
  const redis = new Redis(REDIS_URL);
  try {
    const parts: string[] = [];
    for (const key of await redis.keys(`${prefix}:*`)) {
      const type = await redis.type(key);
      if (type === "string") parts.push(key, String(await redis.get(key)));
      else if (type === "hash") parts.push(key, JSON.stringify(await redis.hgetall(key)));
    }
    return parts.join("\n");
  } finally {
    redis.disconnect();
  }
}

afterEach(async () => {
  await clusters.cleanup();
});

describe("a cluster of nodes on one Redis", () => {
  it("runs batches on every node and answers for each from any node", async () => {
    const prefix = newPrefix();
    const a = await node({ prefix, nodeBatches: 1 });
    const b = await node({ prefix, nodeBatches: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++)
      ids.push((await a.processor.submit(alice, { data: items(20, i * 100) })).batchId);
    for (const id of ids) expect((await settle(b.processor, id)).status).toBe("completed");
    // With one batch at a time per node, the second node must have taken some of them.
    expect(a.pool.received.length).toBeGreaterThan(0);
    expect(b.pool.received.length).toBeGreaterThan(0);
    for (const [i, id] of ids.entries()) {
      const results = await b.processor.results(alice, id);
      expect(results.results).toHaveLength(20);
      expect(results.results.map((r) => r.output?.[0])).toEqual(
        Array.from({ length: 20 }, (_, k) => i * 100 + k + 3),
      );
      expect((await a.processor.status(alice, id)).completedRequests).toBe(20);
    }
  });

  it("takes batches only up to its capacity, from the classes by their weights", async () => {
    const prefix = newPrefix();
    const a = await node({ prefix, nodeBatches: 1, hold: true });
    await a.processor.configure(admin, { priorityWeights: { critical: 4, low: 1 } });
    const blocker = await a.processor.submit(alice, { data: items(4) });
    await until(() => a.pool.heldCount > 0);
    // The first number of every input names its batch: 1000s critical, 2000s low.
    const submitted: string[] = [];
    for (const [priority, code] of [
      ["low", 2000],
      ["critical", 1000],
    ] as const)
      for (let i = 0; i < 9; i++) {
        const data = Array.from({ length: 10 }, () => ({ input: [code + i, 0, 0] }));
        submitted.push((await a.processor.submit(alice, { data, priority })).batchId);
      }
    // At capacity the node takes none of them.
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Read in order, so that a later read is never of an earlier moment.
    const waiting: BatchView[] = [];
    for (const id of submitted) waiting.push(await a.processor.status(alice, id));
    for (const view of waiting) expect(view.status).toBe("queued");
    // Where each stands in the cluster's backlog: a class's first batch goes next (the held
    // batch's 4 items aside), and the last critical one waits behind 8 critical batches, and by
    // the 4:1 weights 20 low items and the blocker's 4 (normal, weight 0.5).
    const positions = waiting.map((view) => view.queuePosition);
    expect(positions[0]).toBe(0);
    expect(positions[9]).toBe(0);
    expect(positions[17]).toBe(80 + 20 + 4);
    for (const [from, to] of [
      [0, 9],
      [9, 18],
    ] as const)
      for (let i = from + 1; i < to; i++)
        expect(positions[i]).toBeGreaterThan(positions[i - 1] as number);
    // Each has a completion estimate, no earlier the further back it stands in its class.
    for (const view of waiting) expect(view.estimatedCompletionTime).not.toBeNull();
    for (const [from, to] of [
      [0, 9],
      [9, 18],
    ] as const)
      for (let i = from + 1; i < to; i++)
        expect(waiting[i]?.estimatedCompletionTime).toBeGreaterThanOrEqual(
          waiting[i - 1]?.estimatedCompletionTime as number,
        );
    a.pool.release();
    for (const id of [blocker.batchId, ...submitted])
      expect((await settle(a.processor, id)).status).toBe("completed");
    const order: number[] = [];
    for (const batch of a.pool.received)
      for (const [code = 0] of batch.rows)
        if (code >= 1000 && order.at(-1) !== code) order.push(code);
    expect(order).toHaveLength(18);
    const firstTen = order.slice(0, 10).map((code) => (code < 2000 ? "critical" : "low"));
    // Equal batches and weights 4:1: four critical batches for each low one, the low class
    // never starved; within a class, in submission order.
    expect(firstTen).toEqual([
      "critical",
      "low",
      "critical",
      "critical",
      "critical",
      "critical",
      "low",
      "critical",
      "critical",
      "critical",
    ]);
    expect(order.filter((code) => code < 2000)).toEqual(
      Array.from({ length: 9 }, (_, i) => 1000 + i),
    );
  });

  it("cancels from another node a batch that runs elsewhere, and one still waiting", async () => {
    const prefix = newPrefix();
    const a = await node({ prefix, nodeBatches: 1, hold: true });
    const b = await node({ prefix, nodeBatches: 1, hold: true });
    // Each node takes one batch and holds it; the third waits for a node.
    const first = await a.processor.submit(alice, { data: items(10) });
    const second = await a.processor.submit(alice, { data: items(10) });
    await until(() => a.pool.heldCount > 0 && b.pool.heldCount > 0);
    const waiting = await a.processor.submit(alice, { data: items(10) });
    const cancelledWaiting = await a.processor.cancel(alice, waiting.batchId);
    expect(cancelledWaiting).toMatchObject({ status: "cancelled", failedRequests: 10 });
    // One of the two runs on b: a cancels it through the cluster, and the other locally.
    for (const { batchId } of [first, second])
      expect((await a.processor.cancel(alice, batchId)).status).toBe("cancelled");
    a.pool.release();
    b.pool.release();
    const final = await b.processor.results(alice, waiting.batchId);
    expect(final.results.map((r) => r.error?.code)).toEqual(Array(10).fill("CANCELLED"));
    for (const { batchId } of [first, second])
      expect((await b.processor.status(alice, batchId)).status).toBe("cancelled");
  });

  it("streams a batch's progress to a watcher on a node that does not run it", async () => {
    const prefix = newPrefix();
    const runner = await node({ prefix, hold: true });
    const { batchId } = await runner.processor.submit(alice, { data: items(30) });
    await until(() => runner.pool.heldCount > 0);
    const watcher = await node({ prefix, nodeBatches: 1 });
    const seen: BatchView[] = [];
    const watching = (async () => {
      for await (const view of watcher.processor.watch(alice, batchId)) seen.push(view);
    })();
    await until(() => seen.some((v) => v.status === "processing"));
    runner.pool.release();
    await watching;
    expect(seen.at(-1)?.status).toBe("completed");
    expect(seen.at(-1)?.completedRequests).toBe(30);
  });

  it("hands a shutting-down node's batch to another node, each item ending once", async () => {
    const prefix = newPrefix();
    const leaving = await node({ prefix, hold: true });
    const { batchId } = await leaving.processor.submit(alice, { data: items(40) });
    await until(() => leaving.pool.heldCount > 0);
    const staying = await node({ prefix });
    clusters.forget(leaving);
    await leaving.processor.close({ timeoutMs: 50 });
    const final = await settle(staying.processor, batchId);
    expect(final.status).toBe("completed");
    const results = await staying.processor.results(alice, batchId);
    expect(results.results.map((r) => r.requestId)).toEqual(
      Array.from({ length: 40 }, (_, i) => `req_${i + 1}`),
    );
    expect(results.results.every((r) => r.output?.[1] === 3)).toBe(true);
    expect(staying.pool.received.length).toBeGreaterThan(0);
  }, 20_000);

  it("moves a killed node's batch to a live node once its hold lapses", async () => {
    const prefix = newPrefix();
    // The first node holds a batch that fills it, so the child takes the next one.
    const survivor = await node({ prefix, nodeBatches: 1, hold: true, lockMs: 1000 });
    const blocker = await survivor.processor.submit(alice, { data: items(1) });
    await until(() => survivor.pool.heldCount > 0);
    const child = spawn(process.execPath, ["--import", "tsx", CHILD, prefix, "1000"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise((resolve) => child.on("exit", resolve));
    try {
      await until(() => out.includes("STARTED"), 20_000);
      const { batchId } = await survivor.processor.submit(alice, { data: items(25) });
      await until(() => out.includes("HOLDING"), 10_000);
      expect((await survivor.processor.status(alice, batchId)).status).toBe("processing");
      const rowsBefore = survivor.pool.received.flatMap((b) => b.rows).length;
      child.kill("SIGKILL");
      await exited;
      survivor.pool.release();
      expect((await settle(survivor.processor, blocker.batchId)).status).toBe("completed");
      const final = await settle(survivor.processor, batchId);
      expect(final).toMatchObject({
        status: "completed",
        completedRequests: 25,
        failedRequests: 0,
      });
      const results = await survivor.processor.results(alice, batchId);
      expect(results.results.map((r) => r.output?.[0])).toEqual(
        Array.from({ length: 25 }, (_, i) => i + 3),
      );
      // The child never finished an item: the survivor ran all of them.
      expect(survivor.pool.received.flatMap((b) => b.rows).length).toBeGreaterThanOrEqual(
        rowsBefore + 25,
      );
    } finally {
      child.kill("SIGKILL");
    }
  }, 30_000);

  it("finishes every batch on the survivors when one of three nodes is killed mid-run", async () => {
    const prefix = newPrefix();
    const spawnNode = () => {
      const proc = spawn(process.execPath, ["--import", "tsx", CHILD, prefix, "1000", "2"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const state = { out: "", exited: new Promise((resolve) => proc.on("exit", resolve)) };
      proc.stdout.on("data", (chunk: Buffer) => (state.out += chunk.toString()));
      proc.stderr.on("data", (chunk: Buffer) => (state.out += chunk.toString()));
      return { proc, state };
    };
    const doomed = spawnNode();
    const other = spawnNode();
    try {
      const survivor = await node({ prefix, lockMs: 1000, batchDelayMs: 2 });
      await until(
        () => doomed.state.out.includes("STARTED") && other.state.out.includes("STARTED"),
        20_000,
      );
      const ids: string[] = [];
      for (let b = 0; b < 30; b++)
        ids.push((await survivor.processor.submit(alice, { data: items(1000, b * 1000) })).batchId);
      const ends = ids.map((id) => settle(survivor.processor, id));
      // Killed while it holds batches with items done and items still to run.
      await until(() => /RAN [2-9]\d/.test(doomed.state.out), 20_000);
      doomed.proc.kill("SIGKILL");
      await doomed.state.exited;
      for (const end of await Promise.all(ends))
        expect(end).toMatchObject({
          status: "completed",
          completedRequests: 1000,
          failedRequests: 0,
        });
      for (const [b, id] of ids.entries()) {
        const { results } = await survivor.processor.results(alice, id);
        expect(results.map((r) => r.requestId)).toEqual(
          Array.from({ length: 1000 }, (_, i) => `req_${i + 1}`),
        );
        expect(results.map((r) => r.output?.[0])).toEqual(
          Array.from({ length: 1000 }, (_, i) => b * 1000 + i + 3),
        );
      }
      expect(survivor.pool.received.length).toBeGreaterThan(0);
      expect(other.state.out).toMatch(/RAN \d+/);
    } finally {
      doomed.proc.kill("SIGKILL");
      other.proc.kill("SIGKILL");
      await Promise.all([doomed.state.exited, other.state.exited]);
    }
  }, 60_000);

  it("stops being ready, saying why, when Redis loses the cluster's data", async () => {
    const prefix = newPrefix();
    const a = await node({ prefix });
    expect(a.processor.unavailable()).toBeUndefined();
    // Redis restarted empty (or flushed): everything of the cluster is gone.
    await dropCluster(prefix);
    await until(() => a.processor.unavailable() !== undefined, 10_000);
    expect(a.processor.unavailable()).toMatch(/no longer holds this cluster's data/);
    // A node started since makes the cluster anew and serves it; the old one stays out.
    const b = await node({ prefix });
    expect(b.processor.unavailable()).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(a.processor.unavailable()).toMatch(/no longer holds this cluster's data/);
    expect(b.processor.unavailable()).toBeUndefined();
  });

  it("applies a configuration changed on one node on every node", async () => {
    const prefix = newPrefix();
    const a = await node({ prefix });
    const b = await node({ prefix });
    await a.processor.configure(admin, { maxBatchSize: 3 });
    await until(() => b.processor.config.maxBatchSize === 3);
    const c = await node({ prefix });
    expect(c.processor.config.maxBatchSize).toBe(3);
  });

  it("refuses a submit when the cluster's stored work is at its limit", async () => {
    const prefix = newPrefix();
    const a = await node({ prefix, hold: true, maxQueueSize: 30 });
    await a.processor.submit(alice, { data: items(25) });
    await expect(a.processor.submit(alice, { data: items(10) })).rejects.toBeInstanceOf(
      QueueFullError,
    );
  });
});

describe("servers with REDIS_URL", () => {
  let repo: TestModelRepo;
  beforeAll(() => {
    repo = createTestModelRepo({ dense: false });
  });
  afterAll(() => repo.cleanup());

  it("refuse to start a node whose keys or admins differ from the cluster's, naming the setting", async () => {
    const prefix = newPrefix();
    const env = {
      REDIS_URL,
      CLUSTER_PREFIX: prefix,
      OWNER_SECRET,
      API_KEYS: "k1,k2",
      ADMIN_API_KEYS: "",
    };
    const a = await startTestServer(repo.dir, env);
    try {
      // One key less: on its own, a single key would be this node's admin.
      await expect(startTestServer(repo.dir, { ...env, API_KEYS: "k1" })).rejects.toThrow(
        /this node's API_KEYS differ from the cluster's/,
      );
      await expect(startTestServer(repo.dir, { ...env, ADMIN_API_KEYS: "k2" })).rejects.toThrow(
        /this node's ADMIN_API_KEYS differ from the cluster's/,
      );
      // The same keys in another order are the same settings.
      const b = await startTestServer(repo.dir, { ...env, API_KEYS: "k2,k1" });
      await b.close();
    } finally {
      await a.close();
    }
  });

  it("share one generated key and one owner secret, and answer for each other's batches", async () => {
    const prefix = newPrefix();
    const env = { REDIS_URL, CLUSTER_PREFIX: prefix, OWNER_SECRET, REQUIRE_API_KEY: "true" };
    const a = await startTestServer(repo.dir, env);
    const b = await startTestServer(repo.dir, env);
    try {
      expect(a.generatedApiKey).toMatchObject({ created: true });
      expect(a.generatedApiKey?.value).toMatch(/^bp_/);
      // The other node never learns the key: Redis holds its keyed digest only.
      expect(b.generatedApiKey).toMatchObject({ created: false, value: undefined });
      const headers = { "x-api-key": a.generatedApiKey?.value as string };
      const submitted = await fetch(`http://127.0.0.1:${a.apiPort}/api/batch-processor/submit`, {
        method: "POST",
        headers,
        body: JSON.stringify({ data: [{ input: [1, 2, 3] }, { input: [4, 5] }] }),
      });
      expect(submitted.status).toBe(200);
      const { batch_id } = (await submitted.json()) as { batch_id: string };
      const fromB = `http://127.0.0.1:${b.apiPort}/api/batch-processor`;
      await until(async () => {
        const status = await fetch(`${fromB}/status/${batch_id}`, { headers });
        return ((await status.json()) as { status: string }).status === "completed";
      });
      const results = await fetch(`${fromB}/results/${batch_id}`, { headers });
      const body = (await results.json()) as { results: { output: number[] }[] };
      expect(body.results).toHaveLength(2);
      for (const r of body.results) expect(r.output.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 5);
      for (const server of [a, b])
        expect((await fetch(`http://127.0.0.1:${server.apiPort}/ready`)).status).toBe(200);
      // Nothing in Redis holds the key or the owner secret, so a copy of it tests no guess.
      const everything = await dumpStrings(prefix);
      expect(everything).not.toContain(a.generatedApiKey?.value as string);
      expect(everything).not.toContain(OWNER_SECRET);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("needs the operator's OWNER_SECRET, and takes over a secret an older version kept in Redis", async () => {
    const prefix = newPrefix();
    const env = { REDIS_URL, CLUSTER_PREFIX: prefix, API_KEYS: "k1" };
    await expect(startTestServer(repo.dir, env)).rejects.toThrow(
      /REDIS_URL is set: set OWNER_SECRET/,
    );
    await expect(startTestServer(repo.dir, { ...env, OWNER_SECRET: "short" })).rejects.toThrow(
      /OWNER_SECRET must be at least 32 characters/,
    );
    const redis = new Redis(REDIS_URL);
    try {
      await redis.hset(`${prefix}:secrets`, "owner-secret", "an-older-secret-kept-in-redis-by-v1");
      await expect(startTestServer(repo.dir, { ...env, OWNER_SECRET })).rejects.toThrow(
        /OWNER_SECRET differs from the owner secret this cluster kept in Redis/,
      );
      const node = await startTestServer(repo.dir, {
        ...env,
        OWNER_SECRET: "an-older-secret-kept-in-redis-by-v1",
      });
      await node.close();
      expect(await redis.hget(`${prefix}:secrets`, "owner-secret")).toBeNull();
    } finally {
      redis.disconnect();
    }
  });

  it("answer metrics and analytics for the whole cluster from any node", async () => {
    const prefix = newPrefix();
    const env = { REDIS_URL, CLUSTER_PREFIX: prefix, OWNER_SECRET, API_KEYS: "k1" };
    const headers = { "x-api-key": "k1" };
    const get = async (port: number, path: string) =>
      (await (
        await fetch(`http://127.0.0.1:${port}/api/batch-processor/${path}`, { headers })
      ).json()) as {
        status: string;
        batch_id: string;
        current_stats: { active_batches: number; queue_length: number };
        performance_stats: { total_processed: number };
        series: { metric: string; priority: string; summary: number }[];
      };
    const a = await startTestServer(repo.dir, env);
    let b: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      // The workload runs on a alone; b joins afterwards and has run nothing itself.
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const submitted = await fetch(`http://127.0.0.1:${a.apiPort}/api/batch-processor/submit`, {
          method: "POST",
          headers,
          body: JSON.stringify({ data: Array.from({ length: 10 }, () => ({ input: [1, 2, 3] })) }),
        });
        ids.push(((await submitted.json()) as { batch_id: string }).batch_id);
      }
      await until(async () => {
        const views = await Promise.all(ids.map((id) => get(a.apiPort, `status/${id}`)));
        return views.every((view) => view.status === "completed");
      });
      b = await startTestServer(repo.dir, env);
      const port = b.apiPort;
      await until(
        async () => (await get(port, "metrics")).performance_stats.total_processed === 60,
        15_000,
      );
      expect((await get(port, "metrics")).current_stats).toMatchObject({
        active_batches: 0,
        queue_length: 0,
      });
      await until(async () => {
        const report = await get(port, "analytics?period=5m&metrics=throughput,error_rate");
        const throughput = report.series.find(
          (s) => s.metric === "throughput" && s.priority === "normal",
        );
        return (throughput?.summary ?? 0) > 0;
      }, 15_000);
    } finally {
      await a.close();
      await b?.close();
    }
  });
});
