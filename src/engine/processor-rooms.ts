/**
 * What the processor is made of: its rooms (the job runner, jobs, housekeeping, placement), each
 * wired to the others and to the live state the facade keeps (the batching options, admission).
 */
import { Jobs } from "./bulk/index.js";
import { Housekeeping, JobRunner } from "./jobs/index.js";
import type { EngineLogger } from "./logger.js";
import type { ResolvedBatchingOptions, ResolvedProcessorOptions } from "./options.js";
import { createPlacement, type Placement } from "./placement/index.js";
import type { BatchProcessorOptions } from "./processor-options.js";
import type { AdmissionState } from "./scheduling/index.js";

/** The facade's live state, as the rooms read it. */
export interface FacadeState {
  readonly options: ResolvedProcessorOptions;
  readonly log: EngineLogger;
  readonly clock: () => number;
  batching(): ResolvedBatchingOptions;
  admission(): AdmissionState;
  /** Another node changed the batching options. */
  configured(next: ResolvedBatchingOptions): void;
}

/** The processor's rooms. */
export interface Rooms {
  readonly runner: JobRunner;
  readonly jobs: Jobs;
  readonly housekeeping: Housekeeping;
  readonly placement: Placement;
}

/** The rooms of a processor opened with `o`, over the facade's live `state`. */
export function roomsOf(o: BatchProcessorOptions, state: FacadeState): Rooms {
  const { options, log, clock } = state;
  const runner = new JobRunner({
    store: o.store,
    pool: o.pool,
    models: o.models,
    batching: () => state.batching(),
    log,
    clock,
    observer: o.observer,
    tracer: o.tracer,
    node: o.node,
    releaseUnsaved: o.cluster !== undefined,
  });
  const jobs = new Jobs({
    data: o.jobData,
    unavailable: "this server keeps no jobs",
    cluster: o.jobCluster,
    runner,
    models: o.models,
    defaultModel: options.defaultModel,
    maxLines: options.maxJobItems,
    threads: (model) => o.pool.laneOf?.(model)?.threads ?? o.pool.threads,
    batchSize: (model) =>
      Math.min(state.batching().maxBatchSize, o.models.get(model)?.maxBatchSize ?? 1),
    clock,
    log,
    observer: o.observer,
    onEnded: o.onJobEnded,
  });
  const ttl = options.resultTtlMs;
  const housekeeping = new Housekeeping({
    store: {
      // Batches first, then jobs (each by its own keeping time): each call deletes at most
      // `limit` of both together.
      async purgeFinished(before, limit) {
        const batches = await o.store.purgeFinished(before, limit);
        if (batches >= limit) return batches;
        return batches + (await jobs.purge(before + ttl, ttl, limit - batches));
      },
    },
    retryUnrecorded: () => runner.retryUnrecorded(),
    resultTtlMs: options.resultTtlMs,
    intervalMs: options.purgeIntervalMs,
    clock,
    log,
  });
  const placement = createPlacement(
    {
      store: o.store,
      runner,
      admission: () => state.admission(),
      batching: () => state.batching(),
      configure: (next) => state.configured(next),
      clock,
      log,
    },
    o.cluster,
  );
  return { runner, jobs, housekeeping, placement };
}
