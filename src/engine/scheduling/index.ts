/**
 * Scheduling, the engine's room for when items run: the dynamic batcher and its pure policy, the
 * weighted priority classes (the stride rule), the latency model every estimate comes from, and
 * admission control, which refuses at the door what could not be served.
 */
export { type AdmissionState, admissionRefusal } from "./admission.js";
export { positionInSchedule } from "./batch-policy.js";
export {
  type BatchItem,
  type BatchOutcome,
  DynamicBatcher,
  type DynamicBatcherOptions,
  queueKey,
} from "./dynamic-batcher.js";
export { type LatencyEstimator, LatencyModel } from "./latency-model.js";
export type { SchedulableItem } from "./priority-scheduler.js";
export { Stride } from "./stride.js";
export { warmUp } from "./warm-up.js";
