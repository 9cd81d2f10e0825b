/** Builds the read-side views (status, results) from live jobs and stored records. */

import type { Job } from "./job.js";
import type { BatchRecord, StoredResult } from "./job-store.js";
import type { BatchResults, BatchView, ItemResult } from "./types.js";

/** Live facts about a job that only the scheduler knows. */
export interface LiveFacts {
  readonly queuePosition: number;
  readonly estimatedCompletionTime: number | null;
}

/** Status of a queued or processing job. */
export function viewOfJob(job: Job, live: LiveFacts, now: number): BatchView {
  const finished = job.succeeded + job.failed;
  return {
    batchId: job.batchId,
    status: job.status,
    priority: job.priority,
    modelId: job.modelId,
    progress: job.total === 0 ? 0 : finished / job.total,
    completedRequests: finished,
    failedRequests: job.failed,
    totalRequests: job.total,
    queuePosition: job.terminal ? 0 : live.queuePosition,
    estimatedCompletionTime: job.terminal ? job.completedAt : live.estimatedCompletionTime,
    processingTimeMs: elapsed(job.startedAt, job.completedAt, now),
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    completedAt: job.completedAt,
    error: job.error,
    metadata: job.metadata,
  };
}

/** Status of a stored batch that no live job holds (it has ended). */
export function viewOfRecord(record: BatchRecord, now: number): BatchView {
  const finished = record.succeeded + record.failed;
  return {
    batchId: record.batchId,
    status: record.status,
    priority: record.priority,
    modelId: record.modelId,
    progress: record.total === 0 ? 0 : finished / record.total,
    completedRequests: finished,
    failedRequests: record.failed,
    totalRequests: record.total,
    queuePosition: 0,
    estimatedCompletionTime: record.completedAt,
    processingTimeMs: elapsed(record.startedAt, record.completedAt, now),
    createdAt: record.createdAt,
    startedAt: record.startedAt,
    completedAt: record.completedAt,
    error: record.error,
    metadata: record.metadata,
  };
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
