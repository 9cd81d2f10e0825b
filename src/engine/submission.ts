/**
 * A durable submit as the store takes it: its items' inputs, its batch record to create, and the
 * digest that makes a client's `batch_id` an idempotency key (the same id with the same request
 * is the same batch).
 */
import { randomUUID } from "node:crypto";
import type { ValidItem } from "./item-validation.js";
import type { NewBatch, StoredInput } from "./job-store.js";
import {
  type ItemTensor,
  PRIMARY,
  type TensorData,
  type TypedTensor,
  toFloat32,
} from "./tensors.js";
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
  const inputs = valid.items.map(storedInput);
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
      outputs: valid.outputs ?? null,
    }),
  };
}

const NO_NUMBERS = new Float32Array(0);

/**
 * An item as the store keeps it: a float model's one float32 input as its numbers, any other
 * item (several inputs, another datatype) as its typed tensors.
 */
function storedInput(item: ValidItem, index: number): StoredInput {
  const only = item.inputs[0] as ItemTensor;
  if (item.inputs.length === 1 && only.name === PRIMARY && only.datatype === "FP32") {
    const data = only.data as ArrayLike<number>;
    // A Float32Array here is the request's own copy (the gRPC reader's): kept, not copied again.
    const input = data instanceof Float32Array ? data : Float32Array.from(data);
    return { index, requestId: item.requestId, input, shape: only.shape };
  }
  const tensors = item.inputs.map(
    (t): TypedTensor => ({
      ...t,
      data: t.datatype === "FP32" ? toFloat32("FP32", t.data) : (t.data as TensorData),
    }),
  );
  return { index, requestId: item.requestId, input: NO_NUMBERS, shape: [], tensors };
}
