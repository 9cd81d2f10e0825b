/**
 * What the engine reports as it works, for metrics. The engine calls these hooks; `src/metrics/`
 * turns them into Prometheus series. Every hook is optional and must not throw.
 */
import type { Priority } from "./types.js";

/** How an item ended. */
export type ItemOutcome = "success" | "failed" | "expired" | "cancelled";

/** Hooks the engine calls. */
export interface EngineObserver {
  /** A model batch left for a thread; `queueWaitMs` has one entry per item (arrival to dispatch). */
  onDispatch?(model: string, size: number, queueWaitMs: readonly number[]): void;
  /** A model batch ended; `inferenceMs` is its run time on the thread (0 when it failed). */
  onBatchDone?(model: string, size: number, inferenceMs: number, ok: boolean): void;
  /** An item ended; `latencyMs` runs from its arrival to now. */
  onItemDone?(model: string, priority: Priority, outcome: ItemOutcome, latencyMs: number): void;
  /** A submit or infer of `items` items was refused by admission control. */
  onRejected?(model: string, priority: Priority, items: number): void;
}
