/** What the items of a finished model batch end with: their output rows, or why they have none. */
import { randomUUID } from "node:crypto";
import { DomainError, type Failure, failure, ModelRunError } from "../errors.js";
import type { InferenceResult } from "../inference-pool.js";
import type { EngineLogger } from "../logger.js";
import type { ItemOutcome } from "../observer.js";
import { cutBack, cutPrimary, itemLengths } from "../padding.js";
import type { BatchItem } from "../scheduling/index.js";
import { type BatchTensor, rowOf, type TypedTensor, tensorFinite } from "../tensors.js";
import { ITEM_FAILURES } from "./item-failures.js";
import type { Settlement } from "./job.js";

/**
 * The failure every item of a model batch that did not run ends with. A refusal of the pool's
 * that callers may read (its model was unloaded) keeps its words; the runtime's own error is
 * INTERNAL in its words; anything else is INTERNAL with an `error_id`, its detail in the log only.
 */
export function batchFailure(
  error: unknown,
  model: string,
  size: number,
  log: EngineLogger,
): Failure {
  if (error instanceof DomainError) {
    log.warn({ err: error, model, size }, "model batch refused");
    return failure(error.code, error.message);
  }
  const errorId = randomUUID();
  if (error instanceof ModelRunError) {
    log.warn({ err: error, errorId, model, size }, "model batch failed in the runtime");
    return failure(
      "INTERNAL",
      `model ${JSON.stringify(model)} failed to run: ${error.message} (error_id ${errorId})`,
    );
  }
  log.error({ err: error, errorId, model, size }, "model batch failed");
  return failure("INTERNAL", `model execution failed (error_id ${errorId})`);
}

/** Item `i`'s outcome in a model batch's result; no answer carries NaN or Infinity. */
export function settlementOf(
  result: InferenceResult,
  i: number,
  item?: Pick<BatchItem, "inputs" | "padding">,
): Settlement {
  const { output, outputSize, confidence, inferenceMs } = result;
  const plan = item?.padding;
  const lengths = plan === undefined ? undefined : itemLengths(item?.inputs ?? [], plan);
  // A view, not a copy: the store copies it into its row, infer results into a number[].
  let row = output.subarray(i * outputSize, (i + 1) * outputSize);
  if (plan !== undefined && lengths !== undefined)
    row = cutPrimary(row, result.outputDims, plan, lengths);
  const itemConfidence = confidence?.[i] ?? 0;
  if (!allFinite(row) || !Number.isFinite(itemConfidence))
    return failed(ITEM_FAILURES.nonFiniteOutput);
  const outputs = result.outputs?.map((tensor) => {
    const own = itemRow(tensor, i);
    return plan !== undefined && lengths !== undefined ? cutBack(own, plan, lengths) : own;
  });
  if (outputs?.some((tensor) => !tensorFinite(tensor)))
    return failed(ITEM_FAILURES.nonFiniteOutput);
  return {
    output: row,
    confidence: itemConfidence,
    processingTimeMs: inferenceMs,
    error: null,
    outputs,
  };
}

/** Item `i`'s row of a batch tensor (a view of typed elements). */
function itemRow(tensor: BatchTensor, i: number): TypedTensor {
  const [rows = 1, ...shape] = tensor.dims;
  const width = rows === 0 ? 0 : tensor.data.length / rows;
  return {
    name: tensor.name,
    datatype: tensor.datatype,
    shape,
    data: rowOf(tensor.data, i, width),
  };
}

/** How an item that ends with `s` counts for the observer. */
export function outcomeOf(s: Settlement): ItemOutcome {
  if (s.error === null) return "success";
  return s.error.code === "DEADLINE_EXCEEDED" ? "expired" : "failed";
}

/** The outcome of an item that has no output. */
export function failed(error: Failure): Settlement {
  return { output: null, confidence: 0, processingTimeMs: 0, error };
}

function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}
