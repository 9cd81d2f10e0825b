/** The batch state machine: one transition table, checked on every change. */
import { IllegalTransitionError } from "./errors.js";
import type { BatchStatus } from "./types.js";

/** Every legal transition; anything else is a bug. */
export const TRANSITIONS: Readonly<Record<BatchStatus, readonly BatchStatus[]>> = {
  queued: ["processing", "failed", "cancelled"],
  processing: ["completed", "failed", "cancelled"],
  completed: [],
  failed: [],
  cancelled: [],
};

/** True for `completed`, `failed` and `cancelled`. */
export function isTerminal(status: BatchStatus): boolean {
  return TRANSITIONS[status].length === 0;
}

/** Throws {@link IllegalTransitionError} unless `from -> to` is in {@link TRANSITIONS}. */
export function assertTransition(from: BatchStatus, to: BatchStatus): void {
  if (!TRANSITIONS[from].includes(to)) throw new IllegalTransitionError(from, to);
}
