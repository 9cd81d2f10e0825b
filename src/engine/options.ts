/**
 * Option types of the engine and the one place where their defaults and rules live.
 * Every `resolveX` throws a `RangeError` or `TypeError` whose message names the field.
 */
import { PRIORITIES, type Priority } from "./types.js";

/** Live batching configuration (what `Configure` changes). */
export interface BatchingOptions {
  /** Most items in one model batch (also capped by each model's own limit). @defaultValue 64 */
  maxBatchSize?: number;
  /** Longest an item waits for a fuller batch, ms. @defaultValue 50 */
  maxWaitTimeMs?: number;
  /** Merge items across requests; when false each request runs alone in chunks. @defaultValue true */
  enableDynamicBatching?: boolean;
  /** Share of capacity per priority class while several classes wait (weights, not percentages). */
  priorityWeights?: Partial<Record<Priority, number>>;
}

/** {@link BatchingOptions} with every field present. */
export interface ResolvedBatchingOptions {
  readonly maxBatchSize: number;
  readonly maxWaitTimeMs: number;
  readonly enableDynamicBatching: boolean;
  readonly priorityWeights: Readonly<Record<Priority, number>>;
}

/** Defaults of {@link BatchingOptions}: the original API's configure example. */
export const BATCHING_DEFAULTS: ResolvedBatchingOptions = Object.freeze({
  maxBatchSize: 64,
  maxWaitTimeMs: 50,
  enableDynamicBatching: true,
  priorityWeights: Object.freeze({ critical: 1.0, high: 0.8, normal: 0.5, low: 0.2 }),
});

/** Upper bound of `maxBatchSize`. */
export const MAX_BATCH_SIZE_LIMIT = 4096;
/** Upper bound of `maxWaitTimeMs`. */
export const MAX_WAIT_TIME_LIMIT_MS = 60_000;
/** Upper bound of one priority weight. */
export const MAX_PRIORITY_WEIGHT = 1000;

/** A `RangeError` or `TypeError` that also carries the field it names. */
export type OptionError = (RangeError | TypeError) & {
  readonly field: string;
  readonly rule: string;
};

/** Builds an {@link OptionError}: its message is `"<field> <rule>"`. */
export function optionError(kind: "range" | "type", field: string, rule: string): OptionError {
  const error =
    kind === "range" ? new RangeError(`${field} ${rule}`) : new TypeError(`${field} ${rule}`);
  return Object.assign(error, { field, rule });
}

/** True for errors made by {@link optionError}. */
export function isOptionError(error: unknown): error is OptionError {
  return (
    (error instanceof RangeError || error instanceof TypeError) &&
    typeof (error as { field?: unknown }).field === "string"
  );
}

/** How field names appear in messages: camelCase for code, snake_case for the wire. */
export type FieldNaming = "camel" | "snake";

const SNAKE: Record<string, string> = {
  maxBatchSize: "max_batch_size",
  maxWaitTimeMs: "max_wait_time_ms",
  enableDynamicBatching: "enable_dynamic_batching",
  priorityWeights: "priority_weights",
};

/**
 * Merges `patch` over `base` and validates the result as a whole, so a configure either applies
 * completely or not at all.
 */
export function resolveBatchingOptions(
  patch: BatchingOptions = {},
  base: ResolvedBatchingOptions = BATCHING_DEFAULTS,
  naming: FieldNaming = "camel",
): ResolvedBatchingOptions {
  const name = (field: string) => (naming === "snake" ? (SNAKE[field] ?? field) : field);
  if (typeof patch !== "object" || patch === null)
    throw optionError("type", "options", "must be an object");
  const maxBatchSize = patch.maxBatchSize ?? base.maxBatchSize;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1 || maxBatchSize > MAX_BATCH_SIZE_LIMIT) {
    throw optionError(
      "range",
      name("maxBatchSize"),
      `must be an integer in 1..${MAX_BATCH_SIZE_LIMIT}, got ${String(maxBatchSize)}`,
    );
  }
  const maxWaitTimeMs = patch.maxWaitTimeMs ?? base.maxWaitTimeMs;
  if (
    typeof maxWaitTimeMs !== "number" ||
    !Number.isFinite(maxWaitTimeMs) ||
    maxWaitTimeMs < 0 ||
    maxWaitTimeMs > MAX_WAIT_TIME_LIMIT_MS
  ) {
    throw optionError(
      "range",
      name("maxWaitTimeMs"),
      `must be a number in 0..${MAX_WAIT_TIME_LIMIT_MS}, got ${String(maxWaitTimeMs)}`,
    );
  }
  const enableDynamicBatching = patch.enableDynamicBatching ?? base.enableDynamicBatching;
  if (typeof enableDynamicBatching !== "boolean") {
    throw optionError(
      "type",
      name("enableDynamicBatching"),
      `must be a boolean, got ${typeof enableDynamicBatching}`,
    );
  }
  const priorityWeights = resolveWeights(
    patch.priorityWeights,
    base.priorityWeights,
    name("priorityWeights"),
  );
  return Object.freeze({ maxBatchSize, maxWaitTimeMs, enableDynamicBatching, priorityWeights });
}

