/**
 * Jobs, the engine's room for a batch's life: the job and its state machine, the runner that
 * turns model-batch outcomes, deadlines and cancels into item outcomes and store writes, the
 * journal of writes that failed, and the views every read path answers with.
 */
export {
  isBehind,
  itemResultOf,
  receiptOf,
  resultsOf,
  topLabel,
  viewOf,
  viewOfRecord,
  viewWithLiveFacts,
} from "./batch-views.js";
export { Housekeeping } from "./housekeeping.js";
export { IdSequence } from "./id-sequence.js";
export { CANCELLED_BY_REQUEST, ITEM_FAILURES } from "./item-failures.js";
export { type ItemSource, Job, type JobItem } from "./job.js";
export { JobRunner, type JobRunnerOptions } from "./job-runner.js";
export { assertTransition, isTerminal, nextBatchState, TRANSITIONS } from "./job-state.js";
export { watchJob } from "./job-watch.js";
