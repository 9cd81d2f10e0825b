/**
 * Jobs on a cluster: a job's chunks go to whichever nodes take them ({@link JobCluster}), and
 * every node reads and writes the job in the shared store, so any node answers for any job. A
 * node runs a chunk as one node does (`chunk-run.ts`) and writes its outcomes once; the node
 * whose write finishes the job's last chunk ends it. A cancel or the end of the window ends the
 * job in the store at once and tells the nodes to stop its chunks: outcomes written before that
 * are kept, and a chunk that comes back after it is not written (its lines read as the job
 * ended).
 */
import type { ModelCatalog } from "../inference-pool.js";
import type { EngineLogger } from "../logger.js";
import type { EngineObserver } from "../observer.js";
import { type ChunkRunner, chunkOutcomes, cutByShutdown, runChunk } from "./chunk-run.js";
import type { ChunkTask, JobCluster } from "./job-cluster.js";
import type { JobData } from "./job-data.js";
import type { JobExecution } from "./job-execution.js";
import { JOB_FAILURES, withUnrun } from "./job-failures.js";
import { isJobEnded, type JobCallback, type JobRecord, type JobView } from "./job-types.js";

/** Options of {@link ClusterJobFeeder}. */
export interface ClusterJobFeederOptions {
  readonly data: JobData;
  readonly cluster: JobCluster;
  readonly runner: ChunkRunner;
  readonly models: ModelCatalog;
  /** Chunks this node runs at once. */
  readonly concurrency: number;
  readonly clock: () => number;
  readonly log: EngineLogger;
  readonly observer?: EngineObserver | undefined;
  /** Told once about each job this node ended, with its final view (callbacks). */
  readonly onEnded?: ((view: JobView, callback: JobCallback | null) => void) | undefined;
  /** The view of a stored job (the face's, so every node answers alike). */
  readonly viewOf: (record: JobRecord) => JobView;
}

/** Thrown for a chunk cut short by this node's shutdown: the cluster hands it out again. */
class HandedBack extends Error {}

/** See the file comment. */
export class ClusterJobFeeder implements JobExecution {
  readonly #o: ClusterJobFeederOptions;
  #running = 0;
  #closing = false;

  constructor(options: ClusterJobFeederOptions) {
    this.#o = options;
  }

  get running(): number {
    return this.#running;
  }

  async run(record: JobRecord): Promise<void> {
    const chunks = Array.from({ length: record.chunks }, (_, c) => c);
    await this.#o.cluster.enqueue(record.pk, chunks, record.priority, record.expiresAt);
  }

  /**
   * Joins the cluster and hands out again the chunks of unfinished jobs that have no outcome
   * (those still handed out are not handed out twice): a node that stored a job and died before
   * handing its chunks out leaves it to the next node that starts.
   */
  async recover(): Promise<void> {
    await this.#o.cluster.start(
      {
        runChunk: (task, signal) => this.#runChunk(task, signal),
        expire: (pk) => this.#expire(pk),
      },
      this.#o.concurrency,
    );
    for (const record of await this.#o.data.loadUnfinishedJobs()) {
      const pending = await this.#o.data.pendingChunks(record.pk);
      await this.#o.cluster.enqueue(record.pk, pending, record.priority, record.expiresAt);
    }
  }

  async cancel(pk: number): Promise<JobView | undefined> {
    return this.#end(pk, "cancelled");
  }

  view(): JobView | undefined {
    return undefined;
  }

  subscribe(): undefined {
    return undefined;
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.#o.cluster.stop();
  }

  async #runChunk({ pk, chunk }: ChunkTask, signal: AbortSignal): Promise<void> {
    const { data, models, clock } = this.#o;
    const record = await data.getJob(pk);
    if (record === undefined || isJobEnded(record.status)) return;
    if (clock() >= record.expiresAt) {
      await this.#expire(pk);
      return;
    }
    const model = models.get(record.modelId);
    if (model?.available !== true) {
      await this.#end(pk, "failed", JOB_FAILURES.modelGone);
      return;
    }
    this.#running++;
    try {
      if (record.status === "queued")
        await data.saveJob({
          pk,
          status: "running",
          error: null,
          startedAt: clock(),
          completedAt: null,
          addCompleted: 0,
          addFailed: 0,
        });
      const lines = await data.chunkLines(pk, chunk);
      const results = await runChunk(this.#o.runner, record, chunk, lines, model, clock(), signal);
      if (this.#closing || cutByShutdown(results)) throw new HandedBack("this node is stopping");
      const { outcomes, completed, failed } = chunkOutcomes(
        lines,
        results,
        JOB_FAILURES.failedLine,
      );
      const written = await data.saveChunk(pk, chunk, outcomes, {
        pk,
        status: "running",
        error: null,
        startedAt: record.startedAt ?? clock(),
        completedAt: null,
        addCompleted: completed,
        addFailed: failed,
      });
      if (!written) return;
      if (completed > 0) this.#o.observer?.onJobLines?.(record.modelId, "completed", completed);
      if (failed > 0) this.#o.observer?.onJobLines?.(record.modelId, "failed", failed);
      const after = await data.getJob(pk);
      const c = after?.counts;
      if (c !== undefined && c.completed + c.failed + c.invalid >= c.total)
        await this.#end(pk, "completed");
    } finally {
      this.#running--;
    }
  }

  async #expire(pk: number): Promise<void> {
    await this.#end(pk, "expired");
  }

  /** Ends a job in the store if it has not ended; this node announces it (once, cluster-wide). */
  async #end(
    pk: number,
    status: "completed" | "cancelled" | "expired" | "failed",
    reason?: (typeof JOB_FAILURES)[keyof typeof JOB_FAILURES],
  ): Promise<JobView | undefined> {
    const { data, clock } = this.#o;
    const before = await data.getJob(pk);
    if (before === undefined || isJobEnded(before.status)) return undefined;
    const c = before.counts;
    const unrun = c.total - c.completed - c.failed - c.invalid;
    const error =
      status === "completed"
        ? null
        : status === "cancelled"
          ? JOB_FAILURES.cancelled
          : status === "expired"
            ? JOB_FAILURES.expired
            : (reason ?? JOB_FAILURES.storeFailed);
    const ended = await data.endJob(pk, {
      status,
      error: error === null ? null : withUnrun(error, unrun, c.total),
      completedAt: clock(),
      startedAt: before.startedAt ?? clock(),
    });
    if (ended === undefined) return undefined;
    if (status !== "completed") await this.#o.cluster.abort(pk).catch(() => undefined);
    await this.#o.cluster.ended(pk).catch(() => undefined);
    const lost = ended.counts.failed - c.failed;
    if (lost > 0) this.#o.observer?.onJobLines?.(ended.modelId, "failed", lost);
    this.#o.log.info({ jobId: ended.jobId, status, counts: ended.counts }, "job ended");
    const view = this.#o.viewOf(ended);
    this.#o.onEnded?.(view, ended.callback);
    return view;
  }
}
