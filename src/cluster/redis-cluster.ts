/**
 * The {@link Cluster} on BullMQ and Redis. Each stored batch is one BullMQ job (id `b<pk>`) in
 * the queue of its priority class. A node takes jobs itself ({@link BatchTaker}), one at a time
 * while it holds fewer than its capacity, from the class the stride rule names (charged by the
 * batch's items), so across the cluster the classes get shares by their weights, as items do
 * inside a node. A node renews the locks of the jobs it holds; one that dies stops renewing, and
 * BullMQ's stalled check puts its jobs back in their queues for another node, which resumes each
 * batch from its stored outcomes. A node that shuts down hands its batches back at once.
 *
 * Nodes talk through a BullMQ Relay: views of running batches (`batches.<pk>`, the last one
 * retained), cancels (`cancel`), configuration changes (`config`) and new jobs (`queued`, which
 * wakes idle nodes). A view is also kept under `<prefix>:live:<pk>` for status reads. The nodes'
 * figures go through {@link figures} ({@link RedisFigures}), under the same node id.
 */
import { randomUUID } from "node:crypto";
import { Queue, Relay, type RelaySubscription, Worker } from "bullmq";
import { Redis } from "ioredis";
import {
  type BatchRecord,
  type BatchView,
  type Cluster,
  type ClusterNode,
  type EngineLogger,
  PRIORITIES,
  type Priority,
  type RemoteCancel,
  type ResolvedBatchingOptions,
} from "../engine/index.js";
import type { Figures } from "../metrics/index.js";
import { REDIS_COMMAND_TIMEOUT_MS, REQUEST_CONNECTION } from "../store/index.js";
import { traceHeaders } from "../tracing/index.js";
import { type BatchJobData, BatchTaker, jobId } from "./batch-taker.js";
import { RedisFigures } from "./redis-figures.js";
import { RedisJobCluster } from "./redis-job-cluster.js";
import { unavailableOnError } from "./unavailable.js";

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

/** How long a published view stays readable without a newer one, ms. */
const LIVE_TTL_MS = 30_000;

