/**
 * Engine benchmark (not a test): the heavy model (dense 512 -> 2048 -> 2048 -> 10) measured three
 * ways in one run on the same number of threads:
 *   limit   raw onnxruntime-node, one session per thread, best batch size, no server;
 *   engine  BatchProcessor.infer() under many concurrent 1-item requests, dynamic batching on;
 *   no-dyn  the same with dynamic batching off (every request runs alone).
 * Usage: npm run bench:engine [-- --seconds 5 --threads 2 --concurrency 64 --repeat 3]
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { HEAVY_LAYERS, writeHeavyModel } from "../scripts/build-bench-model.js";
import { BatchProcessor, type InferencePool } from "../src/engine/index.js";
import { createInferencePool } from "../src/inference/piscina-pool.js";
import { SqliteJobStore } from "../src/store/sqlite-job-store.js";
import { median, rawLimit } from "./lib/raw-limit.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    threads: { type: "string", default: String(availableParallelism()) },
    concurrency: { type: "string", default: "64" },
    repeat: { type: "string", default: "1" },
    "max-batch-size": { type: "string", default: "64" },
    quick: { type: "boolean", default: false },
  },
});
const seconds = values.quick ? 1 : Number(values.seconds);
const threads = Number(values.threads);
const concurrency = Number(values.concurrency);
const repeat = Number(values.repeat);
const maxBatchSize = Number(values["max-batch-size"]);
const WIDTH = HEAVY_LAYERS[0];

const modelRoot = fileURLToPath(new URL("./models", import.meta.url));
if (!existsSync(join(modelRoot, "heavy", "model.onnx"))) writeHeavyModel(modelRoot);
const modelPath = join(modelRoot, "heavy", "model.onnx");

/** Counts model batches and items on their way to the real pool. */
function counting(pool: InferencePool) {
  const counts = { batches: 0, items: 0, inferenceMs: 0 };
  const wrapped: InferencePool = {
    threads: pool.threads,
    pipelineDepth: pool.pipelineDepth,
    laneOf: (model) => pool.laneOf?.(model),
    run: async (request, signal) => {
      counts.batches++;
      counts.items += request.inputs[0]?.dims[0] ?? 0;
      const result = await pool.run(request, signal);
      counts.inferenceMs += result.inferenceMs;
      return result;
    },
    close: () => pool.close(),
    destroy: () => pool.destroy(),
  };
  return { wrapped, counts };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

interface EngineRun {
  itemsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanBatch: number;
  mainThreadCpuPercent: number;
  /** Share of each inference thread's time spent inside session.run. */
  threadBusyPercent: number;
}

async function engine(dynamic: boolean): Promise<EngineRun> {
  const { pool, models } = await createInferencePool({
    modelDir: modelRoot,
    threads,
    executionProviders: ["cpu"],
  });
  const { wrapped, counts } = counting(pool);
  const processor = await BatchProcessor.create({
    pool: wrapped,
    models,
    store: new SqliteJobStore({ dataDir: ":memory:" }),
    defaultModel: "heavy",
    maxQueueSize: 100_000,
    batching: { maxBatchSize, enableDynamicBatching: dynamic },
  });
  const principal = { owner: "bench", admin: true };
  const inputs = Array.from({ length: 256 }, (_, k) =>
    Array.from({ length: WIDTH }, (_, i) => Math.sin(k * WIDTH + i)),
  );
  // Warm the closed loop for half a second, then measure.
  const latencies: number[] = [];
  let measuring = false;
  let stop = false;
  const client = async (id: number) => {
    let k = id;
    while (!stop) {
      const started = performance.now();
      await processor.infer(principal, {
        data: [{ input: inputs[k++ % inputs.length] as number[] }],
        timeoutMs: 60_000,
      });
      if (measuring) latencies.push(performance.now() - started);
    }
  };
  const clients = Array.from({ length: concurrency }, (_, i) => client(i));
  await new Promise((resolve) => setTimeout(resolve, 500));
  const before = { ...counts };
  const eluBefore = performance.eventLoopUtilization();
  measuring = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const elapsed = performance.now() - started;
  const elu = performance.eventLoopUtilization(eluBefore);
  const batches = counts.batches - before.batches;
  const items = counts.items - before.items;
  const busy = counts.inferenceMs - before.inferenceMs;
  stop = true;
  await Promise.all(clients);
  await processor.close();
  const sorted = Float64Array.from(latencies).sort();
  return {
    itemsPerSecond: (latencies.length / elapsed) * 1000,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanBatch: items / Math.max(1, batches),
    mainThreadCpuPercent: elu.utilization * 100,
    threadBusyPercent: (busy / elapsed / threads) * 100,
  };
}

const sweep = values.quick ? [32, 64] : [16, 32, 64, 128, 256];
const limitRuns: Record<number, number[]> = {};
const on: EngineRun[] = [];
const off: EngineRun[] = [];
for (let r = 0; r < repeat; r++) {
  for (const b of sweep) {
    const runs = limitRuns[b] ?? [];
    runs.push(await rawLimit(modelPath, WIDTH, b, threads, seconds));
    limitRuns[b] = runs;
  }
  on.push(await engine(true));
  off.push(await engine(false));
}
const limitBySize = Object.fromEntries(sweep.map((b) => [b, median(limitRuns[b] as number[])]));
const [bestBatch, limit] = Object.entries(limitBySize).reduce((best, cur) =>
  cur[1] > best[1] ? cur : best,
);
const summarize = (runs: EngineRun[]) => ({
  itemsPerSecond: median(runs.map((r) => r.itemsPerSecond)),
  p50Ms: median(runs.map((r) => r.p50Ms)),
  p99Ms: median(runs.map((r) => r.p99Ms)),
  meanBatch: median(runs.map((r) => r.meanBatch)),
  mainThreadBusyPercent: median(runs.map((r) => r.mainThreadCpuPercent)),
  threadBusyPercent: median(runs.map((r) => r.threadBusyPercent)),
});
const report = {
  date: new Date().toISOString(),
  machine: `${cpus()[0]?.model ?? "unknown cpu"}, ${availableParallelism()} cores, Node ${process.version}`,
  model: `dense ${HEAVY_LAYERS.join(" -> ")}`,
  threads,
  concurrency,
  seconds,
  repeat,
  maxBatchSize,
  limit: { itemsPerSecond: limit, bestBatchSize: Number(bestBatch), bySize: limitBySize },
  dynamicOn: summarize(on),
  dynamicOff: summarize(off),
};
const fmt = (n: number, d = 0) => n.toFixed(d);
const lines = [
  `engine benchmark: ${report.model}, ${threads} threads, ${concurrency} concurrent 1-item infer clients, ${seconds}s x ${repeat} (medians)`,
  `machine: ${report.machine}`,
  "",
  "| scenario | items/s | vs limit | p50 ms | p99 ms | mean model batch | main thread busy | ORT busy per thread |",
  "|---|---:|---:|---:|---:|---:|---:|---:|",
  `| limit: raw ORT, batch ${bestBatch} | ${fmt(limit)} | 1.00 | | | ${bestBatch} | | 100% |`,
  ...(
    [
      ["engine, dynamic batching on", report.dynamicOn],
      ["engine, dynamic batching off", report.dynamicOff],
    ] as const
  ).map(
    ([name, r]) =>
      `| ${name} | ${fmt(r.itemsPerSecond)} | ${fmt(r.itemsPerSecond / limit, 2)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.meanBatch, 1)} | ${fmt(r.mainThreadBusyPercent)}% | ${fmt(r.threadBusyPercent)}% |`,
  ),
  "",
  `raw ORT items/s by batch size: ${Object.entries(limitBySize)
    .map(([b, v]) => `${b}: ${fmt(v)}`)
    .join(", ")}`,
];
console.log(lines.join("\n"));
const out = fileURLToPath(new URL("./results", import.meta.url));
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "engine-latest.json"), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(out, "engine-latest.md"), `${lines.join("\n")}\n`);
