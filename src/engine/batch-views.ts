/** Builds the read-side views (status, results) from live jobs and stored records. */

import { isTerminal } from "./job-state.js";
import type { BatchRecord, StoredResult } from "./job-store.js";
import type { BatchResults, BatchView, ItemResult } from "./types.js";

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
  };
}

/** Status of a stored batch that no live job holds (it has ended). */
export function viewOfRecord(record: BatchRecord, now: number): BatchView {
  return viewOf(record, { queuePosition: 0, estimatedCompletionTime: record.completedAt }, now);
}

/** Results message from item outcomes. */
export function resultsOf(view: BatchView, items: readonly ItemResult[]): BatchResults {
  const total = view.processingTimeMs;
  return {
    batchId: view.batchId,
    status: view.status,
    results: items,
    totalProcessingTimeMs: total,
    averagePerRequestMs: view.totalRequests === 0 ? 0 : total / view.totalRequests,
    batchSize: view.totalRequests,
    error: view.error,
  };
}

/** A stored outcome as the client sees it. */
export function itemResultOf(stored: StoredResult): ItemResult {
  return {
    requestId: stored.requestId,
    output: stored.output === null ? [] : Array.from(stored.output),
    confidence: stored.confidence,
    processingTimeMs: stored.processingTimeMs,
    error: stored.error,
  };
}

function elapsed(startedAt: number | null, completedAt: number | null, now: number): number {
  if (startedAt === null) return 0;
  return Math.max(0, (completedAt ?? now) - startedAt);
}
