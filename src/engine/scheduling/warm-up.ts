/**
 * Start-up warm-up: a few zero-filled batches per model (1 item, an eighth of the limit, the
 * limit), each also as an urgent batch where the pool keeps threads for those, so the first
 * requests (online ones too) do not pay ONNX Runtime's first-run cost and every latency model
 * has points to estimate completion times from before any traffic.
 */

import type { InferencePool, ModelCatalog } from "../inference-pool.js";
import { inputSpecs } from "../item-validation.js";
import type { EngineLogger } from "../logger.js";
import { allocate, elementCount } from "../tensors.js";
import type { BatchItem, DynamicBatcher } from "./dynamic-batcher.js";

/** Runs the warm-up batches and feeds their timings to the batcher's latency models. */
export async function warmUp<T extends BatchItem>(
  pool: InferencePool,
  models: ModelCatalog,
  batcher: DynamicBatcher<T>,
  maxBatchSize: number,
  log: EngineLogger,
): Promise<void> {
  for (const model of models.list()) {
    if (!model.available) continue;
    const specs = inputSpecs(model).map((spec) => {
      const shape = spec.shape.map((d) => (d === -1 ? 4 : d));
      return { ...spec, shape, width: elementCount(shape) };
    });
    const cap = Math.max(1, Math.min(maxBatchSize, model.maxBatchSize));
    const latency = batcher.latencyOf(model.name);
    try {
      const batchOf = (size: number) =>
        specs.map((spec) => ({
          name: spec.name,
          datatype: spec.datatype,
          dims: [size, ...spec.shape],
          data: allocate(spec.datatype, size * spec.width),
        }));
      for (const size of new Set([1, Math.max(1, Math.floor(cap / 8)), cap])) {
        for (let round = 0; round < 2; round++) {
          const result = await pool.run({ model: model.name, inputs: batchOf(size), named: false });
          // The first run of a size pays one-off allocation costs: only the second is measured.
          if (round > 0) latency.observe(size, result.inferenceMs);
        }
        // Once more as online work on a pool with threads kept for it, so that they pay the
        // first-run cost too, rather than the first online request of this size. Not measured:
        // the latency model is the regular threads'.
        if ((pool.onlineThreads ?? 0) > 0)
          await pool.run({ model: model.name, inputs: batchOf(size), named: false, urgent: true });
      }
    } catch (error) {
      log.warn({ err: error, model: model.name }, "warm-up batch failed");
    }
  }
}
