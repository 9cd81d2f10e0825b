/**
 * The threads a queue's batches run on, as the batcher keeps account of them (`lane`: every
 * model's shared set, or one model's own threads), and what online traffic on them allows
 * background batches.
 */
import type { ResolvedBatchingOptions } from "../options.js";
import { PRIORITIES, type Priority } from "../types.js";
import type { ServiceRate } from "./latency-model.js";

/**
 * How long an online class counts as active after its last arrival, ms: long enough to span the
 * gaps of a client's steady trickle, short enough that background batches grow back soon after
 * the traffic stops.
 */
export const ONLINE_ACTIVE_MS = 1000;

/**
 * The threads a queue's batches run on (every model's, or one model's own) and what is in flight
 * on them: each lane is kept busy with its next batch ready, and never given more.
 */
export interface LaneState {
  threads: number;
  /** Model batches dispatched to it and not yet finished. */
  inFlight: number;
  /** Of those, the ones in the slots kept for online classes (at most one per thread). */
  express: number;
  /** Items of those batches. */
  inFlightItems: number;
  /** When each online class last had an arrival for this lane's models, epoch ms. */
  readonly onlineArrival: Record<Priority, number>;
  /** The measured service rates of the models that ran on it (paused when it stops being busy). */
  readonly services: Set<ServiceRate>;
}

/** A lane with nothing in flight and no online traffic yet. */
export function newLane(): LaneState {
  return {
    threads: 1,
    inFlight: 0,
    express: 0,
    inFlightItems: 0,
    onlineArrival: {
      critical: Number.NEGATIVE_INFINITY,
      high: Number.NEGATIVE_INFINITY,
      normal: Number.NEGATIVE_INFINITY,
      low: Number.NEGATIVE_INFINITY,
    },
    services: new Set(),
  };
}

/**
 * How long a background batch on `lane` may run, ms: half the smallest target of the online
 * classes that had an arrival within {@link ONLINE_ACTIVE_MS}; undefined while none had.
 */
export function backgroundBudgetMs(
  lane: LaneState,
  options: ResolvedBatchingOptions,
  now: number,
): number | undefined {
  let target = Number.POSITIVE_INFINITY;
  for (const p of PRIORITIES) {
    const ms = options.priorityLatencyMs[p];
    if (ms > 0 && now - lane.onlineArrival[p] <= ONLINE_ACTIVE_MS) target = Math.min(target, ms);
  }
  return target === Number.POSITIVE_INFINITY ? undefined : target / 2;
}

/**
 * Room on `lane` (its threads holding `depth` batches each) for the next batch of a queue whose
 * next class is `online` or not: its pipeline slots, how many are free, and whether the batch
 * takes the express slot kept for online classes; undefined when the lane has no room for it.
 */
export function roomOn(
  lane: LaneState,
  depth: number,
  online: boolean,
): { slots: number; freeSlots: number; express: boolean } | undefined {
  const slots = lane.threads * depth;
  const pipelined = lane.inFlight - lane.express;
  if (pipelined < slots) return { slots, freeSlots: slots - pipelined, express: false };
  return online && lane.express < lane.threads ? { slots, freeSlots: 0, express: true } : undefined;
}

/** A batch of `items` items went to `lane` (into an express slot when `express`). */
export function occupy(lane: LaneState, items: number, express: boolean): void {
  lane.inFlight++;
  if (express) lane.express++;
  lane.inFlightItems += items;
}

/**
 * That batch ended. Once the lane's threads are no longer all busy, the service rates of its
 * models pause: the time until a batch ends again is not saturated time.
 */
export function vacate(lane: LaneState, items: number, express: boolean): void {
  lane.inFlight--;
  if (express) lane.express--;
  lane.inFlightItems -= items;
  if (lane.inFlight < lane.threads) for (const service of lane.services) service.pause();
}
