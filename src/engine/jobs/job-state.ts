/**
 * The batch state machine: one transition table, checked on every change, the one predicate for
 * "this batch changes no more" that the REST streams and the client share, and the rule by which
 * a store applies a batch's new state.
 */
import { failure, IllegalTransitionError, type OutcomeCode } from "../errors.js";
import type { BatchRecord, BatchState, BatchWrite } from "../job-store.js";
import type { BatchStatus } from "../types.js";

/** Every legal transition; anything else is a bug. */
export const TRANSITIONS: Readonly<Record<BatchStatus, readonly BatchStatus[]>> = {
  queued: ["processing", "failed", "cancelled"],
  processing: ["completed", "failed", "cancelled"],
  completed: [],
  failed: [],
  cancelled: [],
};

/**
 * True for `completed`, `failed` and `cancelled`; false for the other statuses and for any text
 * that is not a status (a wire value from a newer server, say).
 */
export function isTerminal(status: string): boolean {
  return Object.hasOwn(TRANSITIONS, status) && TRANSITIONS[status as BatchStatus].length === 0;
}

/** Throws {@link IllegalTransitionError} unless `from -> to` is in {@link TRANSITIONS}. */
export function assertTransition(from: BatchStatus, to: BatchStatus): void {
  if (!TRANSITIONS[from].includes(to)) throw new IllegalTransitionError(from, to);
}

/**
 * The rule every store applies to a {@link BatchWrite}, so that a batch's status never
 * contradicts its outcomes however many nodes write for it: a batch that has ended keeps its state
 * (the store ignores later writes for it, outcomes included, before calling this); `now` is the
 * batch with this save's outcomes counted. A batch never moves back to queued. An end stands as
 * written, except that a batch whose every item has an output ends `completed`, and one said to be
 * completed while an item has an error ends `failed`, naming the code of its first failed item
 * (`firstErrorCode`). The Redis store applies the same rule in Lua; the contract suite holds both
 * to it.
 */
export function nextBatchState(
  now: BatchRecord,
  write: BatchWrite,
  firstErrorCode: () => OutcomeCode,
): BatchState {
  const startedAt = write.startedAt ?? now.startedAt;
  if (!isTerminal(write.status)) {
    const status = write.status === "queued" && now.status !== "queued" ? now.status : write.status;
    return { status, error: null, startedAt, completedAt: null };
  }
  if (now.succeeded === now.total)
    return { status: "completed", error: null, startedAt, completedAt: write.completedAt };
  if (write.status === "completed" && now.failed > 0)
    return {
      status: "failed",
      error: failure(firstErrorCode(), `${now.failed} of ${now.total} items failed`),
      startedAt,
      completedAt: write.completedAt,
    };
  return { status: write.status, error: write.error, startedAt, completedAt: write.completedAt };
}
