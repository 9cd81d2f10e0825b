/**
 * A cluster whose Redis fails: stopped and restarted with its AOF, restarted empty, and cut off
 * from one node by a network partition (that node in a network namespace of its own, its link
 * taken down and brought back). Whatever the fault, every item of every acknowledged batch ends
 * exactly once, reads of a batch never contradict each other (status, counts and results agree,
 * and nothing moves backwards), and an outage is one line in a node's log, not one per batch per
 * tick.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it, onTestFailed } from "vitest";
import { freePort } from "../../bench/lib/free-port.js";
import {
  type BatchProcessor,
  type EngineLogger,
  isTerminal,
  type Principal,
  StoreUnavailableError,
} from "../../src/engine/index.js";
import { REDIS_COMMAND_TIMEOUT_MS } from "../../src/store/index.js";
import { TestClusters, type TestNode, type TestNodeOptions } from "../fixtures/cluster-node.js";
import { until } from "../fixtures/fake-pool.js";

const CHILD = fileURLToPath(new URL("../fixtures/cluster-node.ts", import.meta.url));
const alice: Principal = { owner: "alice", admin: false };
/** Nodes of the tests' own Redis instances (their keys go with those instances). */
const clusters = new TestClusters("faults");
const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  await clusters.cleanup();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const node = (options: TestNodeOptions) => clusters.node(options);

const items = (n: number, first = 0) =>
  Array.from({ length: n }, (_, i) => ({ input: [first + i, 1, 2] }));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Redis of the test's own, which it can stop and start again. */
class OwnRedis {
  readonly dir = mkdtempSync(join(tmpdir(), "bp-redis-"));
  #process: ChildProcess | undefined;

  constructor(
    readonly port: number,
    /** Addresses it listens on. */
    readonly bind: readonly string[] = ["127.0.0.1"],
  ) {
    cleanups.push(() => {
      this.#process?.kill("SIGKILL");
      rmSync(this.dir, { recursive: true, force: true });
    });
  }

  /** Its URL on loopback, or on `address`. */
  url(address = "127.0.0.1"): string {
    return `redis://${address}:${this.port}`;
  }

  /** Starts it; `aof` keeps every write in an append-only file, synced before each answer. */
  async start({ aof }: { aof: boolean }): Promise<void> {
    const args = ["--port", String(this.port), "--bind", ...this.bind, "--protected-mode", "no"];
    args.push("--save", "", "--appendonly", aof ? "yes" : "no", "--appendfsync", "always");
    this.#process = spawn("redis-server", args, { cwd: this.dir, stdio: "ignore" });
    await until(() => canConnect(this.port), 10_000);
  }

  /** Kills it at once (SIGKILL): what it had not written to its AOF is gone. */
  async kill(): Promise<void> {
    const p = this.#process;
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise((resolve) => p.once("exit", resolve));
    p.kill("SIGKILL");
    await exited;
  }

