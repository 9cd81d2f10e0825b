/**
 * The batch state machine: one transition table, checked on every change, and the one predicate
 * for "this batch changes no more" that the REST streams and the client share.
 */
import { IllegalTransitionError } from "../errors.js";
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
