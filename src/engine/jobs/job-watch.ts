/**
 * Status events of one live job as an async iterable: the current state, then the latest state
 * after every change (a slow consumer skips intermediate ones rather than buffering them), ending
 * after the terminal state, when the engine closes (with a final event), when the caller leaves, or
 * when this process lets the job go without an end (the caller then follows it where it runs
 * next).
 */

import type { BatchView } from "../types.js";
import type { Job } from "./job.js";
import { isTerminal } from "./job-state.js";

/** Options of {@link watchJob}. */
export interface WatchOptions {
  /** The job's current view. */
  readonly view: () => BatchView;
  /** True once the engine is closing. */
  readonly closing: () => boolean;
  /** The caller went away. */
  readonly signal?: AbortSignal | undefined;
}

/** See the file comment. */
export async function* watchJob(
  job: Job,
  { view, closing, signal }: WatchOptions,
): AsyncGenerator<BatchView> {
  let wake: (() => void) | undefined;
  let dirty = false;
  const unsubscribe = job.subscribe(() => {
    dirty = true;
    wake?.();
  });
  const onAbort = () => wake?.();
  signal?.addEventListener("abort", onAbort);
  try {
    let current = view();
    yield current;
    while (!isTerminal(current.status)) {
      if (signal?.aborted === true) return;
      if (closing()) {
        yield view();
        return;
      }
      if (!dirty) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      if (!dirty) continue;
      if (job.released) return;
      dirty = false;
      current = view();
      yield current;
    }
  } finally {
    unsubscribe();
    signal?.removeEventListener("abort", onAbort);
  }
}
