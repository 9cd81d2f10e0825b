/**
 * Where a stored batch runs: the seam between the processor and the node or nodes that run its
 * batches. Alone, every batch runs in this process ({@link LocalPlacement}); in a cluster, on
 * whichever node takes it ({@link ClusterPlacement}). The processor calls one method per
 * operation and never asks which it has. A batch live in this process is answered from its job
 * by the processor itself; a placement answers for the others.
 */
import type { BatchRecord, JobStore, StoredInput, UnfinishedBatch } from "../job-store.js";
import type { Job } from "../jobs/index.js";
import type { EngineLogger } from "../logger.js";
import type { ResolvedBatchingOptions } from "../options.js";
import type { AdmissionState } from "../scheduling/index.js";
import type { BatchView, SubmitReceipt } from "../types.js";
import type { ValidSubmit } from "../validation.js";

/** Stored work not yet done, over every node. */
export interface Activity {
  /** Stored batches queued or processing. */
  readonly activeBatches: number;
  /** Their items without an outcome (in a cluster, running ones included). */
  readonly pendingItems: number;
}

/** See the file comment. */
export interface Placement {
  /**
   * Starts running stored batches: alone, those a previous process left unfinished; in a
   * cluster, whatever this node takes, after handing the cluster every stored batch it lacks.
   */
  start(): Promise<void>;
  /** Why a durable submit of `valid` is refused now, or undefined when it may be stored. */
  admissionRefusal(valid: ValidSubmit): Promise<Error | undefined>;
  /** Runs a batch just stored with `inputs`; what the submit answers. */
  enqueue(record: BatchRecord, inputs: readonly StoredInput[]): Promise<SubmitReceipt>;
  /** The status of a stored batch that is not live in this process. */
  view(record: BatchRecord): Promise<BatchView>;
  /**
   * The status of a stored batch live in this process: alone, its live view (the store is this
   * process's); in a cluster, the store's record now with the job's live facts, so that this
   * node's reads agree with every other node's.
   */
  liveView(job: Job): Promise<BatchView>;
  /** Status events of a stored batch not live here: the current one, then each change to the end. */
  watch(record: BatchRecord, signal?: AbortSignal): AsyncIterable<BatchView>;
  /** Cancels a stored batch that is not live here and has not ended. */
  cancel(record: BatchRecord): Promise<BatchView>;
  /** Tells every other node that the batching configuration changed. */
  configured(options: ResolvedBatchingOptions): Promise<void>;
  /** Stored work not yet done, over every node. */
  activity(): Promise<Activity>;
  /** Why this node cannot serve now (its cluster's Redis is unreachable), or undefined. */
  unavailable(): string | undefined;
  /** The first step of a shutdown: take no more batches. */
  stopTaking(): Promise<void>;
  /** The last step, once running model batches have ended: hand back what is held, disconnect. */
  leave(): Promise<void>;
}

/** What every placement is built from. */
export interface PlacementContext {
  readonly store: JobStore;
  readonly runner: PlacementRunner;
  /** The local queue and limits, as admission control reads them. */
  readonly admission: () => AdmissionState;
  /** The batching configuration in force. */
  readonly batching: () => ResolvedBatchingOptions;
  /** Applies a configuration that another node changed. */
  readonly configure: (options: ResolvedBatchingOptions) => void;
  readonly clock: () => number;
  readonly log: EngineLogger;
}

/** The part of the job runner a placement uses, and no more. */
export interface PlacementRunner {
  /** Runs a batch just stored. */
  start(record: BatchRecord, inputs: readonly StoredInput[]): Job;
  /**
   * Runs a stored batch that did not start in this process from its items without an outcome;
   * the live job when it runs here already.
   */
  adopt(loaded: UnfinishedBatch): Job;
  /** Ends a live job as cancelled; resolves whether that was saved. */
  cancel(job: Job): Promise<boolean>;
  /** Lets a live stored job go without an end (see `JobRunner.release`). */
  release(job: Job): void;
  /** A live job's status. */
  view(job: Job): BatchView;
  /** Expected time until `items` more items of `model` have run on this node, ms. */
  estimateMs(model: string, items: number): number | undefined;
}
