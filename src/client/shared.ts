/** What both entries of the client export alike: the contract's types and the final states. */
export type * from "../../gen/batchprocessor/v1/batch_processor_pb.js";
export type * from "../../gen/batchprocessor/v1/job_pb.js";
export type * from "../../gen/batchprocessor/v1/tensor_pb.js";
export type {
  ClientOptions,
  ConfigureInput,
  JobItemInput,
  JobPart,
  JobSpecInput,
  SubmitInput,
} from "./client.js";
export { isJobEnded, isTerminal } from "./states.js";
