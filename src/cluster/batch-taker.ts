/**
 * How a node takes batches from the cluster's queues: one BullMQ job at a time, while it holds
 * fewer than its capacity, from the class the {@link Stride} rule names (charged by the batch's
 * items), so that across the cluster the classes get shares by their weights. It renews the
 * locks of the jobs it holds, runs each batch on the node, and settles each job by how its run
 * ended: completed, handed back to its queue, or failed (BullMQ retries it after a pause).
 */
import { randomUUID } from "node:crypto";
import type { Job as QueuedJob, Worker } from "bullmq";
import {
  type ClusterNode,
  type EngineLogger,
  PRIORITIES,
  type Priority,
  type RunEnd,
  StoreUnavailableError,
  Stride,
} from "../engine/index.js";
import { inRemoteTrace } from "../tracing/index.js";

/** What the job of a batch carries. */
export interface BatchJobData {
  readonly batchId: string;
  /** Items of the batch: what taking it charges its class. */
  readonly items: number;
  /** The W3C trace headers of the request that stored it, when it was traced. */
  readonly trace?: Readonly<Record<string, string>> | undefined;
}

/** The BullMQ job id of the batch `pk`. */
export const jobId = (pk: number) => `b${pk}`;
const pkOf = (id: string | undefined) => Number(id?.slice(1));

/** Options of {@link BatchTaker}. */
export interface BatchTakerOptions {
  /** Per class, the worker that takes its jobs (and checks for stalled ones). */
  readonly workers: ReadonlyMap<Priority, Worker<BatchJobData>>;
  /** Runs the batches taken, and says the weights in force. */
  readonly node: ClusterNode;
  /** Batches held at once. */
  readonly capacity: number;
  /** Lock duration of a held job, ms; locks are renewed three times within it. */
  readonly lockMs: number;
  readonly log: EngineLogger;
  /** Tells every node that a job waits (one handed back). */
  readonly announceQueued: () => void;
}

/**
 * How long a node with free capacity waits before asking the queues again when they were empty,
 * ms. New and handed-back jobs wake the nodes at once (`queued`); this bounds the wait for jobs
 * that come back otherwise (a lapsed lock, a retry).
 */
const IDLE_POLL_MS = 1000;

/** How long a batch whose progress could not be saved waits before it is taken again, ms. */
const UNSAVED_RETRY_MS = 1000;

/** A job this node holds. */
interface Held {
  readonly job: QueuedJob<BatchJobData>;
  readonly token: string;
  readonly priority: Priority;
  /** Aborted by a cancel from any node. */
  readonly cancel: AbortController;
  /** Aborted when the job's lock was found gone: the run stops and the job is not settled. */
  readonly lost: AbortController;
}

/** See the file comment. */
export class BatchTaker {
  readonly #o: BatchTakerOptions;
  /** Jobs this node holds, by batch pk. */
  readonly #held = new Map<number, Held>();
  /** Runs of the held jobs, each settled once its job has left this node. */
  readonly #running = new Set<Promise<void>>();
  readonly #stride: Stride;
  #taking = true;
  readonly #taker: Promise<void>;
  readonly #lockTimer: NodeJS.Timeout;
  /** Ends the taker's current wait, if it waits. */
  #resume: (() => void) | undefined;
  /** A wake came since the taker last looked at the queues: it looks again before waiting. */
  #woken = false;
  /** Set from a failed renewal until one succeeds: an outage is one line in the log. */
  #renewing = true;
  /** The renewal in flight, if any. */
  #renewal: Promise<void> | undefined;

