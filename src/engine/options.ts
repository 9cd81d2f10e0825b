/**
 * Option types of the engine and the one place where their defaults and bounds live. Every
 * `resolveX` throws {@link InvalidInputError} naming the field in the engine's own words
 * (`maxBatchSize`); the layers that own other names (the wire's `max_batch_size`, the
 * environment's `MAX_BATCH_SIZE`) rename the field, and read the bounds from here.
 */
import { InvalidInputError } from "./errors.js";
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
  /**
   * Latency target per priority class, ms; 0 = none. A class with a target is online work: its
   * items never wait behind batches of classes without one that are queued on a thread, and while
   * it has traffic those batches are kept short enough to run within half its target.
   * @defaultValue critical 100, high 1000, normal and low none
   */
  priorityLatencyMs?: Partial<Record<Priority, number>>;
}

/** {@link BatchingOptions} with every field present. */
export interface ResolvedBatchingOptions {
  readonly maxBatchSize: number;
  readonly maxWaitTimeMs: number;
  readonly enableDynamicBatching: boolean;
  readonly priorityWeights: Readonly<Record<Priority, number>>;
  readonly priorityLatencyMs: Readonly<Record<Priority, number>>;
}

/** Defaults of {@link BatchingOptions}: the v1 API's configure example. */
export const BATCHING_DEFAULTS: ResolvedBatchingOptions = Object.freeze({
  maxBatchSize: 64,
  maxWaitTimeMs: 50,
  enableDynamicBatching: true,
  priorityWeights: Object.freeze({ critical: 1.0, high: 0.8, normal: 0.5, low: 0.2 }),
  priorityLatencyMs: Object.freeze({ critical: 100, high: 1000, normal: 0, low: 0 }),
});

/** Inclusive bounds of the numeric options, by field. */
export const OPTION_BOUNDS = Object.freeze({
  maxBatchSize: [1, 4096],
  maxWaitTimeMs: [0, 60_000],
  priorityWeight: [0, 1000],
  priorityLatencyMs: [0, 3_600_000],
  maxQueueSize: [1, 10_000_000],
  maxConcurrentBatches: [0, 10_000_000],
  resultTtlMs: [1000, 365 * 24 * 3600 * 1000],
  purgeIntervalMs: [10, 24 * 3600 * 1000],
  maxJobItems: [1, 100_000_000],
} as const satisfies Record<string, readonly [number, number]>);

/**
 * Merges `patch` over `base` and validates the result as a whole, so a configure either applies
 * completely or not at all.
 */
export function resolveBatchingOptions(
  patch: BatchingOptions = {},
  base: ResolvedBatchingOptions = BATCHING_DEFAULTS,
): ResolvedBatchingOptions {
  if (typeof patch !== "object" || patch === null)
    throw new InvalidInputError("options", "must be an object");
  const maxBatchSize = integerIn("maxBatchSize", patch.maxBatchSize ?? base.maxBatchSize);
  const maxWaitTimeMs = patch.maxWaitTimeMs ?? base.maxWaitTimeMs;
  const [minWait, maxWait] = OPTION_BOUNDS.maxWaitTimeMs;
  if (
    typeof maxWaitTimeMs !== "number" ||
    !Number.isFinite(maxWaitTimeMs) ||
    maxWaitTimeMs < minWait ||
    maxWaitTimeMs > maxWait
  ) {
    throw new InvalidInputError(
      "maxWaitTimeMs",
      `must be a number in ${minWait}..${maxWait}, got ${String(maxWaitTimeMs)}`,
    );
  }
  const enableDynamicBatching = patch.enableDynamicBatching ?? base.enableDynamicBatching;
  if (typeof enableDynamicBatching !== "boolean") {
    throw new InvalidInputError(
      "enableDynamicBatching",
      `must be a boolean, got ${typeof enableDynamicBatching}`,
    );
  }
  const priorityWeights = resolveByClass(
    "priorityWeights",
    "weights",
    patch.priorityWeights,
    base.priorityWeights,
    OPTION_BOUNDS.priorityWeight,
  );
  if (PRIORITIES.every((p) => priorityWeights[p] === 0))
    throw new InvalidInputError("priorityWeights", "must have at least one weight above 0");
  const priorityLatencyMs = resolveByClass(
    "priorityLatencyMs",
    "milliseconds",
    patch.priorityLatencyMs,
    base.priorityLatencyMs,
    OPTION_BOUNDS.priorityLatencyMs,
  );
  return Object.freeze({
    maxBatchSize,
    maxWaitTimeMs,
    enableDynamicBatching,
    priorityWeights,
    priorityLatencyMs,
  });
}

