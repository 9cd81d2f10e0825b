/**
 * Admission control: whether a submit or infer may enter the queues, and if not, the error that
 * says why. Pure apart from reading the queue state it is given; the processor reports and throws.
 */
import { DeadlineExceededError, QueueFullError } from "../errors.js";
import type { Priority } from "../types.js";
import type { ValidSubmit } from "../validation.js";

/** What admission reads. */
export interface AdmissionState {
  readonly queue: {
    /** Items waiting in every queue. */
    readonly pending: number;
    estimateMs(model: string, items: number): number | undefined;
    expectedWaitMs(model: string, priority: Priority): number | undefined;
  };
  /** Stored batches queued or processing. */
  readonly activeStored: number;
  readonly maxQueueSize: number;
  /** 0: no limit. */
  readonly maxConcurrentBatches: number;
}

/** The error that refuses `valid` (`durable`: a stored submit), or undefined when it may enter. */
export function admissionRefusal(
  valid: ValidSubmit,
  durable: boolean,
  state: AdmissionState,
): QueueFullError | DeadlineExceededError | undefined {
  const items = valid.items.length;
  const { pending } = state.queue;
  if (pending + items > state.maxQueueSize) {
    const retryAfterMs = state.queue.estimateMs(valid.model.name, pending) ?? 1000;
    return new QueueFullError(
      `queue full: ${pending} items wait, this request adds ${items}, and the queue holds at most ${state.maxQueueSize}`,
      Math.max(1000, Math.ceil(retryAfterMs)),
    );
  }
  // Shed now what could only expire: when the items already waiting ahead would take longer than
  // the request's timeout, no item of it would start in time. Refusing costs the server nothing
  // further and tells the client at once (under overload, this keeps the work spent on requests
  // that can still be answered).
  const waitMs = state.queue.expectedWaitMs(valid.model.name, valid.priority);
  if (waitMs !== undefined && waitMs > valid.timeoutMs) {
    return new DeadlineExceededError(
      `DEADLINE_EXCEEDED: no item would start within timeout_ms=${valid.timeoutMs}: the ${valid.priority} items waiting ahead take about ${Math.ceil(waitMs)} ms`,
    );
  }
  const limit = state.maxConcurrentBatches;
  if (durable && limit > 0 && state.activeStored >= limit) {
    return new QueueFullError(
      `too many active batches: ${state.activeStored} are queued or processing, of at most ${limit}`,
      1000,
    );
  }
  return undefined;
}