  /** Deletes what it kept on disk (it then restarts empty). */
  wipe(): void {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** A logger that keeps `<level> <message>` of every line at info and above. */
function recordingLog(): EngineLogger & { readonly lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (_f: object, message: string) =>
    lines.push(`${level} ${message}`);
  return { lines, debug() {}, info: keep("info"), warn: keep("warn"), error: keep("error") };
}

/**
 * Reads the batches from the given nodes in a loop while a fault happens, and keeps every
 * contradiction it sees: a status or a count that moved backwards, an ended batch whose results
 * disagree with its status or counts, a completed batch with a failed item, a read that failed
 * with anything but UNAVAILABLE.
 */
class Reader {
  readonly violations: string[] = [];
  reads = 0;
  #stopped = false;
  readonly #last = new Map<
    string,
    { rank: number; status: string; done: number; failed: number }
  >();
  readonly #loop: Promise<void>;

  constructor(
    readonly processors: () => readonly BatchProcessor[],
    readonly ids: readonly string[],
  ) {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  /** Whether every batch reads ended from every node (a read that fails counts as not). */
  async allEnded(): Promise<boolean> {
    for (const p of this.processors())
      for (const id of this.ids) {
        try {
          if (!isTerminal((await p.status(alice, id)).status)) return false;
        } catch {
          return false;
        }
      }
    return true;
  }

  async #run(): Promise<void> {
    let turn = 0;
    while (!this.#stopped) {
      const processors = this.processors();
      for (const id of this.ids) {
        const p = processors[turn++ % processors.length] as BatchProcessor;
        await this.#check(p, id);
      }
      await sleep(20);
    }
  }

  async #check(p: BatchProcessor, id: string): Promise<void> {
    const rank = (s: string) => (s === "queued" ? 0 : s === "processing" ? 1 : 2);
    try {
      const view = await p.status(alice, id);
      this.reads++;
      const last = this.#last.get(id);
      const now = {
        rank: rank(view.status),
        status: view.status,
        done: view.completedRequests,
        failed: view.failedRequests,
      };
      if (last !== undefined) {
        if (now.rank < last.rank || (last.rank === 2 && now.status !== last.status))
          this.violations.push(`${id}: status ${last.status} -> ${now.status}`);
        if (now.done < last.done || now.failed < last.failed)
          this.violations.push(
            `${id}: counts ${last.done}/${last.failed} -> ${now.done}/${now.failed} (${JSON.stringify(view)} node ${this.processors().indexOf(p)})`,
          );
      }
      this.#last.set(id, now);
      if (view.status === "completed" && view.failedRequests > 0)
        this.violations.push(`${id}: completed with ${view.failedRequests} failed`);
      if (!isTerminal(view.status)) return;
      const results = await p.results(alice, id);
      const errors = results.results.filter((r) => r.error !== null).length;
      if (
        results.status !== view.status ||
        results.results.length !== view.totalRequests ||
        errors !== view.failedRequests ||
        view.completedRequests !== view.totalRequests
      )
        this.violations.push(
          `${id}: ${view.status} ${view.completedRequests}/${view.failedRequests} of ${view.totalRequests}, results ${results.status} ${results.results.length} with ${errors} errors`,
        );
    } catch (error) {
      if (!(error instanceof StoreUnavailableError))
        this.violations.push(`${id}: read failed: ${String(error)}`);
    }
  }
}

/** Checks, from the store itself, that every item of every batch has one output. */
async function expectEveryItemOnce(url: string, prefix: string, pks: readonly number[], n: number) {
  const redis = new Redis(url);
  try {
    for (const pk of pks) {
      expect(await redis.hlen(`${prefix}:store:r:${pk}`)).toBe(n);
      expect(await redis.hmget(`${prefix}:store:b:${pk}`, "status", "succeeded", "failed")).toEqual(
        ["completed", String(n), "0"],
      );
    }
  } finally {
    redis.disconnect();
  }
}

/** The store key (pk) of each batch, read back from the store. */
async function pksOf(url: string, prefix: string, ids: readonly string[]): Promise<number[]> {
  const redis = new Redis(url);
  try {
    return await Promise.all(
      ids.map(async (id) => Number(await redis.hget(`${prefix}:store:ids:alice`, id))),
    );
  } finally {
    redis.disconnect();
  }
}

const lines = (log: { lines: string[] }, pattern: RegExp) =>
  log.lines.filter((l) => pattern.test(l)).length;

describe("a cluster whose Redis fails", () => {
  it("keeps reads in agreement and ends every item once while Redis stops and restarts with its AOF", async () => {
    const redis = new OwnRedis(await freePort());
    await redis.start({ aof: true });
    const prefix = `test-faults-${randomUUID().slice(0, 8)}`;
    const logs = [recordingLog(), recordingLog()];
    const [a, b] = [
      await node({ prefix, url: redis.url(), batchDelayMs: 40, lockMs: 5000, log: logs[0] }),
      await node({ prefix, url: redis.url(), batchDelayMs: 40, lockMs: 5000, log: logs[1] }),
    ] as [TestNode, TestNode];
    const ids: string[] = [];
    for (let i = 0; i < 8; i++)
      ids.push(
        (await a.processor.submit(alice, { data: items(160, i * 1000), timeoutMs: 120_000 }))
          .batchId,
      );
    const pks = await pksOf(redis.url(), prefix, ids);
    const reader = new Reader(() => [a.processor, b.processor], ids);
    await until(() => a.pool.received.length > 3 && b.pool.received.length > 3, 20_000);
    await redis.kill();
    // Work in flight finishes and its writes fail; calls that need Redis answer UNAVAILABLE at
    // once (never queued behind the reconnect), and /ready says why.
    await expect(b.processor.submit(alice, { data: items(5) })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    for (const n of [a, b])
      await until(() => /^Redis is unreachable/.test(n.processor.unavailable() ?? ""));
    await sleep(1000);
    await redis.start({ aof: true });
    await until(() => reader.allEnded(), 60_000);
    for (const n of [a, b]) await until(() => n.processor.unavailable() === undefined);
    const after = await b.processor.submit(alice, { data: items(5) });
    await until(
      async () => (await a.processor.status(alice, after.batchId)).status === "completed",
    );
    await reader.stop();
    expect(reader.violations).toEqual([]);
    expect(reader.reads).toBeGreaterThan(ids.length * 4);
    for (const id of ids) {
      const { status, results } = await b.processor.results(alice, id);
      expect(status).toBe("completed");
      expect(results.filter((r) => r.error !== null)).toEqual([]);
      expect(results.map((r) => r.requestId)).toEqual(
        Array.from({ length: 160 }, (_, i) => `req_${i + 1}`),
      );
    }
    await expectEveryItemOnce(redis.url(), prefix, pks, 160);
    // One outage: at most one line of each kind per node, whatever the batches and the ticks.
    for (const log of logs) {
      expect(lines(log, /^error saving batch progress failed/)).toBeLessThanOrEqual(1);
      expect(lines(log, /^warn Redis is unreachable/)).toBe(1);
      expect(lines(log, /^warn renewing the locks/)).toBeLessThanOrEqual(1);
      expect(log.lines.length).toBeLessThan(12);
    }
  }, 90_000);

  it("stops every node being ready, saying why, when Redis restarts empty, and writes nothing into it", async () => {
    const redis = new OwnRedis(await freePort());
    await redis.start({ aof: false });
    const prefix = `test-faults-${randomUUID().slice(0, 8)}`;
    const a = await node({ prefix, url: redis.url(), hold: true });
    const b = await node({ prefix, url: redis.url(), hold: true });
    for (let i = 0; i < 4; i++)
      await a.processor.submit(alice, { data: items(20), timeoutMs: 120_000 });
    await until(() => a.pool.heldCount > 0 && b.pool.heldCount > 0);
    await redis.kill();
    redis.wipe();
    await redis.start({ aof: false });
    for (const n of [a, b])
      await until(
        () => /no longer holds this cluster's data/.test(n.processor.unavailable() ?? ""),
        15_000,
      );
    // What the nodes held finishes now; none of it lands in the new, empty Redis.
    a.pool.release();
    b.pool.release();
    await sleep(500);
    const fresh = new Redis(redis.url());
    try {
      expect(await fresh.keys(`${prefix}:store:*`)).toEqual([]);
    } finally {
      fresh.disconnect();
    }
  }, 60_000);

  it("ends every item once, with reads in agreement, when a network partition cuts one node off and heals", async () => {
    const net = partitionableNet();
    const redis = new OwnRedis(await freePort(), ["127.0.0.1", net.hostAddress]);
    await redis.start({ aof: false });
    const prefix = `test-faults-${randomUUID().slice(0, 8)}`;
    const lockMs = 1500;
    // The node cut off runs in the namespace, as a process of its own.
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        net.namespace,
        process.execPath,
        "--import",
        "tsx",
        CHILD,
        prefix,
        String(lockMs),
        "40",
      ],
      {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, REDIS_URL: redis.url(net.hostAddress), TEST_NODE_LOG: "1" },
      },
    );
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (out += chunk.toString()));
    onTestFailed(() => {
      process.stderr.write(`the cut-off node said:\n${out.slice(-6000)}\n`);
    });
    cleanups.push(() => {
      child.kill("SIGKILL");
    });
    await until(() => out.includes("STARTED"), 30_000);
    const log = recordingLog();
    const b = await node({ prefix, url: redis.url(), batchDelayMs: 40, lockMs, log });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++)
      ids.push(
        (await b.processor.submit(alice, { data: items(120, i * 1000), timeoutMs: 120_000 }))
          .batchId,
      );
    const pks = await pksOf(redis.url(), prefix, ids);
    const reader = new Reader(() => [b.processor], ids);
    const ran = () => Number(/RAN (\d+)\n(?!.*RAN)/s.exec(out)?.[1] ?? 0);
    await until(() => ran() >= 3, 30_000);
    net.cut();
    // The cut-off node answers a read within its Redis call timeout, UNAVAILABLE, never hanging,
    // and stops being ready, saying why. Meanwhile its locks lapse and its batches go to the node
    // that can still reach Redis.
    child.stdin?.write(`STATUS ${ids[0]}\n`);
    await until(() => /STATUS \d+ /.test(out), 15_000);
    const [, ms, answer] = /STATUS (\d+) (\S+)/.exec(out) ?? [];
    expect(answer, out).toBe("StoreUnavailableError");
    expect(Number(ms), out).toBeLessThan(REDIS_COMMAND_TIMEOUT_MS + 3000);
    await until(async () => {
      child.stdin?.write("READY\n");
      await sleep(200);
      return out.includes("READY Redis does not answer");
    }, 15_000);
    net.heal();
    await until(async () => {
      child.stdin?.write("READY\n");
      await sleep(200);
      return /READY ok\n(?!.*READY)/s.test(out);
    }, 45_000);
    await until(() => reader.allEnded(), 60_000);
    // What the cut-off node still wrote after the heal changes nothing that was read.
    await sleep(lockMs * 2);
    await reader.stop();
    expect(reader.violations, out).toEqual([]);
    await expectEveryItemOnce(redis.url(), prefix, pks, 120);
    for (const id of ids) {
      const { status, results } = await b.processor.results(alice, id);
      expect(status).toBe("completed");
      expect(results.every((r) => r.error === null && r.output?.[1] === 3)).toBe(true);
    }
    // The cut-off node let its batches go rather than failing them, and said so once.
    expect(out).not.toMatch(/LOG error running a batch failed/);
    // A renewal that finds locks lost is one line; the heal may be seen by two in a row.
    expect(
      (out.match(/LOG warn the locks of held batches were lost/g) ?? []).length,
    ).toBeLessThanOrEqual(2);
    expect(b.pool.received.length).toBeGreaterThan(0);
    expect(log.lines.filter((l) => l.startsWith("error"))).toEqual([]);
  }, 120_000);
});

