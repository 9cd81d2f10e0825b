/** A finished model batch as the engine's tracer reads it. */
import type { BatchOutcome } from "../scheduling/index.js";
import type { RequestTrace, TracedBatch } from "../tracer.js";
import type { Job, JobItem, Settlement } from "./job.js";

/** A model batch as the tracer reads it (its end time aside); undefined when no item is traced. */
export function tracedBatch(
  items: readonly JobItem[],
  outcome: BatchOutcome,
  crashed: Settlement | undefined,
): Omit<TracedBatch, "endedAt"> | undefined {
  const requests = new Map<Job, { trace: RequestTrace; arrival: number; items: number }>();
  for (const item of items) {
    const trace = item.job.trace;
    if (trace === undefined) continue;
    const seen = requests.get(item.job);
    if (seen === undefined) requests.set(item.job, { trace, arrival: item.arrival, items: 1 });
    else {
      seen.items++;
      seen.arrival = Math.min(seen.arrival, item.arrival);
    }
  }
  if (requests.size === 0) return undefined;
  const first = items[0] as JobItem;
  return {
    model: first.model,
    size: items.length,
    dispatchedAt: first.dispatchedAt ?? first.arrival,
    inferenceMs: outcome.ok ? outcome.result.inferenceMs : 0,
    error:
      crashed?.error === null || crashed?.error === undefined
        ? undefined
        : `${crashed.error.code}: ${crashed.error.message}`,
    requests: [...requests.values()],
  };
}
