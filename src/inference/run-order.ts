/**
 * The order an inference thread runs the batches it holds: urgent ones (online classes) first,
 * each kind in arrival order. A batch passed over {@link MAX_PASSES} times goes next whatever is
 * urgent, so a steady stream of urgent batches delays a background batch by a bounded amount
 * instead of holding it back for good.
 */

/** Urgent batches that may go before one background batch before it goes itself. */
export const MAX_PASSES = 2;

interface Waiting<T> {
  readonly value: T;
  passes: number;
}

/** See the file comment. */
export class RunOrder<T> {
  #urgent: Waiting<T>[] = [];
  #background: Waiting<T>[] = [];

  /** Batches waiting. */
  get size(): number {
    return this.#urgent.length + this.#background.length;
  }

  push(value: T, urgent: boolean): void {
    (urgent ? this.#urgent : this.#background).push({ value, passes: 0 });
  }

  /** The batch to run next, or undefined when none waits. */
  shift(): T | undefined {
    const oldest = this.#background[0];
    if (this.#urgent.length > 0 && (oldest === undefined || oldest.passes < MAX_PASSES)) {
      if (oldest !== undefined) oldest.passes++;
      return this.#urgent.shift()?.value;
    }
    return this.#background.shift()?.value;
  }
}
