/**
 * The inference pool: Piscina worker threads, each holding its own ONNX Runtime sessions (the
 * models share one set of threads, but for those with threads of their own), plus the model
 * catalog built from what the threads actually loaded, and its reloads (`model-host.ts`: the
 * thread sets and reloads; `threads.ts`: one set).
 */
import { availableParallelism } from "node:os";
import { SETTING_BOUNDS } from "../config/bounds.js";
import {
  type EngineLogger,
  type InferencePool,
  InvalidInputError,
  type ModelCatalog,
  type ModelReloadOutcome,
  NOOP_LOGGER,
} from "../engine/index.js";
import { ModelHost, type ReloadOptions } from "./model-host.js";

export type { ReloadOptions } from "./model-host.js";

/** Options of {@link createInferencePool}. */
export interface InferencePoolOptions {
  /** The model repository folder. */
  readonly modelDir: string;
  /** Inference threads the models that set no `instance_count` share. @defaultValue the number of cores */
  readonly threads?: number;
  /** Providers in order of preference; CPU is the fallback. @defaultValue ["cuda", "cpu"] */
  readonly executionProviders?: readonly string[];
  /** The GPU the CUDA provider runs on. @defaultValue 0 */
  readonly cudaDeviceId?: number;
  /** ONNX Runtime intra-op threads per session. @defaultValue 1 */
  readonly intraOpNumThreads?: number;
  /**
   * Nice value (0..19) of the inference threads. Inference is throughput work; the event loop,
   * which reads requests and answers them, is latency work on the same cores: with the threads
   * at a lower priority the loop runs as soon as it has something to do, so a backlog forms in
   * the batcher (where priorities and deadlines act) rather than unread in sockets. Linux only.
   * @defaultValue 0 (unchanged)
   */
  readonly nice?: number;
  /**
   * Threads of each thread set that run only the batches of online classes (those with a latency
   * target), at the process's own priority, each with its own sessions of the set's models: an
   * online item then waits for no background batch while one of them is free. They cost a
   * session of each model apiece (memory, GPU memory on CUDA). @defaultValue 0
   */
  readonly onlineThreads?: number;
  readonly logger?: EngineLogger;
}

/** A started pool, the catalog of its models, and the reload of both. */
export interface StartedPool {
  readonly pool: InferencePool;
  readonly models: ModelCatalog;
  /** Reads the model repository again and serves what changed; see {@link ReloadOptions}. */
  reload(options?: ReloadOptions): Promise<readonly ModelReloadOutcome[]>;
  /** Reloads every `intervalMs` (files changed since they were last tried only). */
  watch(intervalMs: number, options?: ReloadOptions): void;
  /** Loads one model (every version it serves) again, lifting an unload; the others stay. */
  load(name: string, options?: ReloadOptions): Promise<readonly ModelReloadOutcome[]>;
  /** Stops serving one model until it is loaded again. */
  unload(name: string): Promise<readonly ModelReloadOutcome[]>;
}

/** Starts the threads, waits until each has loaded its sessions, and builds the catalog. */
export async function createInferencePool(options: InferencePoolOptions): Promise<StartedPool> {
  const host = new ModelHost({
    modelDir: options.modelDir,
    threads: bounded("threads", options.threads ?? availableParallelism()),
    onlineThreads: bounded("onlineThreads", options.onlineThreads ?? 0),
    init: {
      executionProviders: options.executionProviders ?? ["cuda", "cpu"],
      cudaDeviceId: options.cudaDeviceId ?? 0,
      intraOpNumThreads: bounded("intraOpNumThreads", options.intraOpNumThreads ?? 1),
      nice: bounded("nice", options.nice ?? 0),
    },
    log: options.logger ?? NOOP_LOGGER,
  });
  await host.reload();
  return {
    pool: host,
    models: host.catalog,
    reload: (reloadOptions) => host.reload(reloadOptions),
    watch: (intervalMs, reloadOptions) => host.watch(intervalMs, reloadOptions),
    load: (name, reloadOptions) => host.load(name, reloadOptions),
    unload: (name) => host.unload(name),
  };
}

function bounded(
  field: "threads" | "onlineThreads" | "intraOpNumThreads" | "nice",
  value: number,
): number {
  const [min, max] = SETTING_BOUNDS[field];
  if (!Number.isInteger(value) || value < min || value > max)
    throw new InvalidInputError(field, `must be an integer in ${min}..${max}, got ${value}`);
  return value;
}
