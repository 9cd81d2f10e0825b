/**
 * The JobStore on Redis (ioredis), for a cluster of nodes sharing one Redis: the same contract
 * as the SQLite store, each operation one atomic Lua script (`redis-scripts.ts` has the layout).
 * A batch's inputs are one blob written at submit; each outcome is a field of its own, written
 * once, so every item ends with exactly one result however often work is replayed.
 *
 * While Redis is unreachable, calls fail at once (no offline queue) with {@link StoreUnavailableError}
 * rather than waiting: the caller answers UNAVAILABLE and the client retries.
 */
import { Redis, type RedisOptions } from "ioredis";
import {
  type Backlog,
  type BatchRecord,
  type BatchWrite,
  type ItemWrite,
  type JobStore,
  type ListQuery,
  type NewBatch,
  type PendingInput,
  PRIORITIES,
  type Priority,
  type StartedRun,
  type StoredInput,
  type StoredResult,
  StoreUnavailableError,
  type UnfinishedBatch,
} from "../engine/index.js";
import { decodeBatchInputs, encodeBatchInputs } from "./batch-tensors.js";
import { decodeCursor, encodeCursor } from "./codec.js";
import { callRedis, REQUEST_CONNECTION } from "./redis-connection.js";
import { RedisJobData } from "./redis-job-data.js";
import { decodeOutcome, encodeOutcome, FIELDS, member, recordOf } from "./redis-rows.js";
import { BACKLOG, CREATE_BATCH, PAGE, PURGE, SAVE } from "./redis-scripts.js";

/** Options of {@link RedisJobStore}. */
export interface RedisJobStoreOptions {
  /** `redis://host:port/db`. */
  readonly url: string;
  /** Key prefix; two clusters on one Redis use two prefixes. @defaultValue "bp" */
  readonly prefix?: string;
  /** More ioredis options (tests, TLS). */
  readonly redis?: RedisOptions;
}

type Scripted = Redis & {
  bpCreate(...args: (string | Buffer | number)[]): Promise<[number, number]>;
  bpSave(...args: (string | Buffer | number)[]): Promise<string[][]>;
  bpPage(...args: (string | number)[]): Promise<string[]>;
  bpPurge(...args: (string | number)[]): Promise<number>;
  bpBacklog(...args: string[]): Promise<number[]>;
};

/** See the file comment. */
export class RedisJobStore implements JobStore {
  readonly #redis: Scripted;
  readonly #p: string;
  /** Jobs (data sets), on the same connection. */
  readonly jobs: RedisJobData;

