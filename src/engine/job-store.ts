/**
 * Persistence as the engine sees it. Implementations live in `src/store/` and must pass the
 * contract suite in `test/contract/`.
 */
import type { Failure } from "./errors.js";
import type { TypedTensor } from "./tensors.js";
import type { BatchStatus, Priority } from "./types.js";

/** A stored batch. */
export interface BatchRecord {
  /** Store-assigned key, unique across owners. */
  readonly pk: number;
  readonly owner: string;
  readonly batchId: string;
  readonly modelId: string;
  readonly priority: Priority;
  readonly status: BatchStatus;
  readonly error: Failure | null;
  readonly timeoutMs: number;
  readonly createdAt: number;
  readonly deadline: number;
  readonly startedAt: number | null;
  readonly completedAt: number | null;
  readonly total: number;
  /** Items with an output. */
  readonly succeeded: number;
  /** Items with an error. */
  readonly failed: number;
  /** Digest of the request, for idempotent resubmits; null when the server chose the id. */
  readonly payloadHash: string | null;
  /**
   * The outputs its items are answered with by name (`outputs`); null for the shorthand answer
   * (the primary output as `output`).
   */
  readonly outputs: readonly string[] | null;
  /** The node that ran it, the latest where several did; null until it started. */
  readonly node: string | null;
}

/**
 * A batch to create: everything but the store-assigned and progress fields, plus its metadata,
 * which is written with it and never read back by the engine.
 */
export type NewBatch = Omit<
  BatchRecord,
  | "pk"
  | "status"
  | "error"
  | "startedAt"
  | "completedAt"
  | "succeeded"
  | "failed"
  | "outputs"
  | "node"
> & {
  readonly metadata: Readonly<Record<string, unknown>>;
  /** See {@link BatchRecord.outputs}; none when absent. */
  readonly outputs?: readonly string[] | null | undefined;
};

/** An item's input as stored. */
export interface StoredInput {
  readonly index: number;
  readonly requestId: string;
  /** The primary input's float32 numbers, row-major; empty for an item in {@link tensors}. */
  readonly input: Float32Array;
  readonly shape: readonly number[];
  /**
   * The item's tensors in its model's input order, the primary one named `PRIMARY`, when they
   * are not one float32 input (several inputs, or another datatype); undefined otherwise.
   */
  readonly tensors?: readonly TypedTensor[] | undefined;
}

/** An item's outcome as stored. */
export interface StoredResult {
  readonly index: number;
  readonly requestId: string;
  /** null when the item has no output (failed, or not finished). */
  readonly output: Float32Array | null;
  /** The outputs its batch asked for by name, when it has them; undefined otherwise. */
  readonly outputs?: readonly TypedTensor[] | undefined;
  readonly confidence: number;
  readonly processingTimeMs: number;
  readonly error: Failure | null;
}

/** The stored work a batch waits behind. */
export interface Backlog {
  /** Items without an outcome in batches queued or processing, per class, the batch's own excluded. */
  readonly pending: Readonly<Record<Priority, number>>;
  /**
   * Of those in its own class, the items of batches stored before it (an estimate where outcomes
   * of the class come out of stored order; never above the class's figure in `pending`).
   */
  readonly aheadInClass: number;
}

/** One item's outcome to write. An item gets exactly one outcome; later writes are ignored. */
export interface ItemWrite {
  readonly pk: number;
  readonly index: number;
  readonly output: Float32Array | null;
  /** The outputs its batch asks for by name (`BatchRecord.outputs`); undefined otherwise. */
  readonly outputs?: readonly TypedTensor[] | undefined;
  readonly confidence: number;
  readonly processingTimeMs: number;
  readonly error: Failure | null;
}

/** A batch's new state to write. */
export interface BatchWrite {
  readonly pk: number;
  readonly status: BatchStatus;
  readonly error: Failure | null;
  readonly startedAt: number | null;
  readonly completedAt: number | null;
  /** The node running it, once it started; kept as the batch's {@link BatchRecord.node}. */
  readonly node?: string | null | undefined;
}

/** What a {@link BatchWrite} changes of a stored batch. */
export type BatchState = Pick<BatchRecord, "status" | "error" | "startedAt" | "completedAt">;

/** Items `lo..hi` (inclusive) of a batch were handed to an inference thread. */
export interface StartedRun {
  readonly pk: number;
  readonly lo: number;
  readonly hi: number;
}

/** A page of batches, newest first. */
export interface ListQuery {
  /** Only this owner's batches; undefined for every owner (admin). */
  readonly owner?: string | undefined;
  readonly statuses?: readonly BatchStatus[] | undefined;
  readonly limit: number;
  /** Opaque cursor from a previous page. */
  readonly cursor?: string | undefined;
}

/** An item without an outcome, and whether it had been handed to a thread (see {@link StartedRun}). */
export interface PendingInput extends StoredInput {
  readonly started: boolean;
}

/** A batch that was queued or processing when the process stopped, with its unfinished items. */
export interface UnfinishedBatch {
  readonly batch: BatchRecord;
  readonly pending: readonly PendingInput[];
}

/** The engine's persistence interface. */
export interface JobStore {
  /**
   * Creates a batch and its items in one transaction. When `(owner, batchId)` exists already,
   * nothing is written and the existing record is returned with `created: false`.
   */
  createBatch(
    batch: NewBatch,
    items: readonly StoredInput[],
  ): Promise<{ created: boolean; record: BatchRecord }>;
  /** A batch by id: the owner's own, or, with owner undefined, any owner's (oldest first). */
  findBatch(owner: string | undefined, batchId: string): Promise<BatchRecord | undefined>;
  /** Item outcomes in index order; `finishedOnly` skips items with neither output nor error. */
  getResults(pk: number, finishedOnly: boolean): Promise<StoredResult[]>;
  /**
   * Writes item outcomes, batch states (by `nextBatchState`, `jobs/job-state.ts`) and started runs in one
   * transaction; counters follow the outcomes. Nothing is written for a batch that has ended.
   * Resolves the records of the batches in `batches` as they stand after it (those that exist).
   */
  save(
    items: readonly ItemWrite[],
    batches: readonly BatchWrite[],
    started?: readonly StartedRun[],
  ): Promise<readonly BatchRecord[]>;
  listBatches(
    query: ListQuery,
  ): Promise<{ batches: BatchRecord[]; nextCursor: string | undefined }>;
  /** Every batch left queued or processing, with the items that have no outcome. */
  loadUnfinished(): Promise<UnfinishedBatch[]>;
  /** One batch with the items that have no outcome (every item is pending in an ended batch too). */
  loadBatch(pk: number): Promise<UnfinishedBatch | undefined>;
  /** Batches queued or processing, and their items without an outcome, over every node. */
  activity(): Promise<{ readonly activeBatches: number; readonly pendingItems: number }>;
  /** The stored work the batch `pk` waits behind, over every node; undefined if no such batch. */
  backlog(pk: number): Promise<Backlog | undefined>;
  /**
   * Deletes at most `limit` batches that ended before `before` (epoch ms), oldest first; returns
   * how many. Callers repeat until fewer than `limit` are deleted, so no call runs long.
   */
  purgeFinished(before: number, limit: number): Promise<number>;
  getSetting(key: string): Promise<string | undefined>;
  putSetting(key: string, value: string): Promise<void>;
  close(): Promise<void>;
}
