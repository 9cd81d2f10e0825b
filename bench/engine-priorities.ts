/**
 * Priority classes under saturation, in-process (no network, so the backlog forms in the
 * engine's queue): equal numbers of closed-loop 1-item infer clients per class, far more than
 * the pipeline holds. Prints each class's share of served items against its weight share, and
 * its latency percentiles. Usage: npm run bench:priorities [-- --clients 1024 --seconds 4]
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { HEAVY_LAYERS, writeHeavyModel } from "../scripts/build-bench-model.js";
import { BATCHING_DEFAULTS, BatchProcessor, PRIORITIES } from "../src/engine/index.js";
import { createInferencePool } from "../src/inference/piscina-pool.js";
import { SqliteJobStore } from "../src/store/sqlite-job-store.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "1024" },
    seconds: { type: "string", default: "4" },
  },
});
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const modelRoot = fileURLToPath(new URL("./models", import.meta.url));
if (!existsSync(join(modelRoot, "heavy", "model.onnx"))) writeHeavyModel(modelRoot);

const { pool, models } = await createInferencePool({
  modelDir: modelRoot,
  threads: availableParallelism(),
  executionProviders: ["cpu"],
});
const processor = await BatchProcessor.create({
  pool,
  models,
  store: new SqliteJobStore({ dataDir: ":memory:" }),
  maxQueueSize: 100_000,
  defaultModel: "heavy",
});
const me = { owner: "bench", admin: true };
const input = Array.from({ length: HEAVY_LAYERS[0] }, (_, i) => Math.sin(i));
const latencies: Record<string, number[]> = Object.fromEntries(PRIORITIES.map((p) => [p, []]));
let measuring = false;
let stop = false;
const client = async (i: number) => {
  const priority = PRIORITIES[i % PRIORITIES.length] as string;
  while (!stop) {
    const started = performance.now();
    await processor.infer(me, { data: [{ input }], priority, timeoutMs: 60_000 });
    if (measuring) latencies[priority]?.push(performance.now() - started);
  }
};
const running = Array.from({ length: clients }, (_, i) => client(i));
await new Promise((r) => setTimeout(r, 1000));
measuring = true;
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
stop = true;
await Promise.all(running);
await processor.close();

const weights = BATCHING_DEFAULTS.priorityWeights;
const weightTotal = PRIORITIES.reduce((n, p) => n + weights[p], 0);
const total = PRIORITIES.reduce((n, p) => n + (latencies[p]?.length ?? 0), 0);
const at = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
console.log(
  `${clients} closed-loop clients (${clients / 4} per class), ${seconds} s, heavy model, ${availableParallelism()} threads`,
);
console.log("| class | weight share | served share | p50 ms | p99 ms |");
console.log("|---|---:|---:|---:|---:|");
for (const p of PRIORITIES) {
  const sorted = [...(latencies[p] ?? [])].sort((a, b) => a - b);
  console.log(
    `| ${p} | ${((weights[p] / weightTotal) * 100).toFixed(1)} % | ${((sorted.length / total) * 100).toFixed(1)} % | ${at(sorted, 0.5).toFixed(1)} | ${at(sorted, 0.99).toFixed(1)} |`,
  );
}
