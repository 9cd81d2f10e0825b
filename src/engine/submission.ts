/**
 * A durable submit as the store takes it: its items' inputs, its batch record to create, and the
 * digest that makes a client's `batch_id` an idempotency key (the same id with the same request
 * is the same batch).
 */
import { randomUUID } from "node:crypto";
import { InvalidInputError } from "./errors.js";
import { requireFloatVectors } from "./item-validation.js";
import type { NewBatch, StoredInput } from "./job-store.js";
import type { ItemTensor } from "./tensors.js";
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
  requireFloatVectors("metadata.model_id", valid.model);
  if (valid.outputs !== undefined)
    throw new InvalidInputError(
      "data",
      "items sent by name (inputs) and outputs asked for by name (output_names) are answered by Infer and the v2 protocol's infer; a durable batch stores each item's float32 input and its primary output",
    );
  const inputs: StoredInput[] = valid.items.map((item, index) => {
    const tensor = item.inputs[0] as ItemTensor;
    const data = tensor.data as ArrayLike<number>;
    return {
      index,
      requestId: item.requestId,
      // A Float32Array here is the request's own copy (the gRPC reader's): kept, not copied again.
      input: data instanceof Float32Array ? data : Float32Array.from(data),
      shape: tensor.shape,
    };
  });
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
