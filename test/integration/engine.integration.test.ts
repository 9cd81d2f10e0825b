/**
 * The engine with real ONNX models in real Piscina threads and the SQLite store.
 */
import { readdirSync, readFileSync } from "node:fs";
import ort from "onnxruntime-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  BatchProcessor,
  type BatchView,
  ModelUnavailableError,
  type Principal,
  type Priority,
} from "../../src/engine/index.js";
import { createInferencePool } from "../../src/inference/piscina-pool.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import { until } from "../fixtures/fake-pool.js";
import {
  createTestModelRepo,
  DENSE_LAYERS,
  type TestModelRepo,
  vector,
} from "../fixtures/model-repo.js";

const me: Principal = { owner: "integration", admin: true };
let repo: TestModelRepo;
const open: BatchProcessor[] = [];

beforeAll(() => {
  repo = createTestModelRepo({ dense: true, broken: true });
});
afterAll(() => repo.cleanup());
afterEach(async () => {
  for (const p of open.splice(0)) await p.close({ timeoutMs: 5000 });
});

const warnings: string[] = [];
const logger = {
  debug() {},
  info() {},
  warn(_fields: object, message: string) {
    warnings.push(message);
  },
  error() {},
};

async function start(threads = 2, nice = 0, onlineThreads = 0) {
  const { pool, models } = await createInferencePool({
    modelDir: repo.dir,
    threads,
    executionProviders: ["cuda", "cpu"],
    nice,
    onlineThreads,
    logger,
  });
  const processor = await BatchProcessor.create({
    pool,
    models,
    store: new SqliteJobStore({ dataDir: ":memory:" }),
    logger,
  });
  open.push(processor);
  return { processor, models };
}

async function finalView(processor: BatchProcessor, batchId: string): Promise<BatchView> {
  let last: BatchView | undefined;
  for await (const view of processor.watch(me, batchId)) last = view;
  return last as BatchView;
}

/** The distance from `x` to the next float32. */
function ulp(x: number): number {
  const exponent = Math.floor(Math.log2(Math.abs(x) || 2 ** -126));
  return 2 ** (Math.max(exponent, -126) - 23);
}

async function directRun(
  modelPath: string,
  inputs: number[][],
  outputName: string,
): Promise<number[][]> {
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
  const out: number[][] = [];
  for (const input of inputs) {
    const result = await session.run({
      input: new ort.Tensor("float32", Float32Array.from(input), [1, input.length]),
    });
    out.push(Array.from((result[outputName] as ort.Tensor).data as Float32Array));
  }
  await session.release();
  return out;
}

