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

/** A set of threads, as the model host uses it (a Piscina pool, or a {@link ThreadSet}). */
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

/** How many threads a set starts: its regular ones, and its online ones ({@link ThreadSet}). */
export interface SetSize {
  readonly threads: number;
  readonly online: number;
}

/** Starts a set of threads (see {@link startThreads}). */
export type ThreadStarter = (
  init: WorkerInit,
  size: SetSize,
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
 * A set's threads: the regular ones, which run every batch at the set's nice value, and its
 * online ones, which run only urgent batches (classes with a latency target) at the process's
 * own priority and each hold one batch at a time. An urgent batch goes to a free online thread;
 * with every online thread busy (or none), it goes to the regular threads, where it runs before
 * the batches queued on its thread. So while an online thread is free, an online item waits for
 * no background batch and runs on no thread lowered for throughput work. Which batches
 * are dispatched, and when, is the batcher's alone: the online threads change where an urgent
 * batch runs, not the classes' shares.
 */
export class ThreadSet implements Threads {
  #onlineBusy = 0;

  constructor(
    private readonly regular: Threads,
    private readonly online: Threads | undefined,
    private readonly onlineThreads: number,
  ) {}

  run(
    task: WorkerTask,
    options?: { transferList?: ArrayBuffer[]; signal?: AbortSignal | null },
  ): Promise<unknown> {
    const online = this.online;
    if (
      task.kind === "run" &&
      task.urgent &&
      online !== undefined &&
      this.#onlineBusy < this.onlineThreads
    ) {
      this.#onlineBusy++;
      return online.run(task, options).finally(() => {
        this.#onlineBusy--;
      });
    }
    return this.regular.run(task, options);
  }

  async close(): Promise<void> {
    await Promise.all([this.regular.close(), this.online?.close()]);
  }

  async destroy(): Promise<void> {
    await Promise.all([this.regular.destroy(), this.online?.destroy()]);
  }
}

/**
 * Starts `size.threads` regular threads on `init` and `size.online` online ones (at nice 0),
 * and resolves once each has loaded every model. `created` receives the set at once, so that a
 * caller closing meanwhile can destroy it.
 */
export const startThreads: ThreadStarter = async (init, size, created = () => undefined) => {
  const regular = new Piscina<WorkerTask, unknown>({
    filename: workerFilename(),
    minThreads: size.threads,
    maxThreads: size.threads,
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
  const online =
    size.online === 0
      ? undefined
      : new Piscina<WorkerTask, unknown>({
          filename: workerFilename(),
          minThreads: size.online,
          maxThreads: size.online,
          idleTimeout: Number.POSITIVE_INFINITY,
          // Online work is latency work: it keeps the priority the event loop has.
          workerData: { ...init, nice: 0 } satisfies WorkerInit,
          concurrentTasksPerWorker: 1,
          atomics: "sync",
        });
  const set = new ThreadSet(regular, online, size.online);
  created(set);
  try {
    // One describe per thread: each resolves only after a thread has loaded every session.
    const describe = (piscina: Threads, threads: number) =>
      Promise.all(Array.from({ length: threads }, () => piscina.run({ kind: "describe" })));
    const [replies] = (await Promise.all([
      describe(regular, size.threads),
      online === undefined ? [] : describe(online, size.online),
    ])) as [DescribeReply[], DescribeReply[]];
    return {
      piscina: set,
      reports: (replies[0] as DescribeReply).models,
      niceError: replies.find((r) => r.niceError !== undefined)?.niceError,
    };
  } catch (error) {
    await set.destroy();
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
