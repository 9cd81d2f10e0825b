/**
 * Composition of the engine for a server process: the inference pool and its model catalog, the
 * SQLite store and the batch processor, all configured from a {@link ServerConfig}.
 */
import type { ServerConfig } from "./config/config.js";
import { BatchProcessor } from "./engine/batch-processor.js";
import type { ModelCatalog } from "./engine/inference-pool.js";
import type { EngineObserver } from "./engine/observer.js";
import { createInferencePool } from "./inference/piscina-pool.js";
import type { Logger } from "./logger.js";
import { SqliteJobStore } from "./store/sqlite-job-store.js";

/** A running engine. */
export interface EngineRuntime {
  readonly processor: BatchProcessor;
  readonly models: ModelCatalog;
}

/** Starts the pool (threads load their sessions), opens the store and recovers unfinished batches. */
export async function startEngine(
  config: ServerConfig,
  logger: Logger,
  observer?: EngineObserver,
): Promise<EngineRuntime> {
  const { pool, models } = await createInferencePool({
    modelDir: config.modelDir,
    threads: config.inferenceThreads,
    executionProviders: config.executionProviders,
    intraOpNumThreads: config.intraOpNumThreads,
    nice: config.inferenceNice,
    logger,
  });
  let store: SqliteJobStore | undefined;
  try {
    store = new SqliteJobStore({ dataDir: config.dataDir, synchronous: config.dbSynchronous });
    const processor = await BatchProcessor.create({
      store,
      pool,
      models,
      logger,
      observer,
      maxQueueSize: config.maxQueueSize,
      maxConcurrentBatches: config.maxConcurrentBatches,
      resultTtlMs: config.resultTtlMs,
      batching: {
        maxBatchSize: config.maxBatchSize,
        maxWaitTimeMs: config.maxWaitTimeMs,
        enableDynamicBatching: config.enableDynamicBatching,
      },
    });
    return { processor, models };
  } catch (error) {
    await store?.close();
    await pool.destroy();
    throw error;
  }
}
