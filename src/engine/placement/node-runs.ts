/**
 * The batches a cluster hands this node: each runs here as a live job until it ends, is
 * cancelled from any node, or this node shuts down and hands it back; while it runs, the other
 * nodes see its progress through what it publishes.
 */
import type { JobStore } from "../job-store.js";
import { isTerminal, type Job } from "../jobs/index.js";
import type { Cluster } from "./cluster.js";
import type { PlacementRunner } from "./placement.js";

/** Least time between two progress views a node publishes of one batch, ms. */
const PUBLISH_INTERVAL_MS = 200;

/** Options of {@link NodeRuns}. */
export interface NodeRunsOptions {
  readonly cluster: Pick<Cluster, "publish">;
  readonly store: Pick<JobStore, "loadBatch">;
  readonly runner: Pick<PlacementRunner, "adopt" | "cancel" | "view">;
  readonly clock: () => number;
}

/** See the file comment. */
export class NodeRuns {
  readonly #o: NodeRunsOptions;
  /** Resolves once this node has stopped running batches (shutdown): the rest go back. */
  readonly #released: Promise<void>;
  #release!: () => void;
  #closed = false;

  constructor(options: NodeRunsOptions) {
    this.#o = options;
    this.#released = new Promise((resolve) => (this.#release = resolve));
  }

  /**
   * Runs the stored batch `pk` here from its items without an outcome, and resolves once it has
   * ended ("ended"), or, when this node shuts down first, "released" (its items without an
   * outcome are for another node); an aborted `signal` cancels it.
   */
  async run(pk: number, signal: AbortSignal): Promise<"ended" | "released"> {
    const { runner, store } = this.#o;
    if (this.#closed) return "released";
    const loaded = await store.loadBatch(pk);
    if (loaded === undefined || isTerminal(loaded.batch.status)) return "ended";
    const job = runner.adopt(loaded);
    const stopPublishing = this.#publishing(pk, job);
    const onAbort = () => runner.cancel(job);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([job.ended(), this.#released]);
    } finally {
      signal.removeEventListener("abort", onAbort);
      stopPublishing();
    }
    return job.terminal ? "ended" : "released";
  }

  /** Stops running batches: those still running resolve "released". */
  release(): void {
    this.#closed = true;
    this.#release();
  }

  /**
   * Publishes a job's view on each change: a new status at once, progress at most every
   * {@link PUBLISH_INTERVAL_MS}.
   */
  #publishing(pk: number, job: Job): () => void {
    const { cluster, runner, clock } = this.#o;
    let last = 0;
    let status = job.status;
    let timer: NodeJS.Timeout | undefined;
    const publish = () => {
      clearTimeout(timer);
      timer = undefined;
      last = clock();
      status = job.status;
      cluster.publish(pk, runner.view(job));
    };
    publish();
    const unsubscribe = job.subscribe(() => {
      if (job.status !== status) publish();
      else if (timer === undefined)
        timer = setTimeout(publish, Math.max(0, last + PUBLISH_INTERVAL_MS - clock()));
    });
    return () => {
      clearTimeout(timer);
      unsubscribe();
    };
  }
}
