/**
 * What the engine reports as it works, for metrics. The engine calls these hooks; `src/metrics/`
 * turns them into Prometheus series. Every hook is optional and must not throw.
 */
import type { Priority } from "./types.js";

/** How a job's line ended. */
export type JobLineOutcome = "completed" | "failed" | "invalid";

/** How an item ended. */
export type ItemOutcome = "success" | "failed" | "expired" | "cancelled";

/** Hooks the engine calls. */
export interface EngineObserver {
  /**
   * A model batch left for a thread; `queueWaitMs` and `priorities` have one entry per item
   * (arrival to dispatch, and the item's class).
   */
  onDispatch?(
    model: string,
    size: number,
    queueWaitMs: readonly number[],
    priorities: readonly Priority[],
  ): void;
  /** A model batch ended; `inferenceMs` is its run time on the thread (0 when it failed). */
  onBatchDone?(model: string, size: number, inferenceMs: number, ok: boolean): void;
  /**
   * An item ended; `latencyMs` runs from its arrival to now. `late`: it ran and its batch ended
   * after the item's deadline (started in time by the latency model's estimate, which was short).
   */
  onItemDone?(
    model: string,
    priority: Priority,
    outcome: ItemOutcome,
    latencyMs: number,
    late: boolean,
  ): void;
  /** A submit or infer of `items` items was refused by admission control. */
  onRejected?(model: string, priority: Priority, items: number): void;
  /** A store write failed; the batches it concerned ended failed. */
  onStoreError?(): void;
  /**
   * `count` lines of a job of `model` got their outcome: `completed` (an output), `failed` (ran,
   * or were to run, and have an error) or `invalid` (not a valid item, known at upload).
   */
  onJobLines?(model: string, outcome: JobLineOutcome, count: number): void;
}

/** One observer that tells each of `observers` in turn. */
export function combineObservers(...observers: readonly EngineObserver[]): EngineObserver {
  return {
    onDispatch: (model, size, waits, priorities) => {
      for (const o of observers) o.onDispatch?.(model, size, waits, priorities);
    },
    onBatchDone: (model, size, ms, ok) => {
      for (const o of observers) o.onBatchDone?.(model, size, ms, ok);
    },
    onItemDone: (model, priority, outcome, latencyMs, late) => {
      for (const o of observers) o.onItemDone?.(model, priority, outcome, latencyMs, late);
    },
    onRejected: (model, priority, items) => {
      for (const o of observers) o.onRejected?.(model, priority, items);
    },
    onStoreError: () => {
      for (const o of observers) o.onStoreError?.();
    },
    onJobLines: (model, outcome, count) => {
      for (const o of observers) o.onJobLines?.(model, outcome, count);
    },
  };
}
