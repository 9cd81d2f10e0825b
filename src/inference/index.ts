/**
 * Inference: the Piscina pool whose threads each hold their own ONNX Runtime sessions, the model
 * repository it loads, and the reloads that replace its threads.
 */

export { type RepositoryEntry, readModelRepository } from "./model-repository.js";
export {
  createInferencePool,
  type InferencePoolOptions,
  type ReloadOptions,
  type StartedPool,
} from "./piscina-pool.js";
