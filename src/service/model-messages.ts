/**
 * Models and named tensors between the contract's messages and the engine: a catalog entry as
 * ListModels shows it, an item's `inputs` (empty fields mean "not given") and a result's
 * `outputs` (plain numbers, or strings).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type ModelInfo as ModelInfoMessage,
  ModelInfoSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import type { Tensor, TensorSchema } from "../../gen/batchprocessor/v1/tensor_pb.js";
import {
  baseName,
  type ItemTensor,
  type ModelInfo,
  type TensorInput,
  toPlainValues,
} from "../engine/index.js";

/** A catalog entry as ListModels shows it (a version's entry under its model's name). */
export function modelOf(m: ModelInfo): ModelInfoMessage {
  return create(ModelInfoSchema, {
    name: baseName(m),
    available: m.available,
    reason: m.reason,
    inputShape: [...m.itemShape],
    maxBatchSize: m.maxBatchSize,
    outputKind: m.outputKind,
    labels: [...(m.labels ?? [])],
    executionProvider: m.executionProvider ?? "",
    description: m.description ?? "",
    loadedAt: m.loadedAt === undefined ? undefined : timestampFromMs(m.loadedAt),
    reloadError: m.reloadError,
    version: m.version ?? "",
    maxWaitTimeMs: m.maxWaitTimeMs,
    providerFallback: m.providerFallback,
    preferredBatchSizes: [...(m.preferredBatchSizes ?? [])],
    instanceCount: m.instanceCount,
    inputs: (m.inputs ?? []).map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: [...t.shape],
    })),
    outputs: (m.outputs ?? []).map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: [...t.shape],
    })),
  });
}

/** An item's named tensors as the engine takes them (empty fields mean "not given"). */
export function tensorInputsOf(inputs: Record<string, Tensor>): Record<string, TensorInput> {
  // Keys are the client's: no prototype, so `__proto__` is a name like any other.
  const out: Record<string, TensorInput> = Object.create(null);
  for (const [name, t] of Object.entries(inputs))
    out[name] = {
      datatype: t.datatype || undefined,
      shape: t.shape.length > 0 ? t.shape : undefined,
      values: t.values.length > 0 ? t.values : undefined,
      strings: t.strings.length > 0 ? t.strings : undefined,
      raw: t.raw !== undefined && t.raw.length > 0 ? t.raw : undefined,
    };
  return out;
}

type TensorInit = MessageInitShape<typeof TensorSchema>;

/** An item's outputs by name, as the contract's tensors (numbers, or strings for BYTES). */
export function tensorOutputsOf(outputs: readonly ItemTensor[]): Record<string, TensorInit> {
  const out: Record<string, TensorInit> = {};
  for (const t of outputs) {
    const values = toPlainValues(t.datatype, t.data);
    out[t.name] = {
      datatype: t.datatype,
      shape: [...t.shape],
      ...(t.datatype === "BYTES"
        ? { strings: values as string[] }
        : { values: values.map((v) => (typeof v === "boolean" ? Number(v) : (v as number))) }),
    };
  }
  return out;
}
