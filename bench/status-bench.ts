/**
 * `npm run bench:status`: what a status read costs as the queue grows. The engine alone (no
 * transport), on a pool whose threads never finish a batch, so that everything submitted stays
 * queued: `--batches` batches of 1,000 items are submitted, then the last one's status is read
 * `--reads` times; p50 and p99 of one read, and the same with one batch (1,000 items) queued.
 * Usage: npm run bench:status [-- --batches 1000 --reads 200 --out FILE]
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import {
  BatchProcessor,
  type InferencePool,
  type InferenceResult,
  type ModelCatalog,
  type Principal,
} from "../src/engine/index.js";
import { SqliteJobStore } from "../src/store/sqlite-job-store.js";

const { values } = parseArgs({
  options: {
    batches: { type: "string", default: "1000" },
    reads: { type: "string", default: "200" },
    out: { type: "string" },
  },
});
const BATCHES = Number(values.batches);
const READS = Number(values.reads);
const ITEMS = 1000;
const me: Principal = { owner: "bench", admin: true };

/** Threads that take batches and never give them back: what is submitted stays queued. */
const stuck: InferencePool = {
  threads: 1,
  pipelineDepth: 2,
  run: () => new Promise<InferenceResult>(() => undefined),
  close: async () => undefined,
  destroy: async () => undefined,
};
/** One model; listed as none, so that the start's warm-up (whose batches would never end) skips it. */
const models: ModelCatalog = {
  get: (name) =>
    name === "default"
      ? { name, available: true, itemShape: [4], maxBatchSize: 64, outputKind: "raw" }
      : undefined,
  list: () => [],
};

async function measure(batches: number): Promise<{ queued: number; p50: number; p99: number }> {
  const processor = await BatchProcessor.create({
    pool: stuck,
    models,
    store: new SqliteJobStore({ dataDir: ":memory:" }),
    maxQueueSize: 10_000_000,
  });
  const data = Array.from({ length: ITEMS }, (_, k) => ({ input: [k, 1, 2, 3] }));
  let last = "";
  for (let b = 0; b < batches; b++)
    last = (
      await processor.submit(me, {
        data,
        priority: b % 2 === 0 ? "low" : "normal",
        timeoutMs: 300_000,
      })
    ).batchId;
  const queued = processor.stats().pending;
  const times: number[] = [];
  for (let r = 0; r < READS; r++) {
    const started = performance.now();
    await processor.status(me, last);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  // Not closed: a close waits for the batches on the threads, which never end here.
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? 0;
  return { queued, p50: at(0.5), p99: at(0.99) };
}

const small = await measure(1);
const large = await measure(BATCHES);
const f = (ms: number) => ms.toFixed(3);
const text = [
  `# Status reads against the queue: ${new Date().toISOString()}`,
  "",
  `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}. The engine alone; ${READS} reads of the last batch's status.`,
  "",
  "| items queued | status p50 ms | status p99 ms |",
  "| ---: | ---: | ---: |",
  `| ${small.queued} | ${f(small.p50)} | ${f(small.p99)} |`,
  `| ${large.queued} | ${f(large.p50)} | ${f(large.p99)} |`,
  "",
].join("\n");
process.stdout.write(text);
if (values.out !== undefined) writeFileSync(values.out, text);
process.exit(0);
