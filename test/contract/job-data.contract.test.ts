/**
 * The JobData contract (jobs: data sets): the same suite against the SQLite store and the Redis
 * store, so one node and a cluster keep jobs the same way.
 */
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  failure,
  floatInput,
  type JobData,
  type JobLine,
  type LineOutcome,
  type NewJob,
} from "../../src/engine/index.js";
import { RedisJobStore } from "../../src/store/redis-job-store.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";

interface Opened {
  readonly data: JobData;
  close(): Promise<void>;
}

let counter = 0;
const factories: { name: string; open(): Promise<Opened> }[] = [
  {
    name: "SQLite",
    async open() {
      const store = new SqliteJobStore({ dataDir: ":memory:" });
      return { data: store.jobs, close: () => store.close() };
    },
  },
  {
    name: "Redis",
    async open() {
      const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
      const prefix = `test-jobs-${process.pid}-${++counter}`;
      const store = new RedisJobStore({ url, prefix });
      await store.ready();
      return {
        data: store.jobs,
        async close() {
          await store.close();
          const redis = new Redis(url);
          const keys = await redis.keys(`${prefix}:*`);
          if (keys.length > 0) await redis.del(...keys);
          await redis.quit();
        },
      };
    },
  },
];

const T0 = 1_700_000_000_000;
function newJob(overrides: Partial<NewJob> = {}): NewJob {
  counter++;
  return {
    owner: "owner-a",
    jobId: `job-${counter}`,
    modelId: "default",
    priority: "low",
    createdAt: T0 + counter,
    expiresAt: T0 + counter + 3_600_000,
    callback: null,
    keepMs: null,
    ...overrides,
  };
}

/**
 * Lines `from..from+n-1`; every fifth one invalid, every third other one by name in tensors of
 * several datatypes (the primary INT64, a BOOL mask, a BYTES text).
 */
function lines(from: number, n: number): JobLine[] {
  return Array.from({ length: n }, (_, k): JobLine => {
    const line = from + k;
    if (line % 5 === 0)
      return { line, id: null, error: failure("INVALID_ARGUMENT", `line ${line}: bad`) };
    if (line % 3 === 0)
      return {
        line,
        id: `id-${line}`,
        named: true,
        inputs: [
          {
            name: "",
            datatype: "INT64",
            shape: [2],
            data: BigInt64Array.from([BigInt(line), -(2n ** 60n)]),
          },
          { name: "mask", datatype: "BOOL", shape: [1, 3], data: Uint8Array.from([1, 0, 1]) },
          { name: "text", datatype: "BYTES", shape: [2], data: ["héllo", ""] },
        ],
      };
    const input = Float32Array.from([line, 0.5, -line]);
    return { line, id: `id-${line}`, named: false, inputs: [floatInput([3], input)] };
  });
}

function outcomes(chunk: readonly JobLine[]): LineOutcome[] {
  return chunk.map((l): LineOutcome => {
    if ("error" in l)
      return { line: l.line, id: l.id, output: null, confidence: 0, error: l.error };
    if (l.named)
      return {
        line: l.line,
        id: l.id,
        output: null,
        outputs: [
          {
            name: "logits",
            datatype: "FP16",
            shape: [3],
            data: Uint16Array.from([0x3c00, l.line, 0xbc00]),
          },
          { name: "ids", datatype: "INT32", shape: [1], data: Int32Array.from([-l.line]) },
        ],
        confidence: 0.25,
        error: null,
      };
    return {
      line: l.line,
      id: l.id,
      output: Float32Array.from([l.line, 1]),
      confidence: 0.5,
      error: null,
    };
  });
}

const running = (pk: number, addCompleted: number, addFailed = 0) => ({
  pk,
  status: "running" as const,
  error: null,
  startedAt: T0,
  completedAt: null,
  addCompleted,
  addFailed,
});

