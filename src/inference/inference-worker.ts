/**
 * Entry of an inference thread. It creates one ONNX Runtime session per model when the thread
 * starts, before Piscina marks it ready, and keeps them for the thread's life (a reload starts new
 * threads rather than changing the sessions of running ones). Inputs arrive
 * transferred; outputs leave moved.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import ort from "onnxruntime-node";
import { move, transferableSymbol, valueSymbol, workerData } from "piscina";
import {
  type BatchTensor,
  isStrings,
  PRIMARY,
  type TensorData,
  toFloat32,
} from "../engine/index.js";
import { firstLine } from "./error-text.js";
import type {
  DescribeReply,
  RunFailure,
  RunReply,
  RunTask,
  WorkerInit,
  WorkerTask,
} from "./messages.js";
import { RunOrder } from "./run-order.js";
import { datatypeOf, type Loaded, loadAll, ORT_TYPES } from "./worker-sessions.js";

/** Softmax in place per row (numerically stable). */
export function softmaxRows(values: Float32Array, width: number): void {
  for (let r = 0; r < values.length; r += width) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = r; i < r + width; i++) max = Math.max(max, values[i] as number);
    let sum = 0;
    for (let i = r; i < r + width; i++) {
      const e = Math.exp((values[i] as number) - max);
      values[i] = e;
      sum += e;
    }
    for (let i = r; i < r + width; i++) values[i] = (values[i] as number) / sum;
  }
}

/** Largest value per row. */
export function rowMax(values: Float32Array, width: number): Float32Array {
  const out = new Float32Array(values.length / width);
  for (let r = 0; r < out.length; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = r * width; i < (r + 1) * width; i++) max = Math.max(max, values[i] as number);
    out[r] = max;
  }
  return out;
}

async function run(loaded: Map<string, Loaded>, task: RunTask): Promise<RunReply> {
  const entry = loaded.get(task.model);
  if (entry === undefined) throw new Error(`model ${task.model} is not loaded on this thread`);
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of task.inputs)
    feeds[input.name === PRIMARY ? entry.inputName : input.name] = new ort.Tensor(
      ORT_TYPES[input.datatype],
      input.data as ort.Tensor.DataType,
      [...input.dims],
    );
  try {
    return await runFed(entry, feeds, task);
  } finally {
    for (const tensor of Object.values(feeds)) tensor.dispose();
  }
}

/** Runs one batch on its fed tensors and reads its outputs back. */
async function runFed(
  entry: Loaded,
  feeds: Record<string, ort.Tensor>,
  task: Extract<WorkerTask, { kind: "run" }>,
): Promise<RunReply> {
  const fetches = task.named ? entry.session.outputNames : [entry.outputName];
  const batch = task.inputs[0]?.dims[0] ?? 0;
  const started = performance.now();
  let results: ort.InferenceSession.ReturnType;
  try {
    results = await entry.session.run(feeds, [...fetches]);
  } catch (error) {
    throw new RunRefused(firstLine(error).split(`${process.cwd()}/`).join(""));
  }
  const primary = results[entry.outputName] as ort.Tensor;
  const raw = primary.data as TensorData;
  // The primary output in its own buffer: a copy when the named outputs hand this one on (softmax
  // would change theirs too), a conversion when it is not float32.
  const output =
    raw instanceof Float32Array
      ? task.named
        ? raw.slice()
        : ownBuffer(raw)
      : toFloat32(datatypeOf(primary.type) ?? "FP32", raw);
  const outputSize = batch === 0 ? 0 : output.length / batch;
  let confidence: Float32Array | null = null;
  if (entry.model.outputKind === "logits") softmaxRows(output, outputSize);
  if (entry.model.outputKind !== "raw") confidence = rowMax(output, outputSize);
  let outputs: BatchTensor[] | undefined;
  if (task.named) {
    outputs = fetches.map((name) => {
      const tensor = results[name] as ort.Tensor;
      if (tensor.dims[0] !== batch)
        throw new RunRefused(
          `output ${JSON.stringify(name)} has dims [${tensor.dims.join(", ")}]; its first axis is not the batch of ${batch} items`,
        );
      const data = tensor.data as TensorData;
      return {
        name,
        datatype: datatypeOf(tensor.type) ?? "FP32",
        dims: [...tensor.dims],
        data: isStrings(data) ? [...data] : ownBuffer(data),
      };
    });
  }
  const inferenceMs = performance.now() - started;
  return {
    output,
    outputSize,
    outputDims: [...primary.dims],
    confidence,
    inferenceMs,
    outputs,
  };
}

/** A typed array that owns its whole buffer (so it can be transferred): itself or a copy. */
function ownBuffer<T extends Exclude<TensorData, readonly string[]>>(data: T): T {
  return (
    data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice()
  ) as T;
}

/** The runtime refused or failed a batch: answered as a {@link RunFailure}, not thrown. */
class RunRefused extends Error {}

/** Wraps a reply so Piscina transfers its buffers instead of copying them. */
function moved(reply: RunReply): unknown {
  const buffers = new Set<ArrayBufferLike>([reply.output.buffer]);
  if (reply.confidence !== null) buffers.add(reply.confidence.buffer);
  for (const tensor of reply.outputs ?? [])
    if (!isStrings(tensor.data)) buffers.add(tensor.data.buffer);
  return move({ [transferableSymbol]: [...buffers], [valueSymbol]: reply } as unknown as Parameters<
    typeof move
  >[0]);
}

/**
 * Gives this thread the nice value `nice` (on Linux a thread's nice value is its own, and threads
 * it starts inherit it). Returns why it could not, or undefined.
 */
function lowerPriority(nice: number): string | undefined {
  if (nice === 0) return undefined;
  if (process.platform !== "linux")
    return `per-thread priority is set on Linux only (this is ${process.platform})`;
  try {
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    setPriority(tid, nice);
    return undefined;
  } catch (error) {
    return firstLine(error);
  }
}

const init = workerData as WorkerInit;

export default (async () => {
  // Before the sessions exist, so any thread ONNX Runtime starts for them inherits it.
  const niceError = lowerPriority(init.nice);
  const { loaded, reports } = await loadAll(init);
  // A thread holds several tasks at once (the running batch, the next, an urgent one). ONNX
  // Runtime's Node binding defers each run by a setImmediate and then blocks, so runs go one at a
  // time here, each starting when the previous ends (its measured time is its own), in the order
  // of `RunOrder`. The next is chosen in a setImmediate after the previous ends: by then the
  // messages that came during the run have been read, so an urgent batch sent meanwhile counts.
  const order = new RunOrder<() => void>();
  let running = false;
  const next = (): void => {
    if (running) return;
    const start = order.shift();
    if (start === undefined) return;
    running = true;
    start();
  };
  const runInTurn = (task: RunTask): Promise<RunReply> =>
    new Promise<RunReply>((resolve, reject) => {
      order.push(() => {
        run(loaded, task)
          .then(resolve, reject)
          .finally(() => {
            running = false;
            setImmediate(next);
          });
      }, task.urgent);
      if (!running) setImmediate(next);
    });
  return async (task: WorkerTask): Promise<unknown> => {
    if (task.kind === "describe") return { models: reports, niceError } satisfies DescribeReply;
    try {
      return moved(await runInTurn(task));
    } catch (error) {
      if (error instanceof RunRefused) return { runError: error.message } satisfies RunFailure;
      throw error;
    }
  };
})();
