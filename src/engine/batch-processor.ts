/**
 * The job lifecycle: submit, status, results, list, cancel, watch, infer and configure, on top of
 * the dynamic batcher, a {@link JobStore} and an {@link InferencePool}. Transports call this and
 * nothing below it.
 */
import { randomUUID } from "node:crypto";
import { type AdmissionState, admissionRefusal } from "./admission.js";
import type { ProcessorStats } from "./batch-stats.js";
import { itemResultOf, receiptOf, resultsOf, viewOfRecord } from "./batch-views.js";
import type { Cluster, PeerFigures } from "./cluster.js";
import { ClusterMember, type OverallStats } from "./cluster-member.js";
import {
  BatchEndedError,
  BatchExistsError,
  BatchNotFoundError,
  CancelledError,
  DeadlineExceededError,
  InvalidInputError,
  PermissionDeniedError,
  ResultsNotReadyError,
  ShuttingDownError,
} from "./errors.js";
import type { InferencePool, ModelCatalog } from "./inference-pool.js";
import { IdSequence, ITEM_FAILURES, Job } from "./job.js";
import { JobRunner } from "./job-runner.js";
import { isTerminal } from "./job-state.js";
import type { BatchRecord, JobStore, StoredInput } from "./job-store.js";
import { watchJob } from "./job-watch.js";
import { type EngineLogger, NOOP_LOGGER } from "./logger.js";
import type { EngineObserver } from "./observer.js";
import {
  type BatchingOptions,
  type ProcessorOptions,
  type ResolvedBatchingOptions,
  type ResolvedProcessorOptions,
  resolveBatchingOptions,
  resolveProcessorOptions,
} from "./options.js";
import type {
  BatchResults,
  BatchView,
  ItemResult,
  Principal,
  SubmitReceipt,
  SubmitRequest,
} from "./types.js";
import {
  type ListOptions,
  payloadDigest,
  type ValidSubmit,
  validateBatchId,
  validateListFilter,
  validateSubmit,
} from "./validation.js";
import { warmUp } from "./warm-up.js";

/** Options of {@link BatchProcessor.create}. */
export interface BatchProcessorOptions extends ProcessorOptions {
  readonly store: JobStore;
  readonly pool: InferencePool;
  readonly models: ModelCatalog;
  /** Initial batching options; a configuration saved by `configure` takes precedence. */
  readonly batching?: BatchingOptions;
  readonly logger?: EngineLogger;
  /** Told what the engine does, for metrics. */
  readonly observer?: EngineObserver;
  /** Epoch-ms clock. @defaultValue Date.now */
  readonly clock?: () => number;
  /**
   * The nodes sharing `store`, when there are several: batches then run on whichever node takes
   * them. Without one, this process runs every batch it stores.
   */
  readonly cluster?: Cluster;
}

const SETTINGS_KEY = "batching";

