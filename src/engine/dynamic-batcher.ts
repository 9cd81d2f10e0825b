/**
 * The dynamic batcher: one {@link PriorityScheduler} per (model, input shape), a latency model per
 * model, and a dispatch loop that keeps every inference thread busy with its next batch ready.
 * When to dispatch and how much is decided by the pure {@link decideBatch}; this class only owns
 * the queues, the single wake-up timer and the in-flight count.
 */
import { type BatchDecision, DEADLINE_MARGIN_MS, decideBatch } from "./batch-policy.js";
import type { InferencePool, InferenceResult } from "./inference-pool.js";
import { LatencyModel } from "./latency-model.js";
import type { ResolvedBatchingOptions } from "./options.js";
import { PriorityScheduler, type SchedulableItem } from "./priority-scheduler.js";
import { PRIORITIES, type Priority } from "./types.js";

/** An item the batcher can run. */
export interface BatchItem extends SchedulableItem {
  readonly model: string;
  /** {@link queueKey} of the item, computed once when it is created. */
  readonly queue: string;
  /** Per-item dims (no -1). Items of different shapes never share a model batch. */
  readonly itemShape: readonly number[];
  /** The item's numbers; copied into the model batch's float32 tensor at dispatch. */
  readonly data: ArrayLike<number>;
}

/** How a dispatched model batch ended. */
export type BatchOutcome =
  | { readonly ok: true; readonly result: InferenceResult }
  | { readonly ok: false; readonly error: unknown };

/** Options of {@link DynamicBatcher}. */
export interface DynamicBatcherOptions<T extends BatchItem> {
  readonly pool: InferencePool;
  /** The live batching options, read at every decision (so configure applies to the next batch). */
  readonly options: () => ResolvedBatchingOptions;
  /** A model's own batch limit. */
  readonly modelMaxBatchSize: (model: string) => number;
  /** Called once per dispatched model batch with its items, before it runs. */
  readonly onDispatch?: (items: readonly T[]) => void;
  /** Called once per model batch when it ends. */
  readonly onComplete: (items: readonly T[], outcome: BatchOutcome) => void;
  /**
   * Called with items whose deadline passed while they waited, or that would end after it if
   * started now (by the latency model); they never reach a thread.
   */
  readonly onExpired: (items: readonly T[]) => void;
  /** Epoch-ms clock. @defaultValue Date.now */
  readonly clock?: () => number;
}

/**
 * Run times are means and a busy machine stretches single runs well past them: an item starts
 * only if its batch would end in time even `LATE_SAFETY` times slower than expected.
 */
const LATE_SAFETY = 1.5;

/** Time constant of the arrival-rate estimate, ms. */
const RATE_WINDOW_MS = 100;

interface Queue<T extends BatchItem> {
  readonly key: string;
  readonly model: string;
  readonly scheduler: PriorityScheduler<T>;
  /** Exponentially decayed arrival count and when it was last updated. */
  arrivals: number;
  arrivalsAt: number;
}

/** See the file comment. */
export class DynamicBatcher<T extends BatchItem> {
  readonly #queues = new Map<string, Queue<T>>();
  readonly #latency = new Map<string, LatencyModel>();
  readonly #clock: () => number;
  readonly #capacity: number;
  #inFlight = 0;
  #inFlightItems = 0;
  #timer: NodeJS.Timeout | undefined;
  #pumpScheduled = false;
  #closed = false;
  #drained: (() => void) | undefined;

  constructor(private readonly o: DynamicBatcherOptions<T>) {
    this.#clock = o.clock ?? Date.now;
    this.#capacity = Math.max(1, o.pool.threads * o.pool.pipelineDepth);
  }

  /** Items waiting in every queue. */
  get pending(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.scheduler.size;
    return n;
  }