for (const factory of factories) {
  describe(`JobData contract: ${factory.name}`, () => {
    let opened: Opened;
    let data: JobData;
    beforeEach(async () => {
      opened = await factory.open();
      data = opened.data;
    });
    afterEach(async () => {
      await opened.close();
    });

    /** A sealed job of two chunks (lines 1..4 and 5..7). */
    async function sealed(overrides: Partial<NewJob> = {}) {
      const { record } = await data.createJob(newJob(overrides));
      await data.addChunk(record.pk, 0, lines(1, 4));
      await data.addChunk(record.pk, 1, lines(5, 3));
      return data.sealJob(record.pk, { total: 7, invalid: 1, chunks: 2, payloadHash: "h" });
    }

    it("creates a job once per owner and id, validating until sealed", async () => {
      const job = newJob({ callback: { url: "http://x/hook", secret: "s" }, keepMs: 60_000 });
      const { created, record } = await data.createJob(job);
      expect(created).toBe(true);
      expect(record).toMatchObject({
        owner: job.owner,
        jobId: job.jobId,
        status: "validating",
        counts: { total: 0, completed: 0, failed: 0, invalid: 0 },
        callback: { url: "http://x/hook", secret: "s" },
        keepMs: 60_000,
        payloadHash: null,
        startedAt: null,
        completedAt: null,
      });
      const again = await data.createJob({ ...job, createdAt: job.createdAt + 5 });
      expect(again).toEqual({ created: false, record });
      const other = await data.createJob({ ...job, owner: "owner-b" });
      expect(other.created).toBe(true);
      expect(await data.findJob("owner-b", job.jobId)).toMatchObject({ owner: "owner-b" });
      // Any owner's, oldest first (an admin's read).
      expect((await data.findJob(undefined, job.jobId))?.owner).toBe("owner-a");
      expect(await data.findJob("owner-c", job.jobId)).toBeUndefined();
    });

    it("stores chunks and seals the job with its counts; reads chunks back in order", async () => {
      const record = await sealed();
      expect(record).toMatchObject({
        status: "queued",
        chunks: 2,
        payloadHash: "h",
        counts: { total: 7, invalid: 1 },
      });
      await expect(
        data.sealJob(record.pk, { total: 7, invalid: 1, chunks: 2, payloadHash: "h" }),
      ).rejects.toThrow();
      expect(await data.chunkStarts(record.pk)).toEqual([1, 5]);
      const first = await data.chunkLines(record.pk, 0);
      expect(first.map((l) => l.line)).toEqual([1, 2, 3, 4]);
      expect(first[0]).toEqual({
        line: 1,
        id: "id-1",
        named: false,
        inputs: [{ name: "", datatype: "FP32", shape: [3], data: Float32Array.from([1, 0.5, -1]) }],
      });
      // Lines by name keep each tensor's datatype, shape and elements (64-bit integers exactly).
      expect(first).toEqual(lines(1, 4));
      expect(await data.chunkLines(record.pk, 1)).toEqual(lines(5, 3));
      expect(await data.chunkOutcomes(record.pk, 0)).toBeUndefined();
      expect(await data.pendingChunks(record.pk)).toEqual([0, 1]);
      expect((await data.loadUnfinishedJobs()).map((r) => r.pk)).toEqual([record.pk]);
    });

    it("writes a chunk's outcomes once, with the counters, and none after the job ended", async () => {
      const record = await sealed();
      const chunk = await data.chunkLines(record.pk, 0);
      expect(await data.saveChunk(record.pk, 0, outcomes(chunk), running(record.pk, 4))).toBe(true);
      expect(await data.saveChunk(record.pk, 0, outcomes(chunk), running(record.pk, 4))).toBe(
        false,
      );
      expect(await data.pendingChunks(record.pk)).toEqual([1]);
      const read = (await data.chunkOutcomes(record.pk, 0)) as LineOutcome[];
      expect(read.map((o) => [o.line, o.error === null])).toEqual([
        [1, true],
        [2, true],
        [3, true],
        [4, true],
      ]);
      expect(read[0]?.output).toEqual(Float32Array.from([1, 1]));
      expect(read).toEqual(outcomes(chunk));
      expect(read[2]?.outputs?.[0]?.data).toEqual(Uint16Array.from([0x3c00, 3, 0xbc00]));
      expect(await data.getJob(record.pk)).toMatchObject({
        status: "running",
        startedAt: T0,
        counts: { total: 7, completed: 4, failed: 0, invalid: 1 },
      });
      // Cancelled: the lines without an outcome are counted failed, and nothing more is written.
      const ended = await data.endJob(record.pk, {
        status: "cancelled",
        error: failure("CANCELLED", "cancelled by request"),
        completedAt: T0 + 10,
        startedAt: T0,
      });
      expect(ended).toMatchObject({
        status: "cancelled",
        completedAt: T0 + 10,
        error: { code: "CANCELLED" },
        counts: { total: 7, completed: 4, failed: 2, invalid: 1 },
      });
      const late = await data.chunkLines(record.pk, 1);
      expect(await data.saveChunk(record.pk, 1, outcomes(late), running(record.pk, 2))).toBe(false);
      expect(await data.chunkOutcomes(record.pk, 1)).toBeUndefined();
      expect(
        await data.endJob(record.pk, {
          status: "completed",
          error: null,
          completedAt: T0 + 20,
          startedAt: T0,
        }),
      ).toBeUndefined();
      expect(await data.loadUnfinishedJobs()).toEqual([]);
    });

    it("lists the newest first, by owner and status, a page at a time", async () => {
      const a = await sealed();
      const b = await sealed();
      const c = await sealed({ owner: "owner-b" });
      await data.endJob(b.pk, {
        status: "completed",
        error: null,
        completedAt: T0 + 99,
        startedAt: T0,
      });
      const all = await data.listJobs({ limit: 10 });
      expect(all.jobs.map((j) => j.pk)).toEqual([c.pk, b.pk, a.pk]);
      const mine = await data.listJobs({ owner: "owner-a", limit: 1 });
      expect(mine.jobs.map((j) => j.pk)).toEqual([b.pk]);
      const next = await data.listJobs({ owner: "owner-a", limit: 1, cursor: mine.nextCursor });
      expect(next.jobs.map((j) => j.pk)).toEqual([a.pk]);
      expect(next.nextCursor).toBeUndefined();
      const active = await data.listJobs({ statuses: ["queued", "running"], limit: 10 });
      expect(active.jobs.map((j) => j.pk)).toEqual([c.pk, a.pk]);
    });

    it("drops a job whole, and purges ended jobs after their own keeping time or the default", async () => {
      const gone = await sealed();
      await data.dropJob(gone.pk);
      expect(await data.getJob(gone.pk)).toBeUndefined();
      expect(await data.findJob(gone.owner, gone.jobId)).toBeUndefined();
      expect(await data.chunkStarts(gone.pk)).toEqual([]);
      const short = await sealed({ keepMs: 60_000 });
      const long = await sealed();
      for (const job of [short, long])
        await data.endJob(job.pk, {
          status: "completed",
          error: null,
          completedAt: T0,
          startedAt: T0,
        });
      expect(await data.purgeJobs(T0 + 120_000, 3_600_000, 10)).toBe(1);
      expect(await data.getJob(short.pk)).toBeUndefined();
      expect(await data.getJob(long.pk)).toBeDefined();
      expect(await data.purgeJobs(T0 + 3_700_000, 3_600_000, 10)).toBe(1);
      expect(await data.getJob(long.pk)).toBeUndefined();
    });
  });
}

