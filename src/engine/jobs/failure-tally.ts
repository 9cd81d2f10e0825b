/**
 * A batch's failed items, counted by code, and the summary a failed batch ends with: expiries are
 * counted on their own (the usual cause, and the one the client can act on by a longer
 * `timeout_ms`), any other failure is counted and its first shown.
 */
import { type Failure, failure, type OutcomeCode } from "../errors.js";

/** See the file comment. */
export class FailureTally {
  /** Failed items by code; created on the first failure. */
  #byCode: Map<OutcomeCode, number> | undefined;
  /** The first failure that is not an expiry. */
  #firstOther: Failure | null = null;

  /** Counts one failed item. */
  add(error: Failure): void {
    this.#byCode ??= new Map();
    this.#byCode.set(error.code, (this.#byCode.get(error.code) ?? 0) + 1);
    if (error.code !== "DEADLINE_EXCEEDED") this.#firstOther ??= error;
  }

  /** Failed items with `code`. */
  count(code: OutcomeCode): number {
    return this.#byCode?.get(code) ?? 0;
  }

  /** The summary of a batch of `total` items, `failed` of them failed (counted or loaded). */
  summary(failed: number, total: number, timeoutMs: number): Failure {
    const expired = this.count("DEADLINE_EXCEEDED");
    const other = failed - expired;
    const first = this.#firstOther;
    const otherText = (count: string) =>
      first === null ? "" : `${count} failed; first: ${first.code}: ${first.message}`;
    if (expired > 0) {
      const text = `${expired} of ${total} items did not start within timeout_ms=${timeoutMs}`;
      return failure(
        "DEADLINE_EXCEEDED",
        other > 0 ? `${text}; ${otherText(`${other} more`)}` : text,
      );
    }
    return failure(first?.code ?? "INTERNAL", otherText(`${other} of ${total} items`));
  }
}
