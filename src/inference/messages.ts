/**
 * Everything that crosses between the main thread and an inference thread: plain typed data,
 * declared in one file. Tensors travel as transferred typed arrays.
 */
import type { BatchTensor, OutputKind } from "../engine/index.js";

/** A file of a model's external data, as the model names it. */
export interface ExternalDataFile {
  /** The path the model gives, relative to its folder. */
  readonly path: string;
  /** On shared memory, like the model's bytes. */
  readonly bytes: Uint8Array;
}

/** One version of a model: its files' bytes and the settings of its `config.json`. */
export interface WorkerModelVersion {
  /** `model.onnx`, on shared memory: every thread reads the one copy the main thread holds. */
  readonly bytes: Uint8Array;
  /** The files holding tensors the model keeps outside `model.onnx`. */
  readonly externalData: readonly ExternalDataFile[];
  /** Graph input to feed; the session's first input when absent. */
  readonly inputName?: string | undefined;
  /** Graph output to read; the session's first output when absent. */
  readonly outputName?: string | undefined;
  /** Per-item input shape from `config.json`; read from the graph when absent. */
  readonly inputShape?: readonly number[] | undefined;
  readonly outputKind: OutputKind;
  /** Pad values by input name (`config.json`'s `padding`), checked against the graph at load. */
  readonly padding?: Readonly<Record<string, number>> | undefined;
  /** The model's own providers, in order, from `config.json`; the pool's when absent. */
  readonly executionProviders?: readonly string[] | undefined;
}

/**
 * One model as a thread loads it: the versions to try, in order. A reload lists the new files
 * first and the version serving now second, so a broken new file leaves the old one loaded.
 */
export interface WorkerModel {
  readonly name: string;
  readonly versions: readonly WorkerModelVersion[];
}

/** `workerData` of every inference thread. */
export interface WorkerInit {
  readonly models: readonly WorkerModel[];
  /** Execution providers in order of preference, e.g. `["cuda", "cpu"]`. */
  readonly executionProviders: readonly string[];
  /** The GPU the CUDA provider runs on. */
  readonly cudaDeviceId: number;
  readonly intraOpNumThreads: number;
  /** Nice value for the thread (and the ONNX Runtime threads it starts); 0 leaves it alone. */
  readonly nice: number;
}

/** Run one model batch. */
export interface RunTask {
  readonly kind: "run";
  readonly model: string;
  /** Batch tensors, the primary input named `PRIMARY` (the thread knows the graph's name). */
  readonly inputs: readonly BatchTensor[];
  /** Return every output by name too. */
  readonly named: boolean;
  /** Run before the thread's other waiting batches (see `run-order.ts`). */
  readonly urgent: boolean;
}

/** Report what loaded. */
export interface DescribeTask {
  readonly kind: "describe";
}

/** A task for an inference thread. */
export type WorkerTask = RunTask | DescribeTask;

/** Reply to {@link RunTask}. */
export interface RunReply {
  /** The primary output as float32, softmax applied for logits models. */
  readonly output: Float32Array;
  readonly outputSize: number;
  /** The primary output's dims, batch first. */
  readonly outputDims: readonly number[];
  readonly confidence: Float32Array | null;
  readonly inferenceMs: number;
  /** Every output as the graph gives it, when the task was `named`. */
  readonly outputs?: readonly BatchTensor[] | undefined;
}

/** Reply to a {@link RunTask} that the runtime refused or failed: its words, with no paths. */
export interface RunFailure {
  readonly runError: string;
}

/** A tensor's declared name, element type (ONNX Runtime's name) and dims (strings are symbolic). */
export interface TensorInfo {
  readonly name: string;
  readonly type: string;
  readonly dims: readonly (number | string)[];
}

/** How one model loaded on a thread. */
export interface ModelLoadReport {
  readonly name: string;
  readonly ok: boolean;
  /** Index in {@link WorkerModel.versions} of the version that loaded. */
  readonly version?: number | undefined;
  /** Why each version before the one that loaded (or every version, when none did) failed. */
  readonly errors: readonly string[];
  /** The provider the session runs on. */
  readonly provider?: string | undefined;
  /** Set when a preferred provider failed and the session fell back to CPU: why. */
  readonly fallbackReason?: string | undefined;
  /** The graph's inputs and outputs: of the version that loaded, or of one that could be read. */
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
}

/** Reply to {@link DescribeTask}. */
export interface DescribeReply {
  readonly models: readonly ModelLoadReport[];
  /** Why the thread's nice value could not be set; absent when it was (or none was asked). */
  readonly niceError?: string | undefined;
}
