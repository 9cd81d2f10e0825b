/**
 * Jobs on Redis, for a cluster: the same `JobData` contract as the SQLite store, each change one
 * atomic Lua script. Layout under `<prefix>:jobs`:
 *
 * - `seq`: the last job key; `j:<pk>`: the job's hash; `own:<owner>`: job id -> key per owner;
 *   `any:<job id>`, `all`, `owner:<owner>`: keys by creation time (admin reads, lists);
 * - `l:<pk>`: chunk -> its lines (one blob each, `job-chunks.ts`); `f:<pk>`: chunk -> its first
 *   line; `o:<pk>`: chunk -> its outcomes, written once;
 * - `active`: keys of jobs queued or running; `ended`: keys by end time, for the purge;
 *   `uploading`: keys of jobs still validating, by the time of their last chunk.
 */
import type { Redis } from "ioredis";
import type {
  Failure,
  JobData,
  JobLine,
  JobListQuery,
  JobRecord,
  JobStatus,
  JobWrite,
  LineOutcome,
  NewJob,
  Priority,
} from "../engine/index.js";
import { decodeCursor, encodeCursor, failureOf } from "./codec.js";
import { decodeLines, decodeOutcomes, encodeLines, encodeOutcomes } from "./job-chunks.js";
import { callRedis } from "./redis-connection.js";
import { CREATE, DROP, END, SAVE_CHUNK, SAVE_JOB, SEAL } from "./redis-job-scripts.js";

type Scripted = Redis & {
  bpJobCreate(...args: (string | number)[]): Promise<[number, number]>;
  bpJobSeal(...args: (string | number)[]): Promise<number>;
  bpJobDrop(...args: (string | number)[]): Promise<number>;
  bpJobSaveChunk(...args: (string | number | Buffer)[]): Promise<[number, number, number]>;
  bpJobSave(...args: (string | number)[]): Promise<number>;
  bpJobEnd(...args: (string | number)[]): Promise<number>;
};

const SCRIPTS: [string, string][] = [
  ["bpJobCreate", CREATE],
  ["bpJobSeal", SEAL],
  ["bpJobDrop", DROP],
  ["bpJobSaveChunk", SAVE_CHUNK],
  ["bpJobSave", SAVE_JOB],
  ["bpJobEnd", END],
];

/** A number field: '' (or absent) is null. */
function num(value: string | undefined): number | null {
  return value === undefined || value === "" ? null : Number(value);
}

function recordOf(pk: number, h: Record<string, string>): JobRecord {
  return {
    pk,
    owner: h.o as string,
    jobId: h.id as string,
    modelId: h.m as string,
    priority: h.p as Priority,
    status: h.s as JobStatus,
    error: failureOf(h.ec || null, h.e || null),
    createdAt: Number(h.c),
    startedAt: num(h.st),
    completedAt: num(h.ct),
    expiresAt: Number(h.x),
    counts: {
      total: Number(h.t),
      completed: Number(h.d),
      failed: Number(h.f),
      invalid: Number(h.i),
    },
    chunks: Number(h.n),
    payloadHash: h.h || null,
    callback: h.cu ? { url: h.cu, secret: h.cs || null } : null,
    keepMs: num(h.k),
  };
}

/** A job state's fields as the scripts take them. */
function stateArgs(s: {
  status: JobStatus;
  error: Failure | null;
  startedAt: number | null;
  completedAt: number | null;
}): string[] {
  return [
    s.status,
    s.error?.message ?? "",
    s.error?.code ?? "",
    s.startedAt === null ? "" : String(s.startedAt),
    s.completedAt === null ? "" : String(s.completedAt),
  ];
}

/**
 * A job left validating this long after its last chunk is an upload whose node died (a live one
 * ends after `REQUEST_TIMEOUT_MS` without a byte, at most an hour).
 */
const ABANDONED_UPLOAD_MS = 2 * 3_600_000;

/** Jobs one list read fetches per round while it filters by status. */
const LIST_ROUND = 200;

/** See the file comment. */
export class RedisJobData implements JobData {
  readonly #redis: Scripted;
  readonly #p: string;

  /** On `redis` (the store's connection), under `<prefix>:jobs`. */
  constructor(redis: Redis, prefix: string) {
    this.#redis = redis as Scripted;
    this.#p = `${prefix}:jobs`;
    for (const [name, lua] of SCRIPTS)
      if (typeof (redis as unknown as Record<string, unknown>)[name] !== "function")
        redis.defineCommand(name, { numberOfKeys: 0, lua });
  }

