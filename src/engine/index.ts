/**
 * The engine: the domain of batches and jobs, free of transports and runtimes. Everything outside
 * `src/engine/` reaches it through this face: the {@link BatchProcessor} facade, its options and
 * types, the closed set of domain errors, and the ports it declares for others to implement (a
 * {@link JobStore}, an {@link InferencePool}, a {@link Cluster}).
 *
 * Inside, the rooms: `scheduling/` (when items run), `jobs/` (a batch's life) and `placement/`
 * (where a stored batch runs).
 */
export { BatchProcessor } from "./batch-processor.js";
export * from "./bulk/index.js";
export * from "./errors.js";
export * from "./float16.js";
export type * from "./inference-pool.js";
export { FLOAT32_MAX } from "./item-validation.js";
export type * from "./job-store.js";
export { isTerminal, nextBatchState } from "./jobs/index.js";
export { type EngineLogger, NOOP_LOGGER } from "./logger.js";
export * from "./model-versions.js";
export {
  combineObservers,
  type EngineObserver,
  type ItemOutcome,
  type JobLineOutcome,
} from "./observer.js";
export {
  BATCHING_DEFAULTS,
  type BatchingOptions,
  OPTION_BOUNDS,
  PROCESSOR_DEFAULTS,
  type ProcessorOptions,
  type ResolvedBatchingOptions,
  resolveBatchingOptions,
} from "./options.js";
export type {
  Activity,
  Cluster,
  ClusterNode,
  RemoteCancel,
  RunControl,
  RunEnd,
} from "./placement/index.js";
export type { BatchProcessorOptions } from "./processor-options.js";
export { Stride } from "./scheduling/index.js";
export * from "./tensor-bytes.js";
export * from "./tensors.js";
export type { EngineTracer, RequestTrace, TracedBatch } from "./tracer.js";
export * from "./types.js";
export {
  MAX_ID_LENGTH,
  MAX_ITEMS_PER_SUBMIT,
  METADATA_LIMITS,
  TIMEOUT_MS,
  validateMetadata,
} from "./validation.js";
