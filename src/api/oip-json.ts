/**
 * The Open Inference Protocol's REST JSON (KServe v2): a ModelInfer request read from its JSON
 * (and the binary tensor data after it), and its answer written as JSON or binary data. The
 * handler in `oip-rest.ts` routes; this reads and writes.
 */
import type { ServerResponse } from "node:http";
import { create, type JsonValue } from "@bufbuild/protobuf";
import {
  type InferParameter,
  type ModelInferRequest,
  ModelInferRequest_InferInputTensorSchema,
  ModelInferRequestSchema,
  type ModelInferResponse,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import {
  type Datatype,
  elementCount,
  fromRawBytes,
  InvalidInputError,
  isDatatype,
  toPlainValues,
  toRawBytes,
  toTensorData,
} from "../engine/index.js";
import { parseJsonBody } from "../wire/index.js";

/**
 * Writes a ModelInfer's answer: JSON with each output's `data` (numbers, booleans for BOOL,
 * strings for BYTES), or, when the request asked for binary outputs, the JSON (each output with
 * its `binary_data_size`) followed by the outputs' little-endian elements, its length in
 * `Inference-Header-Content-Length`. The request went in as raw contents, so outputs come raw.
 */
export function sendInferAnswer(res: ServerResponse, m: ModelInferResponse, binary: boolean): void {
  const bytes = m.outputs.map((_, i) => m.rawOutputContents[i] ?? new Uint8Array());
  const head = {
    model_name: m.modelName,
    model_version: m.modelVersion,
    ...(m.id === "" ? {} : { id: m.id }),
    outputs: m.outputs.map((t, i) => {
      const raw = bytes[i] as Uint8Array;
      const datatype = t.datatype as Datatype;
      const data = () =>
        toPlainValues(
          datatype,
          fromRawBytes("output", datatype, raw, elementCount(t.shape.map(Number))),
        );
      return {
        name: t.name,
        datatype: t.datatype,
        shape: t.shape.map(Number),
        ...(binary ? { parameters: { binary_data_size: raw.byteLength } } : { data: data() }),
      };
    }),
  };
  if (!binary) {
    send(res, 200, head);
    return;
  }
  const json = Buffer.from(JSON.stringify(head));
  const body = Buffer.concat([json, ...bytes]);
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": body.byteLength,
    [HEADER_LENGTH]: json.byteLength,
  });
  res.end(body);
}

/**
 * A ModelInferRequest from the protocol's JSON: `inputs` (each `name`, `shape`, `datatype`, and
 * `data` flat or nested, or a `binary_data_size` parameter for elements in `binary`), optional
 * `id`, `parameters` and `outputs`. Every input's elements go to `raw_input_contents` (the JSON
 * ones converted to their datatype here, naming the element that does not fit it), so the answer
 * comes back raw too; the service checks the rest against the model, naming the fields.
 * `binaryOutput`: whether the answer's outputs go back as binary data.
 */
export function inferRequestOf(
  route: { readonly model?: string; readonly version?: string },
  body: JsonValue | undefined,
  binary: Uint8Array,
): { request: ModelInferRequest; binaryOutput: boolean } {
  const json = objectAt(body, "body");
  const raw: Uint8Array[] = [];
  let offset = 0;
  const inputs = arrayAt(json.inputs, "inputs").map((value, i) => {
    const field = `inputs[${i}]`;
    const input = objectAt(value, field);
    const shape = arrayAt(input.shape, `${field}.shape`).map((d, k) => {
      if (typeof d !== "number" || !Number.isSafeInteger(d))
        throw new InvalidInputError(`${field}.shape[${k}]`, "expected an integer");
      return BigInt(d);
    });
    const datatype = stringAt(input.datatype, `${field}.datatype`);
    const parameters =
      input.parameters === undefined ? {} : objectAt(input.parameters, `${field}.parameters`);
    const size = parameters.binary_data_size;
    const name = typeof input.name === "string" ? input.name : "";
    if (size !== undefined) {
      if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)
        throw new InvalidInputError(`${field}.parameters.binary_data_size`, "expected an integer");
      if (offset + size > binary.byteLength)
        throw new InvalidInputError(
          `${field}.parameters.binary_data_size`,
          `${size} bytes from byte ${offset} of the binary data, which holds ${binary.byteLength}`,
        );
      raw.push(binary.subarray(offset, offset + size));
      offset += size;
      return create(ModelInferRequest_InferInputTensorSchema, { name, datatype, shape });
    }
    // A datatype this server does not know is left to the service, which names the model's.
    if (!isDatatype(datatype)) raw.push(new Uint8Array());
    else {
      const elements = flatElements(input.data, `${field}.data`, datatype);
      const count = elementCount(shape.map(Number));
      if (elements.length !== count)
        throw new InvalidInputError(
          `${field}.data`,
          `expected ${count} elements (shape [${shape.join(", ")}]), got ${elements.length}`,
        );
      raw.push(toRawBytes(toTensorData(`${field}.data`, datatype, elements)));
    }
    return create(ModelInferRequest_InferInputTensorSchema, { name, datatype, shape });
  });
  if (offset !== binary.byteLength)
    throw new InvalidInputError(
      "body",
      `${binary.byteLength - offset} bytes of binary data belong to no input's binary_data_size`,
    );
  let binaryOutput = false;
  const outputs =
    json.outputs === undefined
      ? []
      : arrayAt(json.outputs, "outputs").map((value, i) => {
          const output = objectAt(value, `outputs[${i}]`);
          const parameters =
            output.parameters === undefined
              ? {}
              : objectAt(output.parameters, `outputs[${i}].parameters`);
          if (parameters.binary_data === true) binaryOutput = true;
          return { name: stringAt(output.name, `outputs[${i}].name`) };
        });
  const parameters: Record<string, InferParameter> = {};
  if (json.parameters !== undefined)
    for (const [name, value] of Object.entries(objectAt(json.parameters, "parameters"))) {
      if (name === "binary_data_output") {
        binaryOutput ||= value === true;
        continue;
      }
      parameters[name] = parameterOf(value, `parameters.${name.slice(0, 64)}`);
    }
  const request = create(ModelInferRequestSchema, {
    modelName: route.model,
    modelVersion: route.version,
    id: typeof json.id === "string" ? json.id : "",
    inputs,
    outputs,
    parameters,
    rawInputContents: raw,
  });
  return { request, binaryOutput };
}

