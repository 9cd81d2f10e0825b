/**
 * How items get their outcomes: from a finished model batch, a deadline, a model gone, a cancel
 * or a shutdown. Each event settles its items (telling the observer), ends the jobs it leaves with
 * nothing to do, and hands the writes to the store as one `save`; the job runner decides when.
 */
import type { Failure } from "../errors.js";
import type { BatchWrite, ItemWrite } from "../job-store.js";
import type { EngineLogger } from "../logger.js";
import type { EngineObserver, ItemOutcome } from "../observer.js";
import type { BatchOutcome } from "../scheduling/index.js";
import { ITEM_FAILURES } from "./item-failures.js";
import type { Job, JobItem, Settlement } from "./job.js";
import { batchWrite } from "./job-journal.js";
import { failed, outcomeOf, settlementOf } from "./outcomes.js";
import type { StoredJobs } from "./stored-jobs.js";

/** What {@link ItemOutcomes} works with. */
export interface ItemOutcomesOptions {
  readonly stored: StoredJobs;
  readonly log: EngineLogger;
  readonly clock: () => number;
  readonly observer?: EngineObserver | undefined;
  /** Takes items out of the batcher; returns those that were still queued. */
  readonly unqueue: (items: readonly JobItem[]) => readonly JobItem[];
}

/** See the file comment. */
export class ItemOutcomes {
  readonly #stored: StoredJobs;
  readonly #log: EngineLogger;
  readonly #clock: () => number;
  readonly #observer: EngineObserver | undefined;
  readonly #unqueue: (items: readonly JobItem[]) => readonly JobItem[];

  constructor(o: ItemOutcomesOptions) {
    this.#stored = o.stored;
    this.#log = o.log;
    this.#clock = o.clock;
    this.#observer = o.observer;
    this.#unqueue = o.unqueue;
  }

  /** A model batch ended: each item's row of its result, or `crashed` for all of them. */
  settleBatch(
    items: readonly JobItem[],
    outcome: BatchOutcome,
    crashed: Settlement | undefined,
  ): void {
    const model = (items[0] as JobItem).model;
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    const now = this.#clock();
    let nonFinite = 0;
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as JobItem;
      // Cancelled while running (the outcome was written then), or let go.
      if (!item.job.active) continue;
      touched.add(item.job);
      const s = outcome.ok ? settlementOf(outcome.result, i, item) : (crashed as Settlement);
      if (outcome.ok && s.error !== null) nonFinite++;
      this.settle(item, s, writes, now);
    }
    if (nonFinite > 0)
      this.#log.warn({ model, items: nonFinite }, "model produced non-finite outputs");
    this.commit(writes, touched);
  }

  /** Gives an item its outcome, tells the observer, and adds the write of a stored one. */
  settle(item: JobItem, s: Settlement, writes: ItemWrite[], now: number, how?: ItemOutcome): void {
    const outcome = how ?? outcomeOf(s);
    this.#observer?.onItemDone?.(
      item.model,
      item.priority,
      outcome,
      now - item.arrival,
      (outcome === "success" || outcome === "failed") && now > item.deadline,
    );
    item.job.settle(item, s);
    if (item.job.pk !== undefined)
      writes.push({
        pk: item.job.pk,
        index: item.index,
        ...s,
        outputs: item.job.wanted(s.outputs),
      });
  }

  /** Fails items that never ran (deadline, model gone); `removeQueued` takes them out of the batcher first. */
  fail(items: readonly JobItem[], error: Failure, removeQueued = false): void {
    const failedItems = removeQueued ? this.#unqueue(items) : items;
    if (failedItems.length === 0) return;
    const writes: ItemWrite[] = [];
    const touched = new Set<Job>();
    const now = this.#clock();
    for (const item of failedItems) {
      if (!item.job.active) continue;
      // An item that ran before a restart did start: its expiry says that its result was lost.
      const f = item.ranBefore && error === ITEM_FAILURES.deadline ? ITEM_FAILURES.runLost : error;
      this.settle(item, failed(f), writes, now);
      touched.add(item.job);
    }
    this.commit(writes, touched);
  }

  /** Ends a live job now: queued items leave the batcher, running ones are written off. */
  endJob(
    job: Job,
    status: "cancelled" | "failed",
    reason: Failure,
    queuedError: Failure,
    runningError: Failure,
  ): Promise<boolean> {
    if (!job.active) return Promise.resolve(true);
    const waiting = new Set(this.#unqueue(job.queuedItems()));
    const writes: ItemWrite[] = [];
    const now = this.#clock();
    const how: ItemOutcome = status === "cancelled" ? "cancelled" : "failed";
    for (const item of job.items)
      if (!item.settled)
        this.settle(item, failed(waiting.has(item) ? queuedError : runningError), writes, now, how);
    job.end(status, reason, now);
    const batches = job.pk === undefined ? [] : [batchWrite(job)];
    const saved = this.#stored.save([job], writes, batches);
    this.#stored.retireOnceSaved([job], saved);
    return saved;
  }

  /** Writes outcomes, ends jobs with nothing left, notifies watchers. */
  commit(writes: ItemWrite[], touched: ReadonlySet<Job>): void {
    const batches: BatchWrite[] = [];
    const ended: Job[] = [];
    const now = this.#clock();
    for (const job of touched) {
      if (job.endIfDone(now)) ended.push(job);
      if (job.pk !== undefined) batches.push(batchWrite(job));
    }
    const saved = this.#stored.save(touched, writes, batches);
    for (const job of touched) if (!job.terminal && job.pk === undefined) job.notify();
    this.#stored.retireOnceSaved(ended, saved);
  }
}
