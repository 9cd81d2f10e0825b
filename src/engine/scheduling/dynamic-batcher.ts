/**
 * The dynamic batcher: one {@link PriorityScheduler} per (model, input shape), a latency model per
 * model, and a dispatch loop that keeps every inference thread busy with its next batch ready.
 * What to dispatch, what is too late to start, and every estimate are decided by the pure
 * functions of `batch-policy.ts`; this class only owns the queues, the single wake-up timer and
 * what is in flight, and does what they say.
 *
 * Classes with a latency target (`priorityLatencyMs`) are online work. Their batches are urgent:
 * the pool runs an urgent batch before the batches queued on its thread (or on a thread it keeps
 * for them, when one is free), and each lane keeps one slot per thread beyond its pipeline for
 * them, so an online item waits for at most the batch running on one thread, never for the
 * background batches queued behind it. While an online class has traffic, background batches on
 * its lane are kept short enough to run within half of its target, which bounds that one batch
 * too.
 */

import type { InferencePool } from "../inference-pool.js";
import { hasLatencyTarget, type ResolvedBatchingOptions } from "../options.js";
import { PRIORITIES, type Priority } from "../types.js";
import type { BatchItem } from "./batch-item.js";
import {
  type Candidate,
  type DrainContext,
  drainMs,
  itemsAhead,
  type PolicyContext,
  planDispatch,
  splitLate,
  startDelayMs,
} from "./batch-policy.js";
import { attemptBatch, type BatchOutcome, runIsolating } from "./batch-run.js";
import { backgroundBudgetMs, type LaneState, newLane, occupy, roomOn, vacate } from "./lanes.js";
import { type LatencyModel, ModelTimings } from "./latency-model.js";
import { PriorityScheduler } from "./priority-scheduler.js";

export { type BatchItem, queueKey } from "./batch-item.js";
export type { BatchOutcome } from "./batch-run.js";

/** Options of {@link DynamicBatcher}. */
export interface DynamicBatcherOptions<T extends BatchItem> {
  readonly pool: InferencePool;
  /** The live batching options, read at every decision (so configure applies to the next batch). */
  readonly options: () => ResolvedBatchingOptions;
  /** A model's own batch limit. */
  readonly modelMaxBatchSize: (model: string) => number;
  /**
   * A model's own `max_wait_time_ms`, which stands for that model instead of the configured one;
   * undefined where it has none. @defaultValue none
   */
  readonly modelMaxWaitTimeMs?: ((model: string) => number | undefined) | undefined;
  /** A model's preferred batch sizes, ascending; undefined where it has none. @defaultValue none */
  readonly modelPreferredBatchSizes?:
    | ((model: string) => readonly number[] | undefined)
    | undefined;
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

/** Time constant of the arrival-rate estimate, ms. */
const RATE_WINDOW_MS = 100;

interface Queue<T extends BatchItem> {
  readonly key: string;
  readonly model: string;
  readonly scheduler: PriorityScheduler<T>;
  /** Exponentially decayed arrival count and when it was last updated. */
  arrivals: number;
  arrivalsAt: number;
  /** Items of this queue in dispatched, unfinished model batches. */
  inFlightItems: number;
}

/** See the file comment. */
export class DynamicBatcher<T extends BatchItem> {
  readonly #queues = new Map<string, Queue<T>>();
  readonly #timings = new ModelTimings();
  readonly #lanes = new Map<string, LaneState>();
  readonly #clock: () => number;
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #pumpScheduled = false;
  #closed = false;
  #drained: (() => void) | undefined;

