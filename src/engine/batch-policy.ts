/**
 * When to dispatch a model batch, and how big: a pure function of the queue's state, the clock,
 * the live options and the latency model. No timers, no threads: unit-tested directly.
 */
import type { LatencyEstimator } from "./latency-model.js";
import type { ResolvedBatchingOptions } from "./options.js";

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
  /** Threads with nothing to run. */
  readonly idleThreads: number;
  /** Model batches that may still be dispatched now (pipeline slots: threads x depth - in flight). */
  readonly freeSlots: number;
  /** Pipeline slots in all (threads x depth). */
  readonly slots: number;
  /** Items in dispatched, unfinished model batches. */
  readonly inFlightItems: number;
  readonly latency: LatencyEstimator;
}

/** Why a batch was dispatched. */
export type DispatchReason =
  | "full"
  | "explore"
  | "max_wait"
  | "deadline"
  | "idle"
  | "pipeline"
  | "no_batching";

/** The policy's answer. */
export type BatchDecision =
  | { readonly kind: "dispatch"; readonly size: number; readonly reason: DispatchReason }
  | { readonly kind: "wait"; readonly until: number }
  | { readonly kind: "empty" };

/** Batches of the largest allowed size measured before the latency model's choice is trusted. */
export const EXPLORE_SAMPLES = 3;

/** Margin kept before a deadline when deciding to dispatch for it, ms. */
export const DEADLINE_MARGIN_MS = 2;

/** Decides what one queue should do now. */
export function decideBatch(queue: QueueState, ctx: PolicyContext): BatchDecision {
  if (queue.pending <= 0) return { kind: "empty" };
  const cap = Math.max(1, Math.min(ctx.options.maxBatchSize, ctx.modelMaxBatchSize));
  if (!ctx.options.enableDynamicBatching)
    return { kind: "dispatch", size: cap, reason: "no_batching" };

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
  const target = Math.min(cap, Math.max(1, ctx.latency.bestBatchSize(cap, slack)));
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

  const runMs = ctx.latency.estimate(size) ?? 0;
  const latestStart = queue.earliestDeadline - runMs - DEADLINE_MARGIN_MS;
  if (ctx.now >= latestStart) return { kind: "dispatch", size, reason: "deadline" };

  if (ctx.idleThreads > 0 && !waitingPays(queue, ctx, target, waitEnds)) {
    return { kind: "dispatch", size, reason: "idle" };
  }
  // Every thread is busy but a pipeline slot is free: fill it once the queue holds its fair share
  // of the work in the system. Waiting for more than that is waiting for items that, in a closed
  // loop, only arrive after the running batches end: the thread would then sit idle.
  if (ctx.idleThreads === 0 && ctx.freeSlots > 0) {
    const share = Math.ceil((queue.pending + ctx.inFlightItems) / Math.max(1, ctx.slots));
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
