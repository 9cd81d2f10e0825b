/**
 * How the Redis store's values read and write: a batch hash's fields to a record, an item's
 * outcome to one blob, and list members.
 */
import {
  type BatchRecord,
  type BatchStatus,
  failure,
  type ItemWrite,
  type Priority,
  type StoredResult,
} from "../engine/index.js";
import { floats, outcomeCode } from "./codec.js";

/** Fields of a batch hash read into a {@link BatchRecord} (metadata is never read back). */
export const FIELDS = [
  "owner",
  "batch_id",
  "model_id",
  "priority",
  "status",
  "error",
  "error_code",
  "timeout_ms",
  "created_at",
  "deadline",
  "started_at",
  "completed_at",
  "total",
  "succeeded",
  "failed",
  "payload_hash",
] as const;

/** The record of batch `pk` from its hash's {@link FIELDS}, in order. */
export function recordOf(pk: number, f: readonly string[]): BatchRecord {
  const [
    owner,
    batchId,
    modelId,
    priority,
    status,
    error,
    errorCode,
    timeoutMs,
    createdAt,
    deadline,
    startedAt,
    completedAt,
    total,
    succeeded,
    failed,
    payloadHash,
  ] = f;
  return {
    pk,
    owner: owner as string,
    batchId: batchId as string,
    modelId: modelId as string,
    priority: priority as Priority,
    status: status as BatchStatus,
    error: error === "" || error === undefined ? null : failure(outcomeCode(errorCode), error),
    timeoutMs: Number(timeoutMs),
    createdAt: Number(createdAt),
    deadline: Number(deadline),
    startedAt: startedAt === "" ? null : Number(startedAt),
    completedAt: completedAt === "" ? null : Number(completedAt),
    total: Number(total),
    succeeded: Number(succeeded),
    failed: Number(failed),
    payloadHash: payloadHash === "" || payloadHash === undefined ? null : payloadHash,
  };
}

/** A batch's member in the list indexes: its pk, zero-padded to sort as text. */
export function member(pk: number): string {
  return String(pk).padStart(16, "0");
}

/** Outcome blob: a kind byte (0 output, 1 error), confidence and time (f64), then floats or text. */
export function encodeOutcome(w: ItemWrite): Buffer {
  const head = Buffer.alloc(17);
  head[0] = w.error === null ? 0 : 1;
  head.writeDoubleLE(w.confidence, 1);
  head.writeDoubleLE(w.processingTimeMs, 9);
  if (w.error !== null)
    return Buffer.concat([head, Buffer.from(`${w.error.code}\n${w.error.message}`)]);
  const output = w.output ?? new Float32Array(0);
  return Buffer.concat([head, Buffer.from(output.buffer, output.byteOffset, output.byteLength)]);
}

export function decodeOutcome(blob: Buffer): Omit<StoredResult, "index" | "requestId"> {
  const confidence = blob.readDoubleLE(1);
  const processingTimeMs = blob.readDoubleLE(9);
  const body = blob.subarray(17);
  if (blob[0] === 1) {
    const text = body.toString("utf8");
    const cut = text.indexOf("\n");
    const error = failure(outcomeCode(text.slice(0, cut)), text.slice(cut + 1));
    return { output: null, confidence, processingTimeMs, error };
  }
  return { output: floats(body), confidence, processingTimeMs, error: null };
}