  constructor(private readonly o: DynamicBatcherOptions<T>) {
    this.#clock = o.clock ?? Date.now;
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

  /** Threads running a model batch now, over every lane. */
  get busyThreads(): number {
    let busy = 0;
    for (const lane of this.#lanes.values()) busy += Math.min(lane.threads, lane.inFlight);
    return busy;
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
    const options = this.o.options();
    for (const item of items) {
      const q = this.#queueFor(item);
      q.arrivals = decay(q, now) + 1;
      q.arrivalsAt = now;
      q.scheduler.push(item);
      if (hasLatencyTarget(options, item.priority))
        this.#laneOf(q.model).onlineArrival[item.priority] = now;
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
    return this.#timings.latencyOf(model);
  }

  /**
   * Expected time until `items` more items of `model` have run, after what is in flight, ms;
   * undefined before anything was measured.
   */
  estimateMs(model: string, items: number): number | undefined {
    return drainMs(items, this.#drainContext(model));
  }

  /**
   * The least wait before a new item of `priority` for `model` could start, ms: the items
   * dispatched before it under the current schedule, at the threads' run times alone. Admission
   * refuses on it only what could not start even then: the slowdown measured in an earlier
   * overload (a starved main thread, say) need not hold for the next burst, and a request
   * refused wrongly is lost while one admitted wrongly only expires. Undefined before anything
   * was measured, and for a class of weight 0 (it runs when the others are idle).
   */
  expectedWaitMs(model: string, priority: Priority): number | undefined {
    const ahead = itemsAhead(
      this.pendingByPriority(model),
      this.o.options().priorityWeights,
      priority,
    );
    if (ahead === undefined) return undefined;
    return drainMs(ahead, { ...this.#drainContext(model), slowdown: undefined });
  }

  #drainContext(model: string): DrainContext {
    const lane = this.#laneOf(model);
    return {
      latency: this.latencyOf(model),
      maxBatchSize: Math.min(this.o.options().maxBatchSize, this.o.modelMaxBatchSize(model)),
      threads: lane.threads,
      inFlightItems: lane.inFlightItems,
      slowdown: this.#timings.slowdown(model),
    };
  }

  /** The lane `model`'s batches run on, its size as the pool says it now. */
  #laneOf(model: string): LaneState {
    const own = this.o.pool.laneOf?.(model);
    const key = own?.key ?? "";
    let lane = this.#lanes.get(key);
    if (lane === undefined) {
      lane = newLane();
      this.#lanes.set(key, lane);
    }
    lane.threads = Math.max(1, own?.threads ?? this.o.pool.threads);
    return lane;
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
        inFlightItems: 0,
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
    for (;;) {
      for (const q of this.#queues.values())
        if (q.scheduler.size === 0 && q.inFlightItems === 0) this.#queues.delete(q.key);
      const plan = planDispatch(this.#candidates(this.#clock()));
      wakeAt = plan.kind === "wait" ? plan.until : Number.POSITIVE_INFINITY;
      if (plan.kind !== "dispatch") break;
      this.#dispatch(plan.key, plan.size, plan.reason === "express");
    }
    this.#clearTimer();
    if (wakeAt < Number.POSITIVE_INFINITY) this.#setTimer(wakeAt);
  }

  /**
   * Every queue whose lane has a free slot, with what the policy reads of it (a queue whose lane
   * is full waits for a batch of that lane to end, unless its next class is online and the lane
   * has an express slot free).
   */
  *#candidates(now: number): Generator<Candidate<Queue<T>>> {
    const options = this.o.options();
    for (const q of this.#queues.values()) {
      if (q.scheduler.size === 0) continue;
      const lane = this.#laneOf(q.model);
      const next = q.scheduler.nextClass();
      const online = next !== undefined && hasLatencyTarget(options, next);
      const room = roomOn(lane, this.o.pool.pipelineDepth, online);
      if (room === undefined) continue;
      const latency = this.latencyOf(q.model);
      const ownWait = this.o.modelMaxWaitTimeMs?.(q.model);
      const ownMax = this.o.modelMaxBatchSize(q.model);
      const budget = online ? undefined : backgroundBudgetMs(lane, options, now);
      const ctx: PolicyContext = {
        now,
        options: ownWait === undefined ? options : { ...options, maxWaitTimeMs: ownWait },
        modelMaxBatchSize:
          budget === undefined
            ? ownMax
            : latency.largestWithin(Math.min(ownMax, options.maxBatchSize), budget),
        preferredBatchSizes: this.o.modelPreferredBatchSizes?.(q.model),
        idleThreads: Math.max(0, lane.threads - lane.inFlight),
        ...room,
        inFlightItems: lane.inFlightItems,
        queueInFlightItems: q.inFlightItems,
        startDelayMs: startDelayMs(lane.threads, lane.inFlight, lane.inFlightItems, latency),
        latency,
      };
      yield {
        key: q,
        ctx,
        queue: {
          pending: q.scheduler.size,
          oldestArrival: q.scheduler.oldestArrival(),
          earliestDeadline: q.scheduler.earliestDeadline(),
          arrivalRatePerMs: decay(q, now) / RATE_WINDOW_MS,
        },
      };
    }
  }

  #dispatch(q: Queue<T>, size: number, express: boolean): void {
    const now = this.#clock();
    const options = this.o.options();
    const online = (p: Priority) => hasLatencyTarget(options, p);
    const taken = q.scheduler.take(size, !options.enableDynamicBatching, online);
    const latency = this.latencyOf(q.model);
    const lane = this.#laneOf(q.model);
    const delay = startDelayMs(lane.threads, lane.inFlight, lane.inFlightItems, latency);
    const { run: items, late } = splitLate(taken, now, latency, delay);
    if (late.length > 0) this.o.onExpired(late);
    if (items.length === 0) return;
    const urgent = online((items[0] as T).priority);
    this.#inFlight++;
    occupy(lane, items.length, express);
    q.inFlightItems += items.length;
    this.o.onDispatch?.(items);
    void this.#runBatch(items, lane, urgent).finally(() =>
      this.#release(q, lane, items.length, express),
    );
  }

  /** Runs `items` as one model batch (see {@link runIsolating}) and hands on each outcome. */
  #runBatch(items: readonly T[], lane: LaneState, urgent: boolean): Promise<void> {
    return runIsolating(
      items,
      (part) => attemptBatch(this.o.pool, part, urgent),
      (part, outcome) => this.#complete(part, outcome, lane),
    );
  }

  #complete(items: readonly T[], outcome: BatchOutcome, lane: LaneState): void {
    if (outcome.ok) {
      const service = this.#timings.record(
        (items[0] as T).model,
        items.length,
        outcome.result.inferenceMs,
        { now: this.#clock(), saturated: lane.inFlight >= lane.threads, threads: lane.threads },
      );
      lane.services.add(service);
    }
    this.o.onComplete(items, outcome);
  }

  /** The batch's slot is free again: the loop may dispatch the next. */
  #release(q: Queue<T>, lane: LaneState, size: number, express: boolean): void {
    this.#inFlight--;
    vacate(lane, size, express);
    q.inFlightItems -= size;
    if (this.#closed) {
      if (this.#inFlight === 0) this.#drained?.();
    } else {
      this.#pump();
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

function decay(q: { arrivals: number; arrivalsAt: number }, now: number): number {
  return q.arrivals * Math.exp(-Math.max(0, now - q.arrivalsAt) / RATE_WINDOW_MS);
}
