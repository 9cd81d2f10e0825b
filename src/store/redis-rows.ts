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
import { decodeOutputs, encodeOutputs } from "./batch-tensors.js";
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
  "outputs",
  "node",
] as const;

/** The record of batch `pk` from its hash's {@link FIELDS}, in order. */
export function recordOf(pk: number, f: readonly (string | null)[]): BatchRecord {
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
    outputs,
    node,
  ] = f;
  return {
    pk,
    owner: owner as string,
    batchId: batchId as string,
    modelId: modelId as string,
    priority: priority as Priority,
    status: status as BatchStatus,
    error: error === "" || error == null ? null : failure(outcomeCode(errorCode), error),
    timeoutMs: Number(timeoutMs),
    createdAt: Number(createdAt),
    deadline: Number(deadline),
    startedAt: startedAt === "" ? null : Number(startedAt),
    completedAt: completedAt === "" ? null : Number(completedAt),
    total: Number(total),
    succeeded: Number(succeeded),
    failed: Number(failed),
    payloadHash: payloadHash === "" || payloadHash == null ? null : payloadHash,
    // A batch stored before outputs were asked for by name has no such field.
    outputs: outputs === "" || outputs == null ? null : (JSON.parse(outputs) as string[]),
    node: node === "" || node == null ? null : node,
  };
}

/** A batch's member in the list indexes: its pk, zero-padded to sort as text. */
export function member(pk: number): string {
  return String(pk).padStart(16, "0");
}

/**
 * Outcome blob: a kind byte (0 output, 1 error, 2 outputs by name), confidence and time (f64),
 * then floats, text, or the outputs as `encodeOutputs` writes them.
 */
export function encodeOutcome(w: ItemWrite): Buffer {
  const head = Buffer.alloc(17);
  head[0] = w.error !== null ? 1 : w.outputs !== undefined ? 2 : 0;
  head.writeDoubleLE(w.confidence, 1);
  head.writeDoubleLE(w.processingTimeMs, 9);
  if (w.error !== null)
    return Buffer.concat([head, Buffer.from(`${w.error.code}\n${w.error.message}`)]);
  if (w.outputs !== undefined) return Buffer.concat([head, encodeOutputs(w.outputs)]);
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
  if (blob[0] === 2)
    return {
      output: null,
      outputs: decodeOutputs(body),
      confidence,
      processingTimeMs,
      error: null,
    };
  return { output: floats(body), confidence, processingTimeMs, error: null };
}