  /** Model batches dispatched and not yet finished. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Items waiting per priority class, over every model or for one. */
  pendingByPriority(model?: string): Record<Priority, number> {
    const out: Record<Priority, number> = { critical: 0, high: 0, normal: 0, low: 0 };
    for (const q of this.#queues.values())
      if (model === undefined || q.model === model)
        for (const p of PRIORITIES) out[p] += q.scheduler.countOf(p);
    return out;
  }

  /** Items waiting per model and priority class. */
  pendingByModel(): Map<string, Record<Priority, number>> {
    const out = new Map<string, Record<Priority, number>>();
    for (const q of this.#queues.values()) {
      const counts = out.get(q.model) ?? { critical: 0, high: 0, normal: 0, low: 0 };
      for (const p of PRIORITIES) counts[p] += q.scheduler.countOf(p);
      out.set(q.model, counts);
    }
    return out;
  }

  /** Queues items for dispatch. */
  enqueue(items: readonly T[]): void {
    if (this.#closed) throw new Error("batcher is closed");
    const now = this.#clock();
    for (const item of items) {
      const q = this.#queueFor(item);
      q.arrivals = decay(q, now) + 1;
      q.arrivalsAt = now;
      q.scheduler.push(item);
    }
    this.#schedulePump();
  }

  /** Removes waiting items (cancel, deadline); returns those that were still waiting. */
  remove(items: readonly T[]): T[] {
    const removed: T[] = [];
    for (const item of items) {
      const q = this.#queues.get(item.queue);
      if (q?.scheduler.remove(item)) removed.push(item);
    }
    if (removed.length > 0) this.#schedulePump();
    return removed;
  }

  /** Items that will be dispatched before `item` in its queue. */
  positionOf(item: T): number {
    return this.#queues.get(item.queue)?.scheduler.positionOf(item) ?? 0;
  }

  /** The latency model of `model` (created on first use). */
  latencyOf(model: string): LatencyModel {
    let m = this.#latency.get(model);
    if (m === undefined) {
      m = new LatencyModel();
      this.#latency.set(model, m);
    }
    return m;
  }

  /**
   * Expected time to run `items` more items of `model` at the current target batch size over
   * every thread, ms; undefined before anything was measured.
   */
  estimateMs(model: string, items: number): number | undefined {
    const latency = this.latencyOf(model);
    const size = Math.max(
      1,
      Math.min(this.o.options().maxBatchSize, this.o.modelMaxBatchSize(model)),
    );
    const target = latency.bestBatchSize(size, Number.POSITIVE_INFINITY);
    const t = latency.estimate(target);
    if (t === undefined) return undefined;
    return (Math.ceil(items / target) * t) / this.o.pool.threads;
  }

  /**
   * Expected wait before a new item of `priority` for `model` would start, ms, by the latency
   * model: the items of its class already waiting, plus what the stride scheduler serves of the
   * other classes meanwhile (each in proportion to its weight, while it has items). Undefined
   * before anything was measured, and for a class of weight 0 (it runs when the others are idle).
   */
  expectedWaitMs(model: string, priority: Priority): number | undefined {
    const weights = this.o.options().priorityWeights;
    const own = weights[priority];
    if (!(own > 0)) return undefined;
    const pending = this.pendingByPriority(model);
    const ahead = pending[priority];
    let before = ahead;
    for (const p of PRIORITIES)
      if (p !== priority) before += Math.min(pending[p], (ahead * weights[p]) / own);
    return this.estimateMs(model, before);
  }

  /** Stops dispatching and resolves once every in-flight model batch has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#clearTimer();
    if (this.#inFlight === 0) return;
    await new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
  }

  #queueFor(item: T): Queue<T> {
    const key = item.queue;
    let q = this.#queues.get(key);
    if (q === undefined) {
      q = {
        key,
        model: item.model,
        scheduler: new PriorityScheduler<T>(() => this.o.options().priorityWeights),
        arrivals: 0,
        arrivalsAt: 0,
      };
      this.#queues.set(key, q);
    }
    return q;
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#closed) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#closed) return;
    let wakeAt = Number.POSITIVE_INFINITY;
    while (this.#inFlight < this.#capacity) {
      const now = this.#clock();
      const options = this.o.options();
      let chosen: { q: Queue<T>; size: number } | undefined;
      let chosenAge = Number.POSITIVE_INFINITY;
      wakeAt = Number.POSITIVE_INFINITY;
      for (const q of this.#queues.values()) {
        if (q.scheduler.size === 0) {
          this.#queues.delete(q.key);
          continue;
        }
        const decision: BatchDecision = decideBatch(
          {
            pending: q.scheduler.size,
            oldestArrival: q.scheduler.oldestArrival(),
            earliestDeadline: q.scheduler.earliestDeadline(),
            arrivalRatePerMs: decay(q, now) / RATE_WINDOW_MS,
          },
          {
            now,
            options,
            modelMaxBatchSize: this.o.modelMaxBatchSize(q.model),
            idleThreads: Math.max(0, this.o.pool.threads - this.#inFlight),
            freeSlots: this.#capacity - this.#inFlight,
            slots: this.#capacity,
            inFlightItems: this.#inFlightItems,
            latency: this.latencyOf(q.model),
          },
        );
        if (decision.kind === "dispatch") {
          const age = q.scheduler.oldestArrival();
          if (age < chosenAge) {
            chosen = { q, size: decision.size };
            chosenAge = age;
          }
        } else if (decision.kind === "wait") {
          wakeAt = Math.min(wakeAt, decision.until);
        }
      }
      if (chosen === undefined) break;
      this.#dispatch(chosen.q, chosen.size, now, !options.enableDynamicBatching);
    }
    this.#clearTimer();
    if (this.#inFlight < this.#capacity && wakeAt < Number.POSITIVE_INFINITY)
      this.#setTimer(wakeAt);
  }

  #dispatch(q: Queue<T>, size: number, now: number, sameGroup: boolean): void {
    const taken = q.scheduler.take(size, sameGroup);
    const items: T[] = [];
    const expired: T[] = [];
    const expected =
      this.#expectedStartDelay(q.model) + (this.latencyOf(q.model).estimate(taken.length) ?? 0);
    const ends = now + LATE_SAFETY * expected + (expected > 0 ? DEADLINE_MARGIN_MS : 0);
    // An item that would end after its deadline is not started: its answer would come too late.
    for (const item of taken) (item.deadline <= ends ? expired : items).push(item);
    if (expired.length > 0) this.o.onExpired(expired);
    if (items.length === 0) return;
    const first = items[0] as T;
    const width = first.data.length;
    const data = new Float32Array(items.length * width);
    for (let i = 0; i < items.length; i++) data.set((items[i] as T).data, i * width);
    this.#inFlight++;
    this.#inFlightItems += items.length;
    this.o.onDispatch?.(items);
    this.o.pool.run({ model: first.model, data, dims: [items.length, ...first.itemShape] }).then(
      (result) => this.#finish(items, { ok: true, result }),
      (error: unknown) => this.#finish(items, { ok: false, error }),
    );
  }

  /**
   * How long a batch dispatched now waits before it runs, ms: nothing when a thread is idle,
   * otherwise the run of an average batch in flight (it waits behind its thread's running batch).
   */
  #expectedStartDelay(model: string): number {
    if (this.#inFlight < this.o.pool.threads) return 0;
    const average = Math.max(1, Math.round(this.#inFlightItems / Math.max(1, this.#inFlight)));
    return this.latencyOf(model).estimate(average) ?? 0;
  }

  #finish(items: readonly T[], outcome: BatchOutcome): void {
    this.#inFlight--;
    this.#inFlightItems -= items.length;
    if (outcome.ok)
      this.latencyOf((items[0] as T).model).observe(items.length, outcome.result.inferenceMs);
    try {
      this.o.onComplete(items, outcome);
    } finally {
      if (this.#closed) {
        if (this.#inFlight === 0) this.#drained?.();
      } else {
        this.#pump();
      }
    }
  }

  #setTimer(at: number): void {
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#pump();
      },
      Math.max(0, at - this.#clock()),
    );
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** The queue an item belongs to: its model and its exact per-item shape. */
export function queueKey(item: {
  readonly model: string;
  readonly itemShape: readonly number[];
}): string {
  return `${item.model}|${item.itemShape.join("x")}`;
}

function decay(q: { arrivals: number; arrivalsAt: number }, now: number): number {
  return q.arrivals * Math.exp(-Math.max(0, now - q.arrivalsAt) / RATE_WINDOW_MS);
}
