/**
 * Batch forming, decided in one place: which queue dispatches now and how many of its items,
 * which of the items taken are too late to start, and every estimate that follows from the same
 * timing rule (when a batch would end, how long a new request would wait, when a batch's items
 * will all have run). Pure functions of the queues' state, the clock, the live options and the
 * latency model: no timers, no threads, unit-tested directly. The {@link DynamicBatcher} only
 * keeps the queues, the timer and what is in flight, and does what these functions say.
 */

import type { ResolvedBatchingOptions } from "../options.js";
import { PRIORITIES, type Priority } from "../types.js";
import type { LatencyEstimator } from "./latency-model.js";

/** What the policy needs to know about one (model, shape) queue. */
export interface QueueState {
  /** Items waiting (not yet dispatched). */
  readonly pending: number;
  /** Arrival time of the oldest waiting item, epoch ms. */
  readonly oldestArrival: number;
  /** Earliest deadline among waiting items, epoch ms. */
  readonly earliestDeadline: number;
  /** Recent arrival rate into this queue, items per ms (0 when unknown). */
  readonly arrivalRatePerMs: number;
}

/** Everything else the decision depends on. */
export interface PolicyContext {
  readonly now: number;
  readonly options: ResolvedBatchingOptions;
  /** The model's own batch limit. */
  readonly modelMaxBatchSize: number;
  /**
   * Batch sizes the model runs best at (its config's `preferred_batch_sizes`, ascending): once
   * enough items wait, the largest of them that they fill runs at once. @defaultValue none
   */
  readonly preferredBatchSizes?: readonly number[] | undefined;
  /** Threads with nothing to run. */
  readonly idleThreads: number;
  /** Model batches that may still be dispatched now (pipeline slots: threads x depth - in flight). */
  readonly freeSlots: number;
  /** Pipeline slots in all (threads x depth). */
  readonly slots: number;
  /** Items in dispatched, unfinished model batches. */
  readonly inFlightItems: number;
  /**
   * Of those, the items of this queue: the ones whose ends bring this queue's clients back with
   * more (another queue's batches bring it nothing). @defaultValue inFlightItems
   */
  readonly queueInFlightItems?: number;
  /** How long a batch dispatched now waits for a thread, ms ({@link startDelayMs}). */
  readonly startDelayMs: number;
  readonly latency: LatencyEstimator;
  /**
   * Every pipeline slot is taken and the queue's next class has a latency target: the batch would
   * take the lane's slot kept for such classes (see `DynamicBatcher`). @defaultValue false
   */
  readonly express?: boolean | undefined;
}

/** Why a batch was dispatched. */
export type DispatchReason =
  | "full"
  | "explore"
  | "preferred"
  | "max_wait"
  | "deadline"
  | "idle"
  | "pipeline"
  | "express"
  | "no_batching";

/** The policy's answer for one queue. */
export type BatchDecision =
  | { readonly kind: "dispatch"; readonly size: number; readonly reason: DispatchReason }
  | { readonly kind: "wait"; readonly until: number }
  | { readonly kind: "empty" };

/** Batches of the largest allowed size measured before the latency model's choice is trusted. */
export const EXPLORE_SAMPLES = 3;

/**
 * Run times are means and a busy machine stretches single runs well past them: a batch counts as
 * ending in time only if it would even `LATE_SAFETY` times slower than expected.
 */
export const LATE_SAFETY = 1.5;

/** Kept between a batch's expected end and a deadline, ms. */
export const DEADLINE_MARGIN_MS = 2;

/**
 * How much earlier than the last moment a batch is dispatched for a deadline, ms: the timer and
 * the pump run a little after they are due, and the item must still pass {@link splitLate}.
 */
const DISPATCH_LEAD_MS = 2;

/**
 * How long a batch dispatched now waits before it runs, ms: nothing while a thread is idle,
 * otherwise the run of an average batch in flight (it waits behind its thread's running batch).
 */
export function startDelayMs(
  threads: number,
  inFlight: number,
  inFlightItems: number,
  latency: LatencyEstimator,
): number {
  if (inFlight < threads) return 0;
  const average = Math.max(1, Math.round(inFlightItems / Math.max(1, inFlight)));
  return latency.estimate(average) ?? 0;
}