/** Classes with a latency target (see {@link BatchingOptions.priorityLatencyMs}). */
export function hasLatencyTarget(options: ResolvedBatchingOptions, priority: Priority): boolean {
  return options.priorityLatencyMs[priority] > 0;
}

/** One number per priority class: `patch` over `base`, each within `[min, max]`. */
function resolveByClass(
  field: "priorityWeights" | "priorityLatencyMs",
  unit: string,
  patch: Partial<Record<Priority, number>> | undefined,
  base: Readonly<Record<Priority, number>>,
  [min, max]: readonly [number, number],
): Readonly<Record<Priority, number>> {
  if (patch === undefined) return base;
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
    throw new InvalidInputError(
      field,
      `must be an object mapping ${PRIORITIES.join("|")} to ${unit}`,
    );
  }
  for (const key of Object.keys(patch)) {
    if (!(PRIORITIES as readonly string[]).includes(key)) {
      throw new InvalidInputError(
        `${field}.${key}`,
        `is not a priority; expected one of ${PRIORITIES.join(", ")}`,
      );
    }
  }
  const merged = { ...base, ...patch } as Record<Priority, number>;
  for (const p of PRIORITIES) {
    const w = merged[p];
    if (typeof w !== "number" || !Number.isFinite(w) || w < min || w > max) {
      throw new InvalidInputError(
        `${field}.${p}`,
        `must be a number in ${min}..${max}, got ${String(w)}`,
      );
    }
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
  /** Most lines in one job. @defaultValue 10000000 */
  maxJobItems?: number;
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
  maxJobItems: 10_000_000,
});

/** Applies {@link PROCESSOR_DEFAULTS} and validates each field. */
export function resolveProcessorOptions(options: ProcessorOptions = {}): ResolvedProcessorOptions {
  const o = { ...PROCESSOR_DEFAULTS, ...stripUndefined(options) };
  integerIn("maxQueueSize", o.maxQueueSize);
  integerIn("maxConcurrentBatches", o.maxConcurrentBatches);
  integerIn("resultTtlMs", o.resultTtlMs);
  integerIn("purgeIntervalMs", o.purgeIntervalMs);
  integerIn("maxJobItems", o.maxJobItems);
  if (typeof o.defaultModel !== "string" || o.defaultModel.length === 0)
    throw new InvalidInputError("defaultModel", "must be a non-empty string");
  return Object.freeze(o);
}

/** `value` if it is an integer within {@link OPTION_BOUNDS} of `field`; otherwise throws. */
function integerIn(field: keyof typeof OPTION_BOUNDS, value: unknown): number {
  const [min, max] = OPTION_BOUNDS[field];
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
    throw new InvalidInputError(
      field,
      `must be an integer in ${min}..${max}, got ${String(value)}`,
    );
  return value;
}

/** Drops keys whose value is undefined, so spreading over defaults keeps the defaults. */
export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The store setting that keeps the configuration `configure` saved. */
const BATCHING_SETTING = "batching";

/** Where the batching configuration is kept across restarts (the job store's settings). */
export interface SettingsStore {
  getSetting(key: string): Promise<string | undefined>;
  putSetting(key: string, value: string): Promise<void>;
}

/**
 * The batching configuration to start with: `initial`, with the one `configure` saved over it.
 * A saved configuration that no longer validates is ignored, and the log says so.
 */
export async function loadBatchingOptions(
  store: SettingsStore,
  initial: BatchingOptions | undefined,
  log: { warn(fields: object, message: string): void },
): Promise<ResolvedBatchingOptions> {
  const base = resolveBatchingOptions(initial);
  const saved = await store.getSetting(BATCHING_SETTING);
  if (saved === undefined) return base;
  try {
    return resolveBatchingOptions(JSON.parse(saved) as BatchingOptions, base);
  } catch (error) {
    log.warn({ err: error }, "ignoring an invalid saved batching configuration");
    return base;
  }
}

/** Keeps `options` for {@link loadBatchingOptions} after a restart. */
export function saveBatchingOptions(
  store: SettingsStore,
  options: ResolvedBatchingOptions,
): Promise<void> {
  return store.putSetting(BATCHING_SETTING, JSON.stringify(options));
}
