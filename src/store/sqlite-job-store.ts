/**
 * The embedded JobStore: better-sqlite3 in WAL mode. Each submit is one transaction, and so is
 * each finished model batch (every item outcome and batch state it produced). An item's outcome
 * is written once: later writes for the same item are ignored, so every item ends with exactly
 * one result even when work is replayed after a crash.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import {
  type Backlog,
  type BatchRecord,
  type BatchWrite,
  type ItemWrite,
  isTerminal,
  type JobStore,
  type ListQuery,
  type NewBatch,
  nextBatchState,
  type PendingInput,
  type Priority,
  type StartedRun,
  type StoredInput,
  type StoredResult,
  type UnfinishedBatch,
} from "../engine/index.js";
import {
  decodeBatchInputs,
  decodeOutputs,
  encodeBatchInputs,
  encodeOutputs,
} from "./batch-tensors.js";
import { bytes, encodeCursor, failureOf, floats, outcomeCode } from "./codec.js";
import { SqliteJobData } from "./sqlite-job-data.js";
import { type BatchRow, listStatement, RECORD_COLUMNS, toRecord } from "./sqlite-rows.js";
import { applySchema } from "./sqlite-schema.js";

/** Options of {@link SqliteJobStore}. */
export interface SqliteJobStoreOptions {
  /** Folder of `batch-processor.db`, or `:memory:` to keep nothing on disk. */
  readonly dataDir: string;
  /**
   * SQLite `synchronous`: `normal` survives a process crash (the WAL is on disk); `full` also
   * survives power loss, at an fsync per transaction. @defaultValue "normal"
   */
  readonly synchronous?: "normal" | "full";
}

