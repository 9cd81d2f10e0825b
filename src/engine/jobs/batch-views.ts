/** Builds the read-side views (status, results) from live jobs and stored records. */

import type { BatchRecord, StoredResult } from "../job-store.js";
import { numbersOf } from "../tensors.js";
import type { BatchResults, BatchView, ItemResult, SubmitReceipt } from "../types.js";
import type { Job, JobItem } from "./job.js";
import { isTerminal } from "./job-state.js";

/** Live facts about a job that only the scheduler knows. */
export interface LiveFacts {
  readonly queuePosition: number;
  readonly estimatedCompletionTime: number | null;
}

/** What a status view is made of: a live {@link Job} and a stored {@link BatchRecord} both fit. */
export type ViewSource = Pick<
  BatchRecord,
  | "batchId"
  | "status"
  | "priority"
  | "modelId"
  | "total"
  | "succeeded"
  | "failed"
  | "createdAt"
  | "startedAt"
  | "completedAt"
  | "error"
  | "node"
>;

/** The status of a batch; `live` comes from the scheduler while it runs, from the end after. */
export function viewOf(source: ViewSource, live: LiveFacts, now: number): BatchView {
  const finished = source.succeeded + source.failed;
  const ended = isTerminal(source.status);
  return {
    batchId: source.batchId,
    status: source.status,
    priority: source.priority,
    modelId: source.modelId,
    progress: source.total === 0 ? 0 : finished / source.total,
    completedRequests: finished,
    failedRequests: source.failed,
    totalRequests: source.total,
    queuePosition: ended ? 0 : live.queuePosition,
    estimatedCompletionTime: ended ? source.completedAt : live.estimatedCompletionTime,
    processingTimeMs: elapsed(source.startedAt, source.completedAt, now),
    createdAt: source.createdAt,
    startedAt: source.startedAt,
    completedAt: source.completedAt,
    error: source.error,
    node: source.node,
  };
}

/** What a live view reads of the schedule. */
export interface ScheduleReader {
  /** Items that will be dispatched before `item` in its queue. */
  positionOf(item: JobItem): number;
  /** Expected time until `items` more items of `model` have run, after those in flight, ms. */
  estimateMs(model: string, items: number): number | undefined;
}

/**
 * The status of a live job, with its queue position and estimated completion. A stored job reads
 * as the store holds it (its status, end and counts as its last save answered), so that no read
 * says what no other node could read, and an end shows only once it is saved.
 */
export function liveViewOf(job: Job, schedule: ScheduleReader, now: number): BatchView {
  if (job.unrecorded !== null) {
    // Its end could not be saved: failed, whatever it reached in memory.
    const failed: ViewSource = {
      ...identityOf(job),
      status: "failed",
      succeeded: job.succeeded,
      failed: job.failed,
      startedAt: job.startedAt,
      completedAt: job.completedAt,
      error: job.unrecorded.failure,
    };
    return viewOf(failed, { queuePosition: 0, estimatedCompletionTime: job.completedAt }, now);
  }
  const source: ViewSource = job.stored === undefined ? job : { ...identityOf(job), ...job.stored };
  if (isTerminal(source.status))
    return viewOf(source, { queuePosition: 0, estimatedCompletionTime: source.completedAt }, now);
  const first = job.firstQueued();
  const queuePosition = first === undefined ? 0 : schedule.positionOf(first);
  // The batch ends when its last waiting item has run: everything dispatched before that item
  // (its own items and, by the weights, the other classes' meanwhile), after what is in flight.
  const last = job.lastQueued();
  const through = last === undefined ? 0 : schedule.positionOf(last) + 1;
  const ms = schedule.estimateMs(job.modelId, through);
  return viewOf(
    source,
    { queuePosition, estimatedCompletionTime: ms === undefined ? null : now + ms },
    now,
  );
}