/**
 * The one timing rule: from dispatch to the end of a batch of `size`, at its slow end (start
 * delay plus run, times {@link LATE_SAFETY}, plus the margin), ms; 0 while nothing is known.
 */
export function slowSpanMs(size: number, latency: LatencyEstimator, startDelay: number): number {
  const expected = startDelay + (latency.estimate(size) ?? 0);
  return expected > 0 ? LATE_SAFETY * expected + DEADLINE_MARGIN_MS : 0;
}

/**
 * Of the items taken for a batch now, those to run and those too late to start: an item starts
 * only if the batch would end before its deadline by {@link slowSpanMs}; an answer after the
 * deadline is one the client no longer waits for.
 */
export function splitLate<T extends { readonly deadline: number }>(
  items: readonly T[],
  now: number,
  latency: LatencyEstimator,
  startDelay: number,
): { run: T[]; late: T[] } {
  const ends = now + slowSpanMs(items.length, latency, startDelay);
  const run: T[] = [];
  const late: T[] = [];
  for (const item of items) (item.deadline < ends ? late : run).push(item);
  return { run, late };
}

/**
 * Slack beyond which a queue is throughput work: its earliest deadline is minutes away, as a
 * job's items are (their deadline is the end of the completion window).
 */
export const THROUGHPUT_SLACK_MS = 60_000;

/** Decides what one queue should do now. */
export function decideBatch(queue: QueueState, ctx: PolicyContext): BatchDecision {
  if (queue.pending <= 0) return { kind: "empty" };
  const cap = Math.max(1, Math.min(ctx.options.maxBatchSize, ctx.modelMaxBatchSize));
  // Items with a latency target behind full threads: waiting for more of them gains nothing (the
  // batch runs only when a thread's running batch ends), and the slot is theirs alone.
  if (ctx.express === true) return { kind: "dispatch", size: cap, reason: "express" };
  if (!ctx.options.enableDynamicBatching)
    return { kind: "dispatch", size: cap, reason: "no_batching" };
  // A model that says which sizes it runs best at (a GPU engine built for them) gets the largest
  // of them that the waiting items fill, at once, as Triton's dynamic batcher does.
  const preferred = largestAtMost(ctx.preferredBatchSizes, Math.min(queue.pending, cap));
  if (preferred !== undefined) return { kind: "dispatch", size: preferred, reason: "preferred" };

  const slack = queue.earliestDeadline - ctx.now;
  // A full batch of the largest allowed size waits and that size has not been measured yet: run
  // it, so its own time (often better per item than the fitted line says) enters the choice.
  // Only with a backlog that fills it, and only when it fits well within the earliest deadline.
  if (
    queue.pending >= cap &&
    ctx.latency.samples(cap) < EXPLORE_SAMPLES &&
    (ctx.latency.estimate(cap) ?? 0) * 2 <= slack
  )
    return { kind: "dispatch", size: cap, reason: "explore" };
  // With no deadline near (a job's backlog), latency buys nothing: the largest batch runs the
  // most items per thread-second.
  const target =
    slack >= THROUGHPUT_SLACK_MS
      ? cap
      : Math.min(cap, Math.max(1, ctx.latency.bestBatchSize(cap, slack)));
  if (queue.pending >= target) {
    // Several threads idle and fewer items than would fill a batch for each: share them out
    // rather than run one big batch while the other threads wait for it to end.
    const share =
      ctx.idleThreads > 1 ? Math.ceil(queue.pending / ctx.idleThreads) : Number.POSITIVE_INFINITY;
    return { kind: "dispatch", size: Math.min(target, share), reason: "full" };
  }

  const size = queue.pending;
  const waitEnds = queue.oldestArrival + ctx.options.maxWaitTimeMs;
  if (ctx.now >= waitEnds) return { kind: "dispatch", size, reason: "max_wait" };

  // The last moment that still lets the earliest deadline's item start, by the same rule that
  // decides at dispatch whether it may.
  const latestStart =
    queue.earliestDeadline - slowSpanMs(size, ctx.latency, ctx.startDelayMs) - DISPATCH_LEAD_MS;
  if (ctx.now >= latestStart) return { kind: "dispatch", size, reason: "deadline" };

  if (ctx.idleThreads > 0 && !waitingPays(queue, ctx, target, waitEnds)) {
    return { kind: "dispatch", size, reason: "idle" };
  }
  // Every thread is busy but a pipeline slot is free: fill it once the queue holds its fair share
  // of its own work in the system. Waiting for more than that is waiting for items that, in a
  // closed loop, only arrive after its running batches end: the slot would then go unused, and
  // other queues' batches (a job's) bring it no arrivals at all.
  if (ctx.idleThreads === 0 && ctx.freeSlots > 0) {
    const own = ctx.queueInFlightItems ?? ctx.inFlightItems;
    const share = Math.ceil((queue.pending + own) / Math.max(1, ctx.slots));
    if (size >= share) return { kind: "dispatch", size, reason: "pipeline" };
  }
  return { kind: "wait", until: Math.min(waitEnds, latestStart) };
}

