/**
 * Everything that crosses between the main thread and an inference thread: plain typed data,
 * declared in one file. Tensors travel as transferred Float32Arrays.
 */
import type { OutputKind } from "../engine/inference-pool.js";

/** One model as a thread loads it. */
export interface WorkerModel {
  readonly name: string;
  readonly path: string;
  /** Graph input to feed; the session's first input when absent. */
  readonly inputName?: string | undefined;
  /** Graph output to read; the session's first output when absent. */
  readonly outputName?: string | undefined;
  readonly outputKind: OutputKind;
}

/** `workerData` of every inference thread. */
export interface WorkerInit {
  readonly models: readonly WorkerModel[];
  /** Execution providers in order of preference, e.g. `["cuda", "cpu"]`. */
  readonly executionProviders: readonly string[];
  readonly intraOpNumThreads: number;
  /** Nice value for the thread (and the ONNX Runtime threads it starts); 0 leaves it alone. */
  readonly nice: number;
}

/** Run one model batch. */
export interface RunTask {
  readonly kind: "run";
  readonly model: string;
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Report what loaded. */
export interface DescribeTask {
  readonly kind: "describe";
}

/** A task for an inference thread. */
export type WorkerTask = RunTask | DescribeTask;

/** Reply to {@link RunTask}. */
export interface RunReply {
  readonly output: Float32Array;
  readonly outputSize: number;
  readonly confidence: Float32Array | null;
  readonly inferenceMs: number;
}

/** A tensor's declared name and dims (strings are symbolic dims). */
export interface TensorInfo {
  readonly name: string;
  readonly dims: readonly (number | string)[];
}

/** How one model loaded on a thread. */
export interface ModelLoadReport {
  readonly name: string;
  readonly ok: boolean;
  /** Why it failed, in full (for the log: it may name files of the server). */
  readonly error?: string | undefined;
  /** Why it failed, in words fit for API callers. */
  readonly reason?: string | undefined;
  /** The provider the session runs on. */
  readonly provider?: string | undefined;
  /** Set when a preferred provider failed and the session fell back to CPU: why. */
  readonly fallbackReason?: string | undefined;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
}

/** Reply to {@link DescribeTask}. */
export interface DescribeReply {
  readonly models: readonly ModelLoadReport[];
  /** Why the thread's nice value could not be set; absent when it was (or none was asked). */
  readonly niceError?: string | undefined;
}