/** What a job's view takes from the job itself, whatever its state. */
function identityOf(
  job: Job,
): Pick<ViewSource, "batchId" | "priority" | "modelId" | "total" | "createdAt" | "node"> {
  return {
    batchId: job.batchId,
    priority: job.priority,
    modelId: job.modelId,
    total: job.total,
    createdAt: job.createdAt,
    node: job.node,
  };
}

/**
 * The status of a stored batch read from the store just now, with the live facts (queue position,
 * estimated completion) of `live`, a view of it from the node that runs it. The record's status
 * and counts win: a view is a snapshot of the store taken earlier, never later.
 */
export function viewWithLiveFacts(record: BatchRecord, live: BatchView, now: number): BatchView {
  if (isTerminal(record.status)) return viewOfRecord(record, now);
  return viewOf(
    record,
    { queuePosition: live.queuePosition, estimatedCompletionTime: live.estimatedCompletionTime },
    now,
  );
}

/**
 * Whether `view` says less than `before`, an earlier view of the same batch (an older status, or
 * fewer items done): what a reader that saw `before` must not be shown.
 */
export function isBehind(view: BatchView, before: BatchView): boolean {
  const rank = (status: string) => (isTerminal(status) ? 2 : status === "processing" ? 1 : 0);
  return (
    rank(view.status) < rank(before.status) ||
    view.completedRequests < before.completedRequests ||
    view.failedRequests < before.failedRequests
  );
}

/** What a submit answers, from the batch's view. */
export function receiptOf(view: BatchView): SubmitReceipt {
  return {
    batchId: view.batchId,
    status: view.status,
    estimatedCompletionTime: view.estimatedCompletionTime,
    queuePosition: view.queuePosition,
    requestCount: view.totalRequests,
  };
}

/** Status of a stored batch that no live job holds (it has ended). */
export function viewOfRecord(record: BatchRecord, now: number): BatchView {
  return viewOf(record, { queuePosition: 0, estimatedCompletionTime: record.completedAt }, now);
}

/**
 * Results message from item outcomes; `labels`, the model's names of its outputs, name each
 * item's top class.
 */
export function resultsOf(
  view: BatchView,
  items: readonly ItemResult[],
  labels?: readonly string[],
): BatchResults {
  const total = view.processingTimeMs;
  return {
    batchId: view.batchId,
    status: view.status,
    results: labels === undefined ? items : items.map((item) => labelled(item, labels)),
    totalProcessingTimeMs: total,
    averagePerRequestMs: view.totalRequests === 0 ? 0 : total / view.totalRequests,
    batchSize: view.totalRequests,
    error: view.error,
  };
}

/**
 * An item with the name of its largest output, when the model names as many outputs as it gave
 * (the top class of a classifier); unchanged otherwise.
 */
function labelled(item: ItemResult, labels: readonly string[]): ItemResult {
  const label = topLabel(item.output, labels);
  return label === "" ? item : { ...item, label };
}

/**
 * The name of the largest output when the model names as many outputs as there are; empty
 * otherwise.
 */
export function topLabel(output: ArrayLike<number>, labels: readonly string[] | undefined): string {
  if (labels === undefined || output.length === 0 || output.length !== labels.length) return "";
  let top = 0;
  for (let i = 1; i < output.length; i++)
    if ((output[i] as number) > (output[top] as number)) top = i;
  return labels[top] as string;
}

/** A stored outcome as the client sees it. */
export function itemResultOf(stored: StoredResult): ItemResult {
  return {
    requestId: stored.requestId,
    output: stored.output === null ? [] : numbersOf(stored.output),
    outputs: stored.outputs,
    confidence: stored.confidence,
    processingTimeMs: stored.processingTimeMs,
    error: stored.error,
    label: "",
  };
}

function elapsed(startedAt: number | null, completedAt: number | null, now: number): number {
  if (startedAt === null) return 0;
  return Math.max(0, (completedAt ?? now) - startedAt);
}
