/**
 * Weighted fair queuing over the four priority classes of one (model, shape) queue.
 *
 * Between classes the {@link Stride} rule, charged one unit per dispatched item; within a class
 * earliest deadline first, then arrival order.
 */

import { PRIORITIES, type Priority } from "../types.js";
import { positionInSchedule } from "./batch-policy.js";
import { RankTree } from "./rank-tree.js";
import { Stride } from "./stride.js";

/** What the scheduler needs of an item. `queued` is owned by the scheduler. */
export interface SchedulableItem {
  readonly priority: Priority;
  /** Epoch ms after which the item must not start. */
  readonly deadline: number;
  /** Global arrival sequence number (ties within a deadline). */
  readonly seq: number;
  /** Arrival time, epoch ms. */
  readonly arrival: number;
  /** Identity of the request the item came with (requests never merge when batching is off). */
  readonly group: object;
  /** True while the item waits in a scheduler. */
  queued: boolean;
}

/** Entries that left the queue an arrival list may hold beyond twice those waiting. */
const FIFO_SLACK = 1024;

const earlier = (a: SchedulableItem, b: SchedulableItem): boolean =>
  a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);

/** Weighted fair queue of one (model, shape); see the file comment. */
export class PriorityScheduler<T extends SchedulableItem> {
  /** Each class's waiting items in schedule order, with positions in O(log n). */
  readonly #queues = {} as Record<Priority, RankTree<T>>;
  readonly #counts: Record<Priority, number> = { critical: 0, high: 0, normal: 0, low: 0 };
  readonly #stride: Stride;
  #size = 0;
  /** Arrival order, for the oldest waiting item; dead entries are skipped lazily. */
  #fifo: T[] = [];
  #fifoHead = 0;

  constructor(private readonly weights: () => Readonly<Record<Priority, number>>) {
    this.#stride = new Stride(weights);
    for (const p of PRIORITIES) {
      this.#queues[p] = new RankTree<T>(earlier);
    }
  }

  /** Items waiting. */
  get size(): number {
    return this.#size;
  }

  /** Items waiting in one class. */
  countOf(priority: Priority): number {
    return this.#counts[priority];
  }

  /** Adds an item. */
  push(item: T): void {
    const p = item.priority;
    if (this.#counts[p] === 0) this.#stride.join(p);
    item.queued = true;
    this.#queue(p).insert(item);
    this.#fifo.push(item);
    this.#counts[p]++;
    this.#size++;
    // Items leave out of arrival order (classes, deadlines): a queue that never empties (a job's
    // backlog) would keep every item that ever passed through it. Dropping the ones that left
    // once they outnumber those waiting costs O(1) per item.
    if (this.#fifo.length > 2 * this.#size + FIFO_SLACK) {
      this.#fifo = this.#fifo.slice(this.#fifoHead).filter((i) => i.queued);
      this.#fifoHead = 0;
    }
  }

  /** Entries kept for arrival order, waiting or not (at most twice those waiting, plus a slack). */
  get arrivalEntries(): number {
    return this.#fifo.length - this.#fifoHead;
  }

  /** Takes an item out without dispatching it (cancel, deadline). False if it was not waiting. */
  remove(item: T): boolean {
    if (!item.queued) return false;
    item.queued = false;
    this.#queue(item.priority).delete(item);
    this.#counts[item.priority]--;
    this.#size--;
    return true;
  }

  /** The class that goes next, or undefined when empty. */
  nextClass(): Priority | undefined {
    return this.#stride.next(this.#waiting);
  }

  readonly #waiting = (p: Priority): boolean => this.#counts[p] > 0;

  /**
   * Removes up to `max` items in schedule order. With `sameGroup`, stops at the first item that
   * belongs to another request than the first one taken (batching off: no merging). When the
   * class that goes first is one of `online`, the batch takes items of those classes only: an
   * online item's batch is not lengthened by background items (they keep their turn, as the
   * classes are charged per item taken).
   */
  take(max: number, sameGroup = false, online?: (priority: Priority) => boolean): T[] {
    const out: T[] = [];
    const first = this.nextClass();
    if (first === undefined) return out;
    const group = sameGroup ? this.#queue(first).first()?.group : undefined;
    const next =
      online?.(first) === true
        ? () => this.#stride.next((p) => this.#counts[p] > 0 && online(p))
        : () => this.nextClass();
    while (out.length < max) {
      const p = sameGroup ? first : next();
      if (p === undefined) break;
      const queue = this.#queue(p);
      const head = queue.first();
      if (head === undefined || (group !== undefined && head.group !== group)) break;
      queue.shift();
      head.queued = false;
      this.#counts[p]--;
      this.#size--;
      this.#stride.charge(p);
      out.push(head);
    }
    return out;
  }

  /** Arrival time of the oldest waiting item (Infinity when empty). */
  oldestArrival(): number {
    const fifo = this.#fifo;
    while (this.#fifoHead < fifo.length && !(fifo[this.#fifoHead] as T).queued) this.#fifoHead++;
    if (this.#fifoHead > 1024 && this.#fifoHead * 2 > fifo.length) {
      this.#fifo = fifo.slice(this.#fifoHead);
      this.#fifoHead = 0;
    }
    return this.#fifo[this.#fifoHead]?.arrival ?? Number.POSITIVE_INFINITY;
  }

  /** Earliest deadline among waiting items (Infinity when empty). */
  earliestDeadline(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const p of PRIORITIES) {
      const head = this.#queue(p).first();
      if (head !== undefined && head.deadline < min) min = head.deadline;
    }
    return min;
  }

  /**
   * How many waiting items will be dispatched before `item` under the current weights and passes
   * (see {@link positionInSchedule}).
   */
  positionOf(item: T): number {
    if (!item.queued) return 0;
    const p = item.priority;
    return positionInSchedule({
      priority: p,
      ahead: this.aheadInClass(item),
      passes: this.#stride.passes,
      counts: this.#counts,
      weights: this.weights(),
    });
  }

  /** Waiting items of `item`'s class that go before it (earlier deadline, then arrival), O(log n). */
  aheadInClass(item: T): number {
    return this.#queue(item.priority).rank(item);
  }

  #queue(p: Priority): RankTree<T> {
    return this.#queues[p];
  }
}
