/**
 * The batches a cluster hands this node: each runs here as a live job until it ends, is
 * cancelled from any node, or this node shuts down and hands it back; while it runs, the other
 * nodes see its progress through what it publishes.
 */
import type { JobStore } from "../job-store.js";
import { isTerminal, type Job } from "../jobs/index.js";
import type { Cluster, RunControl, RunEnd } from "./cluster.js";
import type { PlacementRunner } from "./placement.js";

/** Least time between two progress views a node publishes of one batch, ms. */
const PUBLISH_INTERVAL_MS = 200;

/** Options of {@link NodeRuns}. */
export interface NodeRunsOptions {
  readonly cluster: Pick<Cluster, "publish">;
  readonly store: Pick<JobStore, "loadBatch">;
  readonly runner: Pick<PlacementRunner, "adopt" | "cancel" | "release" | "view">;
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
   * Runs the stored batch `pk` here from its items without an outcome, until its {@link RunEnd}:
   * "ended" once its end is stored, "released" when this node shuts down first or its hold is
   * `lost`, "unsaved" when this node could not save its progress. A store that cannot be read
   * rejects, and the batch is taken again after a pause.
   */
  async run(pk: number, control: RunControl): Promise<RunEnd> {
    const { runner, store } = this.#o;
    if (this.#closed || control.lost.aborted) return "released";
    const loaded = await store.loadBatch(pk);
    if (loaded === undefined || isTerminal(loaded.batch.status)) return "ended";
    const job = runner.adopt(loaded);
    const stopPublishing = this.#publishing(pk, job);
    const onCancel = () => void runner.cancel(job);
    const onLost = () => runner.release(job);
    control.cancel.addEventListener("abort", onCancel, { once: true });
    control.lost.addEventListener("abort", onLost, { once: true });
    try {
      await Promise.race([job.ended(), this.#released]);
    } finally {
      control.cancel.removeEventListener("abort", onCancel);
      control.lost.removeEventListener("abort", onLost);
      stopPublishing();
    }
    if (job.released) return control.lost.aborted ? "released" : "unsaved";
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
    /** The status reads show: the stored one (see `Job.stored`). */
    const shown = () => job.stored?.status ?? job.status;
    let status = shown();
    let timer: NodeJS.Timeout | undefined;
    const publish = () => {
      clearTimeout(timer);
      timer = undefined;
      last = clock();
      status = shown();
      cluster.publish(pk, runner.view(job));
    };
    publish();
    const unsubscribe = job.subscribe(() => {
      if (shown() !== status) publish();
      else if (timer === undefined)
        timer = setTimeout(publish, Math.max(0, last + PUBLISH_INTERVAL_MS - clock()));
    });
    return () => {
      clearTimeout(timer);
      unsubscribe();
    };
  }
}
