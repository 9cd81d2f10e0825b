/**
 * The engine's facade: one method per call of the contract (submit, infer, status, results,
 * list, cancel, watch, configure, jobs), each checking its request and the caller's rights and
 * handing the work to the rooms (`processor-rooms.ts`) that carry it out.
 */
import { BatchLookup } from "./batch-lookup.js";
import type { Jobs } from "./bulk/index.js";
import {
  BatchEndedError,
  BatchExistsError,
  CancelledError,
  DeadlineExceededError,
  PermissionDeniedError,
  ResultsNotReadyError,
  ShuttingDownError,
  StoreUnavailableError,
} from "./errors.js";
import type { InferencePool, ModelCatalog } from "./inference-pool.js";
import type { BatchRecord, JobStore } from "./job-store.js";
import {
  type Housekeeping,
  IdSequence,
  ITEM_FAILURES,
  isTerminal,
  itemResultOf,
  type Job,
  type JobRunner,
  receiptOf,
  resultsOf,
  viewOfRecord,
  watchJob,
} from "./jobs/index.js";
import { type EngineLogger, NOOP_LOGGER } from "./logger.js";
import type { EngineObserver } from "./observer.js";
import {
  type BatchingOptions,
  loadBatchingOptions,
  type ResolvedBatchingOptions,
  type ResolvedProcessorOptions,
  resolveBatchingOptions,
  resolveProcessorOptions,
  saveBatchingOptions,
} from "./options.js";
import type { Activity, Placement } from "./placement/index.js";
import type { BatchProcessorOptions } from "./processor-options.js";
import { roomsOf } from "./processor-rooms.js";
import { type AdmissionState, admissionRefusal, warmUp } from "./scheduling/index.js";
import { submissionOf } from "./submission.js";
import type { EngineTracer } from "./tracer.js";
import type {
  BatchResults,
  BatchView,
  ItemResult,
  Principal,
  ProcessorStats,
  SubmitReceipt,
  SubmitRequest,
} from "./types.js";
import {
  type ListOptions,
  type ValidSubmit,
  validateBatchId,
  validateSubmit,
} from "./validation.js";

/** See the file comment. */
export class BatchProcessor {
  readonly #store: JobStore;
  readonly #pool: InferencePool;
  readonly #models: ModelCatalog;
  readonly #options: ResolvedProcessorOptions;
  readonly #log: EngineLogger;
  readonly #clock: () => number;
  readonly #runner: JobRunner;
  readonly #observer: EngineObserver | undefined;
  readonly #tracer: EngineTracer | undefined;
  readonly #placement: Placement;
  #batching: ResolvedBatchingOptions;
  /** Ids of infer requests: never stored, so unique per process is enough. */
  readonly #inferIds = new IdSequence();
  readonly #housekeeping: Housekeeping;
  readonly #jobs: Jobs;
  readonly #lookup: BatchLookup;
  #closing = false;
  #storeClosed = false;

