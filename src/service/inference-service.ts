/**
 * The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`, KServe v2) over
 * the same processor as the native API: a ModelInfer is one synchronous request through the same
 * batcher, priorities, keys and metrics, its input tensor's first dimension the items. Models
 * serve one FP32 input and one FP32 output (see `docs/models.md`); the tensor's other dimensions
 * are each item's shape, and the answer is one FP32 tensor `[items, output length]`.
 */
import { create } from "@bufbuild/protobuf";
import {
  type ModelInferRequest,
  type ModelInferResponse,
  ModelInferResponseSchema,
  type ModelMetadataRequest,
  type ModelMetadataResponse,
  ModelMetadataResponseSchema,
  type ModelReadyRequest,
  type ModelReadyResponse,
  ModelReadyResponseSchema,
  type ServerLiveRequest,
  type ServerLiveResponse,
  ServerLiveResponseSchema,
  type ServerMetadataRequest,
  type ServerMetadataResponse,
  ServerMetadataResponseSchema,
  type ServerReadyRequest,
  type ServerReadyResponse,
  ServerReadyResponseSchema,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import {
  type BatchProcessor,
  InvalidInputError,
  ItemFailedError,
  type ModelCatalog,
  type ModelInfo,
  ModelNotFoundError,
  ModelUnavailableError,
  ModelVersionNotFoundError,
  PRIORITIES,
} from "../engine/index.js";
import type { CallContext } from "./batch-processor-service.js";

/** One method per RPC, named like the generated descriptor's `localName`. */
export interface InferenceServiceImpl {
  serverLive(request: ServerLiveRequest, call: CallContext): Promise<ServerLiveResponse>;
  serverReady(request: ServerReadyRequest, call: CallContext): Promise<ServerReadyResponse>;
  modelReady(request: ModelReadyRequest, call: CallContext): Promise<ModelReadyResponse>;
  serverMetadata(
    request: ServerMetadataRequest,
    call: CallContext,
  ): Promise<ServerMetadataResponse>;
  modelMetadata(request: ModelMetadataRequest, call: CallContext): Promise<ModelMetadataResponse>;
  modelInfer(request: ModelInferRequest, call: CallContext): Promise<ModelInferResponse>;
}

/** What the implementation runs on. */
export interface InferenceServiceDependencies {
  readonly processor: BatchProcessor;
  readonly catalog: ModelCatalog;
  /** Why the server is not ready (as `/ready` says); empty when it is. */
  readonly notReady: () => readonly string[];
  /** The server's version, for ServerMetadata. */
  readonly version: string;
}

/** The server's name in ServerMetadata. */
const SERVER_NAME = "batch-processor";
/** The platform of every model this server runs, in the protocol's words. */
const PLATFORM = "onnxruntime_onnx";
/** The version a model of the flat layout (no version folders) answers to. */
const FLAT_VERSION = "1";
/** Most items (the first dimension) of one ModelInfer, as of a native infer. */
const MAX_ITEMS = 1000;

/** Builds the implementation. */
export function createInferenceService({
  processor,
  catalog,
  notReady,
  version,
}: InferenceServiceDependencies): InferenceServiceImpl {
  return {
    async serverLive() {
      return create(ServerLiveResponseSchema, { live: true });
    },
    async serverReady() {
      return create(ServerReadyResponseSchema, { ready: notReady().length === 0 });
    },
    async modelReady(request) {
      const model = catalog.get(request.name);
      const ready =
        model?.available === true &&
        (request.version === "" || request.version === versionOf(model));
      return create(ModelReadyResponseSchema, { ready });
    },
    async serverMetadata() {
      return create(ServerMetadataResponseSchema, { name: SERVER_NAME, version, extensions: [] });
    },
    async modelMetadata(request) {
      const model = modelOf(catalog, request.name, request.version, "name", "version");
      const tensors = (list: ModelInfo["inputs"]) =>
        (list ?? []).map((t) => ({
          name: t.name,
          datatype: t.datatype,
          shape: t.shape.map((d) => BigInt(d)),
        }));
      return create(ModelMetadataResponseSchema, {
        name: model.name,
        versions: [versionOf(model)],
        platform: PLATFORM,
        inputs: tensors(model.inputs),
        outputs: tensors(model.outputs),
      });
    },
    async modelInfer(request, { principal, signal }) {
      const model = modelOf(
        catalog,
        request.modelName,
        request.modelVersion,
        "model_name",
        "model_version",
      );
      if (!model.available)
        throw new ModelUnavailableError(model.name, model.reason ?? "not loaded");
      const { items, itemShape, raw } = itemsOf(request, model);
      const width = itemShape.reduce((a, b) => a * b, 1);
      const results = await processor
        .infer(
          principal,
          {
            data: items.map((input) => ({ input, shape: itemShape })),
            metadata: { model_id: model.name },
            ...parametersOf(request),
          },
          signal,
        )
        .catch((error: unknown) => {
          throw inProtocolNames(error, width);
        });
      const failed = results.results.find((r) => r.error !== null)?.error;
      if (failed !== undefined && failed !== null) {
        if (failed.code === "INTERNAL") throw new Error(failed.message);
        throw new ItemFailedError(failed.code, `${failed.code}: ${failed.message}`);
      }
      const outWidth = results.results[0]?.output.length ?? 0;
      const values = new Float32Array(results.results.length * outWidth);
      results.results.forEach((r, k) => {
        values.set(r.output, k * outWidth);
      });
      const output = {
        name: model.outputName ?? "output",
        datatype: "FP32",
        shape: [BigInt(results.results.length), BigInt(outWidth)],
      };
      return create(ModelInferResponseSchema, {
        modelName: model.name,
        modelVersion: versionOf(model),
        id: request.id,
        outputs: [raw ? output : { ...output, contents: { fp32Contents: Array.from(values) } }],
        rawOutputContents: raw
          ? [new Uint8Array(values.buffer, values.byteOffset, values.byteLength)]
          : [],
      });
    },
  };
}

/**
 * An error of the native request a ModelInfer became, in the protocol's field names: item `k`'s
 * numbers are the input tensor's row `k` (`width` elements each), its priority and deadline the
 * request's parameters.
 */
function inProtocolNames(error: unknown, width: number): unknown {
  if (!(error instanceof InvalidInputError)) return error;
  const item = /^data\[(\d+)\]\.(input|shape)(?:\[(\d+)\])?$/.exec(error.field);
  if (item !== null) {
    const k = Number(item[1]);
    if (item[2] === "input" && item[3] !== undefined)
      return new InvalidInputError(
        "inputs[0].contents",
        `element ${k * width + Number(item[3])} (item ${k}): ${error.rule}`,
      );
    return new InvalidInputError("inputs[0].shape", `item ${k}: ${error.rule}`);
  }
  if (error.field === "priority") return new InvalidInputError("parameters.priority", error.rule);
  if (error.field === "timeout_ms")
    return new InvalidInputError("parameters.timeout_ms", error.rule);
  return error;
}

/** The version a model answers to: its version folder's, or {@link FLAT_VERSION}. */
function versionOf(model: ModelInfo): string {
  return model.version ?? FLAT_VERSION;
}

/** The model a call names, in the version it asks for (any when empty); throws naming the field. */
function modelOf(
  catalog: ModelCatalog,
  name: string,
  version: string,
  nameField: string,
  versionField: string,
): ModelInfo {
  const model = catalog.get(name);
  if (model === undefined)
    throw new ModelNotFoundError(
      name,
      catalog.list().map((m) => m.name),
      nameField,
    );
  if (version !== "" && version !== versionOf(model))
    throw new ModelVersionNotFoundError(name, version, versionOf(model), versionField);
  return model;
}

/**
 * The items of a ModelInfer: one FP32 input, named as the model's (or unnamed when the model has
 * one), `[items, ...item shape]`, its elements in `contents.fp32_contents` or in
 * `raw_input_contents[0]`. Each rule broken throws naming the protocol's field.
 */
function itemsOf(
  request: ModelInferRequest,
  model: ModelInfo,
): { items: Float32Array[]; itemShape: number[]; raw: boolean } {
  if (request.inputs.length !== 1)
    throw new InvalidInputError(
      "inputs",
      `model ${JSON.stringify(model.name)} takes one input (${model.inputName ?? "its first"}), got ${request.inputs.length}`,
    );
  const input = request.inputs[0] as ModelInferRequest["inputs"][number];
  if (model.inputName !== undefined && input.name !== "" && input.name !== model.inputName)
    throw new InvalidInputError(
      "inputs[0].name",
      `model ${JSON.stringify(model.name)} has no input ${JSON.stringify(input.name.slice(0, 64))}; its input is ${JSON.stringify(model.inputName)}`,
    );
  if (input.datatype !== "FP32")
    throw new InvalidInputError(
      "inputs[0].datatype",
      `expected FP32 (the model's input is FP32), got ${JSON.stringify(input.datatype.slice(0, 16))}`,
    );
  for (const [i, requested] of request.outputs.entries())
    if (requested.name !== model.outputName)
      throw new InvalidInputError(
        `outputs[${i}].name`,
        `model ${JSON.stringify(model.name)} returns the output ${JSON.stringify(model.outputName)} only`,
      );
  const shape = input.shape.map(Number);
  const count = shape[0];
  if (
    shape.length < 2 ||
    count === undefined ||
    !shape.every((d) => Number.isSafeInteger(d) && d >= 1)
  )
    throw new InvalidInputError(
      "inputs[0].shape",
      "expected [items, ...item shape] of positive integers, the items first",
    );
  if (count > MAX_ITEMS)
    throw new InvalidInputError("inputs[0].shape[0]", `at most ${MAX_ITEMS} items, got ${count}`);
  const itemShape = shape.slice(1);
  const width = itemShape.reduce((a, b) => a * b, 1);
  const raw = request.rawInputContents.length > 0;
  let values: Float32Array;
  if (raw) {
    if (request.rawInputContents.length !== 1 || input.contents !== undefined)
      throw new InvalidInputError(
        "raw_input_contents",
        "give one entry per input, and no input's contents beside it",
      );
    const bytes = request.rawInputContents[0] as Uint8Array;
    if (bytes.byteLength !== count * width * 4)
      throw new InvalidInputError(
        "raw_input_contents[0]",
        `expected ${count * width * 4} bytes (${count * width} FP32 elements of shape [${shape.join(", ")}]), got ${bytes.byteLength}`,
      );
    // A copy: the bytes may be a view into the whole received message (a Node Buffer's slice
    // would still be one). Little-endian, as the protocol's raw contents and this host are.
    values = new Float32Array(count * width);
    new Uint8Array(values.buffer).set(bytes);
  } else {
    const fp32 = input.contents?.fp32Contents ?? [];
    if (fp32.length !== count * width)
      throw new InvalidInputError(
        "inputs[0].contents.fp32_contents",
        `expected ${count * width} elements (shape [${shape.join(", ")}]), got ${fp32.length}`,
      );
    values = Float32Array.from(fp32);
  }
  const items = Array.from({ length: count }, (_, k) =>
    values.subarray(k * width, (k + 1) * width),
  );
  return { items, itemShape, raw };
}

/**
 * The request's parameters this server reads: `priority` (a class, as a string) and `timeout_ms`
 * (int64), as a native infer takes them; others are ignored, as the protocol allows.
 */
function parametersOf(request: ModelInferRequest): { priority?: string; timeoutMs?: number } {
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
