/**
 * The job lifecycle: submit, status, results, list, cancel, watch, infer and configure, on top of
 * the dynamic batcher, a {@link JobStore} and an {@link InferencePool}. Transports call this and
 * nothing below it.
 */
import { createHash, randomUUID } from "node:crypto";
import { itemResultOf, resultsOf, viewOfJob, viewOfRecord } from "./batch-views.js";
import { type BatchOutcome, DynamicBatcher, queueKey } from "./dynamic-batcher.js";
import {
  BatchEndedError,
  BatchExistsError,
  BatchNotFoundError,
  CancelledError,
  DeadlineExceededError,
  InvalidInputError,
  PermissionDeniedError,
  QueueFullError,
  ResultsNotReadyError,
  ShuttingDownError,
} from "./errors.js";
import type { InferencePool, ModelCatalog } from "./inference-pool.js";
import { ITEM_ERRORS, Job, type JobItem } from "./job.js";
import { isTerminal } from "./job-state.js";
import type { BatchRecord, BatchWrite, ItemWrite, JobStore, StoredInput } from "./job-store.js";
import { type EngineLogger, NOOP_LOGGER } from "./logger.js";
import {
  type BatchingOptions,
  isOptionError,
  type ProcessorOptions,
  type ResolvedBatchingOptions,
  type ResolvedProcessorOptions,
  resolveBatchingOptions,
  resolveProcessorOptions,
} from "./options.js";
import {
  BATCH_STATUSES,
  type BatchResults,
  type BatchStatus,
  type BatchView,
  type ItemResult,
  type Principal,
  type SubmitReceipt,
  type SubmitRequest,
} from "./types.js";
import { type ValidSubmit, validateSubmit } from "./validate-submit.js";

/** Options of {@link BatchProcessor.create}. */
export interface BatchProcessorOptions extends ProcessorOptions {
  readonly store: JobStore;
  readonly pool: InferencePool;
  readonly models: ModelCatalog;
  /** Initial batching options; a configuration saved by `configure` takes precedence. */
  readonly batching?: BatchingOptions;
  readonly logger?: EngineLogger;
  /** Epoch-ms clock. @defaultValue Date.now */
  readonly clock?: () => number;
}

/** Filter of {@link BatchProcessor.list}. */
export interface ListOptions {
  /** A status, or `active` for queued + processing; all when absent. */
  readonly status?: string | undefined;
  /** 1..1000. @defaultValue 10 */
  readonly limit?: number | undefined;
  readonly pageToken?: string | undefined;
}

const SETTINGS_KEY = "batching";
const ACTIVE: readonly BatchStatus[] = ["queued", "processing"];

/** See the file comment. */
export class BatchProcessor {
  readonly #store: JobStore;
  readonly #pool: InferencePool;
  readonly #models: ModelCatalog;
  readonly #options: ResolvedProcessorOptions;
  readonly #log: EngineLogger;
  readonly #clock: () => number;
  readonly #batcher: DynamicBatcher<JobItem>;
  /** Live (queued or processing) jobs by `${owner}\u0000${batchId}`. */
  readonly #jobs = new Map<string, Job>();
  /** Live infer jobs (never stored): failed on shutdown so no caller waits forever. */
  readonly #ephemeral = new Set<Job>();
  #batching: ResolvedBatchingOptions;
  #seq = 0;
  #durableActive = 0;
  #closing = false;
  #purgeTimer: NodeJS.Timeout | undefined;