describe("engine with ONNX Runtime threads", () => {
  it("matches a direct session.run (within 4 float32 ulps) for 1,000 items over 3 priorities and 2 shapes", async () => {
    const { processor } = await start();
    const priorities: Priority[] = ["critical", "normal", "low"];
    const submitted: { batchId: string; inputs: number[][] }[] = [];
    for (let b = 0; b < 10; b++) {
      const inputs = Array.from({ length: 100 }, (_, i) =>
        vector(b * 1000 + i, (b + i) % 2 === 0 ? 3 : 5),
      );
      const receipt = await processor.submit(me, {
        data: inputs.map((input) => ({ input })),
        priority: priorities[b % 3] as Priority,
      });
      submitted.push({ batchId: receipt.batchId, inputs });
    }
    for (const { batchId, inputs } of submitted) {
      expect((await finalView(processor, batchId)).status).toBe("completed");
      const { results } = await processor.results(me, batchId);
      const expected = await directRun(`${repo.dir}/default/model.onnx`, inputs, "probabilities");
      // Equal up to a few float32 ulps: ONNX Runtime's CPU GEMM sums in another order for a batch
      // of 1 than for a batch of many, so the last bits can differ from a batched run (measured:
      // 6 of 300 values differ, by at most 2 ulps).
      expect(results.map((r) => r.requestId)).toEqual(inputs.map((_, i) => `req_${i + 1}`));
      results.forEach((r, i) => {
        const want = expected[i] as number[];
        expect(r.output).toHaveLength(want.length);
        r.output.forEach((v, k) => {
          expect(Math.abs(v - (want[k] as number))).toBeLessThanOrEqual(4 * ulp(want[k] as number));
        });
        expect(Math.abs(r.confidence - Math.max(...want))).toBeLessThanOrEqual(
          4 * ulp(Math.max(...want)),
        );
      });
    }
  });

  it("applies softmax to a logits model and reports the top probability as confidence", async () => {
    const { processor } = await start(1);
    const input = vector(7, DENSE_LAYERS[0]);
    const { results } = await processor.infer(me, {
      data: [{ input }],
      metadata: { model_id: "dense" },
    });
    const [logits] = await directRun(`${repo.dir}/dense/model.onnx`, [input], "logits");
    const max = Math.max(...(logits as number[]));
    const exp = (logits as number[]).map((v) => Math.exp(v - max));
    const sum = exp.reduce((a, b) => a + b, 0);
    const output = results[0]?.output as number[];
    output.forEach((p, k) => {
      expect(p).toBeCloseTo((exp[k] as number) / sum, 6);
    });
    expect(results[0]?.confidence).toBe(Math.max(...output));
  });

  it("answers online classes on an online thread with the outputs the regular threads give, at the process's priority", async () => {
    const before = niceOfThreads();
    const { processor } = await start(1, 7, 1);
    if (process.platform === "linux") {
      // One regular thread lowered, one online thread (and what ONNX Runtime starts from each).
      const added = [...niceOfThreads()].filter(([tid]) => !before.has(tid));
      expect(added.filter(([, n]) => n === 7).length).toBeGreaterThanOrEqual(1);
      expect(added.filter(([, n]) => n === 0).length).toBeGreaterThanOrEqual(1);
    }
    const data = [0, 1, 2].map((i) => ({ input: vector(40 + i, DENSE_LAYERS[0]) }));
    const answer = (priority: "critical" | "low") =>
      processor.infer(me, { data, priority, metadata: { model_id: "dense" } });
    // critical has a latency target by default (an online class); low has none.
    const [online, background] = await Promise.all([answer("critical"), answer("low")]);
    expect(online.results.map((r) => r.error)).toEqual([null, null, null]);
    expect(online.results.map((r) => r.output)).toEqual(background.results.map((r) => r.output));
  });

  it("cancels a batch mid-run and keeps the outputs it had", async () => {
    const { processor } = await start();
    await processor.configure(me, { maxBatchSize: 4 });
    const data = Array.from({ length: 1000 }, (_, i) => ({ input: vector(i, DENSE_LAYERS[0]) }));
    const { batchId } = await processor.submit(me, {
      data,
      metadata: { model_id: "dense" },
      timeoutMs: 60_000,
    });
    for await (const view of processor.watch(me, batchId)) {
      if (view.completedRequests > 0) {
        await processor.cancel(me, batchId);
      }
    }
    const first = await processor.results(me, batchId);
    expect(first.status).toBe("cancelled");
    const done = first.results.filter((r) => r.error === null);
    expect(done.length).toBeGreaterThan(0);
    expect(done.length).toBeLessThan(1000);
    expect(done.every((r) => r.output.length === 10)).toBe(true);
    expect(
      first.results.filter((r) => r.error !== null).every((r) => r.error?.code === "CANCELLED"),
    ).toBe(true);
    // The batches that were running when it was cancelled end, and change nothing.
    await until(() => processor.stats().inFlightBatches === 0);
    expect(await processor.results(me, batchId)).toEqual(first);
  });

  it("fails a batch whose deadline expires while it waits, without running its items", async () => {
    const { processor } = await start();
    await processor.configure(me, { maxBatchSize: 2, priorityWeights: { low: 0 } });
    // Keep critical work queued (a class of weight 0 runs only when the others are empty) until
    // the low batch has ended, however fast this machine runs the model: each round submits 400
    // items and waits until half of them are done, so at least 200 stay queued.
    let lowEnded = false;
    const blocker = Array.from({ length: 400 }, (_, i) => ({ input: vector(i, DENSE_LAYERS[0]) }));
    const submitBlocker = async () =>
      (
        await processor.submit(me, {
          data: blocker,
          priority: "critical",
          metadata: { model_id: "dense" },
          timeoutMs: 60_000,
        })
      ).batchId;
    const block = async (first: string) => {
      for (let batchId = first; !lowEnded; batchId = await submitBlocker()) {
        while (!lowEnded && (await processor.status(me, batchId)).completedRequests < 200)
          await new Promise((r) => setTimeout(r, 1));
      }
    };
    const blocking = block(await submitBlocker());
    const late = await processor.submit(me, {
      data: [{ input: vector(1, DENSE_LAYERS[0]) }, { input: vector(2, DENSE_LAYERS[0]) }],
      priority: "low",
      metadata: { model_id: "dense" },
      timeoutMs: 100,
    });
    const view = await finalView(processor, late.batchId);
    lowEnded = true;
    await blocking;
    expect(view.status).toBe("failed");
    expect(view.error?.code).toBe("DEADLINE_EXCEEDED");
    expect(view.startedAt).toBeNull();
    const { results } = await processor.results(me, late.batchId);
    expect(
      results.every((r) => r.output.length === 0 && r.error?.code === "DEADLINE_EXCEEDED"),
    ).toBe(true);
  });

  it("marks a model that fails to load unavailable and keeps serving the others", async () => {
    const { processor, models } = await start(1);
    const broken = models.get("broken");
    expect(broken?.available).toBe(false);
    // Callers see what failed, never where the server keeps its files (threads load from bytes).
    expect(broken?.reason).toBe(
      "ONNX Runtime could not load model.onnx: Failed to load model because protobuf parsing failed.",
    );
    expect(broken?.reason).not.toContain(repo.dir);
    await expect(
      processor.submit(me, { data: [{ input: [1] }], metadata: { model_id: "broken" } }),
    ).rejects.toThrow(ModelUnavailableError);
    const { results } = await processor.infer(me, { data: [{ input: [1, 2, 3] }] });
    expect(results[0]?.output).toHaveLength(3);
  });

  it("runs on CUDA when the runtime has it, else falls back to CPU saying so once", async () => {
    warnings.length = 0;
    const { models } = await start(2);
    const provider = models.get("default")?.executionProvider;
    const fallbacks = warnings.filter((w) => w.includes("running on CPU"));
    if (provider === "cuda") expect(fallbacks).toHaveLength(0);
    else {
      expect(provider).toBe("cpu");
      expect(fallbacks).toHaveLength(1);
    }
  });

  it("runs the inference threads at the nice value asked for, and only them", async () => {
    warnings.length = 0;
    // Nice values only ever go up without privileges: what this process's threads had before.
    const before = niceOfThreads();
    await start(2, 7);
    if (process.platform === "linux") {
      const after = niceOfThreads();
      // The two inference threads, plus any thread ONNX Runtime started from them; all new.
      const niced = [...after].filter(([, n]) => n === 7).map(([tid]) => tid);
      expect(niced.length).toBeGreaterThanOrEqual(2);
      expect(niced.filter((tid) => before.has(tid))).toEqual([]);
      expect(after.get(process.pid)).toBe(before.get(process.pid));
      expect(warnings.filter((w) => w.includes("default priority"))).toHaveLength(0);
    } else {
      expect(warnings.filter((w) => w.includes("default priority"))).toHaveLength(1);
    }
  });
});

/** Thread id → nice value of every thread of this process (Linux; empty elsewhere). */
function niceOfThreads(): Map<number, number> {
  const out = new Map<number, number>();
  if (process.platform !== "linux") return out;
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}
