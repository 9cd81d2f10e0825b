/**
 * A set of inference threads: a Piscina pool whose threads each load the set's models when they
 * start, and run their model batches.
 */
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import {
  type InferenceRequest,
  type InferenceResult,
  isStrings,
  ModelRunError,
} from "../engine/index.js";
import type {
  DescribeReply,
  ModelLoadReport,
  RunFailure,
  RunReply,
  WorkerInit,
  WorkerTask,
} from "./messages.js";

/** Model batches per thread in flight: the one running and the next one, ready. */
export const PIPELINE_DEPTH = 2;

/** A set of threads, as the model host uses it (a Piscina pool). */
export interface Threads {
  run(
    task: WorkerTask,
    options?: { transferList?: ArrayBuffer[]; signal?: AbortSignal | null },
  ): Promise<unknown>;
  /** Finishes the tasks it holds, then stops. */
  close(): Promise<void>;
  /** Stops now. */
  destroy(): Promise<void>;
}

/** Starts a set of threads (see {@link startThreads}). */
export type ThreadStarter = (
  init: WorkerInit,
  threads: number,
  created?: (piscina: Threads) => void,
) => Promise<StartedThreads>;

/** Threads that have loaded their models, and what the models loaded as. */
export interface StartedThreads {
  readonly piscina: Threads;
  readonly reports: readonly ModelLoadReport[];
  /** Why the threads' nice value could not be set; absent when it was (or none was asked). */
  readonly niceError: string | undefined;
}

/**
 * Starts `threads` threads on `init` and resolves once each has loaded every model.
 * `created` receives the pool at once, so that a caller closing meanwhile can destroy it.
 */
export const startThreads: ThreadStarter = async (init, threads, created = () => undefined) => {
  const piscina = new Piscina<WorkerTask, unknown>({
    filename: workerFilename(),
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    workerData: init,
    // Each thread holds its running batch and the next one, so it starts the next batch the
    // moment the current one ends, without waiting for the main thread, plus room for one urgent
    // batch that goes before the next (the batcher keeps threads x pipelineDepth batches in
    // flight and at most one urgent one per thread beyond them, so Piscina's queue stays empty).
    concurrentTasksPerWorker: PIPELINE_DEPTH + 1,
    // Threads wait on Atomics between tasks: no event-loop hop inside the worker.
    atomics: "sync",
  });
  created(piscina);
  try {
    // One describe per thread: each resolves only after a thread has loaded every session.
    const replies = (await Promise.all(
      Array.from({ length: threads }, () => piscina.run({ kind: "describe" })),
    )) as DescribeReply[];
    return {
      piscina,
      reports: (replies[0] as DescribeReply).models,
      niceError: replies.find((r) => r.niceError !== undefined)?.niceError,
    };
  } catch (error) {
    await piscina.destroy();
    throw error;
  }
};

/** Runs one model batch on a set of threads, its input moved to the thread. */
export async function runOn(
  piscina: Threads,
  request: InferenceRequest,
  signal: AbortSignal | undefined,
): Promise<InferenceResult> {
  const task: WorkerTask = {
    kind: "run",
    model: request.model,
    inputs: request.inputs,
    named: request.named,
    urgent: request.urgent === true,
  };
  const transferList = [
    ...new Set(
      request.inputs.flatMap((t) => (isStrings(t.data) ? [] : [t.data.buffer as ArrayBuffer])),
    ),
  ];
  const reply = (await piscina.run(task, { transferList, signal: signal ?? null })) as
    | RunReply
    | RunFailure;
  if ("runError" in reply) throw new ModelRunError(reply.runError);
  return reply;
}

function workerFilename(): string {
  // Under tsx/vitest this file is TypeScript and Piscina needs the shim that registers tsx.
  const compiled = import.meta.url.endsWith(".js");
  return fileURLToPath(
    new URL(compiled ? "./inference-worker.js" : "./worker-shim.mjs", import.meta.url),
  );
}
