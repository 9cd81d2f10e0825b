/**
 * A durable submit as the store takes it: its items' inputs, its batch record to create, and the
 * digest that makes a client's `batch_id` an idempotency key (the same id with the same request
 * is the same batch).
 */
import { randomUUID } from "node:crypto";
import type { NewBatch, StoredInput } from "./job-store.js";
import type { Principal } from "./types.js";
import { payloadDigest, type ValidSubmit } from "./validation.js";

/** See the file comment. */
export interface Submission {
  readonly inputs: StoredInput[];
  /** Digest of the request when the client named the batch; null when the server does. */
  readonly payloadHash: string | null;
  /** The batch to create, submitted at `now`. */
  batchAt(now: number): NewBatch;
}

/** The submission of `valid` by `principal`. */
export function submissionOf(principal: Principal, valid: ValidSubmit): Submission {
  const inputs: StoredInput[] = valid.items.map((item, index) => ({
    index,
    requestId: item.requestId,
    // A Float32Array here is the request's own copy (the gRPC reader's): kept, not copied again.
    input: item.data instanceof Float32Array ? item.data : Float32Array.from(item.data),
    shape: item.shape,
  }));
  const payloadHash = valid.batchId === undefined ? null : payloadDigest(valid, inputs);
  return {
    inputs,
    payloadHash,
    batchAt: (now) => ({
      owner: principal.owner,
      batchId: valid.batchId ?? `batch_${randomUUID().replaceAll("-", "")}`,
      modelId: valid.model.name,
      priority: valid.priority,
      timeoutMs: valid.timeoutMs,
      createdAt: now,
      deadline: now + valid.timeoutMs,
      total: valid.items.length,
      metadata: valid.metadata,
      payloadHash,
    }),
  };
}