/**
 * With a thread idle, waiting for more items pays only if the wait is short — no longer than
 * running what is pending would take, so the thread is never idle longer than it would be busy —
 * and it lowers the thread time spent per item: `(wait + t(n')) / n'` against `t(n) / n`, where
 * `n'` is the size expected after waiting at the current arrival rate. Long waits are left to
 * load itself: while the threads are busy the queue grows and the next batch is bigger.
 */
export function waitingPays(
  queue: QueueState,
  ctx: PolicyContext,
  target: number,
  waitEnds: number,
): boolean {
  const n = queue.pending;
  const rate = queue.arrivalRatePerMs;
  if (rate <= 0) return false;
  const tNow = ctx.latency.estimate(n);
  if (tNow === undefined) return false;
  const wait = Math.min((target - n) / rate, Math.max(0, waitEnds - ctx.now));
  if (wait > tNow) return false;
  const expected = Math.min(target, n + rate * wait);
  const tLater = ctx.latency.estimate(Math.max(1, Math.floor(expected)));
  if (tLater === undefined) return false;
  return (wait + tLater) / expected < tNow / n;
}

/** One queue as {@link planDispatch} sees it. */
export interface Candidate<K> {
  readonly key: K;
  readonly queue: QueueState;
  readonly ctx: PolicyContext;
}

/** What the batcher does next. */
export type DispatchPlan<K> =
  | {
      readonly kind: "dispatch";
      readonly key: K;
      readonly size: number;
      readonly reason: DispatchReason;
    }
  | { readonly kind: "wait"; readonly until: number }
  | { readonly kind: "idle" };

/**
 * Which queue dispatches now: of those whose {@link decideBatch} says dispatch, the one whose
 * oldest item arrived first (no queue starves behind another), except that a queue of
 * throughput work (no deadline within {@link THROUGHPUT_SLACK_MS}: a job's backlog) goes only when
 * no other queue is ready, so a job never holds online requests back beyond the batches already
 * running; else when to look again.
 */
export function planDispatch<K>(candidates: Iterable<Candidate<K>>): DispatchPlan<K> {
  let chosen:
    | { key: K; size: number; reason: DispatchReason; age: number; throughput: boolean }
    | undefined;
  let wakeAt = Number.POSITIVE_INFINITY;
  for (const { key, queue, ctx } of candidates) {
    const decision = decideBatch(queue, ctx);
    if (decision.kind === "dispatch") {
      const throughput = queue.earliestDeadline - ctx.now >= THROUGHPUT_SLACK_MS;
      const better =
        chosen === undefined ||
        (chosen.throughput && !throughput) ||
        (chosen.throughput === throughput && queue.oldestArrival < chosen.age);
      if (better)
        chosen = {
          key,
          size: decision.size,
          reason: decision.reason,
          age: queue.oldestArrival,
          throughput,
        };
    } else if (decision.kind === "wait") wakeAt = Math.min(wakeAt, decision.until);
  }
  if (chosen !== undefined)
    return { kind: "dispatch", key: chosen.key, size: chosen.size, reason: chosen.reason };
  return wakeAt < Number.POSITIVE_INFINITY ? { kind: "wait", until: wakeAt } : { kind: "idle" };
}