/** See the file comment. */
export class SqliteJobStore implements JobStore {
  readonly #db: Database.Database;
  /** Jobs (data sets), in the same database. */
  readonly jobs: SqliteJobData;
  readonly #insertBatch: Database.Statement;
  readonly #insertItem: Database.Statement;
  readonly #insertInputs: Database.Statement;
  readonly #findOwn: Database.Statement;
  readonly #findAny: Database.Statement;
  readonly #writeItem: Database.Statement;
  readonly #writeBatch: Database.Statement;
  readonly #addCounts: Database.Statement;
  readonly #byPk: Database.Statement;
  readonly #firstError: Database.Statement;
  readonly #insertStarted: Database.Statement;
  readonly #itemsOf: Database.Statement;
  readonly #inputsOf: Database.Statement;
  readonly #outputsOf: Database.Statement;
  readonly #createTx: (
    batch: NewBatch,
    items: readonly StoredInput[],
  ) => { created: boolean; record: BatchRecord };
  readonly #saveTx: (
    items: readonly ItemWrite[],
    batches: readonly BatchWrite[],
    started: readonly StartedRun[],
  ) => BatchRecord[];

  constructor(options: SqliteJobStoreOptions) {
    const memory = options.dataDir === ":memory:";
    if (!memory) mkdirSync(options.dataDir, { recursive: true });
    this.#db = new Database(memory ? ":memory:" : join(options.dataDir, "batch-processor.db"));
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma(`synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
    this.#db.pragma("foreign_keys = ON");
    applySchema(this.#db);
    this.jobs = new SqliteJobData(this.#db);
    this.#insertBatch = this.#db.prepare(
      `INSERT INTO batches (owner, batch_id, model_id, priority, status, timeout_ms, created_at, deadline, total, metadata, payload_hash, outputs)
       VALUES (@owner, @batchId, @modelId, @priority, 'queued', @timeoutMs, @createdAt, @deadline, @total, @metadata, @payloadHash, @outputs)
       ON CONFLICT (owner, batch_id) DO NOTHING`,
    );
    this.#insertItem = this.#db.prepare(
      "INSERT INTO items (batch_pk, idx, request_id, shape) VALUES (?, ?, ?, ?)",
    );
    this.#insertInputs = this.#db.prepare("INSERT INTO inputs (batch_pk, data) VALUES (?, ?)");
    this.#findOwn = this.#db.prepare(
      `SELECT ${RECORD_COLUMNS} FROM batches WHERE owner = ? AND batch_id = ?`,
    );
    this.#findAny = this.#db.prepare(
      `SELECT ${RECORD_COLUMNS} FROM batches WHERE batch_id = ? ORDER BY created_at, pk LIMIT 1`,
    );
    this.#writeItem = this.#db.prepare(
      `INSERT INTO results (output, confidence, processing_ms, error, error_code, batch_pk, idx) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (batch_pk, idx) DO NOTHING`,
    );
    this.#writeBatch = this.#db.prepare(
      `UPDATE batches SET status = @status, error = @error, error_code = @errorCode, started_at = @startedAt,
         completed_at = @completedAt, node = coalesce(@node, node) WHERE pk = @pk`,
    );
    this.#byPk = this.#db.prepare(`SELECT ${RECORD_COLUMNS} FROM batches WHERE pk = ?`);
    this.#firstError = this.#db
      .prepare(
        "SELECT error_code FROM results WHERE batch_pk = ? AND error_code IS NOT NULL ORDER BY idx LIMIT 1",
      )
      .pluck();
    this.#addCounts = this.#db.prepare(
      "UPDATE batches SET succeeded = succeeded + ?, failed = failed + ? WHERE pk = ?",
    );
    this.#insertStarted = this.#db.prepare(
      "INSERT INTO started (batch_pk, lo, hi) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    );
    this.#itemsOf = this.#db.prepare(
      `SELECT i.idx, i.request_id, i.shape, r.idx IS NOT NULL AS done,
         EXISTS (SELECT 1 FROM started s WHERE s.batch_pk = i.batch_pk AND i.idx BETWEEN s.lo AND s.hi) AS started
       FROM items i LEFT JOIN results r ON r.batch_pk = i.batch_pk AND r.idx = i.idx
       WHERE i.batch_pk = ? ORDER BY i.idx`,
    );
    this.#inputsOf = this.#db.prepare("SELECT data FROM inputs WHERE batch_pk = ?").pluck();
    this.#outputsOf = this.#db.prepare("SELECT outputs FROM batches WHERE pk = ?").pluck();
    this.#createTx = this.#db.transaction((batch: NewBatch, items: readonly StoredInput[]) => {
      const info = this.#insertBatch.run({
        ...batch,
        metadata: JSON.stringify(batch.metadata),
        outputs: batch.outputs == null ? null : JSON.stringify(batch.outputs),
      });
      if (info.changes === 0) {
        return {
          created: false,
          record: toRecord(this.#findOwn.get(batch.owner, batch.batchId) as BatchRow),
        };
      }
      const pk = Number(info.lastInsertRowid);
      const { data, shapes } = encodeBatchInputs(items);
      const ordered = [...items].sort((a, b) => a.index - b.index);
      for (const [k, item] of ordered.entries())
        this.#insertItem.run(pk, item.index, item.requestId, shapes[k]);
      this.#insertInputs.run(pk, data);
      return {
        created: true,
        record: toRecord(this.#findOwn.get(batch.owner, batch.batchId) as BatchRow),
      };
    });
    this.#saveTx = this.#db.transaction(
      (
        items: readonly ItemWrite[],
        batches: readonly BatchWrite[],
        started: readonly StartedRun[],
      ): BatchRecord[] => {
        /** Batches this save touches, as they stood before it; undefined for none. */
        const rows = new Map<number, BatchRecord | undefined>();
        const before = (pk: number) => {
          if (!rows.has(pk)) {
            const row = this.#byPk.get(pk) as BatchRow | undefined;
            rows.set(pk, row === undefined ? undefined : toRecord(row));
          }
          return rows.get(pk);
        };
        const open = (pk: number) => {
          const record = before(pk);
          return record !== undefined && !isTerminal(record.status);
        };
        for (const run of started)
          if (open(run.pk)) this.#insertStarted.run(run.pk, run.lo, run.hi);
        const counts = new Map<number, { succeeded: number; failed: number }>();
        for (const w of items) {
          if (!open(w.pk)) continue;
          const changed = this.#writeItem.run(
            w.outputs !== undefined
              ? encodeOutputs(w.outputs)
              : w.output === null
                ? null
                : bytes(w.output),
            w.confidence,
            w.processingTimeMs,
            w.error?.message ?? null,
            w.error?.code ?? null,
            w.pk,
            w.index,
          ).changes;
          if (changed === 0) continue;
          const c = counts.get(w.pk) ?? { succeeded: 0, failed: 0 };
          if (w.error === null) c.succeeded++;
          else c.failed++;
          counts.set(w.pk, c);
        }
        /** A batch as it stands now: as before this save, with this save's outcomes counted. */
        const current = new Map<number, BatchRecord>();
        for (const [pk, c] of counts) {
          this.#addCounts.run(c.succeeded, c.failed, pk);
          const record = before(pk) as BatchRecord;
          current.set(pk, {
            ...record,
            succeeded: record.succeeded + c.succeeded,
            failed: record.failed + c.failed,
          });
        }
        const written: BatchRecord[] = [];
        for (const b of batches) {
          const now = current.get(b.pk) ?? before(b.pk);
          if (now === undefined) continue;
          if (isTerminal(now.status) || !open(b.pk)) {
            written.push(now);
            continue;
          }
          const next = nextBatchState(now, b, () =>
            outcomeCode(this.#firstError.get(b.pk) as string | undefined),
          );
          this.#writeBatch.run({
            pk: b.pk,
            status: next.status,
            error: next.error?.message ?? null,
            errorCode: next.error?.code ?? null,
            startedAt: next.startedAt,
            completedAt: next.completedAt,
            node: b.node ?? null,
          });
          const after = { ...now, ...next, node: b.node ?? now.node };
          current.set(b.pk, after);
          written.push(after);
        }
        return written;
      },
    );
  }

  async createBatch(
    batch: NewBatch,
    items: readonly StoredInput[],
  ): Promise<{ created: boolean; record: BatchRecord }> {
    return this.#createTx(batch, items);
  }

  async findBatch(owner: string | undefined, batchId: string): Promise<BatchRecord | undefined> {
    const row = (
      owner === undefined ? this.#findAny.get(batchId) : this.#findOwn.get(owner, batchId)
    ) as BatchRow | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  async getResults(pk: number, finishedOnly: boolean): Promise<StoredResult[]> {
    const rows = this.#db
      .prepare(
        `SELECT i.idx, i.request_id, r.output, coalesce(r.confidence, 0) AS confidence,
           coalesce(r.processing_ms, 0) AS processing_ms, r.error, r.error_code
         FROM items i LEFT JOIN results r ON r.batch_pk = i.batch_pk AND r.idx = i.idx
         WHERE i.batch_pk = ? ${finishedOnly ? "AND r.idx IS NOT NULL" : ""} ORDER BY i.idx`,
      )
      .all(pk) as {
      idx: number;
      request_id: string;
      output: Buffer | null;
      confidence: number;
      processing_ms: number;
      error: string | null;
      error_code: string | null;
    }[];
    const named = this.#outputsOf.get(pk) !== null;
    return rows.map((r) => ({
      index: r.idx,
      requestId: r.request_id,
      output: r.output === null || named ? null : floats(r.output),
      outputs: r.output === null || !named ? undefined : decodeOutputs(r.output),
      confidence: r.confidence,
      processingTimeMs: r.processing_ms,
      error: failureOf(r.error_code, r.error),
    }));
  }

  async save(
    items: readonly ItemWrite[],
    batches: readonly BatchWrite[],
    started: readonly StartedRun[] = [],
  ): Promise<BatchRecord[]> {
    return this.#saveTx(items, batches, started);
  }

  async listBatches(
    query: ListQuery,
  ): Promise<{ batches: BatchRecord[]; nextCursor: string | undefined }> {
    const { sql, params } = listStatement(query);
    const rows = this.#db.prepare(sql).all(...params) as BatchRow[];
    const more = rows.length > query.limit;
    const page = rows.slice(0, query.limit).map(toRecord);
    const last = page.at(-1);
    return {
      batches: page,
      nextCursor: more && last !== undefined ? encodeCursor(last.createdAt, last.pk) : undefined,
    };
  }

  async loadUnfinished(): Promise<UnfinishedBatch[]> {
    const rows = this.#db
      .prepare(
        `SELECT ${RECORD_COLUMNS} FROM batches WHERE status IN ('queued', 'processing') ORDER BY created_at, pk`,
      )
      .all() as BatchRow[];
    return rows.map((row) => this.#unfinished(row));
  }

  async loadBatch(pk: number): Promise<UnfinishedBatch | undefined> {
    const row = this.#db.prepare(`SELECT ${RECORD_COLUMNS} FROM batches WHERE pk = ?`).get(pk) as
      | BatchRow
      | undefined;
    return row === undefined ? undefined : this.#unfinished(row);
  }

  async activity(): Promise<{ activeBatches: number; pendingItems: number }> {
    const row = this.#db
      .prepare(
        `SELECT count(*) AS batches, coalesce(sum(total - succeeded - failed), 0) AS items
         FROM batches WHERE status IN ('queued', 'processing')`,
      )
      .get() as { batches: number; items: number };
    return { activeBatches: row.batches, pendingItems: row.items };
  }

  async backlog(pk: number): Promise<Backlog | undefined> {
    const own = this.#db.prepare("SELECT priority FROM batches WHERE pk = ?").get(pk) as
      | { priority: Priority }
      | undefined;
    if (own === undefined) return undefined;
    const rows = this.#db
      .prepare(
        `SELECT priority, sum(total - succeeded - failed) AS items,
           sum(CASE WHEN pk < ? THEN total - succeeded - failed ELSE 0 END) AS ahead
         FROM batches WHERE status IN ('queued', 'processing') AND pk != ? GROUP BY priority`,
      )
      .all(pk, pk) as { priority: Priority; items: number; ahead: number }[];
    const pending: Record<Priority, number> = { critical: 0, high: 0, normal: 0, low: 0 };
    let aheadInClass = 0;
    for (const row of rows) {
      pending[row.priority] = row.items;
      if (row.priority === own.priority) aheadInClass = row.ahead;
    }
    return { pending, aheadInClass };
  }

  /** A batch with the items that have no outcome, each with its input and whether it started. */
  #unfinished(row: BatchRow): UnfinishedBatch {
    const items = this.#itemsOf.all(row.pk) as {
      idx: number;
      request_id: string;
      shape: string;
      done: number;
      started: number;
    }[];
    const inputs = decodeBatchInputs(
      this.#inputsOf.get(row.pk) as Buffer,
      items.map((item) => ({ index: item.idx, requestId: item.request_id, shape: item.shape })),
    );
    const pending: PendingInput[] = [];
    items.forEach((item, k) => {
      if (item.done === 0)
        pending.push({ ...(inputs[k] as StoredInput), started: item.started === 1 });
    });
    return { batch: toRecord(row), pending };
  }

  async purgeFinished(before: number, limit: number): Promise<number> {
    return this.#db
      .prepare(
        `DELETE FROM batches WHERE pk IN (SELECT pk FROM batches
           WHERE completed_at IS NOT NULL AND completed_at < ? ORDER BY completed_at LIMIT ?)`,
      )
      .run(before, limit).changes;
  }

  async getSetting(key: string): Promise<string | undefined> {
    const row = this.#db.prepare("SELECT value FROM settings WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  async putSetting(key: string, value: string): Promise<void> {
    this.#db
      .prepare(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      )
      .run(key, value);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
