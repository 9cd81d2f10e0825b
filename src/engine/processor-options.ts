/** What the processor is made of, and the options it is opened with. */
import type { JobCallback, JobCluster, JobData, JobView } from "./bulk/index.js";
import type { InferencePool, ModelCatalog } from "./inference-pool.js";
import type { JobStore } from "./job-store.js";
import type { EngineLogger } from "./logger.js";
import type { EngineObserver } from "./observer.js";
import type { BatchingOptions, ProcessorOptions } from "./options.js";
import type { Cluster } from "./placement/index.js";
import type { EngineTracer } from "./tracer.js";

/** Options of `BatchProcessor.create`. */
export interface BatchProcessorOptions extends ProcessorOptions {
  readonly store: JobStore;
  readonly pool: InferencePool;
  readonly models: ModelCatalog;
  /** Initial batching options; a configuration saved by `configure` takes precedence. */
  readonly batching?: BatchingOptions;
  readonly logger?: EngineLogger;
  /** Told what the engine does, for metrics. */
  readonly observer?: EngineObserver;
  /** Told what each traced request goes through (spans); none traced when absent. */
  readonly tracer?: EngineTracer;
  /** This node's name, kept with the batches it runs (a cluster node's id). */
  readonly node?: string;
  /** Epoch-ms clock. @defaultValue Date.now */
  readonly clock?: () => number;
  /**
   * The nodes sharing `store`, when there are several: batches then run on whichever node takes
   * them. Without one, this process runs every batch it stores.
   */
  readonly cluster?: Cluster;
  /** Where jobs (data sets) are kept; without it jobs are refused with UNIMPLEMENTED. */
  readonly jobData?: JobData;
  /** Where a cluster hands out jobs' chunks (with `cluster`); without it this node runs them. */
  readonly jobCluster?: JobCluster;
  /** Told once about each job that ended in this process, with its callback (if any). */
  readonly onJobEnded?: (view: JobView, callback: JobCallback | null) => void;
}
