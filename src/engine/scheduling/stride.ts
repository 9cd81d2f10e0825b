/**
 * The stride rule that shares work between the priority classes by their weights, used wherever
 * classes compete: for items within a node's queue and for batches a cluster node takes.
 *
 * Each class has a pass value that grows by `amount / weight` as it is served, and the class with
 * the lowest pass goes next, so while several classes wait each gets a share proportional to its
 * weight and none with a weight above 0 starves. A class that was empty rejoins at the current
 * virtual time (it banks no credit while idle). Classes with weight 0 go only when every weighted
 * class is empty.
 */
import { PRIORITIES, type Priority } from "../types.js";

/** See the file comment. */
export class Stride {
  readonly #pass: Record<Priority, number> = { critical: 0, high: 0, normal: 0, low: 0 };
  #virtualTime = 0;

  constructor(private readonly weights: () => Readonly<Record<Priority, number>>) {}

  /** Pass values, for estimating where an item stands (see `positionInSchedule`). */
  get passes(): Readonly<Record<Priority, number>> {
    return this.#pass;
  }

  /** A class that had nothing waiting has work again: it rejoins at the current virtual time. */
  join(priority: Priority): void {
    this.#pass[priority] = Math.max(this.#pass[priority], this.#virtualTime);
  }

  /** Records that `priority` was served `amount` units (items). */
  charge(priority: Priority, amount = 1): void {
    const weight = this.weights()[priority];
    if (weight <= 0) return;
    this.#virtualTime = this.#pass[priority];
    this.#pass[priority] += amount / weight;
  }

  /** The class that goes next among those for which `waiting` is true; undefined if none. */
  next(waiting: (priority: Priority) => boolean): Priority | undefined {
    const weights = this.weights();
    let best: Priority | undefined;
    for (const p of PRIORITIES) {
      if (weights[p] <= 0 || !waiting(p)) continue;
      if (best === undefined || this.#pass[p] < this.#pass[best]) best = p;
    }
    return best ?? PRIORITIES.find(waiting);
  }

  /** Every class in the order they go next: weighted ones by pass, then weight 0 ones. */
  order(): Priority[] {
    const weights = this.weights();
    const weighted = PRIORITIES.filter((p) => weights[p] > 0);
    // A stable sort keeps the classes' own order (critical first) between equal passes.
    weighted.sort((a, b) => this.#pass[a] - this.#pass[b]);
    return [...weighted, ...PRIORITIES.filter((p) => weights[p] <= 0)];
  }
}
