/** A batch while it is queued or processing: counters, its items, its watchers. */
import { randomUUID } from "node:crypto";
import type { BatchItem } from "./dynamic-batcher.js";
import { type Failure, failure, type OutcomeCode } from "./errors.js";
import { assertTransition, isTerminal } from "./job-state.js";
import type { BatchStatus, ItemResult, Priority } from "./types.js";

/** An item queued on behalf of a {@link Job}. */
export interface JobItem extends BatchItem {
  readonly job: Job;
  readonly index: number;
  readonly requestId: string;
  /**
   * True when the item was handed to a thread by a process that stopped before its outcome was
   * saved: it ran, and its result was lost.
   */
  readonly ranBefore: boolean;
  /** True once the item has an outcome (output or error). */
  settled: boolean;
}

/** Why items end without an output, one value per cause. */
export const ITEM_FAILURES = Object.freeze({
  deadline: failure("DEADLINE_EXCEEDED", "the item did not start before the batch deadline"),
  cancelledQueued: failure("CANCELLED", "the batch was cancelled before the item ran"),
  cancelledRunning: failure("CANCELLED", "the batch was cancelled while the item was running"),
  modelUnavailable: failure("UNAVAILABLE", "the model is no longer available"),
  shutdown: failure("UNAVAILABLE", "the server shut down before the item ran"),
  runLost: failure(
    "UNAVAILABLE",
    "the item was running when the server stopped, and its deadline passed before it could run again",
  ),
  notHandedOver: failure(
    "UNAVAILABLE",
    "the batch was stored but could not be handed to a node; submit it again",
  ),
  nonFiniteOutput: failure(
    "INTERNAL",
    "the model's output for this item is not finite (NaN or Infinity)",
  ),
});

/** Why a batch ended cancelled. */
export const CANCELLED_BY_REQUEST = failure("CANCELLED", "cancelled by request");

/** What a {@link Job} starts from (a new submit, or a batch recovered from the store). */
export interface JobInit {
  /** Store key; undefined for jobs that are never stored (synchronous infer). */
  readonly pk: number | undefined;
  readonly batchId: string;
  readonly owner: string;
  readonly priority: Priority;
  readonly modelId: string;
  readonly createdAt: number;
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly total: number;
  readonly status?: BatchStatus;
  readonly startedAt?: number | null;
  readonly succeeded?: number;
  readonly failed?: number;
}

/** See the file comment. */
export class Job {
  readonly pk: number | undefined;
  readonly batchId: string;
  readonly owner: string;
  readonly priority: Priority;
  readonly modelId: string;
  readonly createdAt: number;
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly total: number;
  status: BatchStatus;
  startedAt: number | null;
  completedAt: number | null = null;
  error: Failure | null = null;
  succeeded: number;
  failed: number;
  /** Failed items by code; created on the first failure. */
  failures: Map<OutcomeCode, number> | undefined;
  /** First item failure, and the first one that is not an expiry, for the batch's summary. */
  firstFailure: Failure | null = null;
  firstOtherFailure: Failure | null = null;
  /** Items loaded into the batcher for this job, index order. */
  items: JobItem[] = [];
  /** Outputs kept in memory for jobs that are never stored. */
  readonly results: (ItemResult | undefined)[] | undefined;
  deadlineTimer: NodeJS.Timeout | undefined;
  /**
   * Set when a store write for this job failed: the failure it ended with, and the items whose
   * failure is still to be saved. Reads then show the job failed, whatever it reached in memory.
   */
  unrecorded: { readonly failure: Failure; readonly indices: Set<number> } | null = null;
  /** Watchers; most jobs have at most one, so no Set until a second one comes. */
  #listeners: (() => void)[] = [];
  #cursor = 0;
  #lastCursor = -1;

  constructor(init: JobInit) {
    this.pk = init.pk;
    this.batchId = init.batchId;
    this.owner = init.owner;
    this.priority = init.priority;
    this.modelId = init.modelId;
    this.createdAt = init.createdAt;
    this.deadline = init.deadline;
    this.timeoutMs = init.timeoutMs;
    this.total = init.total;
    this.status = init.status ?? "queued";
    this.startedAt = init.startedAt ?? null;
    this.succeeded = init.succeeded ?? 0;
    this.failed = init.failed ?? 0;
    this.results =
      init.pk === undefined ? new Array<ItemResult | undefined>(init.total) : undefined;
  }

  /** Items with neither an output nor an error yet. */
  get remaining(): number {
    return this.total - this.succeeded - this.failed;
  }

  get terminal(): boolean {
    return isTerminal(this.status);
  }

  /** Moves to `to`, or throws if the transition table forbids it. */
  transition(to: BatchStatus): void {
    assertTransition(this.status, to);
    this.status = to;
  }

  /** Records one failed item. */
  recordFailure(f: Failure): void {
    this.failed++;
    this.failures ??= new Map();
    this.failures.set(f.code, (this.failures.get(f.code) ?? 0) + 1);
    this.firstFailure ??= f;
    if (f.code !== "DEADLINE_EXCEEDED") this.firstOtherFailure ??= f;
  }

  /** The terminal state and its failure once every item has an outcome. */
  outcome(): { status: BatchStatus; error: Failure | null } {
    if (this.failed === 0) return { status: "completed", error: null };
    return { status: "failed", error: summarize(this) };
  }

  /** The first item still waiting in the batcher, if any. */
  firstQueued(): JobItem | undefined {
    while (this.#cursor < this.items.length && !(this.items[this.#cursor] as JobItem).queued)
      this.#cursor++;
    return this.items[this.#cursor];
  }

  /** The last item still waiting in the batcher, if any (items leave roughly in index order). */
  lastQueued(): JobItem | undefined {
    if (this.#lastCursor < 0 || this.#lastCursor >= this.items.length)
      this.#lastCursor = this.items.length - 1;
    while (this.#lastCursor >= 0 && !(this.items[this.#lastCursor] as JobItem).queued)
      this.#lastCursor--;
    return this.items[this.#lastCursor];
  }

  /** Items still waiting in the batcher. */
  queuedItems(): JobItem[] {
    return this.items.filter((item) => item.queued);
  }

  /** Calls `listener` on every change until the returned function is called. */
  subscribe(listener: () => void): () => void {
    this.#listeners = [...this.#listeners, listener];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /** Tells every watcher that something changed. */
  notify(): void {
    for (const listener of this.#listeners) listener();
  }
}

/**
 * A failed batch's summary: expiries are counted on their own (the usual cause, and the one the
 * client can act on by a longer `timeout_ms`), any other failure is counted and its first shown.
 */
function summarize(job: Job): Failure {
  const expired = job.failures?.get("DEADLINE_EXCEEDED") ?? 0;
  const other = job.failed - expired;
  const first = job.firstOtherFailure;
  const otherText = (count: string) =>
    first === null ? "" : `${count} failed; first: ${first.code}: ${first.message}`;
  if (expired > 0) {
    const text = `${expired} of ${job.total} items did not start within timeout_ms=${job.timeoutMs}`;
    return failure(
      "DEADLINE_EXCEEDED",
      other > 0 ? `${text}; ${otherText(`${other} more`)}` : text,
    );
  }
  return failure(first?.code ?? "INTERNAL", otherText(`${other} of ${job.total} items`));
}

/** Cheap unique ids for one process: a random prefix and a counter. */
export class IdSequence {
  readonly #prefix = randomUUID().slice(0, 8);
  #next = 0;
  next(): string {
    return `${this.#prefix}${(this.#next++).toString(36)}`;
  }
}
