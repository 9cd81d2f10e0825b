/**
 * Tensors of the Open Inference Protocol: a tensor's elements in the `contents` field its datatype
 * uses, or as raw little-endian bytes, to and from the engine's typed arrays. FP16 has no
 * `contents` field in the protocol, so it travels as raw bytes only.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  InferTensorContents,
  InferTensorContentsSchema,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import {
  type Datatype,
  InvalidInputError,
  numbersOf,
  type TensorData,
  toTensorData,
} from "../engine/index.js";

type ContentsLists = Omit<InferTensorContents, "$typeName" | "$unknown">;

/** The `contents` field (its name here and on the wire) that holds each datatype's elements. */
const CONTENTS_FIELDS: Readonly<
  Record<Exclude<Datatype, "FP16">, readonly [keyof ContentsLists, string]>
> = {
  BOOL: ["boolContents", "bool_contents"],
  UINT8: ["uintContents", "uint_contents"],
  UINT16: ["uintContents", "uint_contents"],
  UINT32: ["uintContents", "uint_contents"],
  UINT64: ["uint64Contents", "uint64_contents"],
  INT8: ["intContents", "int_contents"],
  INT16: ["intContents", "int_contents"],
  INT32: ["intContents", "int_contents"],
  INT64: ["int64Contents", "int64_contents"],
  FP32: ["fp32Contents", "fp32_contents"],
  FP64: ["fp64Contents", "fp64_contents"],
  BYTES: ["bytesContents", "bytes_contents"],
};

const fieldOf = (datatype: Datatype) =>
  datatype === "FP16" ? undefined : CONTENTS_FIELDS[datatype];

/** The wire name of the `contents` field holding `datatype`'s elements (`fp32_contents`). */
export function contentsName(datatype: Datatype): string {
  return fieldOf(datatype)?.[1] ?? "raw_input_contents";
}

/**
 * The elements of an input's `contents` in the field of `datatype`, converted and checked; throws
 * naming the field they are in instead, or the element that does not fit.
 */
export function elementsOfContents(
  field: string,
  datatype: Datatype,
  contents: InferTensorContents,
): TensorData {
  const own = fieldOf(datatype);
  if (own === undefined)
    throw new InvalidInputError(
      field,
      "FP16 elements travel in raw_input_contents only (the protocol has no contents field for them)",
    );
  for (const [local, wire] of Object.values(CONTENTS_FIELDS))
    if (local !== own[0] && (contents[local] as unknown[]).length > 0)
      throw new InvalidInputError(
        `${field}.${wire}`,
        `a ${datatype} tensor's elements go in ${own[1]}`,
      );
  const list = contents[own[0]] as ArrayLike<unknown>;
  const at = `${field}.${own[1]}`;
  if (datatype === "BYTES")
    return toTensorData(
      at,
      datatype,
      (list as Uint8Array[]).map((b) => Buffer.from(b).toString("utf8")),
    );
  return toTensorData(at, datatype, list);
}

/** `contents` holding `data` in the field of `datatype`; undefined for FP16 (raw only). */
export function contentsOf(
  datatype: Datatype,
  data: TensorData,
): MessageInitShape<typeof InferTensorContentsSchema> | undefined {
  const own = fieldOf(datatype);
  if (own === undefined) return undefined;
  if (datatype === "BYTES")
    return { bytesContents: (data as readonly string[]).map((s) => Buffer.from(s, "utf8")) };
  if (datatype === "BOOL") return { boolContents: Array.from(data as Uint8Array, (v) => v !== 0) };
  return { [own[0]]: numbersOf(data as ArrayLike<number | bigint>) };
}
