/**
 * The generated service's implementation: proto messages in, engine calls, proto messages out.
 * Transport-neutral: every adapter (gRPC, Connect, REST) hands it the decoded request and a
 * {@link CallContext}, and maps what it throws with the one error mapping.
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Analytics,
  AnalyticsSchema,
  type BatchConfig,
  type BatchResults,
  BatchResultsSchema,
  type BatchStatus,
  BatchStatusSchema,
  type CancelBatchRequest,
  type ConfigureRequest,
  type GetAnalyticsRequest,
  type GetBatchResultsRequest,
  type GetBatchStatusRequest,
  type GetConfigRequest,
  type GetMetricsRequest,
  type ListBatchesRequest,
  type ListBatchesResponse,
  ListBatchesResponseSchema,
  type ListModelsRequest,
  type ListModelsResponse,
  ListModelsResponseSchema,
  type Metrics,
  MetricsSchema,
  ModelReloadSchema,
  type ReloadModelsRequest,
  type ReloadModelsResponse,
  ReloadModelsResponseSchema,
  type SubmitBatchResponse,
  SubmitBatchResponseSchema,
  type WatchBatchRequest,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import {
  type CancelJobRequest,
  type CreateJobRequest,
  type GetJobRequest,
  type GetJobResultsRequest,
  type Job,
  type JobResult,
  type ListJobsRequest,
  type ListJobsResponse,
  ListJobsResponseSchema,
  type WatchJobRequest,
} from "../../gen/batchprocessor/v1/job_pb.js";
import {
  type BatchProcessor,
  type BatchView,
  type BatchResults as EngineResults,
  type Failure,
  type ModelCatalog,
  type ModelReloadOutcome,
  PermissionDeniedError,
  type Principal,
  type SubmitRequest,
} from "../engine/index.js";
import type {
  AnalyticsReport,
  NodeLoad,
  ResourceMonitor,
  StatsSnapshot,
} from "../metrics/index.js";
import { type SubmitBatchInput, unpackSubmit } from "../wire/index.js";
import { batchingChangeOf, configOf, inWireNames } from "./config-messages.js";
import { jobOf, jobResultOf, uploadLines, uploadSpec } from "./job-messages.js";
import { modelOf, tensorInputsOf, tensorOutputsOf } from "./model-messages.js";

/** Who calls, and the signal that ends the call (client cancel, deadline, shutdown). */
export interface CallContext {
  readonly principal: Principal;
  readonly signal: AbortSignal;
}

/** One method per RPC, named like the generated descriptor's `localName`. */
export interface BatchProcessorServiceImpl {
  submitBatch(request: SubmitBatchInput, call: CallContext): Promise<SubmitBatchResponse>;
  getBatchStatus(request: GetBatchStatusRequest, call: CallContext): Promise<BatchStatus>;
  getBatchResults(request: GetBatchResultsRequest, call: CallContext): Promise<BatchResults>;
  listBatches(request: ListBatchesRequest, call: CallContext): Promise<ListBatchesResponse>;
  cancelBatch(request: CancelBatchRequest, call: CallContext): Promise<BatchStatus>;
  configure(request: ConfigureRequest, call: CallContext): Promise<BatchConfig>;
  getConfig(request: GetConfigRequest, call: CallContext): Promise<BatchConfig>;
  getMetrics(request: GetMetricsRequest, call: CallContext): Promise<Metrics>;
  getAnalytics(request: GetAnalyticsRequest, call: CallContext): Promise<Analytics>;
  watchBatch(request: WatchBatchRequest, call: CallContext): AsyncIterable<BatchStatus>;
  infer(request: SubmitBatchInput, call: CallContext): Promise<BatchResults>;
  listModels(request: ListModelsRequest, call: CallContext): Promise<ListModelsResponse>;
  reloadModels(request: ReloadModelsRequest, call: CallContext): Promise<ReloadModelsResponse>;
  createJob(requests: AsyncIterable<CreateJobRequest>, call: CallContext): Promise<Job>;
  getJob(request: GetJobRequest, call: CallContext): Promise<Job>;
  listJobs(request: ListJobsRequest, call: CallContext): Promise<ListJobsResponse>;
  cancelJob(request: CancelJobRequest, call: CallContext): Promise<Job>;
  watchJob(request: WatchJobRequest, call: CallContext): AsyncIterable<Job>;
  getJobResults(request: GetJobResultsRequest, call: CallContext): AsyncIterable<JobResult>;
}

/** The model repository as the service sees it: the catalog and its reload. */
export interface ModelService {
  readonly catalog: ModelCatalog;
  reload(): Promise<readonly ModelReloadOutcome[]>;
}

