/**
 * The client package entry (`batch-processor/client`): the typed client and the contract's
 * message types it speaks.
 */
export type * from "../../gen/batchprocessor/v1/batch_processor_pb.js";
export {
  BatchProcessorClient,
  type ClientOptions,
  type ConfigureInput,
  type SubmitInput,
  TERMINAL_STATUSES,
  transportFor,
} from "./client.js";
