/**
 * What a {@link Job} is made from and what it hands out, apart from the class: where it starts,
 * the items it queues, their outcomes, and the store's view of it.
 */
import type { Failure } from "../errors.js";
import type { BatchRecord, ItemWrite, StoredInput } from "../job-store.js";
import { type ItemTensor, PRIMARY } from "../tensors.js";
import type { RequestTrace } from "../tracer.js";
import type { BatchStatus, Priority } from "../types.js";

/** An item to queue: a stored input, or an infer item's tensors as the client sent them. */
export interface ItemSource {
  readonly index: number;
  readonly requestId: string;
  readonly inputs: readonly ItemTensor[];
  /** A recovered item that an earlier process had handed to a thread. */
  readonly started?: boolean;
}

/**
 * An item's outcome: an output, or an error; with every output by name when its model batch was
 * asked for them.
 */
export type Settlement = Omit<ItemWrite, "pk" | "index">;

/** What a `Job` starts from (a new submit, or a batch recovered from the store). */
export interface JobInit {
  /** Store key; undefined for jobs that are never stored (synchronous infer). */
  readonly pk: number | undefined;
  readonly batchId: string;
  readonly owner: string;
  readonly priority: Priority;
  readonly modelId: string;
  readonly createdAt: number;
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly total: number;
  /** The outputs its caller wants by name; none (undefined or null) for the primary output alone. */
  readonly outputs?: readonly string[] | null | undefined;
  readonly status?: BatchStatus;
  readonly startedAt?: number | null;
  readonly succeeded?: number;
  readonly failed?: number;
  /** The request it came with, when that request is traced. */
  readonly trace?: RequestTrace | undefined;
  /** The node that ran it before, for a stored batch. */
  readonly node?: string | null | undefined;
}

/**
 * A job whose store write failed: the failure it ended with, and the items whose failure is
 * still to be saved. Reads show it failed, whatever it reached in memory.
 */
export interface Unrecorded {
  readonly failure: Failure;
  readonly indices: ReadonlySet<number>;
}

/** A stored job's state as the store holds it (see `Job.stored`). */
export type StoredState = Pick<
  BatchRecord,
  "status" | "error" | "startedAt" | "completedAt" | "succeeded" | "failed"
>;

/** A stored item as the batcher takes it: its tensors, or its float32 input as the primary one. */
export function sourceOf(input: StoredInput & { readonly started?: boolean }): ItemSource {
  return {
    index: input.index,
    requestId: input.requestId,
    inputs: input.tensors ?? [
      { name: PRIMARY, datatype: "FP32", shape: input.shape, data: input.input },
    ],
    started: input.started,
  };
}
