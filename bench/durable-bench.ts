/**
 * `npm run bench:durable`: what the engine and the SQLite store spend per durable item, without
 * inference: an in-process BatchProcessor on a file store and a fake pool (outputs at once),
 * `--rounds` rounds of `--batches` batches of 1,000 items submitted and watched to the end, after
 * one round of warm-up. Reports CPU per item (the process's, every thread) and items/s. To compare
 * two builds, run it from each checkout (`-- --root DIR` runs another checkout's sources with
 * this script), interleaved.
 * Usage: npm run bench:durable [-- --batches 40 --rounds 3 --root DIR]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    batches: { type: "string", default: "40" },
    rounds: { type: "string", default: "3" },
    root: { type: "string" },
  },
});
const root = resolve(values.root ?? fileURLToPath(new URL("..", import.meta.url)));
const { BatchProcessor } = await import(join(root, "src/engine/index.ts"));
const { SqliteJobStore } = await import(join(root, "src/store/sqlite-job-store.ts"));
const { FakePool, fakeCatalog } = await import(join(root, "test/fixtures/fake-pool.ts"));
const dir = mkdtempSync(join(tmpdir(), "bp-durable-"));
const processor = await BatchProcessor.create({
  models: fakeCatalog(),
  pool: new FakePool(2),
  store: new SqliteJobStore({ dataDir: dir }),
  batching: { maxBatchSize: 64, maxWaitTimeMs: 1 },
  maxQueueSize: 1_000_000,
  maxConcurrentBatches: 1000,
});
const who = { owner: "bench", admin: false };
const data = Array.from({ length: 1000 }, (_, i) => ({ input: [i, 1, 2] }));
const batches = Number(values.batches);
const round = async () => {
  const ids: string[] = [];
  for (let b = 0; b < batches; b++)
    ids.push((await processor.submit(who, { data, timeoutMs: 300_000 })).batchId);
  for (const id of ids)
    for await (const view of processor.watch(who, id))
      if (view.status === "failed") throw new Error(`batch ${id} failed: ${view.error?.message}`);
};
await round();
const cpu0 = process.cpuUsage();
const started = performance.now();
for (let r = 0; r < Number(values.rounds); r++) await round();
const cpu = process.cpuUsage(cpu0);
const seconds = (performance.now() - started) / 1000;
const items = Number(values.rounds) * batches * 1000;
process.stdout.write(
  `${root}: ${((cpu.user + cpu.system) / items).toFixed(2)} µs CPU per durable item, ${Math.round(items / seconds)} items/s (${items} items)\n`,
);
await processor.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