describe("JobData on Redis: a cluster's abandoned uploads", () => {
  it("drops a job left validating two hours after its last chunk, and keeps uploads in progress", async () => {
    const redisFactory = factories.find((f) => f.name === "Redis") as (typeof factories)[number];
    const opened = await redisFactory.open();
    try {
      const data = opened.data;
      const { record: dead } = await data.createJob(newJob());
      await data.addChunk(dead.pk, 0, lines(1, 3));
      const { record: live } = await data.createJob(newJob({ createdAt: Date.now() }));
      // At start a cluster node keeps both: another node may be receiving either upload.
      expect(await data.loadUnfinishedJobs()).toEqual([]);
      expect(await data.getJob(dead.pk)).toMatchObject({ status: "validating" });
      expect(await data.purgeJobs(Date.now() + 60_000, 3_600_000, 10)).toBe(0);
      expect(await data.getJob(dead.pk)).toBeDefined();
      expect(await data.getJob(live.pk)).toBeDefined();
      await data.purgeJobs(Date.now() + 2 * 3_600_000 + 1000, 3_600_000, 10);
      expect(await data.getJob(dead.pk)).toBeUndefined();
      expect(await data.chunkStarts(dead.pk)).toEqual([]);
      expect(await data.getJob(live.pk)).toBeUndefined();
    } finally {
      await opened.close();
    }
  });
});
