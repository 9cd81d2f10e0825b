/** Why a job's lines end without an output and why a job ends other than completed. */
import { type Failure, failure } from "../errors.js";

/** One value per cause. */
export const JOB_FAILURES = Object.freeze({
  cancelledLine: failure("CANCELLED", "the job was cancelled before the line ran"),
  expiredLine: failure(
    "DEADLINE_EXCEEDED",
    "the job's completion window ended before the line ran",
  ),
  failedLine: failure("UNAVAILABLE", "the job failed before the line's outcome was saved"),
  cancelled: failure("CANCELLED", "cancelled by request"),
  expired: failure("DEADLINE_EXCEEDED", "the completion window ended"),
  modelGone: failure("UNAVAILABLE", "the job's model is no longer available"),
  storeFailed: failure("INTERNAL", "a write to the store failed; the job cannot go on"),
});

/** A job's failure with how many of its lines did not run, when some did not. */
export function withUnrun(error: Failure, unrun: number, total: number): Failure {
  return unrun === 0
    ? error
    : { code: error.code, message: `${error.message} (${unrun} of ${total} lines did not run)` };
}
