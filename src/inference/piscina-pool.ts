/**
 * The inference pool: a Piscina worker-thread pool in which every thread holds its own ONNX
 * Runtime sessions, plus the model catalog built from what the threads actually loaded.
 */
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import { InvalidInputError } from "../engine/errors.js";
import type {
  InferencePool,
  InferenceRequest,
  InferenceResult,
  ModelCatalog,
  ModelInfo,
} from "../engine/inference-pool.js";
import { type EngineLogger, NOOP_LOGGER } from "../engine/logger.js";
import type {
  DescribeReply,
  ModelLoadReport,
  RunReply,
  WorkerInit,
  WorkerTask,
} from "./messages.js";
import { type RepositoryEntry, readModelRepository } from "./model-repository.js";

/** Options of {@link createInferencePool}. */
export interface InferencePoolOptions {
  /** The model repository folder. */
  readonly modelDir: string;
  /** Inference threads. @defaultValue the number of cores */
  readonly threads?: number;
  /** Providers in order of preference; CPU is the fallback. @defaultValue ["cuda", "cpu"] */
  readonly executionProviders?: readonly string[];
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
  readonly logger?: EngineLogger;
}

/** Model batches per thread in flight: the one running and the next one, ready. */
const PIPELINE_DEPTH = 2;

/** Inclusive bounds of the numeric pool options. */
export const POOL_BOUNDS = Object.freeze({
  threads: [1, 256],
  intraOpNumThreads: [1, 256],
  nice: [0, 19],
} as const satisfies Record<string, readonly [number, number]>);

/** Model batch limit when neither config.json nor the graph sets one. */
export const DEFAULT_MODEL_MAX_BATCH_SIZE = 1024;

/** A started pool and the catalog of its models. */
export interface StartedPool {
  readonly pool: InferencePool;
  readonly models: ModelCatalog;
}

/** Starts the threads, waits until each has loaded its sessions, and builds the catalog. */
export async function createInferencePool(options: InferencePoolOptions): Promise<StartedPool> {
  const log = options.logger ?? NOOP_LOGGER;
  const threads = bounded("threads", options.threads ?? availableParallelism());
  const intraOpNumThreads = bounded("intraOpNumThreads", options.intraOpNumThreads ?? 1);
  const nice = bounded("nice", options.nice ?? 0);
  const entries = readModelRepository(options.modelDir);
  const loadable = entries.filter((e) => e.problem === undefined);
  const init: WorkerInit = {
    models: loadable.map((e) => ({
      name: e.name,
      path: e.path,
      inputName: e.inputName,
      outputName: e.outputName,
      outputKind: e.outputKind,
    })),
    executionProviders: options.executionProviders ?? ["cuda", "cpu"],
    intraOpNumThreads,
    nice,
  };
  const piscina = new Piscina<WorkerTask, unknown>({
    filename: workerFilename(),
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    workerData: init,
    // Each thread holds its running batch and the next one, so it starts the next batch the
    // moment the current one ends, without waiting for the main thread (the batcher keeps
    // threads x pipelineDepth batches in flight, so Piscina's own queue stays empty).
    concurrentTasksPerWorker: PIPELINE_DEPTH,
    // Threads wait on Atomics between tasks: no event-loop hop inside the worker.
    atomics: "sync",
  });
  let reports: readonly ModelLoadReport[];
  try {
    // One describe per thread: each resolves only after a thread has loaded every session.
    const replies = (await Promise.all(
      Array.from({ length: threads }, () => piscina.run({ kind: "describe" })),
    )) as DescribeReply[];
    reports = (replies[0] as DescribeReply).models;
    const niceError = replies.find((r) => r.niceError !== undefined)?.niceError;
    if (niceError !== undefined)
      log.warn(
        { nice: init.nice, reason: niceError },
        "inference threads keep the default priority",
      );
  } catch (error) {
    await piscina.destroy();
    throw error;
  }
  const models = buildCatalog(entries, reports, log);
  return { pool: new PiscinaInferencePool(piscina, threads), models };
}