/** Batches one purge call deletes at most. */
const PURGE_CHUNK = 500;

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
  /** This node's part in the cluster; undefined without one. */
  readonly #member: ClusterMember | undefined;
  #batching: ResolvedBatchingOptions;
  /** Ids of infer requests: never stored, so unique per process is enough. */
  readonly #inferIds = new IdSequence();
  #closing = false;
  #storeClosed = false;
  #purgeTimer: NodeJS.Timeout | undefined;

  private constructor(o: BatchProcessorOptions, batching: ResolvedBatchingOptions) {
    this.#store = o.store;
    this.#pool = o.pool;
    this.#models = o.models;
    this.#options = resolveProcessorOptions(o);
    this.#log = o.logger ?? NOOP_LOGGER;
    this.#clock = o.clock ?? Date.now;
    this.#batching = batching;
    this.#runner = new JobRunner({
      store: o.store,
      pool: o.pool,
      batching: () => this.#batching,
      modelMaxBatchSize: (model) => this.#models.get(model)?.maxBatchSize ?? 1,
      log: this.#log,
      clock: this.#clock,
      observer: o.observer,
    });
    this.#observer = o.observer;
    this.#member =
      o.cluster === undefined
        ? undefined
        : new ClusterMember({
            cluster: o.cluster,
            store: o.store,
            runner: this.#runner,
            models: o.models,
            clock: this.#clock,
            log: this.#log,
            batching: () => this.#batching,
            stats: () => this.#runner.stats.snapshot(),
          });
  }

  /**
   * Opens the processor: loads the saved configuration and re-queues unfinished batches (in a
   * cluster: starts taking batches, and hands the cluster any stored batch it does not hold).
   */
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
    await warmUp(
      processor.#pool,
      processor.#models,
      processor.#runner.batcher,
      processor.#batching.maxBatchSize,
      processor.#log,
    );
    if (processor.#member !== undefined)
      await processor.#member.start((next) => processor.#configured(next, "another node"));
    else processor.#runner.recover(await options.store.loadUnfinished(), options.models);
    processor.#purgeTimer = setInterval(
      () => void processor.purge(),
      processor.#options.purgeIntervalMs,
    );
    processor.#purgeTimer.unref();
    return processor;
  }

  /**
   * Warms `models` up on `pool`, feeding the batcher's latency models: a model reload runs it on
   * its new threads before they take traffic.
   */
  warmUp(pool: InferencePool, models: ModelCatalog): Promise<void> {
    return warmUp(pool, models, this.#runner.batcher, this.#batching.maxBatchSize, this.#log);
  }

  /** The live batching configuration. */
  get config(): ResolvedBatchingOptions {
    return this.#batching;
  }

  /** True when this node is one of a cluster. */
  get clustered(): boolean {
    return this.#member !== undefined;
  }

  /**
   * Shares this node's figures for one time bucket with the other nodes of its cluster (see
   * `Cluster.shareFigures`); alone there is no one to share with.
   */
  async shareFigures(key: string, bucket: number, value: unknown, ttlMs: number): Promise<void> {
    await this.#member?.shareFigures(key, bucket, value, ttlMs);
  }

  /** What the other nodes of the cluster shared (see `Cluster.peerFigures`); alone, none. */
  async peerFigures(key: string, buckets: readonly number[]): Promise<PeerFigures[]> {
    return (await this.#member?.peerFigures(key, buckets)) ?? [];
  }

  /** Counters of the whole cluster, or of this node when alone. */
  async overallStats(): Promise<OverallStats> {
    const local = this.#runner.stats.snapshot();
    if (this.#member !== undefined) return this.#member.overallStats(local);
    return {
      ...local,
      activeBatches: this.#runner.activeStored,
      queueLength: this.#runner.batcher.pending,
    };
  }

  /** Why this node cannot serve what needs its cluster (Redis unreachable); undefined if it can. */
  unavailable(): string | undefined {
    return this.#member?.unavailable();
  }

  /** Live counters for metrics and health. */
  stats(): ProcessorStats {
    return {
      pending: this.#runner.batcher.pending,
      pendingByPriority: this.#runner.batcher.pendingByPriority(),
      pendingByModel: this.#runner.batcher.pendingByModel(),
      inFlightBatches: this.#runner.batcher.inFlight,
      activeBatches: this.#runner.activeStored,
      threads: this.#pool.threads,
      ...this.#runner.stats.snapshot(),
    };
  }

  /** Queues a batch durably and returns at once. */
  async submit(principal: Principal, request: SubmitRequest): Promise<SubmitReceipt> {
    this.#assertOpen();
    const valid = validateSubmit(request, this.#models, this.#options.defaultModel);
    const inputs: StoredInput[] = valid.items.map((item, index) => ({
      index,
      requestId: item.requestId,
      // A Float32Array here is the request's own copy (the gRPC reader's): kept, not copied again.
      input: item.data instanceof Float32Array ? item.data : Float32Array.from(item.data),
      shape: item.shape,
    }));
    const payloadHash = valid.batchId === undefined ? null : payloadDigest(valid, inputs);
    if (valid.batchId !== undefined) {
      const existing = await this.#store.findBatch(principal.owner, valid.batchId);
      if (existing !== undefined) return this.#resubmit(existing, payloadHash);
    }
    if (this.#member === undefined) this.#admit(valid, true);
    else this.#refuse(valid, await this.#member.admissionRefusal(valid, this.#admissionState()));
    const now = this.#clock();
    const batchId = valid.batchId ?? `batch_${randomUUID().replaceAll("-", "")}`;
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
    if (this.#member !== undefined) return this.#member.enqueue(record);
    const job = this.#runner.start(record, inputs);
    this.#log.debug(
      { batchId, items: job.total, priority: job.priority, model: job.modelId },
      "batch queued",
    );
    return receiptOf(this.#runner.view(job));
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
    this.#admit(valid, false);
    const now = this.#clock();
    const job = new Job({
      pk: undefined,
      batchId: valid.batchId ?? `infer_${this.#inferIds.next()}`,
      owner: principal.owner,
      priority: valid.priority,
      modelId: valid.model.name,
      createdAt: now,
      deadline: now + valid.timeoutMs,
      timeoutMs: valid.timeoutMs,
      total: valid.items.length,
    });
    const inputs = valid.items.map((item, index) => ({
      index,
      requestId: item.requestId,
      input: item.data,
      shape: item.shape,
    }));
    await this.#runner.runEphemeral(job, inputs, signal);
    if (signal?.aborted) throw new CancelledError();
    if (job.error === ITEM_FAILURES.shutdown) throw new ShuttingDownError();
    if (job.failed === job.total && (job.failures?.get("DEADLINE_EXCEEDED") ?? 0) === job.total) {
      throw new DeadlineExceededError(
        `DEADLINE_EXCEEDED: no item started within timeout_ms=${job.timeoutMs}`,
      );
    }
    // An ended job has an outcome for every item.
    return resultsOf(this.#runner.view(job), job.results as ItemResult[], valid.model.labels);
  }

  /** The status of one batch. */
  async status(principal: Principal, id: string): Promise<BatchView> {
    const batchId = validateBatchId(id);
    const job = this.#runner.live(principal, batchId);
    if (job !== undefined) return this.#runner.view(job);
    const record = await this.#record(principal, batchId);
    return this.#member?.view(record) ?? viewOfRecord(record, this.#clock());
  }

  /** Results of a batch: only once it has ended, unless `partial` (then what is finished so far). */
  async results(
    principal: Principal,
    id: string,
    options: { partial?: boolean } = {},
  ): Promise<BatchResults> {
    const batchId = validateBatchId(id);
    const job = this.#runner.live(principal, batchId);
    const record = job === undefined ? await this.#record(principal, batchId) : undefined;
    const view =
      job !== undefined
        ? this.#runner.view(job)
        : ((await this.#member?.view(record as BatchRecord)) ??
          viewOfRecord(record as BatchRecord, this.#clock()));
    if (!isTerminal(view.status) && options.partial !== true)
      throw new ResultsNotReadyError(batchId, view.status);
    const pk = (job?.pk ?? record?.pk) as number;
    this.#assertStoreOpen();
    const stored = await this.#store.getResults(pk, !isTerminal(view.status));
    return resultsOf(view, stored.map(itemResultOf), this.#models.get(view.modelId)?.labels);
  }

  /** Batches visible to the caller, newest first. */
  async list(
    principal: Principal,
    options: ListOptions = {},
  ): Promise<{ batches: BatchView[]; nextPageToken: string | undefined }> {
    this.#assertStoreOpen();
    const { limit, statuses } = validateListFilter(options);
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
      const job = this.#runner.liveOf(record);
      return job !== undefined ? this.#runner.view(job) : viewOfRecord(record, now);
    });
    return { batches, nextPageToken: page.nextCursor };
  }

  /** Cancels a queued or processing batch; outputs produced before the cancel are kept. */
  async cancel(principal: Principal, id: string): Promise<BatchView> {
    const batchId = validateBatchId(id);
    const job = this.#runner.live(principal, batchId);
    if (job === undefined) {
      const record = await this.#record(principal, batchId);
      if (record.status === "cancelled") return viewOfRecord(record, this.#clock());
      if (isTerminal(record.status) || this.#member === undefined)
        throw new BatchEndedError(batchId, record.status);
      return this.#member.cancel(record);
    }
    this.#runner.cancel(job);
    return this.#runner.view(job);
  }

  /** Status events of one batch: the current state, then every change, ending after the terminal one. */
  async *watch(principal: Principal, id: string, signal?: AbortSignal): AsyncGenerator<BatchView> {
    const batchId = validateBatchId(id);
    const job = this.#runner.live(principal, batchId);
    if (job === undefined) {
      const record = await this.#record(principal, batchId);
      if (this.#member !== undefined) yield* this.#member.watch(record, signal);
      else yield viewOfRecord(record, this.#clock());
      return;
    }
    yield* watchJob(job, {
      view: () => this.#runner.view(job),
      closing: () => this.#closing,
      signal,
    });
  }

  /** Changes the batching configuration for the next dispatched batch; persists it. */
  async configure(principal: Principal, patch: BatchingOptions): Promise<ResolvedBatchingOptions> {
    if (!principal.admin)
      throw new PermissionDeniedError("change the configuration", principal.adminNote);
    const next = resolveBatchingOptions(patch, this.#batching);
    await this.#store.putSetting(SETTINGS_KEY, JSON.stringify(next));
    this.#configured(next, "this node");
    await this.#member?.configured(next);
    return next;
  }

  /** Small state an embedder keeps in the same store (e.g. analytics windows), by key. */
  async loadState(key: string): Promise<unknown> {
    const text = await this.#store.getSetting(`state:${key}`);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }

  /** Saves what {@link loadState} reads back. */
  async saveState(key: string, value: unknown): Promise<void> {
    if (!this.#closing) await this.#store.putSetting(`state:${key}`, JSON.stringify(value));
  }

  /**
   * Deletes ended batches older than the result TTL, {@link PURGE_CHUNK} per store call with the
   * event loop free in between, so a large backlog of expired batches never blocks requests.
   */
  async purge(): Promise<number> {
    const before = this.#clock() - this.#options.resultTtlMs;
    let total = 0;
    await this.#runner.retryUnrecorded();
    try {
      while (!this.#closing) {
        const deleted = await this.#store.purgeFinished(before, PURGE_CHUNK);
        total += deleted;
        if (deleted < PURGE_CHUNK) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      this.#log.error({ err: error }, "purging expired results failed");
    }
    return total;
  }

  /**
   * Stops taking work, lets running model batches finish (within `timeoutMs`), ends watchers and
   * closes the pool and the store. Queued items stay stored and run after the next start.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#purgeTimer);
    await this.#member?.stopTaking();
    this.#runner.shutdown();
    const timeoutMs = options.timeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.#runner.batcher.close().then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    await this.#member?.leave();
    await (drained ? this.#pool.close() : this.#pool.destroy());
    await this.#store.close();
    this.#storeClosed = true;
  }

  // ---- internals -------------------------------------------------------------------------------

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

  #admit(valid: ValidSubmit, durable: boolean): void {
    this.#refuse(valid, admissionRefusal(valid, durable, this.#admissionState()));
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

  #resubmit(existing: BatchRecord, payloadHash: string | null): SubmitReceipt {
    if (existing.payloadHash !== payloadHash) throw new BatchExistsError(existing.batchId);
    const job = this.#runner.liveOf(existing);
    return receiptOf(
      job === undefined ? viewOfRecord(existing, this.#clock()) : this.#runner.view(job),
    );
  }

  async #record(principal: Principal, batchId: string): Promise<BatchRecord> {
    this.#assertStoreOpen();
    const own = await this.#store.findBatch(principal.owner, batchId);
    const record =
      own ?? (principal.admin ? await this.#store.findBatch(undefined, batchId) : undefined);
    if (record === undefined) throw new BatchNotFoundError(batchId);
    return record;
  }
}