/** What the estimates below read of one model's share of the machine. */
export interface DrainContext {
  readonly latency: LatencyEstimator;
  /** Largest batch the model may run now (options and the model's own limit). */
  readonly maxBatchSize: number;
  readonly threads: number;
  /** Items of the model in dispatched, unfinished batches. */
  readonly inFlightItems: number;
  /** Items per ms the model has really finished at while the threads were saturated, if known. */
  /** Wall time per run time measured while the threads were saturated (see `ServiceRate`). */
  readonly slowdown: number | undefined;
}

/**
 * How long until `items` more items of a model have run, after those in flight, ms: at the
 * latency model's target batch size over every thread, stretched by the slowdown measured while
 * the threads were saturated once there is one; undefined before anything was measured.
 */
export function drainMs(items: number, ctx: DrainContext): number | undefined {
  const total = items + ctx.inFlightItems;
  const size = ctx.latency.bestBatchSize(Math.max(1, ctx.maxBatchSize), Number.POSITIVE_INFINITY);
  const t = ctx.latency.estimate(size);
  if (t === undefined) return undefined;
  return ((Math.ceil(total / size) * t) / Math.max(1, ctx.threads)) * (ctx.slowdown ?? 1);
}

/**
 * Items dispatched before a new item of `priority` would start, under stride scheduling: the
 * items of its class already waiting, plus what each other class is served meanwhile (in
 * proportion to its weight, while it has items). Undefined for a class of weight 0, which runs
 * only when the others are idle.
 */
export function itemsAhead(
  pending: Readonly<Record<Priority, number>>,
  weights: Readonly<Record<Priority, number>>,
  priority: Priority,
): number | undefined {
  const own = weights[priority];
  if (!(own > 0)) return undefined;
  const ahead = pending[priority];
  let before = ahead;
  for (const p of PRIORITIES)
    if (p !== priority) before += Math.min(pending[p], (ahead * weights[p]) / own);
  return before;
}

/** What {@link positionInSchedule} reads of a stride scheduler. */
export interface ScheduleSnapshot {
  /** The item's class, and how many of its class go before it (deadline, then arrival). */
  readonly priority: Priority;
  readonly ahead: number;
  /** Each class's pass value, waiting items and weight. */
  readonly passes: Readonly<Record<Priority, number>>;
  readonly counts: Readonly<Record<Priority, number>>;
  readonly weights: Readonly<Record<Priority, number>>;
}

/**
 * How many waiting items a stride scheduler dispatches before an item: those ahead of it in its
 * class, plus what each other class gets until the item's class reaches its turn (each class's
 * pass grows by 1 / weight per item). A class of weight 0 waits for every weighted class and for
 * the weight-0 classes listed before it.
 */
export function positionInSchedule(s: ScheduleSnapshot): number {
  const own = s.weights[s.priority];
  let position = s.ahead;
  if (own > 0) {
    const passAtTurn = s.passes[s.priority] + s.ahead / own;
    for (const q of PRIORITIES) {
      if (q === s.priority || s.weights[q] <= 0) continue;
      const share = Math.ceil((passAtTurn - s.passes[q]) * s.weights[q]);
      position += Math.min(s.counts[q], Math.max(0, share));
    }
    return position;
  }
  for (const q of PRIORITIES) {
    if (q === s.priority) continue;
    if (s.weights[q] > 0 || PRIORITIES.indexOf(q) < PRIORITIES.indexOf(s.priority))
      position += s.counts[q];
  }
  return position;
}

/** The largest of `sizes` (ascending) that is at most `limit`; undefined when none is. */
function largestAtMost(sizes: readonly number[] | undefined, limit: number): number | undefined {
  if (sizes === undefined) return undefined;
  for (let i = sizes.length - 1; i >= 0; i--) if ((sizes[i] as number) <= limit) return sizes[i];
  return undefined;
}