  private constructor(o: BatchProcessorOptions, batching: ResolvedBatchingOptions) {
    this.#store = o.store;
    this.#pool = o.pool;
    this.#models = o.models;
    this.#options = resolveProcessorOptions(o);
    this.#log = o.logger ?? NOOP_LOGGER;
    this.#clock = o.clock ?? Date.now;
    this.#batching = batching;
    this.#batcher = new DynamicBatcher<JobItem>({
      pool: o.pool,
      options: () => this.#batching,
      modelMaxBatchSize: (model) => this.#models.get(model)?.maxBatchSize ?? 1,
      onDispatch: (items) => this.#onDispatch(items),
      onComplete: (items, outcome) => this.#onComplete(items, outcome),
      onExpired: (items) => this.#fail(items, ITEM_ERRORS.deadline),
      clock: this.#clock,
    });
  }

  /** Opens the processor: loads the saved configuration and re-queues unfinished batches. */
  static async create(options: BatchProcessorOptions): Promise<BatchProcessor> {
    const saved = await options.store.getSetting(SETTINGS_KEY);
    let batching = resolveBatchingOptions(options.batching);
    if (saved !== undefined) {
      try {
        batching = resolveBatchingOptions(JSON.parse(saved) as BatchingOptions, batching);
      } catch (error) {
        (options.logger ?? NOOP_LOGGER).warn(
          { err: error },
          "ignoring an invalid saved batching configuration",
        );
      }
    }
    const processor = new BatchProcessor(options, batching);
    await processor.#warmUp();
    await processor.#recover();
    processor.#purgeTimer = setInterval(
      () => void processor.purge(),
      processor.#options.purgeIntervalMs,
    );
    processor.#purgeTimer.unref();
    return processor;
  }

  /** The live batching configuration. */
  get config(): ResolvedBatchingOptions {
    return this.#batching;
  }

  /** Counters for metrics and health. */
  stats(): {
    pending: number;
    pendingByPriority: Record<string, number>;
    inFlightBatches: number;
    activeBatches: number;
    threads: number;
  } {
    return {
      pending: this.#batcher.pending,
      pendingByPriority: this.#batcher.pendingByPriority(),
      inFlightBatches: this.#batcher.inFlight,
      activeBatches: this.#jobs.size,
      threads: this.#pool.threads,
    };
  }

  /** Queues a batch durably and returns at once. */
  async submit(principal: Principal, request: SubmitRequest): Promise<SubmitReceipt> {
    this.#assertOpen();
    const valid = validateSubmit(request, this.#models, this.#options.defaultModel);
    const payloadHash = valid.batchId === undefined ? null : hashPayload(valid);
    if (valid.batchId !== undefined) {
      const existing = await this.#store.findBatch(principal.owner, valid.batchId);
      if (existing !== undefined) return this.#resubmit(existing, payloadHash);
    }
    this.#admit(valid.items.length, true);
    const now = this.#clock();
    const batchId = valid.batchId ?? `batch_${randomUUID().replaceAll("-", "")}`;
    const inputs: StoredInput[] = valid.items.map((item, index) => ({
      index,
      requestId: item.requestId,
      input: item.data,
      shape: item.shape,
    }));
    const { created, record } = await this.#store.createBatch(
      {
        owner: principal.owner,
        batchId,
        modelId: valid.model.name,
        priority: valid.priority,
        timeoutMs: valid.timeoutMs,
        createdAt: now,
        deadline: now + valid.timeoutMs,
        total: valid.items.length,
        metadata: valid.metadata,
        payloadHash,
      },
      inputs,
    );
    if (!created) return this.#resubmit(record, payloadHash);
    const job = this.#start(record, inputs);
    this.#log.debug(
      { batchId, items: job.total, priority: job.priority, model: job.modelId },
      "batch queued",
    );
    return this.#receipt(job);
  }

  /** Runs a request through the same batcher and resolves with its results; nothing is stored. */
  async infer(
    principal: Principal,
    request: SubmitRequest,
    signal?: AbortSignal,
  ): Promise<BatchResults> {
    this.#assertOpen();
    signal?.throwIfAborted();
    const valid = validateSubmit(request, this.#models, this.#options.defaultModel);
    this.#admit(valid.items.length, false);
    const now = this.#clock();
    const job = new Job({
      pk: undefined,
      batchId: valid.batchId ?? `infer_${randomUUID().replaceAll("-", "")}`,
      owner: principal.owner,
      priority: valid.priority,
      modelId: valid.model.name,
      createdAt: now,
      deadline: now + valid.timeoutMs,
      timeoutMs: valid.timeoutMs,
      total: valid.items.length,
      metadata: valid.metadata,
    });
    const done = new Promise<void>((resolve) => {
      const unsubscribe = job.subscribe(() => {
        if (job.terminal) {
          unsubscribe();
          resolve();
        }
      });
    });
    const onAbort = () => this.#cancelJob(job);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#ephemeral.add(job);
    this.#enqueue(
      job,
      valid.items.map((item, index) => ({
        index,
        requestId: item.requestId,
        input: item.data,
        shape: item.shape,
      })),
    );
    try {
      await done;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#ephemeral.delete(job);
    }
    if (signal?.aborted) throw new CancelledError();
    if (job.error === ITEM_ERRORS.shutdown) throw new ShuttingDownError();
    if (job.failed === job.total && (job.failures.get("DEADLINE_EXCEEDED") ?? 0) === job.total) {
      throw new DeadlineExceededError(
        `DEADLINE_EXCEEDED: no item started within timeout_ms=${job.timeoutMs}`,
      );
    }
    const view = viewOfJob(job, { queuePosition: 0, estimatedCompletionTime: null }, this.#clock());
    return resultsOf(
      view,
      (job.results ?? []).map((r, i) => r ?? emptyResult(`req_${i + 1}`, null)),
    );
  }

  /** The status of one batch. */
  async status(principal: Principal, batchId: string): Promise<BatchView> {
    const job = this.#liveJob(principal, batchId);
    if (job !== undefined) return this.#view(job);
    return viewOfRecord(await this.#record(principal, batchId), this.#clock());
  }

  /** Results of a batch: only once it has ended, unless `partial` (then what is finished so far). */
  async results(
    principal: Principal,
    batchId: string,
    options: { partial?: boolean } = {},
  ): Promise<BatchResults> {
    const job = this.#liveJob(principal, batchId);
    const view =
      job !== undefined
        ? this.#view(job)
        : viewOfRecord(await this.#record(principal, batchId), this.#clock());
    if (!isTerminal(view.status) && options.partial !== true)
      throw new ResultsNotReadyError(batchId, view.status);
    const pk = job?.pk ?? (await this.#record(principal, batchId)).pk;
    const stored = await this.#store.getResults(pk, !isTerminal(view.status));
    return resultsOf(view, stored.map(itemResultOf));
  }

  /** Batches visible to the caller, newest first. */
  async list(
    principal: Principal,
    options: ListOptions = {},
  ): Promise<{ batches: BatchView[]; nextPageToken: string | undefined }> {
    const limit = options.limit === undefined || options.limit === 0 ? 10 : options.limit;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new InvalidInputError("limit", `expected an integer in 1..1000, got ${limit}`);
    let statuses: readonly BatchStatus[] | undefined;
    if (options.status === "active") statuses = ACTIVE;
    else if (options.status !== undefined && options.status !== "" && options.status !== "all") {
      if (!(BATCH_STATUSES as readonly string[]).includes(options.status)) {
        throw new InvalidInputError(
          "status",
          `expected active, all or one of ${BATCH_STATUSES.join(", ")}, got ${JSON.stringify(options.status)}`,
        );
      }
      statuses = [options.status as BatchStatus];
    }
    const page = await this.#store
      .listBatches({
        owner: principal.admin ? undefined : principal.owner,
        statuses,
        limit,
        cursor: options.pageToken || undefined,
      })
      .catch((error: unknown) => {
        if (error instanceof RangeError)
          throw new InvalidInputError("page_token", "is not a token this server issued");
        throw error;
      });
    const now = this.#clock();
    const batches = page.batches.map((record) => {
      const job = this.#jobs.get(jobKey(record.owner, record.batchId));
      return job !== undefined ? this.#view(job) : viewOfRecord(record, now);
    });
    return { batches, nextPageToken: page.nextCursor };
  }

  /** Cancels a queued or processing batch; outputs produced before the cancel are kept. */
  async cancel(principal: Principal, batchId: string): Promise<BatchView> {
    const job = this.#liveJob(principal, batchId);
    if (job === undefined) {
      const record = await this.#record(principal, batchId);
      if (record.status === "cancelled") return viewOfRecord(record, this.#clock());
      throw new BatchEndedError(batchId, record.status);
    }
    this.#cancelJob(job);
    return this.#view(job);
  }

  /** Status events of one batch: the current state, then every change, ending after the terminal one. */
  async *watch(
    principal: Principal,
    batchId: string,
    signal?: AbortSignal,
  ): AsyncGenerator<BatchView> {
    const job = this.#liveJob(principal, batchId);
    if (job === undefined) {
      yield viewOfRecord(await this.#record(principal, batchId), this.#clock());
      return;
    }
    let wake: (() => void) | undefined;
    let dirty = false;
    const unsubscribe = job.subscribe(() => {
      dirty = true;
      wake?.();
    });
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    try {
      let view = this.#view(job);
      yield view;
      while (!isTerminal(view.status)) {
        if (signal?.aborted === true) return;
        if (this.#closing) {
          yield this.#view(job);
          return;
        }
        if (!dirty) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        if (!dirty) continue;
        dirty = false;
        view = this.#view(job);
        yield view;
      }
    } finally {
      unsubscribe();
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Changes the batching configuration for the next dispatched batch; persists it. */
  async configure(principal: Principal, patch: BatchingOptions): Promise<ResolvedBatchingOptions> {
    if (!principal.admin) throw new PermissionDeniedError("change the configuration");
    let next: ResolvedBatchingOptions;
    try {
      next = resolveBatchingOptions(patch, this.#batching, "snake");
    } catch (error) {
      if (isOptionError(error)) throw new InvalidInputError(error.field, error.rule);
      throw error;
    }
    await this.#store.putSetting(SETTINGS_KEY, JSON.stringify(next));
    this.#batching = next;
    this.#log.info({ config: next }, "batching configuration changed");
    return next;
  }

  /** Deletes ended batches older than the result TTL. */
  async purge(): Promise<number> {
    try {
      return await this.#store.purgeFinished(this.#clock() - this.#options.resultTtlMs);
    } catch (error) {
      this.#log.error({ err: error }, "purging expired results failed");
      return 0;
    }
  }

  /**
   * Stops taking work, lets running model batches finish (within `timeoutMs`), ends watchers and
   * closes the pool and the store. Queued items stay stored and run after the next start.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#purgeTimer);
    for (const job of this.#jobs.values()) {
      clearTimeout(job.deadlineTimer);
      job.notify();
    }
    for (const job of this.#ephemeral) this.#endQueuedEphemeral(job);
    const timeoutMs = options.timeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.#batcher.close().then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    await (drained ? this.#pool.close() : this.#pool.destroy());
    await this.#store.close();
  }

  // ---- internals -------------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closing) throw new ShuttingDownError();
  }

  #admit(items: number, durable: boolean): void {
    const pending = this.#batcher.pending;
    if (pending + items > this.#options.maxQueueSize) {
      const retryAfterMs = this.#batcher.estimateMs(this.#options.defaultModel, pending) ?? 1000;
      throw new QueueFullError(
        `queue full: ${pending} items pending, this request adds ${items}, MAX_QUEUE_SIZE is ${this.#options.maxQueueSize}`,
        Math.max(1000, Math.ceil(retryAfterMs)),
      );
    }
    const limit = this.#options.maxConcurrentBatches;
    if (durable && limit > 0 && this.#durableActive >= limit) {
      throw new QueueFullError(
        `too many active batches: ${this.#durableActive} of MAX_CONCURRENT_BATCHES=${limit}`,
        1000,
      );
    }
  }

  #resubmit(existing: BatchRecord, payloadHash: string | null): SubmitReceipt {
    if (existing.payloadHash !== payloadHash) throw new BatchExistsError(existing.batchId);
    const job = this.#jobs.get(jobKey(existing.owner, existing.batchId));
    if (job !== undefined) return this.#receipt(job);
    const view = viewOfRecord(existing, this.#clock());
    return {
      batchId: view.batchId,
      status: view.status,
      estimatedCompletionTime: view.estimatedCompletionTime,
      queuePosition: 0,
      requestCount: view.totalRequests,
    };
  }

  #start(record: BatchRecord, pending: readonly StoredInput[]): Job {
    const job = new Job({ ...record, pk: record.pk });
    this.#jobs.set(jobKey(job.owner, job.batchId), job);
    this.#durableActive++;
    this.#enqueue(job, pending);
    return job;
  }

  #enqueue(job: Job, inputs: readonly StoredInput[]): void {
    const now = this.#clock();
    const items = inputs.map((input): JobItem => {
      const itemShape = input.shape;
      return {
        job,
        index: input.index,
        requestId: input.requestId,
        model: job.modelId,
        itemShape,
        queue: queueKey({ model: job.modelId, itemShape }),
        data: input.input,
        priority: job.priority,
        deadline: job.deadline,
        seq: this.#seq++,
        arrival: now,
        group: job,
        queued: false,
        settled: false,
      };
    });
    job.items = items;
    this.#batcher.enqueue(items);
    job.deadlineTimer = setTimeout(
      () => this.#fail(job.queuedItems(), ITEM_ERRORS.deadline, true),
      Math.max(0, job.deadline - now),
    );
  }

  #onDispatch(items: readonly JobItem[]): void {
    const now = this.#clock();
    let last: Job | undefined;
    for (const { job } of items) {
      if (job === last) continue;
      last = job;
      if (job.status === "queued") {
        job.transition("processing");
        job.startedAt = now;
        job.notify();
      }
    }
  }

  #onComplete(items: readonly JobItem[], outcome: BatchOutcome): void {
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    let errorMessage: string | undefined;
    if (!outcome.ok) {
      const errorId = randomUUID();
      this.#log.error(
        { err: outcome.error, errorId, model: items[0]?.model, size: items.length },
        "model batch failed",
      );
      errorMessage = `INTERNAL: model execution failed (error_id ${errorId})`;
    }
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as JobItem;
      const job = item.job;
      if (job.terminal) continue; // cancelled while running: the outcome was already written
      touched.add(job);
      if (!outcome.ok) {
        job.recordFailure(errorMessage as string);
        this.#keep(job, writes, item, null, 0, 0, errorMessage as string);
        continue;
      }
      const { output, outputSize, confidence, inferenceMs } = outcome.result;
      const row = output.slice(i * outputSize, (i + 1) * outputSize);
      job.succeeded++;
      this.#keep(job, writes, item, row, confidence?.[i] ?? 0, inferenceMs, null);
    }
    this.#commit(writes, touched);
  }

  /** Records an item outcome: in memory for infer jobs, as a write for stored ones. */
  #keep(
    job: Job,
    writes: ItemWrite[],
    item: JobItem,
    output: Float32Array | null,
    confidence: number,
    ms: number,
    error: string | null,
  ): void {
    item.settled = true;
    if (job.pk === undefined) {
      (job.results as (ItemResult | undefined)[])[item.index] = {
        requestId: item.requestId,
        output: output === null ? [] : Array.from(output),
        confidence,
        processingTimeMs: ms,
        error,
      };
    } else {
      writes.push({
        pk: job.pk,
        index: item.index,
        output,
        confidence,
        processingTimeMs: ms,
        error,
      });
    }
  }

  /** Fails items that never ran (deadline, model gone); `removeQueued` takes them out of the batcher first. */
  #fail(items: readonly JobItem[], error: string, removeQueued = false): void {
    const failed = removeQueued ? this.#batcher.remove(items) : items;
    if (failed.length === 0) return;
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    for (const item of failed) {
      if (item.job.terminal) continue;
      item.job.recordFailure(error);
      this.#keep(item.job, writes, item, null, 0, 0, error);
      touched.add(item.job);
    }
    this.#commit(writes, touched);
  }

  /** Ends a live job now: queued items leave the batcher, running ones are written off. */
  #endJob(
    job: Job,
    status: "cancelled" | "failed",
    reason: string,
    queuedError: string,
    runningError: string,
  ): void {
    if (job.terminal) return;
    const waiting = new Set(this.#batcher.remove(job.queuedItems()));
    const writes: ItemWrite[] = [];
    for (const item of job.items) {
      if (item.settled) continue;
      const error = waiting.has(item) ? queuedError : runningError;
      job.recordFailure(error);
      this.#keep(job, writes, item, null, 0, 0, error);
    }
    job.transition(status);
    job.error = reason;
    job.completedAt = this.#clock();
    this.#persist(writes, job.pk === undefined ? [] : [batchWrite(job)]);
    this.#retire(job);
  }

  /** On shutdown, an infer job whose items are still queued fails (its caller gets UNAVAILABLE). */
  #endQueuedEphemeral(job: Job): void {
    if (job.queuedItems().length === 0) return;
    this.#endJob(job, "failed", ITEM_ERRORS.shutdown, ITEM_ERRORS.shutdown, ITEM_ERRORS.shutdown);
  }

  #cancelJob(job: Job): void {
    this.#endJob(
      job,
      "cancelled",
      "CANCELLED: cancelled by request",
      ITEM_ERRORS.cancelledQueued,
      ITEM_ERRORS.cancelledRunning,
    );
  }

  #commit(writes: ItemWrite[], touched: ReadonlySet<Job>): void {
    const batches: BatchWrite[] = [];
    const ended: Job[] = [];
    for (const job of touched) {
      if (job.remaining === 0) {
        const { status, error } = job.outcome();
        job.transition(status);
        job.error = error;
        job.completedAt = this.#clock();
        ended.push(job);
      }
      if (job.pk !== undefined) batches.push(batchWrite(job));
    }
    this.#persist(writes, batches);
    for (const job of ended) this.#retire(job);
    for (const job of touched) if (!job.terminal) job.notify();
  }

  #retire(job: Job): void {
    clearTimeout(job.deadlineTimer);
    if (job.pk !== undefined && this.#jobs.delete(jobKey(job.owner, job.batchId)))
      this.#durableActive--;
    this.#log.debug({ batchId: job.batchId, status: job.status, error: job.error }, "batch ended");
    job.notify();
  }

  #persist(items: ItemWrite[], batches: BatchWrite[]): void {
    if (items.length === 0 && batches.length === 0) return;
    this.#store
      .save(items, batches)
      .catch((error: unknown) => this.#log.error({ err: error }, "saving batch progress failed"));
  }

  #liveJob(principal: Principal, batchId: string): Job | undefined {
    const own = this.#jobs.get(jobKey(principal.owner, batchId));
    if (own !== undefined || !principal.admin) return own;
    for (const job of this.#jobs.values()) if (job.batchId === batchId) return job;
    return undefined;
  }

  async #record(principal: Principal, batchId: string): Promise<BatchRecord> {
    const own = await this.#store.findBatch(principal.owner, batchId);
    const record =
      own ?? (principal.admin ? await this.#store.findBatch(undefined, batchId) : undefined);
    if (record === undefined) throw new BatchNotFoundError(batchId);
    return record;
  }

  #view(job: Job): BatchView {
    const now = this.#clock();
    if (job.terminal)
      return viewOfJob(job, { queuePosition: 0, estimatedCompletionTime: job.completedAt }, now);
    const first = job.firstQueued();
    const queuePosition = first === undefined ? 0 : this.#batcher.positionOf(first);
    const ms = this.#batcher.estimateMs(job.modelId, queuePosition + job.remaining);
    return viewOfJob(
      job,
      { queuePosition, estimatedCompletionTime: ms === undefined ? null : now + ms },
      now,
    );
  }

  #receipt(job: Job): SubmitReceipt {
    const view = this.#view(job);
    return {
      batchId: view.batchId,
      status: view.status,
      estimatedCompletionTime: view.estimatedCompletionTime,
      queuePosition: view.queuePosition,
      requestCount: view.totalRequests,
    };
  }

  /**
   * Runs a few zero-filled batches per model (1 item, an eighth of the limit, the limit) so the
   * first requests do not pay ONNX Runtime's first-run cost and the latency model has points
   * to estimate completion times from before any traffic.
   */
  async #warmUp(): Promise<void> {
    for (const model of this.#models.list()) {
      if (!model.available) continue;
      const shape = model.itemShape.map((d) => (d === -1 ? 4 : d));
      const width = shape.reduce((a, b) => a * b, 1);
      const cap = Math.max(1, Math.min(this.#batching.maxBatchSize, model.maxBatchSize));
      const latency = this.#batcher.latencyOf(model.name);
      for (const size of new Set([1, Math.max(1, Math.floor(cap / 8)), cap])) {
        for (let round = 0; round < 2; round++) {
          try {
            const result = await this.#pool.run({
              model: model.name,
              data: new Float32Array(size * width),
              dims: [size, ...shape],
            });
            if (round > 0) latency.observe(size, result.inferenceMs);
          } catch (error) {
            this.#log.warn({ err: error, model: model.name }, "warm-up batch failed");
            return;
          }
        }
      }
    }
  }

  async #recover(): Promise<void> {
    const unfinished = await this.#store.loadUnfinished();
    for (const { batch, pending } of unfinished) {
      const model = this.#models.get(batch.modelId);
      const job = new Job({ ...batch });
      if (model === undefined || !model.available) {
        this.#jobs.set(jobKey(job.owner, job.batchId), job);
        this.#durableActive++;
        const writes: ItemWrite[] = [];
        for (const input of pending) {
          job.recordFailure(ITEM_ERRORS.modelUnavailable);
          writes.push({
            pk: batch.pk,
            index: input.index,
            output: null,
            confidence: 0,
            processingTimeMs: 0,
            error: ITEM_ERRORS.modelUnavailable,
          });
        }
        this.#commit(writes, new Set([job]));
        continue;
      }
      this.#jobs.set(jobKey(job.owner, job.batchId), job);
      this.#durableActive++;
      this.#enqueue(job, pending);
    }
    if (unfinished.length > 0)
      this.#log.info({ batches: unfinished.length }, "re-queued unfinished batches");
  }
}

function jobKey(owner: string, batchId: string): string {
  return `${owner}\u0000${batchId}`;
}

function batchWrite(job: Job): BatchWrite {
  return {
    pk: job.pk as number,
    status: job.status,
    error: job.error,
    startedAt: job.startedAt,
    completedAt: job.completedAt,
  };
}

function emptyResult(requestId: string, error: string | null): ItemResult {
  return { requestId, output: [], confidence: 0, processingTimeMs: 0, error };
}

/** Digest of everything that defines a request, for idempotent resubmits. */
function hashPayload(valid: ValidSubmit): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify([valid.priority, valid.timeoutMs, valid.model.name, valid.metadata]));
  for (const item of valid.items) {
    hash.update(`\u0000${item.requestId}\u0000${item.shape.join(",")}\u0000`);
    hash.update(new Uint8Array(item.data.buffer, item.data.byteOffset, item.data.byteLength));
  }
  return hash.digest("hex");
}
