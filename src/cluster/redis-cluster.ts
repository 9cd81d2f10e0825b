/**
 * The {@link Cluster} on BullMQ and Redis. Each stored batch is one BullMQ job (id `b<pk>`) in
 * the queue of its priority class. A node takes jobs itself, one at a time while it holds fewer
 * than its capacity, from the class the {@link Stride} rule names (charged by the batch's items),
 * so across the cluster the classes get shares by their weights, as items do inside a node. A
 * node renews the locks of the jobs it holds; one that dies stops renewing, and BullMQ's stalled
 * check puts its jobs back in their queues for another node, which resumes each batch from its
 * stored outcomes. A node that shuts down hands its batches back at once.
 *
 * Nodes talk through a BullMQ Relay: views of running batches (`batches.<pk>`, the last one
 * retained), cancels (`cancel`), configuration changes (`config`) and new jobs (`queued`, which
 * wakes idle nodes). A view is also kept under `<prefix>:live:<pk>` for status reads, and each
 * node's figures of an analytics minute under `<prefix>:figures:<key>:<minute>` (a hash by node).
 */
import { randomUUID } from "node:crypto";
import { Queue, type Job as QueuedJob, Relay, type RelaySubscription, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { Cluster, ClusterNode, PeerFigures, RemoteCancel } from "../engine/cluster.js";
import { StoreUnavailableError } from "../engine/errors.js";
import type { BatchRecord } from "../engine/job-store.js";
import type { EngineLogger } from "../engine/logger.js";
import type { ResolvedBatchingOptions } from "../engine/options.js";
import { Stride } from "../engine/stride.js";
import { type BatchView, PRIORITIES, type Priority } from "../engine/types.js";

/** Options of {@link RedisCluster}. */
export interface RedisClusterOptions {
  /** `redis://host:port/db`. */
  readonly url: string;
  /** Prefix of every key; the store and the cluster of one deployment share it. */
  readonly prefix: string;
  /** Batches a node holds at once, of all classes together (its capacity). */
  readonly nodeBatches: number;
  /**
   * How long a node's hold on a batch lasts without renewal, ms: after a node dies, its batches
   * move to another node within about twice this.
   */
  readonly lockMs: number;
  readonly log: EngineLogger;
}

/** Bounds of the options, for the configuration reader. */
export const CLUSTER_BOUNDS = Object.freeze({
  nodeBatches: [1, 10_000] as const,
  lockMs: [1000, 600_000] as const,
});

/** How long a published view stays readable without a newer one, ms. */
const LIVE_TTL_MS = 30_000;

/** How long a count of nodes is reused, ms. */
const NODES_TTL_MS = 2000;

/** Attempts of a batch whose run throws (a store error): it waits and is taken again. */
const RUN_ATTEMPTS = 1000;
const RUN_RETRY_MS = 1000;

/**
 * Times a batch may lose its node to a stalled lock before BullMQ gives up on it. Taking a batch
 * over is safe however often it happens (items that had started are not run twice), so the
 * limit only stops a batch that brings down every node that takes it.
 */
const MAX_STALLS = 100;

/**
 * How long a node with free capacity waits before asking the queues again when they were empty,
 * ms. New and handed-back jobs wake the nodes at once (`queued`); this bounds the wait for jobs
 * that come back otherwise (a lapsed lock, a retry).
 */
const IDLE_POLL_MS = 1000;

/** What the job of a batch carries. */
interface BatchJobData {
  readonly batchId: string;
  /** Items of the batch: what taking it charges its class. */
  readonly items: number;
}

/** A job this node holds. */
interface Held {
  readonly job: QueuedJob<BatchJobData>;
  readonly token: string;
  readonly priority: Priority;
  /** Aborted by a cancel from any node. */
  readonly cancel: AbortController;
}

const jobId = (pk: number) => `b${pk}`;
const pkOf = (id: string | undefined) => Number(id?.slice(1));

/** See the file comment. */
export class RedisCluster implements Cluster {
  readonly #o: RedisClusterOptions;
  /** Commands that must fail at once while Redis is away (enqueue, views). */
  readonly #redis: Redis;
  readonly #queues: ReadonlyMap<Priority, Queue>;
  readonly #relay: Relay<Redis>;
  /** Per class, the worker this node takes jobs and checks for stalled ones with. */
  #workers = new Map<Priority, Worker<BatchJobData>>();
  #subscriptions: RelaySubscription[] = [];
  #nodes: { count: number; at: number } | undefined;
  /** Connections made for the workers and the relay, closed last. */
  readonly #connections: Redis[] = [];
  /** Jobs this node holds, by batch pk. */
  readonly #held = new Map<number, Held>();
  /** Runs of the held jobs, each settled once its job has left this node. */
  readonly #running = new Set<Promise<void>>();
  #stride: Stride | undefined;
  #taking = false;
  #taker: Promise<void> | undefined;
  #lockTimer: NodeJS.Timeout | undefined;
  /** Ends the taker's current wait, if it waits. */
  #resume: (() => void) | undefined;
  /** A wake came since the taker last looked at the queues: it looks again before waiting. */
  #woken = false;

  constructor(options: RedisClusterOptions) {
    this.#o = options;
    this.#redis = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
    });
    this.#redis.on("error", () => {
      // Reported where a command fails; ioredis reconnects by itself.
    });
    this.#queues = new Map(
      PRIORITIES.map((priority) => [
        priority,
        new Queue(`batches-${priority}`, {
          connection: this.#redis,
          prefix: options.prefix,
        }),
      ]),
    );
    this.#relay = new Relay({
      connection: this.#blocking(),
      prefix: options.prefix,
      namespace: "nodes",
    });
    this.#relay.on("error", (error: unknown) =>
      options.log.warn({ err: error }, "cluster messages: Redis error"),
    );
  }

  async start(node: ClusterNode): Promise<void> {
    await Promise.all([...this.#queues.values()].map((queue) => queue.waitUntilReady()));
    await this.#relay.waitUntilReady();
    const { log, lockMs, prefix } = this.#o;
    this.#subscriptions = await Promise.all([
      this.#relay.subscribe<{ pk: number }>("cancel", ({ data }) =>
        this.#held.get(data.pk)?.cancel.abort(),
      ),
      this.#relay.subscribe<{ from: string; options: ResolvedBatchingOptions }>(
        "config",
        ({ data }) => {
          if (data.from !== this.#relay.nodeId) node.configure(data.options);
        },
      ),
      this.#relay.subscribe("queued", () => this.#wake()),
    ]);
    for (const priority of PRIORITIES) {
      // No processor: the taker below fetches jobs itself; the worker is the handle for taking,
      // renewing locks and the stalled check.
      const worker = new Worker<BatchJobData>(`batches-${priority}`, null, {
        connection: this.#blocking(),
        prefix,
        autorun: false,
        lockDuration: lockMs,
        stalledInterval: lockMs,
        maxStalledCount: MAX_STALLS,
      });
      worker.on("error", (error) => log.warn({ err: error }, "cluster worker: Redis error"));
      this.#workers.set(priority, worker);
    }
    await Promise.all([...this.#workers.values()].map((worker) => worker.waitUntilReady()));
    await Promise.all([...this.#workers.values()].map((w) => w.startStalledCheckTimer()));
    this.#stride = new Stride(node.weights);
    this.#taking = true;
    this.#taker = this.#take(node);
    this.#lockTimer = setInterval(() => void this.#renewLocks(), lockMs / 3);
  }

  async enqueue(record: BatchRecord): Promise<void> {
    const queue = this.#queues.get(record.priority) as Queue;
    const data: BatchJobData = { batchId: record.batchId, items: record.total };
    await unavailableOnError(() =>
      queue.add("batch", data, {
        jobId: jobId(record.pk),
        removeOnComplete: true,
        removeOnFail: true,
        attempts: RUN_ATTEMPTS,
        backoff: { type: "fixed", delay: RUN_RETRY_MS },
      }),
    );
    this.#announceQueued();
  }

  cancel(record: BatchRecord): Promise<RemoteCancel> {
    const queue = this.#queues.get(record.priority) as Queue;
    const id = jobId(record.pk);
    return unavailableOnError(async () => {
      // A waiting job is removed whole; an active one is locked and stays.
      if ((await queue.remove(id)) === 1) return "removed";
      const state = await queue.getJobState(id);
      if (state !== "active") return "removed";
      await this.#relay.publish("cancel", { pk: record.pk });
      return "signalled";
    });
  }

  /**
   * Takes jobs while this node has capacity: from the classes in stride order, the first that
   * has one; when none has, waits to be woken (or polls).
   */
  async #take(node: ClusterNode): Promise<void> {
    const stride = this.#stride as Stride;
    /** Classes found empty: each rejoins the stride when it has a job again. */
    const empty = new Set<Priority>(PRIORITIES);
    while (this.#taking) {
      if (this.#held.size >= this.#o.nodeBatches) {
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
      this.#runHeld(node, taken);
    }
  }

  /** Takes the next job of one class, if it has one (and this node still takes jobs). */
  async #fetch(priority: Priority): Promise<Held | undefined> {
    const worker = this.#workers.get(priority) as Worker<BatchJobData>;
    const token = randomUUID();
    const job = await worker.getNextJob(token, { block: false });
    if (job === undefined) return undefined;
    const held: Held = { job, token, priority, cancel: new AbortController() };
    this.#held.set(pkOf(job.id), held);
    if (!this.#taking) {
      // Stopped while this call was out: straight back.
      await this.#settle(held, "released");
      return undefined;
    }
    return held;
  }

  /** Runs a held job's batch and settles the job by how the run ended. */
  #runHeld(node: ClusterNode, held: Held): void {
    const run = node
      .run(pkOf(held.job.id), held.cancel.signal)
      .then(
        (outcome) => this.#settle(held, outcome),
        (error: unknown) => this.#settle(held, error),
      )
      .finally(() => {
        this.#running.delete(run);
        this.#wake();
      });
    this.#running.add(run);
  }

  /**
   * Ends this node's hold on a job: an ended batch completes its job; a released one goes back to
   * its queue at once; a run that threw fails the job, which BullMQ retries after a pause. If the
   * call fails, the lock lapses and the stalled check puts the job back.
   */
  async #settle(held: Held, outcome: "ended" | "released" | unknown): Promise<void> {
    const { job, token } = held;
    try {
      if (outcome === "ended") await job.moveToCompleted(null, token, false);
      else if (outcome === "released") {
        await job.moveToWait(token);
        this.#announceQueued();
      } else {
        this.#o.log.error(
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
   * Renews the locks of the jobs this node holds. A job whose lock is gone (Redis lost it, or the
   * node was stalled so long that the job went to another node) keeps running here: its items
   * have single outcomes, so the two runs cannot disagree, and the first to finish ends it.
   */
  async #renewLocks(): Promise<void> {
    for (const [priority, worker] of this.#workers) {
      const held = [...this.#held.values()].filter((h) => h.priority === priority);
      if (held.length === 0) continue;
      try {
        const lost = await worker.extendJobLocks(
          held.map((h) => h.job.id as string),
          held.map((h) => h.token),
          this.#o.lockMs,
        );
        if (lost.length > 0) this.#o.log.warn({ batches: lost }, "locks of held batches were lost");
      } catch (error) {
        this.#o.log.warn({ err: error }, "renewing the locks of held batches failed");
      }
    }
  }

  /** Ends the taker's wait (a job queued, a slot freed, taking stopped). */
  #wake(): void {
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

  /** Wakes every node's taker: a job is waiting. Best effort; idle nodes also poll. */
  #announceQueued(): void {
    this.#relay.publish("queued", {}).catch((error: unknown) => {
      this.#o.log.debug({ err: error }, "announcing a queued batch failed");
    });
  }

  publish(pk: number, view: BatchView): void {
    const text = JSON.stringify(view);
    Promise.all([
      this.#redis.set(this.#liveKey(pk), text, "PX", LIVE_TTL_MS),
      this.#relay.publish(`batches.${pk}`, view, { retain: LIVE_TTL_MS }),
    ]).catch((error: unknown) =>
      this.#o.log.debug({ err: error, batch: view.batchId }, "publishing a batch view failed"),
    );
  }

  async latest(pk: number): Promise<BatchView | undefined> {
    try {
      const text = await this.#redis.get(this.#liveKey(pk));
      return text === null ? undefined : (JSON.parse(text) as BatchView);
    } catch {
      // Without the live view a status read answers from the store.
      return undefined;
    }
  }

  async *watch(pk: number, signal?: AbortSignal): AsyncGenerator<BatchView> {
    const views: BatchView[] = [];
    let wake: (() => void) | undefined;
    const subscription = await unavailableOnError(() =>
      this.#relay.subscribe<BatchView>(`batches.${pk}`, ({ data }) => {
        views.push(data);
        wake?.();
      }),
    );
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      while (signal?.aborted !== true) {
        const next = views.shift();
        if (next !== undefined) yield next;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      await subscription.unsubscribe().catch(() => undefined);
    }
  }

  async configured(options: ResolvedBatchingOptions): Promise<void> {
    await unavailableOnError(() =>
      this.#relay.publish("config", { from: this.#relay.nodeId, options }),
    );
  }

  async nodes(): Promise<number> {
    const now = Date.now();
    if (this.#nodes === undefined || now - this.#nodes.at > NODES_TTL_MS) {
      const nodes = await unavailableOnError(() => this.#relay.getNodes());
      this.#nodes = { count: Math.max(1, nodes.length), at: now };
    }
    return this.#nodes.count;
  }

  async shareFigures(key: string, bucket: number, value: unknown, ttlMs: number): Promise<void> {
    const hash = this.#figuresKey(key, bucket);
    await unavailableOnError(() =>
      this.#redis
        .multi()
        .hset(hash, this.#relay.nodeId, JSON.stringify(value))
        .pexpire(hash, ttlMs)
        .exec(),
    );
  }

  async peerFigures(key: string, buckets: readonly number[]): Promise<PeerFigures[]> {
    const pipeline = this.#redis.pipeline();
    for (const bucket of buckets) pipeline.hgetall(this.#figuresKey(key, bucket));
    const replies = await unavailableOnError(async () => (await pipeline.exec()) ?? []);
    const figures: PeerFigures[] = [];
    replies.forEach(([error, hash], i) => {
      if (error !== null) throw new StoreUnavailableError(error);
      const bucket = buckets[i] as number;
      for (const [node, text] of Object.entries(hash as Record<string, string>))
        if (node !== this.#relay.nodeId) figures.push({ node, bucket, value: JSON.parse(text) });
    });
    return figures;
  }

  unavailable(): string | undefined {
    return this.#redis.status === "ready"
      ? undefined
      : `Redis is unreachable (${this.#redis.status})`;
  }

  async stopTaking(): Promise<void> {
    this.#taking = false;
    this.#wake();
    await this.#taker;
  }

  async close(): Promise<void> {
    await this.stopTaking();
    clearInterval(this.#lockTimer);
    await Promise.all(this.#running);
    await Promise.all([...this.#workers.values()].map((worker) => worker.close()));
    await Promise.all(this.#subscriptions.map((s) => s.unsubscribe().catch(() => undefined)));
    await this.#relay.close();
    await Promise.all([...this.#queues.values()].map((queue) => queue.close()));
    this.#redis.disconnect();
    for (const connection of this.#connections) connection.disconnect();
  }

  #figuresKey(key: string, bucket: number): string {
    return `${this.#o.prefix}:figures:${key}:${bucket}`;
  }

  #liveKey(pk: number): string {
    return `${this.#o.prefix}:live:${pk}`;
  }

  /** A connection for blocking reads, which must wait out a Redis restart rather than fail. */
  #blocking(): Redis {
    const redis = new Redis(this.#o.url, { maxRetriesPerRequest: null });
    redis.on("error", () => {
      // The worker or relay reports the failure; ioredis reconnects by itself.
    });
    this.#connections.push(redis);
    return redis;
  }
}

/**
 * Runs a call on Redis for a request: any failure is Redis being away or failing, which the
 * caller answers as UNAVAILABLE (the client retries), never as an internal error.
 */
async function unavailableOnError<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw error instanceof StoreUnavailableError ? error : new StoreUnavailableError(error);
  }
}
