/**
 * What the engine needs from inference, declared here and implemented in `src/inference/`
 * (Piscina + ONNX Runtime), so the engine never imports a runtime or a thread API.
 */

import type { BatchTensor } from "./tensors.js";

/** How a model's raw output is read. */
export type OutputKind = "probabilities" | "logits" | "raw";

/** What the engine knows about one model. */
export interface ModelInfo {
  readonly name: string;
  /** False when the model failed to load; `reason` says why. */
  readonly available: boolean;
  readonly reason?: string | undefined;
  /** Per-item input shape; -1 marks a dimension of any size. */
  readonly itemShape: readonly number[];
  /** The model's own batch limit. */
  readonly maxBatchSize: number;
  /**
   * The model's own `max_wait_time_ms`, standing for it instead of the configured one; undefined
   * where the model's config has none.
   */
  readonly maxWaitTimeMs?: number | undefined;
  /** Batch sizes the model runs best at, ascending (its config's); undefined where it has none. */
  readonly preferredBatchSizes?: readonly number[] | undefined;
  /** Threads of its own (its config's `instance_count`); undefined where it shares the pool's. */
  readonly instanceCount?: number | undefined;
  readonly outputKind: OutputKind;
  readonly labels?: readonly string[] | undefined;
  /** The execution provider its sessions run on (`cuda`, `cpu`). */
  readonly executionProvider?: string | undefined;
  /** Why the model runs on the CPU though a provider before it was asked for (it did not load). */
  readonly providerFallback?: string | undefined;
  readonly description?: string | undefined;
  /** When the version serving now was loaded (ms since the epoch); absent when unavailable. */
  readonly loadedAt?: number | undefined;
  /** Why the model's files on disk did not load at the last reload, while this version serves. */
  readonly reloadError?: string | undefined;
  /** The version serving, in a versioned (Triton) repository layout; undefined in the flat one. */
  readonly version?: string | undefined;
  /** The graph input the server feeds (an item's numbers), when the model serves. */
  readonly inputName?: string | undefined;
  /** The graph output the server returns, when the model serves. */
  readonly outputName?: string | undefined;
  /** The graph's inputs as the model declares them (empty when it could not be read). */
  readonly inputs?: readonly TensorSpec[] | undefined;
  /** The graph's outputs as the model declares them. */
  readonly outputs?: readonly TensorSpec[] | undefined;
  /**
   * Pad values of the inputs (graph names) whose dynamic axes may differ within a model batch;
   * undefined where the model pads nothing.
   */
  readonly padding?: Readonly<Record<string, number>> | undefined;
}

/** A graph input or output as the model declares it. */
export interface TensorSpec {
  readonly name: string;
  /** Element type in the Open Inference Protocol's names (`FP32`, `INT64`, `BOOL`, …). */
  readonly datatype: string;
  /** Dimensions, the batch axis first where the model has one; -1 for any size. */
  readonly shape: readonly number[];
  /** The graph's name of each dimension (`sequence`); empty for a fixed or unnamed one. */
  readonly dimNames?: readonly string[] | undefined;
}

/** What a reload of the model repository did to one model. */
export interface ModelReloadOutcome {
  readonly name: string;
  /**
   * `added` and `updated`: the new files serve; `unchanged`; `removed`: gone from the
   * repository, unloaded; `failed`: the new files did not load (`reason`), and the version
   * loaded before, if any, keeps serving.
   */
  readonly outcome: "added" | "updated" | "unchanged" | "removed" | "failed";
  readonly reason?: string | undefined;
}

/** Looks models up by name. */
export interface ModelCatalog {
  get(name: string): ModelInfo | undefined;
  list(): readonly ModelInfo[];
}

/** One model batch to execute. */
export interface InferenceRequest {
  readonly model: string;
  /**
   * Its input tensors, batch axis first, the primary input named `PRIMARY`; ownership
   * moves to the pool (their buffers may be transferred to another thread).
   */
  readonly inputs: readonly BatchTensor[];
  /** Return every output by name ({@link InferenceResult.outputs}) besides the primary one. */
  readonly named: boolean;
  /**
   * Online work (a class with a latency target): it runs before the batches already queued on
   * its thread, or on a thread kept for such work where the pool has one free. @defaultValue false
   */
  readonly urgent?: boolean | undefined;
}

/** The outcome of one model batch. */
export interface InferenceResult {
  /** Row-major output, `batch * outputSize` values (softmax already applied for logits models). */
  readonly output: Float32Array;
  /** Values per item. */
  readonly outputSize: number;
  /** The primary output's dims, batch first (undefined where the pool does not say). */
  readonly outputDims?: readonly number[] | undefined;
  /** Per-item confidence (largest probability) for classifiers, else null. */
  readonly confidence: Float32Array | null;
  /** Wall time of the model run on its thread, ms. */
  readonly inferenceMs: number;
  /**
   * Every output of the graph by name, as the model gives it (batch axis first, no softmax), when
   * the request was `named`.
   */
  readonly outputs?: readonly BatchTensor[] | undefined;
}

/** A set of threads some models' batches run on. */
export interface Lane {
  readonly key: string;
  readonly threads: number;
}

/** A pool of inference threads. */
export interface InferencePool {
  /** Threads that run model batches in parallel (of each model, where models have their own). */
  readonly threads: number;
  /**
   * Model batches each thread holds at once: the one running and those ready behind it. The
   * batcher keeps `threads × pipelineDepth` in flight, plus at most one urgent batch per thread,
   * so none waits in the pool's own queue: each thread holds `pipelineDepth + 1`.
   */
  readonly pipelineDepth: number;
  /**
   * The threads that run `model`'s batches when it has threads of its own: a key for them and
   * how many. Undefined (or no such method): the model shares the pool's {@link threads} with
   * every other model that has none.
   */
  laneOf?(model: string): Lane | undefined;
  /**
   * Threads of every set together: the shared one and the models' own. Undefined (or absent):
   * {@link threads} is all there is.
   */
  readonly allThreads?: number | undefined;
  /**
   * Threads of each set kept for urgent batches, which run there while one is free. Undefined
   * (or 0): urgent batches run on the set's threads, before the batches queued there.
   */
  readonly onlineThreads?: number | undefined;
  run(request: InferenceRequest, signal?: AbortSignal): Promise<InferenceResult>;
  /** Finishes running work, then stops the threads. */
  close(): Promise<void>;
  /** Stops the threads now. */
  destroy(): Promise<void>;
}
