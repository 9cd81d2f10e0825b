/**
 * The embedded store's jobs (see `JobData`): a job's row, its chunks of lines, and each chunk's
 * outcomes written once with the job's counters in one transaction.
 */
import type Database from "better-sqlite3";
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

interface JobRow {
  pk: number;
  owner: string;
  job_id: string;
  model_id: string;
  priority: string;
  status: string;
  error: string | null;
  error_code: string | null;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  expires_at: number;
  total: number;
  completed: number;
  failed: number;
  invalid: number;
  chunks: number;
  payload_hash: string | null;
  callback_url: string | null;
  callback_secret: string | null;
  keep_ms: number | null;
}

const COLUMNS =
  "pk, owner, job_id, model_id, priority, status, error, error_code, created_at, started_at, completed_at, expires_at, total, completed, failed, invalid, chunks, payload_hash, callback_url, callback_secret, keep_ms";

/** The states a job never leaves. */
const ENDED: ReadonlySet<string> = new Set(["completed", "failed", "cancelled", "expired"]);

/** Chunk rows one purge call deletes at most, so that no call holds the database long. */
const PURGE_CHUNKS = 64;

function toJob(row: JobRow): JobRecord {
  return {
    pk: row.pk,
    owner: row.owner,
    jobId: row.job_id,
    modelId: row.model_id,
    priority: row.priority as Priority,
    status: row.status as JobStatus,
    error: failureOf(row.error_code, row.error),
    createdAt: row.created_at,
    startedAt: row.started_at,
    completedAt: row.completed_at,
    expiresAt: row.expires_at,
    counts: {
      total: row.total,
      completed: row.completed,
      failed: row.failed,
      invalid: row.invalid,
    },
    chunks: row.chunks,
    payloadHash: row.payload_hash,
    callback:
      row.callback_url === null ? null : { url: row.callback_url, secret: row.callback_secret },
    keepMs: row.keep_ms,
  };
}

