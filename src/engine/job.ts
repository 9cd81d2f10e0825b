/** A batch while it is queued or processing: counters, its items, its watchers. */
import { randomUUID } from "node:crypto";
import type { BatchItem } from "./dynamic-batcher.js";
import { assertTransition, isTerminal } from "./job-state.js";
import type { BatchStatus, ItemResult, Priority } from "./types.js";

/** An item queued on behalf of a {@link Job}. */
export interface JobItem extends BatchItem {
  readonly job: Job;
  readonly index: number;
  readonly requestId: string;
  /** True once the item has an outcome (output or error). */
  settled: boolean;
}

/** Item error prefixes: the code, then a colon and the reason. */
export const ITEM_ERRORS = Object.freeze({
  deadline: "DEADLINE_EXCEEDED: the item did not start before the batch deadline",
  cancelledQueued: "CANCELLED: the batch was cancelled before the item ran",
  cancelledRunning: "CANCELLED: the batch was cancelled while the item was running",
  modelUnavailable: "UNAVAILABLE: the model is no longer available",
  shutdown: "UNAVAILABLE: the server shut down before the item ran",
});

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
  readonly metadata: Readonly<Record<string, unknown>>;
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
  readonly metadata: Readonly<Record<string, unknown>>;
  status: BatchStatus;
  startedAt: number | null;
  completedAt: number | null = null;
  error: string | null = null;
  succeeded: number;
  failed: number;
  /** Failed items by error code (`DEADLINE_EXCEEDED`, ...); created on the first failure. */
  failures: Map<string, number> | undefined;
  /** First item error, for the batch's summary. */
  firstError: string | null = null;
  /** Items loaded into the batcher for this job, index order. */
  items: JobItem[] = [];
  /** Outputs kept in memory for jobs that are never stored. */
  readonly results: (ItemResult | undefined)[] | undefined;
  deadlineTimer: NodeJS.Timeout | undefined;
  /** Watchers; most jobs have at most one, so no Set until a second one comes. */
  #listeners: (() => void)[] = [];
  #cursor = 0;

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
    this.metadata = init.metadata;
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
  recordFailure(error: string): void {
    this.failed++;
    const code = error.slice(0, error.indexOf(":"));
    this.failures ??= new Map();
    this.failures.set(code, (this.failures.get(code) ?? 0) + 1);
    this.firstError ??= error;
  }

  /** The terminal state and error once every item has an outcome. */
  outcome(): { status: BatchStatus; error: string | null } {
    if (this.failed === 0) return { status: "completed", error: null };
    const expired = this.failures?.get("DEADLINE_EXCEEDED") ?? 0;
    if (expired > 0) {
      return {
        status: "failed",
        error: `DEADLINE_EXCEEDED: ${expired} of ${this.total} items did not start within timeout_ms=${this.timeoutMs}`,
      };
    }
    return {
      status: "failed",
      error: `${this.failed} of ${this.total} items failed; first: ${this.firstError}`,
    };
  }

  /** The first item still waiting in the batcher, if any. */
  firstQueued(): JobItem | undefined {
    while (this.#cursor < this.items.length && !(this.items[this.#cursor] as JobItem).queued)
      this.#cursor++;
    return this.items[this.#cursor];
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

/** Cheap unique ids for one process: a random prefix and a counter. */
export class IdSequence {
  readonly #prefix = randomUUID().slice(0, 8);
  #next = 0;
  next(): string {
    return `${this.#prefix}${(this.#next++).toString(36)}`;
  }
}
