/**
 * The analytics' unit of storage: one minute of counts and sparse log-scale histograms, overall
 * and per priority, and how several nodes' figures of one minute merge into the cluster's.
 */
import { PRIORITIES, type Priority } from "../engine/index.js";

/** `all`, or one priority class. */
export type Scope = "all" | Priority;
/** Every scope, `all` first. */
export const SCOPES: readonly Scope[] = ["all", ...PRIORITIES];

/** Log-scale histogram buckets: 0.05 ms to ~10 min, 24 per factor of 10 (each ~10 % wide). */
const BUCKET_BASE = 0.05;
const BUCKETS_PER_DECADE = 24;
/** The histogram bucket of a duration, ms. */
export function bucketOf(ms: number): number {
  return ms <= BUCKET_BASE
    ? 0
    : Math.min(200, Math.ceil(Math.log10(ms / BUCKET_BASE) * BUCKETS_PER_DECADE));
}
function upperBound(bucket: number): number {
  return BUCKET_BASE * 10 ** (bucket / BUCKETS_PER_DECADE);
}

/** Counts by bucket ({@link bucketOf}); buckets with none are absent. */
export type Histogram = Record<number, number>;

/** One scope's figures of a minute. */
export interface ScopeCounts {
  items: number;
  failed: number;
  latency: Histogram;
  queueWait: Histogram;
  queueLengthSum: number;
  queueLengthSamples: number;
}

/** One minute's figures, by scope; `minute` counts minutes since the epoch. */
export interface Minute {
  minute: number;
  batches: number;
  batchItems: number;
  scopes: Record<Scope, ScopeCounts>;
}

/** A minute with nothing recorded yet. */
export function emptyMinute(minute: number): Minute {
  return {
    minute,
    batches: 0,
    batchItems: 0,
    scopes: Object.fromEntries(SCOPES.map((s) => [s, emptyScope()])) as Record<Scope, ScopeCounts>,
  };
}

/** Whether a value read back (stored or shared) has the shape of a {@link Minute}. */
export function isMinute(value: unknown): value is Minute {
  const m = value as Partial<Minute> | undefined;
  return typeof m?.minute === "number" && typeof m.scopes === "object" && m.scopes !== null;
}

/**
 * Several nodes' figures of one minute as one: counts and histograms add up; a queue length is
 * each node's mean over the minute, added (the cluster's queue is every node's together).
 */
export function mergeMinutes(minute: number, parts: readonly Minute[]): Minute {
  const out = emptyMinute(minute);
  for (const part of parts) {
    out.batches += part.batches;
    out.batchItems += part.batchItems;
    for (const scope of SCOPES) {
      const from = part.scopes[scope];
      const to = out.scopes[scope];
      if (from === undefined) continue;
      to.items += from.items;
      to.failed += from.failed;
      addAll(to.latency, from.latency);
      addAll(to.queueWait, from.queueWait);
      if (from.queueLengthSamples > 0) {
        to.queueLengthSum += from.queueLengthSum / from.queueLengthSamples;
        to.queueLengthSamples = 1;
      }
    }
  }
  return out;
}

/** Adds `from`'s counts into `to`. */
export function addAll(to: Histogram, from: Histogram): void {
  for (const [bucket, n] of Object.entries(from)) {
    const b = Number(bucket);
    to[b] = (to[b] ?? 0) + n;
  }
}

function emptyScope(): ScopeCounts {
  return {
    items: 0,
    failed: 0,
    latency: {},
    queueWait: {},
    queueLengthSum: 0,
    queueLengthSamples: 0,
  };
}

/** Counts one more in `bucket`. */
export function add(h: Histogram, bucket: number): void {
  h[bucket] = (h[bucket] ?? 0) + 1;
}

/** The q-th percentile of a bucketed histogram: the upper bound of the bucket that holds it. */
export function percentile(h: Histogram, q: number): number | undefined {
  const entries = Object.entries(h)
    .map(([b, n]) => [Number(b), n] as const)
    .sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((n, [, c]) => n + c, 0);
  if (total === 0) return undefined;
  const rank = Math.ceil((q / 100) * total);
  let seen = 0;
  for (const [bucket, count] of entries) {
    seen += count;
    if (seen >= rank) return upperBound(bucket);
  }
  return upperBound(entries.at(-1)?.[0] as number);
}
