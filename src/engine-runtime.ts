/**
 * Composition of the engine for a server process: the inference pool and its model catalog, the
 * store (SQLite on one node; Redis, with the BullMQ cluster, when `REDIS_URL` is set), the batch
 * processor, and where the node's figures are kept, all configured from a {@link ServerConfig}.
 */

import { RedisCluster } from "./cluster/index.js";
import type { ServerConfig } from "./config/index.js";
import {
  BatchProcessor,
  type BatchProcessorOptions,
  type EngineObserver,
  type JobCluster,
  type JobData,
  type JobStore,
  type ModelCatalog,
  type ModelReloadOutcome,
} from "./engine/index.js";
import { createInferencePool } from "./inference/index.js";
import type { Logger } from "./logger.js";
import { type Figures, storeFigures } from "./metrics/index.js";
import { RedisJobStore, SqliteJobStore } from "./store/index.js";
import { otelEngineTracer, startTracing, type Tracing, tracedStore } from "./tracing/index.js";

/** A running engine. */
export interface EngineRuntime {
  readonly processor: BatchProcessor;
  readonly models: ModelCatalog;
  /** Where this node keeps its figures and finds its peers' (see `metrics/figures.ts`). */
  readonly figures: Figures;
  /**
   * Reads the model repository again: new and changed models load on new threads, warm up, and
   * then serve; until then, and for a model whose new files do not load, the loaded version
   * serves. This node only: each node of a cluster has its own threads.
   */
  reloadModels(): Promise<readonly ModelReloadOutcome[]>;
  /** Loads one model again (and lifts an unload of it); the others keep serving. This node only. */
  loadModel(name: string): Promise<readonly ModelReloadOutcome[]>;
  /** Stops serving one model until it is loaded again. This node only. */
  unloadModel(name: string): Promise<readonly ModelReloadOutcome[]>;
  /** Where traces go, when the `OTEL_*` settings ask for them; flushed by `shutdown`. */
  readonly tracing: Tracing | undefined;
}

/** Where batches are kept and run: the embedded store alone, or a cluster on one Redis. */
interface Backend {
  readonly store: JobStore;
  /** Where jobs are kept, and (in a cluster) where their chunks are handed out. */
  readonly jobData?: JobData;
  readonly jobCluster?: JobCluster;
  readonly cluster?: RedisCluster;
  readonly figures: Figures;
}

async function openBackend(config: ServerConfig, logger: Logger): Promise<Backend> {
  if (config.redisUrl === "") {
    const store = new SqliteJobStore({
      dataDir: config.dataDir,
      synchronous: config.dbSynchronous,
    });
    return { store, jobData: store.jobs, figures: storeFigures(store) };
  }
  const store = new RedisJobStore({ url: config.redisUrl, prefix: config.clusterPrefix });
  try {
    await store.ready();
  } catch (error) {
    await store.close();
    throw error;
  }
  const cluster = new RedisCluster({
    url: config.redisUrl,
    prefix: config.clusterPrefix,
    nodeBatches: config.clusterNodeBatches,
    lockMs: config.clusterLockMs,
    log: logger,
  });
  return {
    store,
    jobData: store.jobs,
    jobCluster: cluster.jobs,
    cluster,
    figures: cluster.figures,
  };
}

/** Starts the pool (threads load their sessions), opens the store, and starts the processor. */
export async function startEngine(
  config: ServerConfig,
  logger: Logger,
  observer?: EngineObserver,
  onJobEnded?: BatchProcessorOptions["onJobEnded"],
): Promise<EngineRuntime> {
  const { pool, models, reload, watch, load, unload } = await createInferencePool({
    modelDir: config.modelDir,
    threads: config.inferenceThreads,
    executionProviders: config.executionProviders,
    cudaDeviceId: config.cudaDeviceId,
    intraOpNumThreads: config.intraOpNumThreads,
    nice: config.inferenceNice,
    onlineThreads: config.onlineThreads,
    logger,
  });
  let backend: Backend | undefined;
  const tracing = startTracing(config, logger);
  try {
    backend = await openBackend(config, logger);
    const traced = <T extends object>(store: T, name: string) =>
      tracing === undefined ? store : tracedStore(store, name);
    const processor = await BatchProcessor.create({
      store: traced(backend.store, "store"),
      pool,
      models,
      logger,
      observer,
      tracer: tracing === undefined ? undefined : otelEngineTracer,
      node: backend.figures.node,
      cluster: backend.cluster,
      jobData: backend.jobData === undefined ? undefined : traced(backend.jobData, "store.jobs"),
      jobCluster: backend.jobCluster,
      onJobEnded,
      maxJobItems: config.maxJobItems,
      maxQueueSize: config.maxQueueSize,
      maxConcurrentBatches: config.maxConcurrentBatches,
      resultTtlMs: config.resultTtlMs,
      defaultModel: config.defaultModel,
      batching: {
        maxBatchSize: config.maxBatchSize,
        maxWaitTimeMs: config.maxWaitTimeMs,
        enableDynamicBatching: config.enableDynamicBatching,
      },
    });
    const warmUp = (on: typeof pool, changed: ModelCatalog) => processor.warmUp(on, changed);
    if (config.modelPollSeconds > 0) watch(config.modelPollSeconds * 1000, { warmUp });
    return {
      processor,
      models,
      figures: backend.figures,
      reloadModels: () => reload({ warmUp }),
      loadModel: (name) => load(name, { warmUp }),
      unloadModel: (name) => unload(name),
      tracing,
    };
  } catch (error) {
    await backend?.cluster?.close().catch(() => undefined);
    await backend?.store.close();
    await pool.destroy();
    await tracing?.shutdown();
    throw error;
  }
}
