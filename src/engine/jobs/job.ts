/**
 * A batch while it is queued or processing: its counters, its items and its watchers. Its state
 * changes only through its own methods, each one a step of the lifecycle (begin, settle an item,
 * end), so that the transition table and the counters can never disagree.
 */
import type { Failure, OutcomeCode } from "../errors.js";
import type { BatchRecord } from "../job-store.js";
import type { PaddingPlan } from "../padding.js";
import { type BatchItem, queueKey } from "../scheduling/index.js";
import { type ItemTensor, numbersOf } from "../tensors.js";
import type { RequestTrace } from "../tracer.js";
import type { BatchStatus, ItemResult, Priority } from "../types.js";
import type { ValidSubmit } from "../validation.js";
import { FailureTally } from "./failure-tally.js";
import type { ItemSource, JobInit, Settlement, StoredState, Unrecorded } from "./job-parts.js";
import { assertTransition, isTerminal } from "./job-state.js";

export type { ItemSource, JobInit, Settlement, StoredState, Unrecorded } from "./job-parts.js";

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
  /** True once the item has an outcome (set by {@link Job.settle}). */
  settled: boolean;
  /** When it left for a thread, epoch ms (set at dispatch). */
  dispatchedAt?: number;
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
  /** See {@link JobInit.outputs}. */
  readonly outputs: readonly string[] | undefined;
  /** See {@link JobInit.trace}. */
  readonly trace: RequestTrace | undefined;
  /** The node that runs it (set when its first items leave for a thread); null before. */
  node: string | null;
  #status: BatchStatus;
  #startedAt: number | null;
  #completedAt: number | null = null;
  #error: Failure | null = null;
  #succeeded: number;
  #failed: number;
  /** Failed items by code, for the summary a failed batch ends with. */
  readonly #failures = new FailureTally();
  #items: JobItem[] = [];
  /** Outcomes kept in memory, for jobs that are never stored. */
  readonly #results: (ItemResult | undefined)[] | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #unrecorded: { readonly failure: Failure; readonly indices: Set<number> } | null = null;
  /** What the store holds of a stored job, as its last save answered. */
  #stored: StoredState | undefined;
  /** Set when this process let the job go without an end (see {@link release}). */
  #released = false;
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
    this.outputs = init.outputs ?? undefined;
    this.trace = init.trace;
    this.node = init.node ?? null;
    this.#status = init.status ?? "queued";
    this.#startedAt = init.startedAt ?? null;
    this.#succeeded = init.succeeded ?? 0;
    this.#failed = init.failed ?? 0;
    this.#results =
      init.pk === undefined ? new Array<ItemResult | undefined>(init.total) : undefined;
    if (init.pk !== undefined)
      this.#stored = {
        status: this.#status,
        error: null,
        startedAt: this.#startedAt,
        completedAt: null,
        succeeded: this.#succeeded,
        failed: this.#failed,
      };
  }

  get status(): BatchStatus {
    return this.#status;
  }
  get startedAt(): number | null {
    return this.#startedAt;
  }
  get completedAt(): number | null {
    return this.#completedAt;
  }
  /** Why the job failed or was cancelled. */
  get error(): Failure | null {
    return this.#error;
  }
  get succeeded(): number {
    return this.#succeeded;
  }
  get failed(): number {
    return this.#failed;
  }
  /** Failed items with `code`. */
  failedWith(code: OutcomeCode): number {
    return this.#failures.count(code);
  }
  /** Items loaded into the batcher for this job, in index order. */
  get items(): readonly JobItem[] {
    return this.#items;
  }
  /** Outcomes of a job that is never stored, by index; undefined for stored jobs. */
  get results(): readonly (ItemResult | undefined)[] | undefined {
    return this.#results;
  }
  /** Set when a store write for this job failed (see {@link Unrecorded}). */
  get unrecorded(): Unrecorded | null {
    return this.#unrecorded;
  }

  /** Items with neither an output nor an error yet. */
  get remaining(): number {
    return this.total - this.#succeeded - this.#failed;
  }

  get terminal(): boolean {
    return isTerminal(this.#status);
  }

  /** False once the job has ended here or was let go: its items' outcomes are no longer its. */
  get active(): boolean {
    return !this.terminal && !this.#released;
  }

  /** True once this process let the job go without an end (see {@link release}). */
  get released(): boolean {
    return this.#released;
  }

  /**
   * What the store holds of a stored job (its status, end and counts as its last save answered);
   * undefined for a job that is never stored. Reads show this, so that what they say is what any
   * node reads from the store, never what this process holds and has not saved.
   */
  get stored(): StoredState | undefined {
    return this.#stored;
  }

  /** Takes in what a save answered for this job. */
  record(record: BatchRecord): void {
    this.#stored = {
      status: record.status,
      error: record.error,
      startedAt: record.startedAt,
      completedAt: record.completedAt,
      succeeded: record.succeeded,
      failed: record.failed,
    };
  }

  /**
   * Lets the job go without an end: this process stops running it (its items left the batcher
   * first) and its watchers learn so; its items without a stored outcome are for whoever runs it
   * next.
   */
  release(): void {
    this.#released = true;
    this.#items = [];
    this.disarm();
    this.notify();
  }

  /**
   * A job for a synchronous request: never stored, its outcomes kept in {@link results} for its
   * caller.
   */
  static ephemeral(
    owner: string,
    batchId: string,
    valid: ValidSubmit,
    now: number,
    trace?: RequestTrace,
  ): Job {
    return new Job({
      pk: undefined,
      batchId,
      owner,
      priority: valid.priority,
      modelId: valid.model.name,
      createdAt: now,
      deadline: valid.deadline ?? now + valid.timeoutMs,
      timeoutMs: valid.timeoutMs,
      total: valid.items.length,
      outputs: valid.outputs,
      trace,
    });
  }

  /**
   * Makes the items to queue for it from `inputs` (index order), arriving `now`; `seq` numbers
   * arrivals across jobs; `padding` is how its model pads variable-length inputs.
   */
  load(
    inputs: readonly ItemSource[],
    now: number,
    seq: () => number,
    padding?: PaddingPlan,
  ): readonly JobItem[] {
    this.#items = inputs.map(
      (input): JobItem => ({
        job: this,
        index: input.index,
        requestId: input.requestId,
        model: this.modelId,
        inputs: input.inputs,
        named: this.outputs !== undefined,
        padding,
        queue: queueKey({ model: this.modelId, inputs: input.inputs }, padding),
        priority: this.priority,
        deadline: this.deadline,
        seq: seq(),
        arrival: now,
        group: this,
        queued: false,
        ranBefore: input.started === true,
        settled: false,
      }),
    );
    this.#cursor = 0;
    this.#lastCursor = -1;
    return this.#items;
  }

  /** Calls `onDeadline` when the deadline passes, unless the job ends first. */
  armDeadline(onDeadline: () => void, now: number): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = setTimeout(onDeadline, Math.max(0, this.deadline - now));
  }

  /** Stops the deadline timer (shutdown, or the job ended). */
  disarm(): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
  }

  /** Moves a queued job to processing (its first items went to a thread); false if not queued. */
  begin(now: number): boolean {
    if (this.#status !== "queued") return false;
    this.#move("processing");
    this.#startedAt = now;
    return true;
  }

  /**
   * Gives `item` its outcome and counts it; a job that is never stored keeps the outcome for
   * its caller.
   */
  settle(item: JobItem, s: Settlement): void {
    item.settled = true;
    if (s.error === null) this.#succeeded++;
    else {
      this.#failed++;
      this.#failures.add(s.error);
    }
    if (this.#results !== undefined) {
      this.#results[item.index] = {
        requestId: item.requestId,
        output: s.output === null ? [] : numbersOf(s.output),
        outputs: this.wanted(s.outputs),
        confidence: s.confidence,
        processingTimeMs: s.processingTimeMs,
        error: s.error,
        label: "",
      };
    }
  }

  /** Of an item's outputs, those its caller asked for, in the order asked. */
  wanted<T extends ItemTensor>(outputs: readonly T[] | undefined): readonly T[] | undefined {
    const names = this.outputs;
    if (names === undefined || outputs === undefined) return undefined;
    return names.flatMap((name) => outputs.filter((o) => o.name === name));
  }

  /** Ends the job now with `status` and `error`, whatever its items reached. */
  end(status: "completed" | "failed" | "cancelled", error: Failure | null, now: number): void {
    this.#move(status);
    this.#error = error;
    this.#completedAt = now;
    this.disarm();
  }

  /**
   * Ends the job with its outcome once every item has one: completed, or failed with a summary
   * of its item failures; true when it ended.
   */
  endIfDone(now: number): boolean {
    if (this.remaining !== 0 || this.terminal) return false;
    if (this.#failed > 0) {
      this.end("failed", this.#failures.summary(this.#failed, this.total, this.timeoutMs), now);
      return true;
    }
    // Every outcome was saved and the process stopped before the end was: it did start.
    if (this.#status === "queued") this.#move("processing");
    this.end("completed", null, now);
    return true;
  }

  /**
   * Marks the job's end unsaved: a store write for it failed, and `indices` are the items whose
   * failure `f` is still to be saved. Its items are let go.
   */
  markUnrecorded(f: Failure, indices: Iterable<number>): void {
    this.#unrecorded ??= { failure: f, indices: new Set() };
    for (const index of indices) this.#unrecorded.indices.add(index);
    this.#items = [];
    this.disarm();
  }

  /** The first item still waiting in the batcher, if any. */
  firstQueued(): JobItem | undefined {
    while (this.#cursor < this.#items.length && !(this.#items[this.#cursor] as JobItem).queued)
      this.#cursor++;
    return this.#items[this.#cursor];
  }

  /** The last item still waiting in the batcher, if any (items leave roughly in index order). */
  lastQueued(): JobItem | undefined {
    if (this.#lastCursor < 0 || this.#lastCursor >= this.#items.length)
      this.#lastCursor = this.#items.length - 1;
    while (this.#lastCursor >= 0 && !(this.#items[this.#lastCursor] as JobItem).queued)
      this.#lastCursor--;
    return this.#items[this.#lastCursor];
  }

  /** Items still waiting in the batcher. */
  queuedItems(): JobItem[] {
    return this.#items.filter((item) => item.queued);
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

  /**
   * Resolves once the job has ended (and, if its end was saved, once it was), or was let go (see
   * {@link release}).
   */
  ended(): Promise<void> {
    if ((this.terminal && this.#unrecorded === null) || this.#released) return Promise.resolve();
    return new Promise((resolve) => {
      const unsubscribe = this.subscribe(() => {
        if (!this.terminal && !this.#released) return;
        unsubscribe();
        resolve();
      });
    });
  }

  #move(to: BatchStatus): void {
    assertTransition(this.#status, to);
    this.#status = to;
  }
}