/**
 * A network namespace joined to this host by a veth pair: a process run in it reaches the host
 * at `hostAddress`, and {@link cut} takes the host's end of the link down, so that its packets go
 * nowhere and its connections stay open and silent, as in a real partition, until {@link heal}.
 * Needs root (or sudo without a password), as CI and this project's machines have.
 */
function partitionableNet() {
  const id = process.pid % 10_000;
  const namespace = `bpt${id}`;
  const host = `bpt${id}h`;
  const peer = `bpt${id}n`;
  const subnet = `10.213.${id % 250}`;
  const root = process.getuid?.() === 0;
  const ip = (...args: string[]) => {
    try {
      execFileSync(root ? "ip" : "sudo", root ? args : ["-n", "ip", ...args], { stdio: "pipe" });
    } catch (error) {
      throw new Error(
        `the partition test needs root or passwordless sudo for \`ip ${args.join(" ")}\`: ${String(error)}`,
      );
    }
  };
  const drop = () => {
    for (const args of [
      ["link", "del", host],
      ["netns", "del", namespace],
    ])
      try {
        ip(...args);
      } catch {
        // Not there.
      }
  };
  drop();
  ip("netns", "add", namespace);
  cleanups.push(drop);
  ip("link", "add", host, "type", "veth", "peer", "name", peer);
  ip("link", "set", peer, "netns", namespace);
  ip("addr", "add", `${subnet}.1/24`, "dev", host);
  ip("link", "set", host, "up");
  ip("netns", "exec", namespace, "ip", "addr", "add", `${subnet}.2/24`, "dev", peer);
  ip("netns", "exec", namespace, "ip", "link", "set", peer, "up");
  ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up");
  return {
    namespace,
    hostAddress: `${subnet}.1`,
    cut: () => ip("link", "set", host, "down"),
    heal: () => ip("link", "set", host, "up"),
  };
}
