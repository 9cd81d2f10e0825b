/**
 * The client package entry (`batch-processor/client`): the typed client and the contract's
 * message types it speaks.
 */
export type * from "../../gen/batchprocessor/v1/batch_processor_pb.js";
export type * from "../../gen/batchprocessor/v1/job_pb.js";
/**
 * True once a batch status (`completed`, `failed`, `cancelled`) changes no more; `isJobEnded`
 * the same for a job (`completed`, `failed`, `cancelled`, `expired`).
 */
export { isJobEnded, isTerminal } from "../engine/index.js";
export {
  BatchProcessorClient,
  type ClientOptions,
  type ConfigureInput,
  type JobItemInput,
  type JobPart,
  type JobSpecInput,
  type SubmitInput,
  transportFor,
} from "./client.js";
