/**
 * Composition of the engine for a server process: the inference pool and its model catalog, the
 * store (SQLite on one node; Redis, with the BullMQ cluster, when `REDIS_URL` is set) and the
 * batch processor, all configured from a {@link ServerConfig}.
 */

import { RedisCluster } from "./cluster/redis-cluster.js";
import type { ServerConfig } from "./config/config.js";
import { BatchProcessor } from "./engine/batch-processor.js";
import type { ModelCatalog, ModelReloadOutcome } from "./engine/inference-pool.js";
import type { JobStore } from "./engine/job-store.js";
import type { EngineObserver } from "./engine/observer.js";
import { createInferencePool } from "./inference/piscina-pool.js";
import type { Logger } from "./logger.js";
import { RedisJobStore } from "./store/redis-job-store.js";
import { SqliteJobStore } from "./store/sqlite-job-store.js";

/** A running engine. */
export interface EngineRuntime {
  readonly processor: BatchProcessor;
  readonly models: ModelCatalog;
  /**
   * Reads the model repository again: new and changed models load on new threads, warm up, and
   * then serve; until then, and for a model whose new files do not load, the loaded version
   * serves. This node only: each node of a cluster has its own threads.
   */
  reloadModels(): Promise<readonly ModelReloadOutcome[]>;
}

/**
 * Starts the pool (threads load their sessions), opens the store, moves batches whose owner id
 * was derived differently before (`ownerRenames`), and recovers unfinished batches.
 */
export async function startEngine(
  config: ServerConfig,
  logger: Logger,
  observer?: EngineObserver,
  ownerRenames: readonly { readonly from: string; readonly to: string }[] = [],
): Promise<EngineRuntime> {
  const { pool, models, reload, watch } = await createInferencePool({
    modelDir: config.modelDir,
    threads: config.inferenceThreads,
    executionProviders: config.executionProviders,
    intraOpNumThreads: config.intraOpNumThreads,
    nice: config.inferenceNice,
    logger,
  });
  let store: JobStore | undefined;
  let cluster: RedisCluster | undefined;
  try {
    if (config.redisUrl === "") {
      store = new SqliteJobStore({ dataDir: config.dataDir, synchronous: config.dbSynchronous });
    } else {
      const redisStore = new RedisJobStore({ url: config.redisUrl, prefix: config.clusterPrefix });
      store = redisStore;
      await redisStore.ready();
      cluster = new RedisCluster({
        url: config.redisUrl,
        prefix: config.clusterPrefix,
        nodeBatches: config.clusterNodeBatches,
        lockMs: config.clusterLockMs,
        log: logger,
      });
    }
    let moved = 0;
    for (const { from, to } of ownerRenames) moved += await store.renameOwner(from, to);
    if (moved > 0) logger.info({ batches: moved }, "moved batches to their owner's new id");
    const processor = await BatchProcessor.create({
      store,
      pool,
      models,
      logger,
      observer,
      cluster,
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
    return { processor, models, reloadModels: () => reload({ warmUp }) };
  } catch (error) {
    await cluster?.close().catch(() => undefined);
    await store?.close();
    await pool.destroy();
    throw error;
  }
}