/** See the file comment. */
export class SqliteJobData implements JobData {
  readonly #db: Database.Database;
  readonly #get: Database.Statement;
  readonly #findOwn: Database.Statement;
  readonly #findAny: Database.Statement;
  readonly #insert: Database.Statement;
  readonly #addChunk: Database.Statement;
  readonly #seal: Database.Statement;
  readonly #drop: Database.Statement;
  readonly #starts: Database.Statement;
  readonly #lines: Database.Statement;
  readonly #outcomes: Database.Statement;
  readonly #pending: Database.Statement;
  readonly #insertOutcomes: Database.Statement;
  readonly #write: Database.Statement;
  readonly #endTx: (
    pk: number,
    e: { status: JobStatus; error: Failure | null; completedAt: number; startedAt: number | null },
  ) => JobRecord | undefined;
  readonly #saveChunkTx: (
    pk: number,
    chunk: number,
    outcomes: readonly LineOutcome[],
    job: JobWrite,
  ) => boolean;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE pk = ?`);
    this.#findOwn = db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE owner = ? AND job_id = ?`);
    this.#findAny = db.prepare(
      `SELECT ${COLUMNS} FROM jobs WHERE job_id = ? ORDER BY created_at, pk LIMIT 1`,
    );
    this.#insert = db.prepare(
      `INSERT INTO jobs (owner, job_id, model_id, priority, status, created_at, expires_at, callback_url, callback_secret, keep_ms)
       VALUES (@owner, @jobId, @modelId, @priority, 'validating', @createdAt, @expiresAt, @callbackUrl, @callbackSecret, @keepMs)
       ON CONFLICT (owner, job_id) DO NOTHING`,
    );
    this.#addChunk = db.prepare(
      "INSERT INTO job_lines (job_pk, chunk, first_line, data) VALUES (?, ?, ?, ?)",
    );
    this.#seal = db.prepare(
      `UPDATE jobs SET status = 'queued', total = @total, invalid = @invalid, chunks = @chunks,
         payload_hash = @payloadHash WHERE pk = @pk AND status = 'validating'`,
    );
    this.#drop = db.prepare("DELETE FROM jobs WHERE pk = ?");
    this.#starts = db
      .prepare("SELECT first_line FROM job_lines WHERE job_pk = ? ORDER BY chunk")
      .pluck();
    this.#lines = db.prepare("SELECT data FROM job_lines WHERE job_pk = ? AND chunk = ?").pluck();
    this.#outcomes = db
      .prepare("SELECT data FROM job_outcomes WHERE job_pk = ? AND chunk = ?")
      .pluck();
    this.#pending = db
      .prepare(
        `SELECT l.chunk FROM job_lines l
         WHERE l.job_pk = ? AND NOT EXISTS (SELECT 1 FROM job_outcomes o WHERE o.job_pk = l.job_pk AND o.chunk = l.chunk)
         ORDER BY l.chunk`,
      )
      .pluck();
    this.#insertOutcomes = db.prepare(
      "INSERT INTO job_outcomes (job_pk, chunk, data) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    );
    this.#write = db.prepare(
      `UPDATE jobs SET status = @status, error = @error, error_code = @errorCode, started_at = @startedAt,
         completed_at = @completedAt, completed = completed + @addCompleted, failed = failed + @addFailed
       WHERE pk = @pk AND status NOT IN ('completed', 'failed', 'cancelled', 'expired')`,
    );
    const statusOf = db.prepare("SELECT status FROM jobs WHERE pk = ?").pluck();
    this.#saveChunkTx = db.transaction(
      (pk: number, chunk: number, outcomes: readonly LineOutcome[], job: JobWrite) => {
        if (ENDED.has(statusOf.get(pk) as string)) return false;
        if (this.#insertOutcomes.run(pk, chunk, encodeOutcomes(outcomes)).changes === 0)
          return false;
        this.#write.run(writeParams(job));
        return true;
      },
    );
    const end = db.prepare(
      `UPDATE jobs SET status = @status, error = @error, error_code = @errorCode, completed_at = @completedAt,
         started_at = COALESCE(started_at, @startedAt), failed = total - completed - invalid
       WHERE pk = @pk AND status NOT IN ('completed', 'failed', 'cancelled', 'expired')`,
    );
    this.#endTx = db.transaction(
      (
        pk: number,
        e: {
          status: JobStatus;
          error: Failure | null;
          completedAt: number;
          startedAt: number | null;
        },
      ) => {
        const changed = end.run({
          pk,
          status: e.status,
          error: e.error?.message ?? null,
          errorCode: e.error?.code ?? null,
          completedAt: e.completedAt,
          startedAt: e.startedAt,
        }).changes;
        return changed === 0 ? undefined : toJob(this.#get.get(pk) as JobRow);
      },
    );
  }

  async createJob(job: NewJob): Promise<{ created: boolean; record: JobRecord }> {
    const info = this.#insert.run({
      owner: job.owner,
      jobId: job.jobId,
      modelId: job.modelId,
      priority: job.priority,
      createdAt: job.createdAt,
      expiresAt: job.expiresAt,
      callbackUrl: job.callback?.url ?? null,
      callbackSecret: job.callback?.secret ?? null,
      keepMs: job.keepMs,
    });
    const created = info.changes > 0;
    const row = created
      ? this.#get.get(Number(info.lastInsertRowid))
      : this.#findOwn.get(job.owner, job.jobId);
    return { created, record: toJob(row as JobRow) };
  }

  async addChunk(pk: number, chunk: number, lines: readonly JobLine[]): Promise<void> {
    this.#addChunk.run(pk, chunk, lines[0]?.line ?? 0, encodeLines(lines));
  }

  async sealJob(
    pk: number,
    sealed: { total: number; invalid: number; chunks: number; payloadHash: string },
  ): Promise<JobRecord> {
    if (this.#seal.run({ pk, ...sealed }).changes === 0)
      throw new Error(`job ${pk} is not validating and cannot be sealed`);
    return toJob(this.#get.get(pk) as JobRow);
  }

  async dropJob(pk: number): Promise<void> {
    this.#drop.run(pk);
  }

  async findJob(owner: string | undefined, jobId: string): Promise<JobRecord | undefined> {
    const row = (
      owner === undefined ? this.#findAny.get(jobId) : this.#findOwn.get(owner, jobId)
    ) as JobRow | undefined;
    return row === undefined ? undefined : toJob(row);
  }

  async getJob(pk: number): Promise<JobRecord | undefined> {
    const row = this.#get.get(pk) as JobRow | undefined;
    return row === undefined ? undefined : toJob(row);
  }

  async listJobs(
    query: JobListQuery,
  ): Promise<{ jobs: JobRecord[]; nextCursor: string | undefined }> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.owner !== undefined) {
      where.push("owner = ?");
      params.push(query.owner);
    }
    if (query.statuses !== undefined) {
      where.push(`status IN (${query.statuses.map(() => "?").join(", ")})`);
      params.push(...query.statuses);
    }
    if (query.cursor !== undefined) {
      where.push("(created_at, pk) < (?, ?)");
      params.push(...decodeCursor(query.cursor));
    }
    const rows = this.#db
      .prepare(
        `SELECT ${COLUMNS} FROM jobs ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY created_at DESC, pk DESC LIMIT ?`,
      )
      .all(...params, query.limit + 1) as JobRow[];
    const more = rows.length > query.limit;
    const jobs = rows.slice(0, query.limit).map(toJob);
    const last = jobs.at(-1);
    return {
      jobs,
      nextCursor: more && last !== undefined ? encodeCursor(last.createdAt, last.pk) : undefined,
    };
  }

  async chunkStarts(pk: number): Promise<number[]> {
    return this.#starts.all(pk) as number[];
  }

  async chunkLines(pk: number, chunk: number): Promise<JobLine[]> {
    const blob = this.#lines.get(pk, chunk) as Buffer | undefined;
    return blob === undefined ? [] : decodeLines(blob);
  }

  async chunkOutcomes(pk: number, chunk: number): Promise<LineOutcome[] | undefined> {
    const blob = this.#outcomes.get(pk, chunk) as Buffer | undefined;
    return blob === undefined ? undefined : decodeOutcomes(blob);
  }

  async pendingChunks(pk: number): Promise<number[]> {
    return this.#pending.all(pk) as number[];
  }

  async saveChunk(
    pk: number,
    chunk: number,
    outcomes: readonly LineOutcome[],
    job: JobWrite,
  ): Promise<boolean> {
    return this.#saveChunkTx(pk, chunk, outcomes, job);
  }

  async saveJob(job: JobWrite): Promise<void> {
    this.#write.run(writeParams(job));
  }

  async endJob(
    pk: number,
    e: { status: JobStatus; error: Failure | null; completedAt: number; startedAt: number | null },
  ): Promise<JobRecord | undefined> {
    return this.#endTx(pk, e);
  }

  async loadUnfinishedJobs(): Promise<JobRecord[]> {
    this.#db.prepare("DELETE FROM jobs WHERE status = 'validating'").run();
    const rows = this.#db
      .prepare(
        `SELECT ${COLUMNS} FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, pk`,
      )
      .all() as JobRow[];
    return rows.map(toJob);
  }

  async purgeJobs(now: number, defaultKeepMs: number, limit: number): Promise<number> {
    const pks = this.#db
      .prepare(
        `SELECT pk FROM jobs WHERE completed_at IS NOT NULL AND completed_at + COALESCE(keep_ms, ?) < ?
         ORDER BY completed_at LIMIT ?`,
      )
      .pluck()
      .all(defaultKeepMs, now, limit) as number[];
    let deleted = 0;
    for (const pk of pks) {
      // A large job's chunks go a slice per call; the job row goes with its last slice.
      const lines = this.#db
        .prepare(
          "DELETE FROM job_lines WHERE job_pk = ? AND chunk IN (SELECT chunk FROM job_lines WHERE job_pk = ? ORDER BY chunk LIMIT ?)",
        )
        .run(pk, pk, PURGE_CHUNKS).changes;
      this.#db
        .prepare(
          "DELETE FROM job_outcomes WHERE job_pk = ? AND chunk IN (SELECT chunk FROM job_outcomes WHERE job_pk = ? ORDER BY chunk LIMIT ?)",
        )
        .run(pk, pk, PURGE_CHUNKS);
      if (lines < PURGE_CHUNKS) {
        this.#drop.run(pk);
        deleted++;
      } else return deleted + 1;
    }
    return deleted;
  }
}

function writeParams(job: JobWrite) {
  return {
    pk: job.pk,
    status: job.status,
    error: job.error?.message ?? null,
    errorCode: job.error?.code ?? null,
    startedAt: job.startedAt,
    completedAt: job.completedAt,
    addCompleted: job.addCompleted,
    addFailed: job.addFailed,
  };
}