  async createJob(job: NewJob): Promise<{ created: boolean; record: JobRecord }> {
    const [created, pk] = await callRedis(() =>
      this.#redis.bpJobCreate(
        this.#p,
        job.owner,
        job.jobId,
        job.modelId,
        job.priority,
        job.createdAt,
        job.expiresAt,
        job.callback?.url ?? "",
        job.callback?.secret ?? "",
        job.keepMs === null ? "" : job.keepMs,
      ),
    );
    return { created: created === 1, record: (await this.getJob(pk)) as JobRecord };
  }

  async addChunk(pk: number, chunk: number, lines: readonly JobLine[]): Promise<void> {
    await callRedis(() =>
      this.#redis
        .multi()
        .hset(`${this.#p}:l:${pk}`, String(chunk), encodeLines(lines))
        .hset(`${this.#p}:f:${pk}`, String(chunk), String(lines[0]?.line ?? 0))
        .zadd(`${this.#p}:uploading`, Date.now(), String(pk))
        .exec(),
    );
  }

  async sealJob(
    pk: number,
    sealed: { total: number; invalid: number; chunks: number; payloadHash: string },
  ): Promise<JobRecord> {
    const done = await callRedis(() =>
      this.#redis.bpJobSeal(
        this.#p,
        pk,
        sealed.total,
        sealed.invalid,
        sealed.chunks,
        sealed.payloadHash,
      ),
    );
    if (done !== 1) throw new Error(`job ${pk} is not validating and cannot be sealed`);
    return (await this.getJob(pk)) as JobRecord;
  }

  async dropJob(pk: number): Promise<void> {
    await callRedis(() => this.#redis.bpJobDrop(this.#p, pk));
  }

  async findJob(owner: string | undefined, jobId: string): Promise<JobRecord | undefined> {
    const pk = await callRedis(async () =>
      owner === undefined
        ? (await this.#redis.zrange(`${this.#p}:any:${jobId}`, 0, 0))[0]
        : await this.#redis.hget(`${this.#p}:own:${owner}`, jobId),
    );
    return pk === undefined || pk === null ? undefined : this.getJob(Number(pk));
  }

  async getJob(pk: number): Promise<JobRecord | undefined> {
    const h = await callRedis(() => this.#redis.hgetall(`${this.#p}:j:${pk}`));
    return h.s === undefined ? undefined : recordOf(pk, h);
  }

  async listJobs(
    query: JobListQuery,
  ): Promise<{ jobs: JobRecord[]; nextCursor: string | undefined }> {
    const key = query.owner === undefined ? `${this.#p}:all` : `${this.#p}:owner:${query.owner}`;
    const [time, after] =
      query.cursor === undefined ? [Number.POSITIVE_INFINITY, 0] : decodeCursor(query.cursor);
    const wanted = query.statuses === undefined ? undefined : new Set<string>(query.statuses);
    const out: JobRecord[] = [];
    const max = Number.isFinite(time) ? String(time) : "+inf";
    let offset = 0;
    while (out.length <= query.limit) {
      const page = await callRedis(() =>
        this.#redis.zrevrangebyscore(key, max, "-inf", "WITHSCORES", "LIMIT", offset, LIST_ROUND),
      );
      if (page.length === 0) break;
      const entries: [number, number][] = [];
      for (let i = 0; i < page.length; i += 2) entries.push([Number(page[i]), Number(page[i + 1])]);
      // Newest first, then by key: past the cursor is an older time, or its time and a smaller key.
      const keys = entries
        .filter(([pk, score]) => score < time || (score === time && pk < after))
        .sort((a, b) => b[1] - a[1] || b[0] - a[0])
        .map(([pk]) => pk);
      const records = await Promise.all(keys.map((pk) => this.getJob(pk)));
      for (const record of records)
        if (record !== undefined && (wanted === undefined || wanted.has(record.status)))
          out.push(record);
      if (page.length < LIST_ROUND * 2) break;
      offset += LIST_ROUND;
    }
    const jobs = out.slice(0, query.limit);
    const last = jobs.at(-1);
    return {
      jobs,
      nextCursor:
        out.length > query.limit && last !== undefined
          ? encodeCursor(last.createdAt, last.pk)
          : undefined,
    };
  }

  async chunkStarts(pk: number): Promise<number[]> {
    const h = await callRedis(() => this.#redis.hgetall(`${this.#p}:f:${pk}`));
    return Object.entries(h)
      .sort((a, b) => Number(a[0]) - Number(b[0]))
      .map(([, first]) => Number(first));
  }

  async chunkLines(pk: number, chunk: number): Promise<JobLine[]> {
    const blob = await callRedis(() => this.#redis.hgetBuffer(`${this.#p}:l:${pk}`, String(chunk)));
    return blob === null ? [] : decodeLines(blob);
  }

  async chunkOutcomes(pk: number, chunk: number): Promise<LineOutcome[] | undefined> {
    const blob = await callRedis(() => this.#redis.hgetBuffer(`${this.#p}:o:${pk}`, String(chunk)));
    return blob === null ? undefined : decodeOutcomes(blob);
  }

  async pendingChunks(pk: number): Promise<number[]> {
    const [chunks, done] = await Promise.all([
      callRedis(() => this.#redis.hget(`${this.#p}:j:${pk}`, "n")),
      callRedis(() => this.#redis.hkeys(`${this.#p}:o:${pk}`)),
    ]);
    const finished = new Set(done.map(Number));
    const out: number[] = [];
    for (let c = 0; c < Number(chunks ?? 0); c++) if (!finished.has(c)) out.push(c);
    return out;
  }

  async saveChunk(
    pk: number,
    chunk: number,
    outcomes: readonly LineOutcome[],
    job: JobWrite,
  ): Promise<boolean> {
    const [written] = await callRedis(() =>
      this.#redis.bpJobSaveChunk(
        this.#p,
        pk,
        chunk,
        encodeOutcomes(outcomes),
        ...stateArgs(job),
        job.addCompleted,
        job.addFailed,
      ),
    );
    return written === 1;
  }

  async saveJob(job: JobWrite): Promise<void> {
    await callRedis(() =>
      this.#redis.bpJobSave(this.#p, job.pk, ...stateArgs(job), job.addCompleted, job.addFailed),
    );
  }

  async endJob(
    pk: number,
    e: { status: JobStatus; error: Failure | null; completedAt: number; startedAt: number | null },
  ): Promise<JobRecord | undefined> {
    const ended = await callRedis(() =>
      this.#redis.bpJobEnd(
        this.#p,
        pk,
        e.status,
        e.error?.message ?? "",
        e.error?.code ?? "",
        e.completedAt,
        e.startedAt === null ? "" : e.startedAt,
      ),
    );
    return ended === 1 ? this.getJob(pk) : undefined;
  }

  /**
   * Jobs queued or running, oldest first. Unlike one node, a cluster does not delete jobs left
   * validating: another node may be receiving that upload now.
   */
  async loadUnfinishedJobs(): Promise<JobRecord[]> {
    const keys = await callRedis(() => this.#redis.smembers(`${this.#p}:active`));
    const records = await Promise.all(keys.map((pk) => this.getJob(Number(pk))));
    return records
      .filter(
        (r): r is JobRecord => r !== undefined && (r.status === "queued" || r.status === "running"),
      )
      .sort((a, b) => a.createdAt - b.createdAt || a.pk - b.pk);
  }

  async purgeJobs(now: number, defaultKeepMs: number, limit: number): Promise<number> {
    // An upload whose node died: nothing came for far longer than any live upload may stall.
    const abandoned = await callRedis(() =>
      this.#redis.zrangebyscore(`${this.#p}:uploading`, "-inf", now - ABANDONED_UPLOAD_MS),
    );
    for (const pk of abandoned) await this.dropJob(Number(pk));
    const candidates = await callRedis(() =>
      this.#redis.zrangebyscore(`${this.#p}:ended`, "-inf", now, "LIMIT", 0, limit * 4),
    );
    let deleted = 0;
    for (const key of candidates) {
      if (deleted >= limit) break;
      const record = await this.getJob(Number(key));
      if (record === undefined) {
        await callRedis(() => this.#redis.zrem(`${this.#p}:ended`, key));
        continue;
      }
      if ((record.completedAt ?? now) + (record.keepMs ?? defaultKeepMs) >= now) continue;
      await this.dropJob(record.pk);
      deleted++;
    }
    return deleted;
  }
}
