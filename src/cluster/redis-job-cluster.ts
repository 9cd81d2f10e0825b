/**
 * The {@link JobCluster} on BullMQ: each chunk of a job is one BullMQ job (id `c<pk>-<chunk>`,
 * so a chunk handed out twice is one job) in the `job-chunks` queue, ordered by the job's class;
 * every node's worker takes chunks while it runs fewer than its concurrency, renews their locks,
 * and BullMQ's stalled check hands the chunks of a node that died to another. The end of a job's
 * window is a delayed job (`e<pk>`) any node fires. Aborts go to every node through the relay
 * (`jobs.abort`).
 */
import { Queue, type Relay, type RelaySubscription, Worker } from "bullmq";
import type { Redis } from "ioredis";
import {
  type ChunkTask,
  type EngineLogger,
  type JobCluster,
  type JobClusterNode,
  PRIORITIES,
  type Priority,
} from "../engine/index.js";
import { unavailableOnError } from "./unavailable.js";

/** What the cluster gives the jobs' side: its connections, relay and settings. */
export interface RedisJobClusterOptions {
  /** The non-blocking connection (queue commands fail at once while Redis is away). */
  readonly redis: Redis;
  /** Makes a connection for blocking reads (the worker's). */
  readonly blocking: () => Redis;
  readonly relay: Relay<Redis>;
  readonly prefix: string;
  readonly lockMs: number;
  readonly log: EngineLogger;
  /** Where the worker's connection errors go (one report per outage, the cluster's). */
  readonly redisError: (error: unknown) => void;
}

type ChunkData = { readonly pk: number; readonly chunk: number } | { readonly pk: number };

const QUEUE = "job-chunks";
/** Tries of a chunk whose run throws (a store error, its node stopping): it waits and goes again. */
const ATTEMPTS = 1000;
const RETRY_MS = 1000;
/** Times a chunk may lose its node to a stalled lock before BullMQ gives up on it. */
const MAX_STALLS = 100;

/** See the file comment. */
export class RedisJobCluster implements JobCluster {
  readonly #o: RedisJobClusterOptions;
  readonly #queue: Queue<ChunkData>;
  #worker: Worker<ChunkData> | undefined;
  #subscription: RelaySubscription | undefined;
  /** Chunks running on this node, by job. */
  readonly #running = new Map<number, Set<AbortController>>();

  constructor(options: RedisJobClusterOptions) {
    this.#o = options;
    this.#queue = new Queue<ChunkData>(QUEUE, {
      connection: options.redis,
      prefix: options.prefix,
    });
    this.#queue.on("error", options.redisError);
  }

  async start(node: JobClusterNode, concurrency: number): Promise<void> {
    const { relay, prefix, lockMs, log } = this.#o;
    await this.#queue.waitUntilReady();
    this.#subscription = await relay.subscribe<{ pk: number }>("jobs.abort", ({ data }) =>
      this.#abortHere(data.pk),
    );
    const worker = new Worker<ChunkData>(
      QUEUE,
      async (job) => {
        const data = job.data;
        if (!("chunk" in data)) {
          await node.expire(data.pk);
          return;
        }
        const controller = new AbortController();
        const here = this.#running.get(data.pk) ?? new Set();
        here.add(controller);
        this.#running.set(data.pk, here);
        try {
          await node.runChunk(data as ChunkTask, controller.signal);
        } finally {
          here.delete(controller);
          if (here.size === 0) this.#running.delete(data.pk);
        }
      },
      {
        connection: this.#o.blocking(),
        prefix,
        concurrency,
        lockDuration: lockMs,
        stalledInterval: lockMs,
        maxStalledCount: MAX_STALLS,
      },
    );
    worker.on("error", this.#o.redisError);
    worker.on("failed", (job, error) =>
      log.debug({ err: error, chunk: job?.id }, "a job chunk goes back to the queue"),
    );
    this.#worker = worker;
    await worker.waitUntilReady();
  }

  async enqueue(
    pk: number,
    chunks: readonly number[],
    priority: Priority,
    expiresAt: number,
  ): Promise<void> {
    const retries = { attempts: ATTEMPTS, backoff: { type: "fixed", delay: RETRY_MS } } as const;
    await unavailableOnError(async () => {
      await this.#queue.addBulk(
        chunks.map((chunk) => ({
          name: "chunk",
          data: { pk, chunk },
          opts: {
            jobId: `c${pk}-${chunk}`,
            // BullMQ's priorities: 1 first. The classes of waiting chunks go strictly by class.
            priority: PRIORITIES.indexOf(priority) + 1,
            removeOnComplete: true,
            removeOnFail: true,
            ...retries,
          },
        })),
      );
      await this.#queue.add(
        "expire",
        { pk },
        {
          jobId: `e${pk}`,
          delay: Math.max(0, expiresAt - Date.now()),
          removeOnComplete: true,
          removeOnFail: true,
          ...retries,
        },
      );
    });
  }

  async abort(pk: number): Promise<void> {
    this.#abortHere(pk);
    await unavailableOnError(() => this.#o.relay.publish("jobs.abort", { pk }));
  }

  async ended(pk: number): Promise<void> {
    // The window's timer of a job that ended: nothing left for it to do.
    await unavailableOnError(() => this.#queue.remove(`e${pk}`));
  }

  async stop(): Promise<void> {
    // Chunks cut short here are handed back (their runs throw) for another node.
    for (const pk of [...this.#running.keys()]) this.#abortHere(pk);
    await this.#worker?.close();
    await this.#subscription?.unsubscribe().catch(() => undefined);
    await this.#queue.close();
  }

  #abortHere(pk: number): void {
    for (const controller of this.#running.get(pk) ?? []) controller.abort();
  }
}