function bounded(field: keyof typeof POOL_BOUNDS, value: number): number {
  const [min, max] = POOL_BOUNDS[field];
  if (!Number.isInteger(value) || value < min || value > max)
    throw new InvalidInputError(field, `must be an integer in ${min}..${max}, got ${value}`);
  return value;
}

class PiscinaInferencePool implements InferencePool {
  readonly pipelineDepth = PIPELINE_DEPTH;

  constructor(
    private readonly piscina: Piscina<WorkerTask, unknown>,
    readonly threads: number,
  ) {}

  async run(request: InferenceRequest, signal?: AbortSignal): Promise<InferenceResult> {
    const task: WorkerTask = {
      kind: "run",
      model: request.model,
      data: request.data,
      dims: request.dims,
    };
    return (await this.piscina.run(task, {
      transferList: [request.data.buffer as ArrayBuffer],
      signal: signal ?? null,
    })) as RunReply;
  }

  async close(): Promise<void> {
    await this.piscina.close();
  }

  async destroy(): Promise<void> {
    await this.piscina.destroy();
  }
}

function workerFilename(): string {
  // Under tsx/vitest this file is TypeScript and Piscina needs the shim that registers tsx.
  const compiled = import.meta.url.endsWith(".js");
  return fileURLToPath(
    new URL(compiled ? "./inference-worker.js" : "./worker-shim.mjs", import.meta.url),
  );
}

function buildCatalog(
  entries: readonly RepositoryEntry[],
  reports: readonly ModelLoadReport[],
  log: EngineLogger,
): ModelCatalog {
  const byName = new Map<string, ModelInfo>();
  let loggedFallback = false;
  for (const entry of entries) {
    const report = reports.find((r) => r.name === entry.name);
    if (entry.problem !== undefined || report === undefined || !report.ok) {
      const reason = entry.problem ?? report?.reason ?? "not loaded";
      log.warn({ model: entry.name, reason, cause: report?.error }, "model unavailable");
      byName.set(entry.name, unavailable(entry, reason));
      continue;
    }
    if (report.fallbackReason !== undefined && !loggedFallback) {
      loggedFallback = true;
      log.warn(
        { reason: report.fallbackReason },
        "preferred execution provider unavailable; running on CPU",
      );
    }
    const input = report.inputs.find((i) => i.name === (entry.inputName ?? report.inputs[0]?.name));
    const graphDims = input?.dims ?? [];
    const itemShape =
      entry.inputShape ?? graphDims.slice(1).map((d) => (typeof d === "number" && d > 0 ? d : -1));
    const graphBatch = graphDims[0];
    const maxBatchSize =
      entry.maxBatchSize ??
      (typeof graphBatch === "number" && graphBatch > 0
        ? graphBatch
        : DEFAULT_MODEL_MAX_BATCH_SIZE);
    if (itemShape.length === 0) {
      byName.set(
        entry.name,
        unavailable(entry, "cannot tell the per-item input shape; set input_shape in config.json"),
      );
      continue;
    }
    byName.set(entry.name, {
      name: entry.name,
      available: true,
      itemShape,
      maxBatchSize,
      outputKind: entry.outputKind,
      labels: entry.labels,
      executionProvider: report.provider,
      description: entry.description,
    });
    log.info(
      { model: entry.name, provider: report.provider, itemShape, maxBatchSize },
      "model loaded",
    );
  }
  return {
    get: (name) => byName.get(name),
    list: () => [...byName.values()],
  };
}

function unavailable(entry: RepositoryEntry, reason: string): ModelInfo {
  return {
    name: entry.name,
    available: false,
    reason,
    itemShape: entry.inputShape ?? [-1],
    maxBatchSize: entry.maxBatchSize ?? 1,
    outputKind: entry.outputKind,
    labels: entry.labels,
    description: entry.description,
  };
}