  private constructor(o: BatchProcessorOptions, batching: ResolvedBatchingOptions) {
    this.#store = o.store;
    this.#pool = o.pool;
    this.#models = o.models;
    this.#options = resolveProcessorOptions(o);
    this.#log = o.logger ?? NOOP_LOGGER;
    this.#clock = o.clock ?? Date.now;
    this.#observer = o.observer;
    this.#tracer = o.tracer;
    this.#batching = batching;
    const rooms = roomsOf(o, {
      options: this.#options,
      log: this.#log,
      clock: this.#clock,
      batching: () => this.#batching,
      admission: () => this.#admissionState(),
      configured: (next) => this.#configured(next, "another node"),
    });
    this.#runner = rooms.runner;
    this.#jobs = rooms.jobs;
    this.#housekeeping = rooms.housekeeping;
    this.#placement = rooms.placement;
    this.#lookup = new BatchLookup({
      store: o.store,
      runner: this.#runner,
      placement: this.#placement,
      clock: this.#clock,
      assertStoreOpen: () => this.#assertStoreOpen(),
    });
  }

  /**
   * Opens the processor: loads the saved configuration, warms the models up, and starts running
   * stored batches where its placement says (see `Placement.start`).
   */
  static async create(options: BatchProcessorOptions): Promise<BatchProcessor> {
    const batching = await loadBatchingOptions(
      options.store,
      options.batching,
      options.logger ?? NOOP_LOGGER,
    );
    const processor = new BatchProcessor(options, batching);
    await processor.warmUp(processor.#pool, processor.#models);
    await processor.#placement.start();
    await processor.#jobs.recover();
    processor.#housekeeping.start();
    return processor;
  }

  /**
   * Warms `models` up on `pool`, feeding the batcher's latency models: a model reload runs it on
   * its new threads before they take traffic.
   */
  warmUp(pool: InferencePool, models: ModelCatalog): Promise<void> {
    return warmUp(pool, models, this.#runner.batcher, this.#batching.maxBatchSize, this.#log);
  }

  /** Jobs: data sets of any size (see `bulk/jobs.ts`). */
  get jobs(): Jobs {
    this.#assertStoreOpen();
    return this.#jobs;
  }

  /** The live batching configuration. */
  get config(): ResolvedBatchingOptions {
    return this.#batching;
  }

  /** Live state of this process, for metrics and health. */
  stats(): ProcessorStats {
    return this.#runner.stats();
  }

  /** Stored work not yet done, over every node (see `Placement.activity`). */
  activity(): Promise<Activity> {
    return this.#placement.activity();
  }

  /**
   * Items of stored batches and lines of jobs without an outcome (running ones included), over
   * every node sharing the store: read from the store, whatever this node holds.
   */
  async backlog(): Promise<{ batchItems: number; jobLines: number }> {
    const [stored, jobLines] = await Promise.all([
      this.#store.activity(),
      this.#jobs.pendingLines(),
    ]);
    return { batchItems: stored.pendingItems, jobLines };
  }

  /** Why this node cannot serve what needs its cluster (Redis unreachable); undefined if it can. */
  unavailable(): string | undefined {
    return this.#placement.unavailable();
  }

  /** Queues a batch durably and returns at once. */
  async submit(principal: Principal, request: SubmitRequest): Promise<SubmitReceipt> {
    this.#assertOpen();
    const { valid, inputs, payloadHash, batchAt } = this.#span("validation", () => {
      const valid = validateSubmit(request, this.#models, this.#options.defaultModel);
      return { valid, ...submissionOf(principal, valid) };
    });
    if (valid.batchId !== undefined) {
      const existing = await this.#store.findBatch(principal.owner, valid.batchId);
      if (existing !== undefined) return this.#resubmit(existing, payloadHash);
    }
    const refusal = await this.#span("admission", () => this.#placement.admissionRefusal(valid));
    this.#refuse(valid, refusal);
    const { created, record } = await this.#store.createBatch(batchAt(this.#clock()), inputs);
    if (!created) return this.#resubmit(record, payloadHash);
    return this.#placement.enqueue(record, inputs);
  }

  /**
   * Runs a request through the same batcher and resolves with its results; nothing is stored.
   * Validates and queues before it waits, and the wait holds the job, not the request: an async
   * function keeps its arguments until it returns, and a large request's items would live that
   * long (each one a garbage collector's copy more).
   */
  infer(principal: Principal, request: SubmitRequest, signal?: AbortSignal): Promise<BatchResults> {
    try {
      this.#assertOpen();
      signal?.throwIfAborted();
      const valid = this.#span("validation", () =>
        validateSubmit(request, this.#models, this.#options.defaultModel),
      );
      this.#span("admission", () =>
        this.#refuse(valid, admissionRefusal(valid, false, this.#admissionState())),
      );
      const batchId = valid.batchId ?? `infer_${this.#inferIds.next()}`;
      const running = this.#runner.infer(principal.owner, batchId, valid, signal);
      return this.#inferResults(running, valid.model.labels, signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #inferResults(
    running: Promise<Job>,
    labels: readonly string[] | undefined,
    signal: AbortSignal | undefined,
  ): Promise<BatchResults> {
    const job = await running;
    if (signal?.aborted) throw new CancelledError();
    if (job.error === ITEM_FAILURES.shutdown) throw new ShuttingDownError();
    if (job.failed === job.total && job.failedWith("DEADLINE_EXCEEDED") === job.total) {
      throw new DeadlineExceededError(
        `DEADLINE_EXCEEDED: no item started within timeout_ms=${job.timeoutMs}`,
      );
    }
    // An ended job has an outcome for every item.
    return resultsOf(this.#runner.view(job), job.results as ItemResult[], labels);
  }

  /** The status of one batch. */
  async status(principal: Principal, id: string): Promise<BatchView> {
    return (await this.#lookup.find(principal, id)).view;
  }

  /** Results of a batch: only once it has ended, unless `partial` (then what is finished so far). */
  async results(
    principal: Principal,
    id: string,
    options: { partial?: boolean } = {},
  ): Promise<BatchResults> {
    const { view, pk } = await this.#lookup.find(principal, id);
    if (!isTerminal(view.status) && options.partial !== true)
      throw new ResultsNotReadyError(view.batchId, view.status);
    this.#assertStoreOpen();
    const stored = await this.#store.getResults(pk, !isTerminal(view.status));
    return resultsOf(view, stored.map(itemResultOf), this.#models.get(view.modelId)?.labels);
  }

  /** Batches visible to the caller, newest first. */
  list(
    principal: Principal,
    options: ListOptions = {},
  ): Promise<{ batches: BatchView[]; nextPageToken: string | undefined }> {
    return this.#lookup.list(principal, options);
  }

  /** Cancels a queued or processing batch; outputs produced before the cancel are kept. */
  async cancel(principal: Principal, id: string): Promise<BatchView> {
    const batchId = validateBatchId(id);
    const job = this.#runner.live(principal, batchId);
    if (job !== undefined) {
      // A cancel whose write failed in a cluster did not take: the batch goes on elsewhere.
      if (!(await this.#runner.cancel(job)) && job.released) throw new StoreUnavailableError();
      return this.#runner.view(job);
    }
    const record = await this.#lookup.record(principal, batchId);
    if (record.status === "cancelled") return viewOfRecord(record, this.#clock());
    if (isTerminal(record.status)) throw new BatchEndedError(batchId, record.status);
    return this.#placement.cancel(record);
  }

  /** Status events of one batch: the current state, then every change, ending after the terminal one. */
  async *watch(principal: Principal, id: string, signal?: AbortSignal): AsyncGenerator<BatchView> {
    const batchId = validateBatchId(id);
    const job = this.#runner.live(principal, batchId);
    if (job === undefined) {
      yield* this.#placement.watch(await this.#lookup.record(principal, batchId), signal);
      return;
    }
    yield* watchJob(job, {
      view: () => this.#runner.view(job),
      closing: () => this.#closing,
      signal,
    });
    // Let go by this node (see `JobRunner.release`): followed where it runs next.
    if (job.released && signal?.aborted !== true)
      yield* this.#placement.watch(await this.#lookup.record(principal, batchId), signal);
  }

  /** Changes the batching configuration for the next dispatched batch; persists it. */
  async configure(principal: Principal, patch: BatchingOptions): Promise<ResolvedBatchingOptions> {
    if (!principal.admin)
      throw new PermissionDeniedError("change the configuration", principal.adminNote);
    const next = resolveBatchingOptions(patch, this.#batching);
    await saveBatchingOptions(this.#store, next);
    this.#configured(next, "this node");
    await this.#placement.configured(next);
    return next;
  }

  /**
   * Saves the ends of jobs whose writes failed and deletes ended batches older than the result
   * TTL (the processor does so every `purgeIntervalMs` by itself); resolves how many it deleted.
   */
  purge(): Promise<number> {
    return this.#housekeeping.run();
  }

  /**
   * Stops taking work, lets running model batches finish (within `timeoutMs`), ends watchers and
   * closes the pool and the store. Queued items stay stored and run after the next start.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#housekeeping.stop();
    await this.#placement.stopTaking();
    // Before the runner fails what is queued: a job's chunk in the batcher runs again after the
    // next start instead.
    await this.#jobs.close();
    this.#runner.shutdown();
    const timeoutMs = options.timeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.#runner.batcher.close().then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    await this.#placement.leave();
    await (drained ? this.#pool.close() : this.#pool.destroy());
    await this.#store.close();
    this.#storeClosed = true;
  }

  /** Reads still work while draining; once the store is closed they answer UNAVAILABLE. */
  #assertStoreOpen(): void {
    if (this.#storeClosed) throw new ShuttingDownError();
  }

  #assertOpen(): void {
    if (this.#closing) throw new ShuttingDownError();
  }

  #admissionState(): AdmissionState {
    return {
      queue: this.#runner.batcher,
      activeStored: this.#runner.activeStored,
      maxQueueSize: this.#options.maxQueueSize,
      maxConcurrentBatches: this.#options.maxConcurrentBatches,
    };
  }

  /** Runs a step of the request being served as a span of its trace, when it is traced. */
  #span<T>(name: string, work: () => T): T {
    return this.#tracer === undefined ? work() : this.#tracer.span(name, work);
  }

  #refuse(valid: ValidSubmit, refusal: Error | undefined): void {
    if (refusal === undefined) return;
    this.#observer?.onRejected?.(valid.model.name, valid.priority, valid.items.length);
    throw refusal;
  }

  #configured(next: ResolvedBatchingOptions, by: string): void {
    this.#batching = next;
    this.#log.info({ config: next, by }, "batching configuration changed");
  }

  async #resubmit(existing: BatchRecord, payloadHash: string | null): Promise<SubmitReceipt> {
    if (existing.payloadHash !== payloadHash) throw new BatchExistsError(existing.batchId);
    const job = this.#runner.liveOf(existing);
    return receiptOf(
      job === undefined ? await this.#placement.view(existing) : this.#runner.view(job),
    );
  }
}
