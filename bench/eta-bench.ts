/**
 * How good the completion estimates users see are: `--jobs` batches of `--items` heavy-model
 * items submitted at once, spread evenly over the priority classes, in-process (no network). For
 * each batch it compares two estimates with when it really ended: its submit receipt's (which
 * cannot know the batches of the burst submitted after it) and its status read once the whole
 * burst is queued. The error is |estimated - actual| / actual, both from the moment of the estimate.
 * Usage: npm run bench:eta [-- --jobs 8 --items 1000 --rounds 3]
 */
import { existsSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { HEAVY_LAYERS, writeHeavyModel } from "../scripts/build-bench-model.js";
import { loadConfig } from "../src/config/index.js";
import { BatchProcessor, PRIORITIES, type Priority } from "../src/engine/index.js";
import { createInferencePool } from "../src/inference/piscina-pool.js";
import { SqliteJobStore } from "../src/store/sqlite-job-store.js";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "8" },
    items: { type: "string", default: "1000" },
    rounds: { type: "string", default: "3" },
    out: { type: "string" },
  },
});
const jobs = Number(values.jobs);
const perJob = Number(values.items);
const rounds = Number(values.rounds);
const modelRoot = fileURLToPath(new URL("./models", import.meta.url));
if (!existsSync(join(modelRoot, "heavy", "model.onnx"))) writeHeavyModel(modelRoot);

const { pool, models } = await createInferencePool({
  modelDir: modelRoot,
  threads: availableParallelism(),
  executionProviders: ["cpu"],
  // The server's setting (INFERENCE_NICE, read as the server reads it), so the estimates are
  // those a server gives.
  nice: loadConfig().inferenceNice,
});
const processor = await BatchProcessor.create({
  pool,
  models,
  store: new SqliteJobStore({ dataDir: ":memory:" }),
  maxQueueSize: jobs * perJob,
  defaultModel: "heavy",
});
const me = { owner: "bench", admin: true };
const width = HEAVY_LAYERS[0] as number;
const input = Array.from({ length: width }, (_, k) => Math.sin(k));

interface Estimate {
  readonly estimatedMs: number | null;
  readonly actualMs: number;
}
interface Row {
  readonly round: number;
  readonly priority: Priority;
  readonly position: number;
  readonly receipt: Estimate;
  readonly status: Estimate;
}
const rows: Row[] = [];
for (let round = 0; round < rounds; round++) {
  const submitted = [];
  for (let j = 0; j < jobs; j++) {
    const priority = PRIORITIES[j % PRIORITIES.length] as Priority;
    const at = Date.now();
    const receipt = await processor.submit(me, {
      data: Array.from({ length: perJob }, () => ({ input })),
      priority,
      timeoutMs: 300_000,
    });
    submitted.push({ receipt, at, priority });
  }
  const queued = await Promise.all(
    submitted.map(async (s) => ({
      ...s,
      statusAt: Date.now(),
      view: await processor.status(me, s.receipt.batchId),
    })),
  );
  for (const { receipt, at, priority, statusAt, view: status } of queued) {
    let completedAt = 0;
    for await (const view of processor.watch(me, receipt.batchId))
      completedAt = view.completedAt ?? completedAt;
    const estimate = (eta: number | null, from: number): Estimate => ({
      estimatedMs: eta === null ? null : eta - from,
      actualMs: completedAt - from,
    });
    rows.push({
      round,
      priority,
      position: receipt.queuePosition,
      receipt: estimate(receipt.estimatedCompletionTime, at),
      status: estimate(status.estimatedCompletionTime, statusAt),
    });
  }
}
await processor.close();

const errorOf = (e: Estimate) =>
  e.estimatedMs === null ? undefined : Math.abs(e.estimatedMs - e.actualMs) / e.actualMs;
function median(values: (number | undefined)[]): number {
  const known = values.filter((v): v is number => v !== undefined).sort((a, b) => a - b);
  return known[Math.floor(known.length / 2)] ?? Number.NaN;
}
const cell = (e: Estimate) =>
  `${e.estimatedMs === null ? "-" : Math.round(e.estimatedMs)} / ${e.actualMs} / ${errorOf(e)?.toFixed(2) ?? "-"}`;
const table = rows
  .map(
    (r) =>
      `| ${r.round + 1} | ${r.priority} | ${r.position} | ${cell(r.receipt)} | ${cell(r.status)} |`,
  )
  .join("\n");
const report = `# Completion estimates: ${jobs} batches of ${perJob} heavy items at once, ${rounds} rounds

${availableParallelism()} inference threads. Median error |estimated - actual| / actual:
**${median(rows.map((r) => errorOf(r.status))).toFixed(2)}** for the status read once the burst is queued
(target ≤ 0.15; by round, the first right after start: ${Array.from({ length: rounds }, (_, k) => median(rows.filter((r) => r.round === k).map((r) => errorOf(r.status))).toFixed(2)).join(", ")}); **${median(rows.map((r) => errorOf(r.receipt))).toFixed(2)}** for the submit receipts, which
cannot know the batches submitted after them.

| round | priority | queue_position at submit | receipt: estimated / actual ms / error | status: estimated / actual ms / error |
| ---: | --- | ---: | ---: | ---: |
${table}
`;
process.stdout.write(report);
if (values.out !== undefined) writeFileSync(values.out, report);