  constructor(options: RedisJobStoreOptions) {
    this.#p = `${options.prefix ?? "bp"}:store`;
    this.#redis = new Redis(options.url, {
      ...REQUEST_CONNECTION,
      ...options.redis,
    }) as Scripted;
    // Reconnection is ioredis's; its errors surface through the calls that fail meanwhile.
    this.#redis.on("error", () => {});
    const scripts: [string, string][] = [
      ["bpCreate", CREATE_BATCH],
      ["bpSave", SAVE],
      ["bpPage", PAGE],
      ["bpPurge", PURGE],
      ["bpBacklog", BACKLOG],
    ];
    for (const [name, lua] of scripts) this.#redis.defineCommand(name, { numberOfKeys: 0, lua });
    this.jobs = new RedisJobData(this.#redis, options.prefix ?? "bp");
  }

  /** Resolves once connected; rejects with StoreUnavailableError if not within `timeoutMs`. */
  async ready(timeoutMs = 5000): Promise<void> {
    if (this.#redis.status === "ready") return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#redis.off("ready", onReady);
      };
      const onReady = () => {
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new StoreUnavailableError());
      }, timeoutMs);
      this.#redis.once("ready", onReady);
    });
  }

  async createBatch(
    batch: NewBatch,
    items: readonly StoredInput[],
  ): Promise<{ created: boolean; record: BatchRecord }> {
    const ordered = [...items].sort((a, b) => a.index - b.index);
    const { data, shapes } = encodeBatchInputs(ordered);
    const [created, pk] = await callRedis(() =>
      this.#redis.bpCreate(
        this.#p,
        batch.owner,
        batch.batchId,
        batch.modelId,
        batch.priority,
        batch.timeoutMs,
        batch.createdAt,
        batch.deadline,
        batch.total,
        JSON.stringify(batch.metadata),
        batch.payloadHash ?? "",
        data,
        JSON.stringify(ordered.map((item, k) => [item.requestId, shapes[k]])),
        batch.outputs == null ? "" : JSON.stringify(batch.outputs),
      ),
    );
    return { created: created === 1, record: (await this.#record(pk)) as BatchRecord };
  }

  async findBatch(owner: string | undefined, batchId: string): Promise<BatchRecord | undefined> {
    const pk = await callRedis(async () =>
      owner === undefined
        ? (await this.#redis.zrange(`${this.#p}:any:${batchId}`, 0, 0))[0]
        : await this.#redis.hget(`${this.#p}:ids:${owner}`, batchId),
    );
    return pk === undefined || pk === null ? undefined : this.#record(Number(pk));
  }

  async getResults(pk: number, finishedOnly: boolean): Promise<StoredResult[]> {
    const [meta, outcomes] = await callRedis(() =>
      Promise.all([
        this.#redis.get(`${this.#p}:meta:${pk}`),
        this.#redis.hgetallBuffer(`${this.#p}:r:${pk}`),
      ]),
    );
    if (meta === null) return [];
    const results: StoredResult[] = [];
    (JSON.parse(meta) as [string, string][]).forEach(([requestId], index) => {
      const blob = outcomes[String(index)];
      if (blob === undefined) {
        if (!finishedOnly)
          results.push({
            index,
            requestId,
            output: null,
            confidence: 0,
            processingTimeMs: 0,
            error: null,
          });
        return;
      }
      results.push({ index, requestId, ...decodeOutcome(blob) });
    });
    return results;
  }

  async save(
    items: readonly ItemWrite[],
    batches: readonly BatchWrite[],
    started: readonly StartedRun[] = [],
  ): Promise<BatchRecord[]> {
    const args: (string | Buffer | number)[] = [this.#p, items.length];
    for (const w of items) args.push(w.pk, w.index, encodeOutcome(w), w.error?.code ?? "");
    args.push(batches.length);
    for (const b of batches)
      args.push(
        b.pk,
        b.status,
        b.error?.message ?? "",
        b.error?.code ?? "",
        b.startedAt ?? "",
        b.completedAt ?? "",
        b.node ?? "",
      );
    args.push(started.length);
    for (const run of started) args.push(run.pk, `${run.lo}:${run.hi}`);
    const rows = await callRedis(() => this.#redis.bpSave(...args));
    return rows.map(([pk, ...fields]) => recordOf(Number(pk), fields));
  }

  async listBatches(
    query: ListQuery,
  ): Promise<{ batches: BatchRecord[]; nextCursor: string | undefined }> {
    const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const time = cursor === undefined ? "" : String(cursor[0]);
    const after = cursor === undefined ? "" : member(cursor[1]);
    const keys =
      query.statuses === undefined || query.statuses.length === 0
        ? [query.owner === undefined ? `${this.#p}:l:all` : `${this.#p}:l:o:${query.owner}`]
        : query.statuses.map((status) =>
            query.owner === undefined
              ? `${this.#p}:l:s:${status}`
              : `${this.#p}:l:os:${status}:${query.owner}`,
          );
    // Each index gives its own page; several (statuses) merge by creation time, then pk.
    const pages = await callRedis(() =>
      Promise.all(keys.map((key) => this.#redis.bpPage(key, time, after, query.limit + 1))),
    );
    const records = (
      await Promise.all([...new Set(pages.flat())].map((m) => this.#record(Number(m))))
    ).filter((r): r is BatchRecord => r !== undefined);
    records.sort((a, b) => b.createdAt - a.createdAt || b.pk - a.pk);
    const more = records.length > query.limit;
    const page = records.slice(0, query.limit);
    const last = page.at(-1);
    return {
      batches: page,
      nextCursor: more && last !== undefined ? encodeCursor(last.createdAt, last.pk) : undefined,
    };
  }

  async loadUnfinished(): Promise<UnfinishedBatch[]> {
    const members = await callRedis(async () => [
      ...(await this.#redis.zrange(`${this.#p}:l:s:queued`, 0, -1)),
      ...(await this.#redis.zrange(`${this.#p}:l:s:processing`, 0, -1)),
    ]);
    const out: UnfinishedBatch[] = [];
    for (const m of members) {
      const batch = await this.loadBatch(Number(m));
      if (batch !== undefined) out.push(batch);
    }
    return out.sort((a, b) => a.batch.createdAt - b.batch.createdAt || a.batch.pk - b.batch.pk);
  }

  async loadBatch(pk: number): Promise<UnfinishedBatch | undefined> {
    const [record, meta, inputs, done, runs] = await Promise.all([
      this.#record(pk),
      callRedis(() => this.#redis.get(`${this.#p}:meta:${pk}`)),
      callRedis(() => this.#redis.getBuffer(`${this.#p}:in:${pk}`)),
      callRedis(() => this.#redis.hkeys(`${this.#p}:r:${pk}`)),
      callRedis(() => this.#redis.smembers(`${this.#p}:s:${pk}`)),
    ]);
    if (record === undefined || meta === null || inputs === null) return undefined;
    const finished = new Set(done.map(Number));
    const ranges = runs.map((r) => r.split(":").map(Number) as [number, number]);
    const items = (JSON.parse(meta) as [string, string][]).map(([requestId, shape], index) => ({
      index,
      requestId,
      shape,
    }));
    const pending: PendingInput[] = [];
    for (const input of decodeBatchInputs(inputs, items))
      if (!finished.has(input.index))
        pending.push({
          ...input,
          started: ranges.some(([lo, hi]) => input.index >= lo && input.index <= hi),
        });
    return { batch: record, pending };
  }

  async activity(): Promise<{ activeBatches: number; pendingItems: number }> {
    const [queued, processing, pending] = await callRedis(() =>
      Promise.all([
        this.#redis.zcard(`${this.#p}:l:s:queued`),
        this.#redis.zcard(`${this.#p}:l:s:processing`),
        this.#redis.get(`${this.#p}:pending`),
      ]),
    );
    return { activeBatches: queued + processing, pendingItems: Math.max(0, Number(pending ?? 0)) };
  }

  async backlog(pk: number): Promise<Backlog | undefined> {
    const counts = await callRedis(() => this.#redis.bpBacklog(this.#p, String(pk), ...PRIORITIES));
    if (counts.length === 0) return undefined;
    const pending = Object.fromEntries(PRIORITIES.map((p, i) => [p, counts[i] ?? 0]));
    return { pending: pending as Record<Priority, number>, aheadInClass: counts.at(-1) ?? 0 };
  }

  async purgeFinished(before: number, limit: number): Promise<number> {
    return callRedis(() => this.#redis.bpPurge(this.#p, before, limit));
  }

  async getSetting(key: string): Promise<string | undefined> {
    return (await callRedis(() => this.#redis.hget(`${this.#p}:settings`, key))) ?? undefined;
  }

  async putSetting(key: string, value: string): Promise<void> {
    await callRedis(() => this.#redis.hset(`${this.#p}:settings`, key, value));
  }

  async close(): Promise<void> {
    if (this.#redis.status === "end") return;
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async #record(pk: number): Promise<BatchRecord | undefined> {
    const f = await callRedis(() => this.#redis.hmget(`${this.#p}:b:${pk}`, ...FIELDS));
    if (f[0] === null) return undefined;
    return recordOf(pk, f as string[]);
  }
}
