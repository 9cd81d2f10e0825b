/**
 * The figures port on a cluster's Redis: each node's figures of a time bucket (an analytics
 * minute, a counters interval) are one field of a hash `<prefix>:figures:<key>:<bucket>`, keyed
 * by node. A cluster node keeps nothing for itself across restarts (see `metrics/figures.ts`).
 */
import type { Redis } from "ioredis";
import { StoreUnavailableError } from "../engine/index.js";
import type { Figures, PeerFigures } from "../metrics/index.js";
import { unavailableOnError } from "./unavailable.js";

/** See the file comment. */
export class RedisFigures implements Figures {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #node: string;

  /** `node`: this node's id, the field its figures are shared under. */
  constructor(redis: Redis, prefix: string, node: string) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#node = node;
  }

  get node(): string {
    return this.#node;
  }

  async load(): Promise<unknown> {
    return undefined;
  }

  async save(): Promise<void> {}

  async share(key: string, bucket: number, value: unknown, ttlMs: number): Promise<void> {
    const hash = this.#key(key, bucket);
    await unavailableOnError(() =>
      this.#redis.multi().hset(hash, this.#node, JSON.stringify(value)).pexpire(hash, ttlMs).exec(),
    );
  }

  async peers(key: string, buckets: readonly number[]): Promise<PeerFigures[]> {
    const pipeline = this.#redis.pipeline();
    for (const bucket of buckets) pipeline.hgetall(this.#key(key, bucket));
    const replies = await unavailableOnError(async () => (await pipeline.exec()) ?? []);
    const figures: PeerFigures[] = [];
    replies.forEach(([error, hash], i) => {
      if (error !== null) throw new StoreUnavailableError(error);
      const bucket = buckets[i] as number;
      for (const [node, text] of Object.entries(hash as Record<string, string>))
        if (node !== this.#node) figures.push({ node, bucket, value: JSON.parse(text) });
    });
    return figures;
  }

  #key(key: string, bucket: number): string {
    return `${this.#prefix}:figures:${key}:${bucket}`;
  }
}