/** The deployment's figures as the service reads them (see `metrics/node-figures.ts`). */
export interface FigureService {
  /** Counters of the whole deployment. */
  stats(): Promise<StatsSnapshot>;
  /** Analytics of the whole deployment for `period` and `metrics`. */
  analytics(period: string, metrics: readonly string[]): Promise<AnalyticsReport>;
  /** Each node's load, this one first. */
  nodes(): Promise<readonly NodeLoad[]>;
}

/** What the implementation runs on. */
export interface ServiceDependencies {
  readonly processor: BatchProcessor;
  readonly models: ModelService;
  readonly figures: FigureService;
  readonly resources: ResourceMonitor;
  /** Longest line of a job's upload, bytes. @defaultValue 16 MiB */
  readonly maxLineBytes?: number;
}

/** Builds the implementation over a running processor. */
export function createBatchProcessorService({
  processor,
  models,
  figures,
  resources,
  maxLineBytes = 16 * 1024 * 1024,
}: ServiceDependencies): BatchProcessorServiceImpl {
  return {
    async submitBatch(request, { principal }) {
      const receipt = await processor.submit(principal, submitRequestOf(request));
      return create(SubmitBatchResponseSchema, {
        batchId: receipt.batchId,
        status: receipt.status,
        estimatedCompletionTime: timestamp(receipt.estimatedCompletionTime),
        queuePosition: receipt.queuePosition,
        requestCount: receipt.requestCount,
      });
    },
    async getBatchStatus(request, { principal }) {
      return statusOf(await processor.status(principal, request.batchId));
    },
    async getBatchResults(request, { principal }) {
      return resultsOf(
        await processor.results(principal, request.batchId, { partial: request.partial }),
      );
    },
    async listBatches(request, { principal }) {
      const page = await processor.list(principal, {
        status: request.status,
        limit: request.limit,
        pageToken: request.pageToken,
      });
      return create(ListBatchesResponseSchema, {
        batches: page.batches.map(statusOf),
        nextPageToken: page.nextPageToken ?? "",
      });
    },
    async cancelBatch(request, { principal }) {
      return statusOf(await processor.cancel(principal, request.batchId));
    },
    async configure(request, { principal }) {
      try {
        return configOf(await processor.configure(principal, batchingChangeOf(request)));
      } catch (error) {
        throw inWireNames(error);
      }
    },
    async getConfig() {
      return configOf(processor.config);
    },
    async getMetrics() {
      const [stats, activity, nodes] = await Promise.all([
        figures.stats(),
        processor.activity(),
        figures.nodes(),
      ]);
      const usage = resources.read();
      const finished = stats.totalProcessed;
      return create(MetricsSchema, {
        currentStats: {
          activeBatches: activity.activeBatches,
          queueLength: activity.pendingItems,
          averageBatchSize: stats.averageBatchSize,
          throughputPerSecond: stats.throughputPerSecond,
          averageLatencyMs: stats.averageLatencyMs,
          recentItemsPerSecond: [...stats.recent],
        },
        performanceStats: {
          totalProcessed: finished,
          successRate: finished === 0 ? 1 : stats.totalSucceeded / finished,
          errorRate: finished === 0 ? 0 : stats.totalFailed / finished,
          averageProcessingTimeMs: stats.averageProcessingTimeMs,
        },
        resourceUsage: {
          cpuUsagePercent: usage.cpuUsagePercent,
          memoryUsageMb: usage.memoryUsageMb,
          gpuUsagePercent: usage.gpuUsagePercent,
        },
        nodes: nodes.map((n) => ({
          node: n.node,
          threads: n.threads,
          busyThreads: n.busyThreads,
          itemsPerSecond: n.itemsPerSecond,
          updatedAt: timestampFromMs(Math.round(n.at)),
        })),
      });
    },
    async getAnalytics(request) {
      const report = await figures.analytics(request.period, request.metrics);
      return create(AnalyticsSchema, {
        period: report.period,
        start: timestampFromMs(report.start),
        end: timestampFromMs(report.end),
        series: report.series.map((series) => ({
          metric: series.metric,
          priority: series.priority,
          summary: series.summary,
          points: series.points.map((point) => ({
            time: timestampFromMs(point.time),
            value: point.value,
          })),
        })),
      });
    },
    async *watchBatch(request, { principal, signal }) {
      for await (const view of processor.watch(principal, request.batchId, signal))
        yield statusOf(view);
    },
    // Not async: the decoded message is converted and let go before the wait for the results
    // (an async function would keep it, and a large request's items, until it returns).
    infer(request, { principal, signal }) {
      try {
        return processor.infer(principal, submitRequestOf(request), signal).then(resultsOf);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    async listModels() {
      return create(ListModelsResponseSchema, { models: models.catalog.list().map(modelOf) });
    },
    async reloadModels(_request, { principal }) {
      if (!principal.admin)
        throw new PermissionDeniedError("reload the models", principal.adminNote);
      const changes = await models.reload();
      return create(ReloadModelsResponseSchema, {
        changes: changes.map((c) =>
          create(ModelReloadSchema, { name: c.name, outcome: c.outcome, reason: c.reason }),
        ),
        models: models.catalog.list().map(modelOf),
      });
    },
    async createJob(requests, { principal, signal }) {
      const messages = requests[Symbol.asyncIterator]();
      const spec = await uploadSpec(messages);
      const lines = uploadLines(messages, maxLineBytes);
      return jobOf(await processor.jobs.create(principal, spec, lines, signal));
    },
    async getJob(request, { principal }) {
      return jobOf(await processor.jobs.get(principal, request.jobId));
    },
    async listJobs(request, { principal }) {
      const page = await processor.jobs.list(principal, {
        status: request.status,
        limit: request.limit,
        pageToken: request.pageToken,
      });
      return create(ListJobsResponseSchema, {
        jobs: page.jobs.map(jobOf),
        nextPageToken: page.nextPageToken ?? "",
      });
    },
    async cancelJob(request, { principal }) {
      return jobOf(await processor.jobs.cancel(principal, request.jobId));
    },
    async *watchJob(request, { principal, signal }) {
      for await (const view of processor.jobs.watch(principal, request.jobId, signal))
        yield jobOf(view);
    },
    async *getJobResults(request, { principal, signal }) {
      const lines = processor.jobs.results(principal, request.jobId, request.fromLine, signal);
      for await (const line of lines) yield jobResultOf(line);
    },
  };
}

/** Proto request -> engine request (empty strings and zeros mean "not given"). */
export function submitRequestOf(input: SubmitBatchInput): SubmitRequest {
  const { message: request, inputOf } = unpackSubmit(input);
  return {
    data: request.data.map((item, k) => {
      const names = Object.keys(item.inputs);
      return {
        input: names.length > 0 && inputOf(k).length === 0 ? undefined : inputOf(k),
        inputs: names.length > 0 ? tensorInputsOf(item.inputs) : undefined,
        requestId: item.requestId || undefined,
        shape: item.shape.length > 0 ? item.shape : undefined,
      };
    }),
    outputNames: request.outputNames.length > 0 ? request.outputNames : undefined,
    priority: request.priority || undefined,
    batchId: request.batchId || undefined,
    timeoutMs: request.timeoutMs || undefined,
    metadata: request.metadata as JsonObject | undefined,
  };
}

/** A failure as every protocol writes it: `"DEADLINE_EXCEEDED: the item did not start …"`. */
function failureText(f: Failure | null): string | undefined {
  return f === null ? undefined : `${f.code}: ${f.message}`;
}

function timestamp(ms: number | null) {
  return ms === null ? undefined : timestampFromMs(Math.round(ms));
}

/** Engine status view -> proto BatchStatus. */
export function statusOf(view: BatchView): BatchStatus {
  return create(BatchStatusSchema, {
    batchId: view.batchId,
    status: view.status,
    progress: view.progress,
    completedRequests: view.completedRequests,
    totalRequests: view.totalRequests,
    estimatedCompletionTime: timestamp(view.estimatedCompletionTime),
    processingTimeMs: view.processingTimeMs,
    error: failureText(view.error),
    failedRequests: view.failedRequests,
    queuePosition: view.queuePosition,
    priority: view.priority,
    modelId: view.modelId,
    createdAt: timestamp(view.createdAt),
    startedAt: timestamp(view.startedAt),
    completedAt: timestamp(view.completedAt),
    node: view.node ?? undefined,
  });
}

function resultsOf(results: EngineResults): BatchResults {
  return create(BatchResultsSchema, {
    batchId: results.batchId,
    status: results.status,
    results: results.results.map((r) => ({
      requestId: r.requestId,
      // The results' own array, built for this answer: the message may hold it as it is.
      output: r.outputs === undefined ? (r.output as number[]) : [],
      outputs: r.outputs === undefined ? {} : tensorOutputsOf(r.outputs),
      confidence: r.confidence,
      processingTimeMs: r.processingTimeMs,
      error: failureText(r.error),
      label: r.label,
    })),
    metadata: {
      totalProcessingTimeMs: results.totalProcessingTimeMs,
      averagePerRequestMs: results.averagePerRequestMs,
      batchSize: results.batchSize,
    },
    error: failureText(results.error),
  });
}
