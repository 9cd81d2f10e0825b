/** The "limit": raw onnxruntime-node, one session per thread in a tight loop, no server. */
import { Worker } from "node:worker_threads";

/** Items/s of `threads` bare sessions running batches of `batch` for `seconds`. */
export async function rawLimit(
  modelPath: string,
  width: number,
  batch: number,
  threads: number,
  seconds: number,
): Promise<number> {
  const workers = Array.from(
    { length: threads },
    () =>
      new Worker(new URL("../raw-ort-worker.mjs", import.meta.url), {
        workerData: { modelPath, batch, width, durationMs: seconds * 1000 },
      }),
  );
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))));
  const results = await Promise.all(
    workers.map((w) => {
      const done = new Promise<{ items: number; ms: number }>((resolve) =>
        w.once("message", resolve),
      );
      w.postMessage("go");
      return done;
    }),
  );
  await Promise.all(workers.map((w) => w.terminate()));
  const items = results.reduce((n, r) => n + r.items, 0);
  return (items / Math.max(...results.map((r) => r.ms))) * 1000;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}