function resolveWeights(
  patch: Partial<Record<Priority, number>> | undefined,
  base: Readonly<Record<Priority, number>>,
  field: string,
): Readonly<Record<Priority, number>> {
  if (patch === undefined) return base;
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
    throw optionError(
      "type",
      field,
      `must be an object mapping ${PRIORITIES.join("|")} to weights`,
    );
  }
  for (const key of Object.keys(patch)) {
    if (!(PRIORITIES as readonly string[]).includes(key)) {
      throw optionError(
        "type",
        `${field}.${key}`,
        `is not a priority; expected one of ${PRIORITIES.join(", ")}`,
      );
    }
  }
  const merged = { ...base, ...patch } as Record<Priority, number>;
  for (const p of PRIORITIES) {
    const w = merged[p];
    if (typeof w !== "number" || !Number.isFinite(w) || w < 0 || w > MAX_PRIORITY_WEIGHT) {
      throw optionError(
        "range",
        `${field}.${p}`,
        `must be a number in 0..${MAX_PRIORITY_WEIGHT}, got ${String(w)}`,
      );
    }
  }
  if (PRIORITIES.every((p) => merged[p] === 0)) {
    throw optionError("range", field, "must have at least one weight above 0");
  }
  return Object.freeze(merged);
}

/** Options of the {@link BatchProcessor} that are fixed for the process's life. */
export interface ProcessorOptions {
  /** Most pending items (queued, not yet dispatched) over all batches. @defaultValue 10000 */
  maxQueueSize?: number;
  /** Most submitted batches that are queued or processing at once; 0 = no limit. @defaultValue 0 */
  maxConcurrentBatches?: number;
  /** How long finished batches and their results are kept, ms. @defaultValue 86400000 (24 h) */
  resultTtlMs?: number;
  /** Model used when `metadata.model_id` is absent. @defaultValue "default" */
  defaultModel?: string;
  /** How often expired results are purged, ms. @defaultValue 60000 */
  purgeIntervalMs?: number;
}

/** {@link ProcessorOptions} with every field present. */
export type ResolvedProcessorOptions = Readonly<Required<ProcessorOptions>>;

/** Defaults of {@link ProcessorOptions}. */
export const PROCESSOR_DEFAULTS: ResolvedProcessorOptions = Object.freeze({
  maxQueueSize: 10_000,
  maxConcurrentBatches: 0,
  resultTtlMs: 24 * 60 * 60 * 1000,
  defaultModel: "default",
  purgeIntervalMs: 60_000,
});

/** Applies {@link PROCESSOR_DEFAULTS} and validates each field. */
export function resolveProcessorOptions(options: ProcessorOptions = {}): ResolvedProcessorOptions {
  const o = { ...PROCESSOR_DEFAULTS, ...stripUndefined(options) };
  integerIn("maxQueueSize", o.maxQueueSize, 1, 10_000_000);
  integerIn("maxConcurrentBatches", o.maxConcurrentBatches, 0, 10_000_000);
  integerIn("resultTtlMs", o.resultTtlMs, 1000, 365 * 24 * 3600 * 1000);
  integerIn("purgeIntervalMs", o.purgeIntervalMs, 10, 24 * 3600 * 1000);
  if (typeof o.defaultModel !== "string" || o.defaultModel.length === 0) {
    throw optionError("type", "defaultModel", "must be a non-empty string");
  }
  return Object.freeze(o);
}

/** Throws a RangeError naming `field` unless `value` is an integer in `min..max`. */
export function integerIn(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw optionError("range", field, `must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

/** Drops keys whose value is undefined, so spreading over defaults keeps the defaults. */
export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
