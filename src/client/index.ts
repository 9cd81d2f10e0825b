/**
 * The client package entry (`batch-processor/client`): the typed client and the contract's
 * message types it speaks.
 */
export type * from "../../gen/batchprocessor/v1/batch_processor_pb.js";
/** True once a batch status (`completed`, `failed`, `cancelled`) changes no more. */
export { isTerminal } from "../engine/index.js";
export {
  BatchProcessorClient,
  type ClientOptions,
  type ConfigureInput,
  type SubmitInput,
  transportFor,
} from "./client.js";