  /** Starts taking. */
  constructor(options: BatchTakerOptions) {
    this.#o = options;
    this.#stride = new Stride(options.node.weights);
    this.#taker = this.#take();
    this.#lockTimer = setInterval(() => {
      // One renewal at a time: while Redis is silent they would pile up and report together.
      this.#renewal ??= this.#renewLocks().finally(() => (this.#renewal = undefined));
    }, options.lockMs / 3);
  }

  /** Cancels the batch `pk` if this node holds it. */
  cancel(pk: number): void {
    this.#held.get(pk)?.cancel.abort();
  }

  /** Takes no more batches; resolves once the taking loop has stopped. */
  async stop(): Promise<void> {
    this.#taking = false;
    this.wake();
    await this.#taker;
  }

  /** Stops, and resolves once every held batch has left this node (its run ended or went back). */
  async close(): Promise<void> {
    await this.stop();
    clearInterval(this.#lockTimer);
    await Promise.all(this.#running);
  }

  /**
   * Takes jobs while this node has capacity: from the classes in stride order, the first that
   * has one; when none has, waits to be woken (or polls).
   */
  async #take(): Promise<void> {
    const stride = this.#stride;
    /** Classes found empty: each rejoins the stride when it has a job again. */
    const empty = new Set<Priority>(PRIORITIES);
    while (this.#taking) {
      if (this.#held.size >= this.#o.capacity) {
        await this.#sleep();
        continue;
      }
      let taken: Held | undefined;
      this.#woken = false;
      try {
        for (const priority of empty) stride.join(priority);
        for (const priority of stride.order()) {
          taken = await this.#fetch(priority);
          if (taken !== undefined) break;
          empty.add(priority);
        }
      } catch (error) {
        this.#o.log.warn({ err: error }, "taking a batch failed; trying again");
        await this.#sleep(IDLE_POLL_MS);
        continue;
      }
      if (taken === undefined) {
        await this.#sleep(IDLE_POLL_MS);
        continue;
      }
      empty.delete(taken.priority);
      stride.charge(taken.priority, Math.max(1, taken.job.data.items));
      this.#runHeld(taken);
    }
  }

  /** Takes the next job of one class, if it has one (and this node still takes jobs). */
  async #fetch(priority: Priority): Promise<Held | undefined> {
    const worker = this.#o.workers.get(priority) as Worker<BatchJobData>;
    const token = randomUUID();
    const job = await worker.getNextJob(token, { block: false });
    if (job === undefined) return undefined;
    const held: Held = {
      job,
      token,
      priority,
      cancel: new AbortController(),
      lost: new AbortController(),
    };
    this.#held.set(pkOf(job.id), held);
    if (!this.#taking) {
      // Stopped while this call was out: straight back.
      await this.#settle(held, "released");
      return undefined;
    }
    return held;
  }

  /** Runs a held job's batch and settles the job by how the run ended. */
  #runHeld(held: Held): void {
    const pk = pkOf(held.job.id);
    const run = inRemoteTrace(
      held.job.data.trace,
      "run batch",
      { "batch_processor.batch_id": held.job.data.batchId },
      () => this.#o.node.run(pk, { cancel: held.cancel.signal, lost: held.lost.signal }),
    )
      .then(
        (outcome) => this.#settle(held, outcome),
        (error: unknown) => this.#settle(held, error),
      )
      .finally(() => {
        this.#running.delete(run);
        this.wake();
      });
    this.#running.add(run);
  }

  /**
   * Ends this node's hold on a job by how its run ended: an ended batch completes its job; a
   * released one goes back to its queue at once; an unsaved one after a pause (the store may still
   * be away); one whose lock was lost is no longer this node's to settle; a run that threw (its
   * batch could not be read) fails the job, which BullMQ retries after a pause. The calls wait out a Redis outage on the worker's
   * connection; if one fails, the lock lapses and the stalled check puts the job back.
   */
  async #settle(held: Held, outcome: RunEnd | unknown): Promise<void> {
    const { job, token } = held;
    try {
      if (held.lost.signal.aborted) return;
      if (outcome === "ended") await job.moveToCompleted(null, token, false);
      else if (outcome === "released") {
        await job.moveToWait(token);
        this.#o.announceQueued();
      } else if (outcome === "unsaved") {
        await job.moveToDelayed(Date.now() + UNSAVED_RETRY_MS, token);
      } else {
        // Redis away is one event, logged by the connections; anything else is this batch's.
        const away = outcome instanceof StoreUnavailableError;
        this.#o.log[away ? "debug" : "error"](
          { err: outcome, batch: job.id },
          "running a batch failed; it is taken again",
        );
        await job.moveToFailed(
          outcome instanceof Error ? outcome : new Error(String(outcome)),
          token,
          false,
        );
      }
    } catch (error) {
      this.#o.log.warn({ err: error, batch: job.id }, "settling a batch's job failed");
    } finally {
      this.#held.delete(pkOf(job.id));
    }
  }

  /**
   * Renews the locks of the jobs this node holds. A job whose lock is gone (Redis lost it, or
   * this node could not renew it in time and the stalled check gave it to another node) stops
   * here: whoever takes it runs its items that have no stored outcome. A renewal that fails is
   * logged once until one succeeds.
   */
  async #renewLocks(): Promise<void> {
    const lost: string[] = [];
    for (const [priority, worker] of this.#o.workers) {
      // Those found lost already are on their way out: not renewed, not reported again.
      const held = [...this.#held.values()].filter(
        (h) => h.priority === priority && !h.lost.signal.aborted,
      );
      if (held.length === 0) continue;
      try {
        const gone = await worker.extendJobLocks(
          held.map((h) => h.job.id as string),
          held.map((h) => h.token),
          this.#o.lockMs,
        );
        if (!this.#renewing) {
          this.#renewing = true;
          this.#o.log.info({}, "renewing the locks of held batches works again");
        }
        for (const id of gone) {
          this.#held.get(pkOf(id))?.lost.abort();
          lost.push(id);
        }
      } catch (error) {
        if (this.#renewing)
          this.#o.log.warn({ err: error }, "renewing the locks of held batches failed");
        this.#renewing = false;
      }
    }
    if (lost.length > 0)
      this.#o.log.warn(
        { batches: lost },
        "the locks of held batches were lost; they stop here and run wherever they are taken next",
      );
  }

  /** Ends the taker's wait (a job queued, a slot freed, taking stopped). */
  wake(): void {
    this.#woken = true;
    this.#resume?.();
  }

  /** Waits for a wake, or `ms` (at most); returns at once if one came meanwhile. */
  #sleep(ms?: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => this.#resume?.(), ms);
      this.#resume = () => {
        this.#resume = undefined;
        this.#woken = false;
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