/** How often a node checks that Redis still holds the cluster's marker, ms. */
const MARKER_CHECK_MS = 2000;

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
  #taker: BatchTaker | undefined;
  /** Why this node no longer serves the cluster's data (see {@link #watchMarker}). */
  #lost: string | undefined;
  /** Set while Redis does not answer though connected (a partition; see {@link #watchMarker}). */
  #silent: string | undefined;
  #markerTimer: NodeJS.Timeout | undefined;
  /** Set from the first Redis error until the connection is ready again (see #redisError). */
  #away = false;
  /** The figures port of this node, on the cluster's Redis. */
  readonly figures: Figures;
  /** Where jobs' chunks are handed out to the nodes. */
  readonly jobs: RedisJobCluster;

  constructor(options: RedisClusterOptions) {
    this.#o = options;
    this.#redis = new Redis(options.url, REQUEST_CONNECTION);
    // Every connection's errors go to one report: an outage is one line, its end another.
    this.#redis.on("error", this.#redisError);
    this.#redis.on("ready", () => {
      if (!this.#away) return;
      this.#away = false;
      options.log.info({ prefix: options.prefix }, "Redis is reachable again");
    });
    this.#queues = new Map(
      PRIORITIES.map((priority) => {
        const queue = new Queue(`batches-${priority}`, {
          connection: this.#redis,
          prefix: options.prefix,
        });
        queue.on("error", this.#redisError);
        return [priority, queue];
      }),
    );
    this.#relay = new Relay({
      connection: this.#blocking(),
      prefix: options.prefix,
      namespace: "nodes",
    });
    this.#relay.on("error", this.#redisError);
    this.figures = new RedisFigures(this.#redis, options.prefix, this.#relay.nodeId);
    this.jobs = new RedisJobCluster({
      redis: this.#redis,
      blocking: () => this.#blocking(),
      relay: this.#relay,
      prefix: options.prefix,
      lockMs: options.lockMs,
      log: options.log,
      redisError: this.#redisError,
    });
  }

  async start(node: ClusterNode): Promise<void> {
    await Promise.all([...this.#queues.values()].map((queue) => queue.waitUntilReady()));
    await this.#relay.waitUntilReady();
    await this.#watchMarker();
    const { log, lockMs, prefix } = this.#o;
    this.#subscriptions = await Promise.all([
      this.#relay.subscribe<{ pk: number }>("cancel", ({ data }) => this.#taker?.cancel(data.pk)),
      this.#relay.subscribe<{ from: string; options: ResolvedBatchingOptions }>(
        "config",
        ({ data }) => {
          if (data.from !== this.#relay.nodeId) node.configure(data.options);
        },
      ),
      this.#relay.subscribe("queued", () => this.#taker?.wake()),
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
      worker.on("error", this.#redisError);
      this.#workers.set(priority, worker);
    }
    await Promise.all([...this.#workers.values()].map((worker) => worker.waitUntilReady()));
    await Promise.all([...this.#workers.values()].map((w) => w.startStalledCheckTimer()));
    this.#taker = new BatchTaker({
      workers: this.#workers,
      node,
      capacity: this.#o.nodeBatches,
      lockMs,
      log,
      announceQueued: () => this.#announceQueued(),
    });
  }

  async enqueue(record: BatchRecord): Promise<void> {
    const queue = this.#queues.get(record.priority) as Queue;
    const data: BatchJobData = {
      batchId: record.batchId,
      items: record.total,
      trace: traceHeaders(),
    };
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

  /** Wakes every node's taker: a job is waiting. Best effort; idle nodes also poll. */
  #announceQueued(): void {
    this.#relay.publish("queued", {}).catch((error: unknown) => {
      this.#o.log.debug({ err: error }, "announcing a queued batch failed");
    });
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

  unavailable(): string | undefined {
    if (this.#redis.status !== "ready") return `Redis is unreachable (${this.#redis.status})`;
    return this.#lost ?? this.#silent;
  }

  /**
   * Adopts the cluster's marker (making it when this node is the first) and checks every few
   * seconds that Redis still holds it: a Redis that restarted empty, or was flushed, lost every
   * batch, job and secret the nodes share, and a node that went on would split ownership from the
   * nodes started since. It stops being ready instead, and says why, once. The same check finds a
   * Redis that is connected but silent (a network partition keeps the socket open): the node is
   * not ready until Redis answers again, each change said once.
   */
  async #watchMarker(): Promise<void> {
    const key = `${this.#o.prefix}:cluster`;
    await this.#redis.set(key, randomUUID(), "NX");
    const adopted = await this.#redis.get(key);
    const { log, prefix } = this.#o;
    this.#markerTimer = setInterval(() => {
      this.#redis.get(key).then(
        (now) => {
          if (this.#silent !== undefined) {
            this.#silent = undefined;
            log.info({ prefix }, "Redis answers again");
          }
          if (now === adopted || this.#lost !== undefined) return;
          this.#lost =
            "Redis no longer holds this cluster's data (it restarted empty or was flushed): restart this node to join the cluster as it is now";
          log.error({ prefix }, this.#lost);
        },
        (error: unknown) => {
          // Disconnected: readiness says so from the connection's state. Connected but silent:
          // only this check can tell.
          if (this.#redis.status !== "ready" || this.#silent !== undefined) return;
          this.#silent = `Redis does not answer (no reply within ${REDIS_COMMAND_TIMEOUT_MS} ms)`;
          log.warn({ err: error, prefix }, this.#silent);
        },
      );
    }, MARKER_CHECK_MS);
    this.#markerTimer.unref();
  }

  async stopTaking(): Promise<void> {
    await this.#taker?.stop();
  }

  async close(): Promise<void> {
    clearInterval(this.#markerTimer);
    await this.#taker?.close();
    await Promise.all([...this.#workers.values()].map((worker) => worker.close()));
    await Promise.all(this.#subscriptions.map((s) => s.unsubscribe().catch(() => undefined)));
    await this.#relay.close();
    await Promise.all([...this.#queues.values()].map((queue) => queue.close()));
    this.#redis.disconnect();
    for (const connection of this.#connections) connection.disconnect();
  }

  #liveKey(pk: number): string {
    return `${this.#o.prefix}:live:${pk}`;
  }

  /**
   * Where every connection of this node reports its errors: the first of an outage is logged
   * (a warning naming it), the rest until Redis is reachable again are not, so that a connection
   * retrying every second, on each of several connections, does not fill the log.
   */
  readonly #redisError = (error: unknown): void => {
    if (this.#away) return;
    this.#away = true;
    this.#o.log.warn({ err: error, prefix: this.#o.prefix }, "Redis is unreachable");
  };

  /** A connection for blocking reads, which must wait out a Redis restart rather than fail. */
  #blocking(): Redis {
    const redis = new Redis(this.#o.url, { maxRetriesPerRequest: null });
    redis.on("error", this.#redisError);
    this.#connections.push(redis);
    return redis;
  }
}