function parameterOf(value: JsonValue, field: string): InferParameter {
  const choice =
    typeof value === "string"
      ? { case: "stringParam" as const, value }
      : typeof value === "boolean"
        ? { case: "boolParam" as const, value }
        : typeof value === "number" && Number.isSafeInteger(value)
          ? { case: "int64Param" as const, value: BigInt(value) }
          : undefined;
  if (choice === undefined)
    throw new InvalidInputError(field, "expected a string, a boolean or an integer");
  return { parameterChoice: choice } as InferParameter;
}

/** Deepest nesting of a tensor's `data` (a dimension each level). */
const MAX_DATA_DEPTH = 32;

/**
 * A tensor's elements, row-major, from a flat or nested JSON array: numbers, or booleans (and
 * 0/1) for BOOL, strings for BYTES. The element a refusal names is spelled out only then (a tensor
 * may hold millions of elements).
 */
function flatElements(
  value: JsonValue | undefined,
  field: string,
  datatype: Datatype,
): (number | boolean | string)[] {
  const kind = datatype === "BYTES" ? "string" : "number";
  const fits = (v: JsonValue) =>
    typeof v === kind || (datatype === "BOOL" && typeof v === "boolean");
  const out: (number | boolean | string)[] = [];
  const at: number[] = [];
  const walk = (list: JsonValue[]) => {
    if (at.length >= MAX_DATA_DEPTH)
      throw new InvalidInputError(field, `nests deeper than ${MAX_DATA_DEPTH} levels`);
    for (let k = 0; k < list.length; k++) {
      const v = list[k] as JsonValue;
      if (fits(v)) out.push(v as number | boolean | string);
      else if (Array.isArray(v)) {
        at.push(k);
        walk(v);
        at.pop();
      } else
        throw new InvalidInputError(
          `${field}${[...at, k].map((i) => `[${i}]`).join("")}`,
          `expected a ${datatype === "BOOL" ? "boolean" : kind}`,
        );
    }
  };
  walk(arrayAt(value, field));
  return out;
}

export function objectAt(value: JsonValue | undefined, field: string): Record<string, JsonValue> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new InvalidInputError(field, "expected a JSON object");
  return value as Record<string, JsonValue>;
}

function arrayAt(value: JsonValue | undefined, field: string): JsonValue[] {
  if (!Array.isArray(value)) throw new InvalidInputError(field, "expected an array");
  return value;
}

function stringAt(value: JsonValue | undefined, field: string): string {
  if (typeof value !== "string") throw new InvalidInputError(field, "expected a string");
  return value;
}

/** The header of the binary tensor data extension: how many bytes of the body are JSON. */
export const HEADER_LENGTH = "inference-header-content-length";

/** A body's JSON, and the binary data after it when `headerLength` says where the JSON ends. */
export function splitBody(
  body: Buffer,
  headerLength: string | undefined,
): { json: JsonValue | undefined; binary: Uint8Array } {
  if (headerLength === undefined) return { json: parseJsonBody(body), binary: new Uint8Array() };
  const length = Number(headerLength);
  if (!Number.isSafeInteger(length) || length < 0 || length > body.byteLength)
    throw new InvalidInputError(
      "Inference-Header-Content-Length",
      `expected the JSON's length in bytes, at most the body's ${body.byteLength}`,
    );
  return { json: parseJsonBody(body.subarray(0, length)), binary: body.subarray(length) };
}

export function send(res: ServerResponse, status: number, body: JsonValue): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
