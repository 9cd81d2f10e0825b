/** The contract's service implemented over the engine: proto messages in, engine calls, proto messages out. */
export {
  type BatchProcessorServiceImpl,
  type CallContext,
  createBatchProcessorService,
  type FigureService,
  type ModelService,
  type ServiceDependencies,
  statusOf,
  submitRequestOf,
} from "./batch-processor-service.js";
export {
  createInferenceService,
  type InferenceServiceDependencies,
  type InferenceServiceImpl,
} from "./inference-service.js";
export { jobOf, jobResultOf } from "./job-messages.js";
