/**
 * A ModelInfer as the native infer it becomes: its input tensors split into items (row `k` of
 * every input is item `k`), its parameters, the items' outputs joined back into tensors, and the
 * native request's errors told in the protocol's field names.
 */
import { create } from "@bufbuild/protobuf";
import {
  InferTensorContentsSchema,
  type ModelInferRequest,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import {
  type BatchTensor,
  concatRows,
  type Datatype,
  elementCount,
  fromRawBytes,
  InvalidInputError,
  type ItemInput,
  type ItemTensor,
  type ModelInfo,
  PRIORITIES,
  rowOf,
  type TensorData,
  type TensorInput,
  toRawBytes,
} from "../engine/index.js";
import { contentsName, elementsOfContents } from "./oip-tensors.js";

/** Most items (the first dimension) of one ModelInfer, as of a native infer. */
const MAX_ITEMS = 1000;

/**
 * Each output over every item, `[items, ...item shape]`, in the order the items give them.
 * Items of one request share their inputs' shapes and so their outputs'.
 */
export function joinedOutputs(perItem: readonly (readonly ItemTensor[])[]): BatchTensor[] {
  const first = perItem[0] ?? [];
  return first.map((tensor, k) => {
    const rows = perItem.map((outputs) => (outputs[k] as ItemTensor).data);
    return {
      name: tensor.name,
      datatype: tensor.datatype,
      dims: [perItem.length, ...tensor.shape],
      data: concatRows(tensor.datatype, rows, tensor.data.length),
    };
  });
}

/**
 * An error of the native request a ModelInfer became, in the protocol's field names: item `k`'s
 * tensors are row `k` of the input tensors (`names[i]` is input `i`'s engine field name with its
 * row width), its outputs the request's, its priority and deadline the request's parameters.
 */
export function inProtocolNames(
  error: unknown,
  names: ReadonlyMap<string, { index: number; width: number }>,
): unknown {
  if (!(error instanceof InvalidInputError)) return error;
  const item = /^data\[(\d+)\]\.(?:inputs\.(.+)\.)?(values|input|shape|raw)(?:\[(\d+)\])?$/.exec(
    error.field,
  );
  if (item !== null) {
    const k = Number(item[1]);
    const input = names.get(item[2] ?? "");
    const at = `inputs[${input?.index ?? 0}]`;
    if (item[3] !== "shape" && item[4] !== undefined)
      return new InvalidInputError(
        `${at}.contents`,
        `element ${k * (input?.width ?? 0) + Number(item[4])} (item ${k}): ${error.rule}`,
      );
    return new InvalidInputError(`${at}.shape`, `item ${k}: ${error.rule}`);
  }
  const output = /^output_names\[(\d+)\]$/.exec(error.field);
  if (output !== null) return new InvalidInputError(`outputs[${output[1]}].name`, error.rule);
  if (error.field === "priority") return new InvalidInputError("parameters.priority", error.rule);
  if (error.field === "timeout_ms")
    return new InvalidInputError("parameters.timeout_ms", error.rule);
  return error;
}

/**
 * The items of a ModelInfer: every input of the model, by name (unnamed when the model has one),
 * in its datatype, `[items, ...item shape]` with the same item count for all, its elements in its
 * `contents` field or in `raw_input_contents` (every input's, then). Each item is row `k` of every
 * tensor. Each rule broken throws naming the protocol's field; the engine checks each item's
 * shape against the model. `names`: each input's field name in the native request and row width.
 */
export function itemsOf(
  request: ModelInferRequest,
  model: ModelInfo,
): {
  items: ItemInput[];
  names: Map<string, { index: number; width: number }>;
  raw: boolean;
} {
  const declared = model.inputs ?? [];
  const raw = request.rawInputContents.length > 0;
  if (raw && request.rawInputContents.length !== request.inputs.length)
    throw new InvalidInputError(
      "raw_input_contents",
      `give one entry per input (${request.inputs.length}), got ${request.rawInputContents.length}`,
    );
  if (request.inputs.length === 0)
    throw new InvalidInputError(
      "inputs",
      `model ${JSON.stringify(model.name)} takes ${declared.map((d) => d.name).join(", ")}`,
    );
  let count: number | undefined;
  const names = new Map<string, { index: number; width: number }>();
  const columns = request.inputs.map((input, i) => {
    const field = `inputs[${i}]`;
    const name =
      input.name === "" && declared.length === 1 ? (declared[0]?.name as string) : input.name;
    const spec = declared.find((d) => d.name === name);
    if (spec === undefined)
      throw new InvalidInputError(
        `${field}.name`,
        `model ${JSON.stringify(model.name)} has no input ${JSON.stringify(input.name.slice(0, 64))}; its inputs are ${declared.map((d) => d.name).join(", ")}`,
      );
    if (input.datatype !== spec.datatype)
      throw new InvalidInputError(
        `${field}.datatype`,
        `expected ${spec.datatype} (the model's input ${JSON.stringify(name)} is ${spec.datatype}), got ${JSON.stringify(input.datatype.slice(0, 16))}`,
      );
    const datatype = spec.datatype as Datatype;
    const shape = input.shape.map(Number);
    const rows = shape[0];
    // One element per item only where the model's input has no axis past the batch's.
    const rank = spec.shape.length === 1 ? 1 : 2;
    if (
      shape.length < rank ||
      rows === undefined ||
      !shape.every((d) => Number.isSafeInteger(d) && d >= 1)
    )
      throw new InvalidInputError(
        `${field}.shape`,
        "expected [items, ...item shape] of positive integers, the items first",
      );
    if (rows > MAX_ITEMS)
      throw new InvalidInputError(`${field}.shape[0]`, `at most ${MAX_ITEMS} items, got ${rows}`);
    if (count !== undefined && rows !== count)
      throw new InvalidInputError(
        `${field}.shape[0]`,
        `every input holds the same items; inputs[0] holds ${count}, this ${rows}`,
      );
    count = rows;
    const itemShape = shape.slice(1);
    const width = elementCount(itemShape);
    let data: TensorData;
    if (raw) {
      if (input.contents !== undefined)
        throw new InvalidInputError(
          `${field}.contents`,
          "give every input's elements in raw_input_contents, or none there",
        );
      data = fromRawBytes(
        `raw_input_contents[${i}]`,
        datatype,
        request.rawInputContents[i] as Uint8Array,
        rows * width,
      );
    } else {
      data = elementsOfContents(
        `${field}.contents`,
        datatype,
        input.contents ?? create(InferTensorContentsSchema),
      );
      if (data.length !== rows * width)
        throw new InvalidInputError(
          `${field}.contents.${contentsName(datatype)}`,
          `expected ${rows * width} elements (shape [${shape.join(", ")}]), got ${data.length}`,
        );
    }
    names.set(name, { index: i, width });
    return { name, datatype, itemShape, width, data };
  });
  for (const spec of declared)
    if (!names.has(spec.name))
      throw new InvalidInputError(
        "inputs",
        `missing ${JSON.stringify(spec.name)} (${spec.datatype} [${spec.shape.join(", ")}]); model ${JSON.stringify(model.name)} takes ${declared.map((d) => d.name).join(", ")}`,
      );
  const items = Array.from({ length: count ?? 0 }, (_, k): ItemInput => {
    const inputs: Record<string, TensorInput> = {};
    // In the datatype's own array, which the engine takes as it is; FP16 as bytes, since its
    // Uint16Array of bits would read as values.
    for (const column of columns) {
      const row = rowOf(column.data, k, column.width);
      inputs[column.name] =
        column.datatype === "FP16"
          ? { datatype: column.datatype, shape: column.itemShape, raw: toRawBytes(row) }
          : { datatype: column.datatype, shape: column.itemShape, values: row };
    }
    return { inputs };
  });
  return { items, names, raw };
}

/**
 * The request's parameters this server reads: `priority` (a class, as a string) and `timeout_ms`
 * (int64), as a native infer takes them; others are ignored, as the protocol allows.
 */
export function parametersOf(request: ModelInferRequest): {
  priority?: string;
  timeoutMs?: number;
} {
  const out: { priority?: string; timeoutMs?: number } = {};
  const priority = request.parameters.priority?.parameterChoice;
  if (priority !== undefined) {
    if (
      priority.case !== "stringParam" ||
      !(PRIORITIES as readonly string[]).includes(priority.value)
    )
      throw new InvalidInputError(
        "parameters.priority",
        `expected a string_param, one of ${PRIORITIES.join(", ")}`,
      );
    out.priority = priority.value;
  }
  const timeout = request.parameters.timeout_ms?.parameterChoice;
  if (timeout !== undefined) {
    if (timeout.case !== "int64Param")
      throw new InvalidInputError("parameters.timeout_ms", "expected an int64_param");
    out.timeoutMs = Number(timeout.value);
  }
  return out;
}
