/** Domain types shared by the engine, the stores and the service layer. */
import type { Failure } from "./errors.js";
import type { ItemTensor } from "./tensors.js";

/** Priority classes, highest first. */
export const PRIORITIES = ["critical", "high", "normal", "low"] as const;
/** A priority class. */
export type Priority = (typeof PRIORITIES)[number];

/** Batch lifecycle states. */
export const BATCH_STATUSES = ["queued", "processing", "completed", "failed", "cancelled"] as const;
/** A batch lifecycle state. */
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/** Who is calling: an opaque owner id (a key fingerprint, never the key) and admin rights. */
export interface Principal {
  readonly owner: string;
  readonly admin: boolean;
  /** Why this caller is not an admin, in the words of whoever decided it (for messages). */
  readonly adminNote?: string | undefined;
}

/** One submitted item, as the transports hand it over: `input` or `inputs`. */
export interface ItemInput {
  /**
   * The model's primary input (the shorthand): its numbers, flattened row-major when `shape` has
   * more than one dimension. A Float32Array is kept as it is, not copied, until its item has run:
   * the caller hands it over and must not change it afterwards.
   */
  readonly input?: ArrayLike<number> | undefined;
  /** The model's inputs by name, each in any datatype the model takes. */
  readonly inputs?: Readonly<Record<string, TensorInput>> | undefined;
  /** Client's id for the item; `req_<n>` (1-based) when absent. */
  readonly requestId?: string | undefined;
  /** Per-item tensor shape; defaults to `[input.length]`. */
  readonly shape?: readonly number[] | undefined;
}

/**
 * One named input of an item: its elements in one of `values`, `strings` (BYTES) or `raw`
 * (little-endian bytes of the model's datatype), converted to the model's datatype.
 */
export interface TensorInput {
  /** Checked against the model's when given. */
  readonly datatype?: string | undefined;
  /** Per-item dims; `[element count]` when absent. */
  readonly shape?: readonly number[] | undefined;
  /** Numbers (integers for integer types; bigints too), or true/false and 0/1 for BOOL. */
  readonly values?: ArrayLike<unknown> | undefined;
  /** The elements of a BYTES input. */
  readonly strings?: readonly string[] | undefined;
  readonly raw?: Uint8Array | undefined;
}

/** A submit (or infer) request. */
export interface SubmitRequest {
  readonly data: readonly ItemInput[];
  /**
   * The outputs to answer with, by name; every output when the items are sent by name and this
   * is empty.
   */
  readonly outputNames?: readonly string[] | undefined;
  /** @defaultValue "normal" */
  readonly priority?: string | undefined;
  /** Client idempotency key, scoped to the caller. */
  readonly batchId?: string | undefined;
  /** Deadline from submission, in ms (100..300000). @defaultValue 5000 */
  readonly timeoutMs?: number | undefined;
  /** Free-form JSON; `model_id` selects the model. */
  readonly metadata?: Readonly<Record<string, unknown>> | undefined;
}

/** What a submit returns. */
export interface SubmitReceipt {
  readonly batchId: string;
  readonly status: BatchStatus;
  /** Epoch ms; null when nothing has been measured yet. */
  readonly estimatedCompletionTime: number | null;
  readonly queuePosition: number;
  readonly requestCount: number;
}

/** A batch's status as every read path reports it. */
export interface BatchView {
  readonly batchId: string;
  readonly status: BatchStatus;
  readonly priority: Priority;
  readonly modelId: string;
  /** Finished items (with an output or an error) / total, 0..1. */
  readonly progress: number;
  readonly completedRequests: number;
  readonly failedRequests: number;
  readonly totalRequests: number;
  readonly queuePosition: number;
  readonly estimatedCompletionTime: number | null;
  /** Time spent processing so far (or in total once ended), ms. */
  readonly processingTimeMs: number;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly completedAt: number | null;
  /** Why the batch failed or was cancelled. */
  readonly error: Failure | null;
  /** The node that ran it (the latest, where several did); null until it started. */
  readonly node: string | null;
}

/** One item's outcome. */
export interface ItemResult {
  readonly requestId: string;
  /** Model output for the item; empty when it failed or never ran. */
  readonly output: readonly number[];
  /**
   * The item's outputs by name, in the model's datatypes, when the request asked for them
   * ({@link ValidSubmit.outputs}); undefined otherwise.
   */
  readonly outputs?: readonly ItemTensor[] | undefined;
  /** Largest class probability for classifiers, else 0. */
  readonly confidence: number;
  /** Wall time of the model batch the item ran in, ms. */
  readonly processingTimeMs: number;
  /** Why the item has no output. */
  readonly error: Failure | null;
  /** The model's name for its largest output (see `labelOf`); empty when it names none. */
  readonly label: string;
}

/** A batch's results. */
export interface BatchResults {
  readonly batchId: string;
  readonly status: BatchStatus;
  readonly results: readonly ItemResult[];
  readonly totalProcessingTimeMs: number;
  readonly averagePerRequestMs: number;
  readonly batchSize: number;
  readonly error: Failure | null;
}

/** The engine's live state, for metrics and health. */
export interface ProcessorStats {
  /** Items waiting to be dispatched. */
  readonly pending: number;
  readonly pendingByPriority: Readonly<Record<Priority, number>>;
  /** Items waiting per model and priority. */
  readonly pendingByModel: ReadonlyMap<string, Readonly<Record<Priority, number>>>;
  /** Model batches dispatched and not yet finished. */
  readonly inFlightBatches: number;
  /** Stored batches queued or processing in this process. */
  readonly activeBatches: number;
  /** Inference threads of every set (the shared one and the models' own). */
  readonly threads: number;
  /** Of those, the ones running a model batch now. */
  readonly busyThreads: number;
}
