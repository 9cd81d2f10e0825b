/**
 * How the SQLite store's rows read: batch rows to records, and list pages to one statement.
 */
import type { BatchRecord, BatchStatus, ListQuery, Priority } from "../engine/index.js";
import { decodeCursor, failureOf } from "./codec.js";

/** A row of `batches`, as its columns are named. */
export interface BatchRow {
  pk: number;
  owner: string;
  batch_id: string;
  model_id: string;
  priority: string;
  status: string;
  error: string | null;
  error_code: string | null;
  timeout_ms: number;
  created_at: number;
  deadline: number;
  started_at: number | null;
  completed_at: number | null;
  total: number;
  succeeded: number;
  failed: number;
  payload_hash: string | null;
  /** JSON array of output names; null for the shorthand answer. */
  outputs: string | null;
  node: string | null;
}

/** Every column of a {@link BatchRecord}: metadata is written with a batch and never read. */
export const RECORD_COLUMNS =
  "pk, owner, batch_id, model_id, priority, status, error, error_code, timeout_ms, created_at, deadline, started_at, completed_at, total, succeeded, failed, payload_hash, outputs, node";

/** The record of a `batches` row. */
export function toRecord(row: BatchRow): BatchRecord {
  return {
    pk: row.pk,
    owner: row.owner,
    batchId: row.batch_id,
    modelId: row.model_id,
    priority: row.priority as Priority,
    status: row.status as BatchStatus,
    error: failureOf(row.error_code, row.error),
    timeoutMs: row.timeout_ms,
    createdAt: row.created_at,
    deadline: row.deadline,
    startedAt: row.started_at,
    completedAt: row.completed_at,
    total: row.total,
    succeeded: row.succeeded,
    failed: row.failed,
    payloadHash: row.payload_hash,
    outputs: row.outputs === null ? null : (JSON.parse(row.outputs) as string[]),
    node: row.node,
  };
}

/**
 * The query of one list page (one row more than `limit`, to tell whether another page follows).
 * Every filter reads an index in the page's order, from the cursor on, and stops at the limit;
 * several statuses read one such range each and merge at most `limit + 1` rows per status.
 */
export function listStatement(query: ListQuery): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (query.owner !== undefined) {
    where.push("owner = ?");
    params.push(query.owner);
  }
  if (query.cursor !== undefined) {
    where.push("(created_at, pk) < (?, ?)");
    params.push(...decodeCursor(query.cursor));
  }
  const page = (conditions: readonly string[]) =>
    `SELECT ${RECORD_COLUMNS} FROM batches ${conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : ""} ORDER BY created_at DESC, pk DESC LIMIT ?`;
  const statuses = query.statuses ?? [];
  if (statuses.length <= 1) {
    const conditions = statuses.length === 1 ? ["status = ?", ...where] : where;
    return {
      sql: page(conditions),
      params: [...statuses, ...params, query.limit + 1],
    };
  }
  const branches = statuses.map(() => `SELECT * FROM (${page(["status = ?", ...where])})`);
  return {
    sql: `SELECT * FROM (${branches.join(" UNION ALL ")}) ORDER BY created_at DESC, pk DESC LIMIT ?`,
    params: [
      ...statuses.flatMap((status) => [status, ...params, query.limit + 1]),
      query.limit + 1,
    ],
  };
}
