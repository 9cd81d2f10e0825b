/**
 * The statuses the contract calls final (`BatchStatus.status`, `Job.status`): a client stops
 * watching there. The server's own state machine lives in the engine; a test holds these lists
 * to it, so the client package needs nothing of the server's.
 */

/** Batch statuses that change no more. */
const FINAL_BATCH_STATUSES: readonly string[] = ["completed", "failed", "cancelled"];
/** Job statuses that change no more. */
const FINAL_JOB_STATUSES: readonly string[] = ["completed", "failed", "cancelled", "expired"];

/** True once a batch status (`completed`, `failed`, `cancelled`) changes no more. */
export function isTerminal(status: string): boolean {
  return FINAL_BATCH_STATUSES.includes(status);
}

/** True once a job status (`completed`, `failed`, `cancelled`, `expired`) changes no more. */
export function isJobEnded(status: string): boolean {
  return FINAL_JOB_STATUSES.includes(status);
}
