/**
 * The Open Inference Protocol's REST face (KServe v2), on the API port beside the native REST API:
 * `GET /v2/health/live|ready`, `GET /v2`, `GET /v2/models/{name}[/versions/{v}]`, `GET
 * .../ready` and `POST .../infer` with JSON tensors, and the repository extension (`POST
 * /v2/repository/index`, `POST /v2/repository/models/{name}/load|unload`, admin keys). Each is a
 * call of the protocol's gRPC service (`inference.GRPCInferenceService`), admitted,
 * authenticated, logged and counted as every call is, so the two faces answer alike; only the JSON is this protocol's (`data` for a tensor's
 * elements, flat or nested; errors as `{"error": "<message>"}`). The binary tensor data extension
 * is served both ways: a body whose `Inference-Header-Content-Length` header says how long its
 * JSON is carries the elements of inputs with a `binary_data_size` parameter after it, and outputs
 * asked for with `binary_data` (or `binary_data_output` on the request) come back the same way.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { create, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import {
  GRPCInferenceService,
  type InferParameter,
  type ModelInferRequest,
  ModelInferRequest_InferInputTensorSchema,
  ModelInferRequestSchema,
  type ModelInferResponse,
  ModelMetadataRequestSchema,
  type ModelMetadataResponse,
  ModelReadyRequestSchema,
  RepositoryIndexRequestSchema,
  type RepositoryIndexResponse,
  RepositoryModelLoadRequestSchema,
  RepositoryModelUnloadRequestSchema,
  ServerLiveRequestSchema,
  ServerMetadataRequestSchema,
  ServerReadyRequestSchema,
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
import { parseJsonBody, readBody } from "../wire/index.js";
import { Call, type ServiceBinding } from "./call.js";
import { httpStatusOf } from "./error-mapping.js";
import { MethodNotAllowedError } from "./http-errors.js";

/** Handles a request under `/v2`; resolves false for any other path. */
export type OipRestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** A `/v2` path: which call it is, for which model and version. */
interface Route {
  readonly method: DescMethod;
  readonly verb: "GET" | "POST";
  readonly model?: string;
  readonly version?: string;
}

const METHODS = GRPCInferenceService.method;
const MODEL = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?$/;
const REPOSITORY_MODEL = /^\/v2\/repository\/models\/([^/]+)\/(load|unload)$/;

/** The route of `path`, if it is one of the protocol's. */
function routeOf(path: string): Route | undefined {
  if (path === "/v2/health/live") return { method: METHODS.serverLive, verb: "GET" };
  if (path === "/v2/health/ready") return { method: METHODS.serverReady, verb: "GET" };
  if (path === "/v2") return { method: METHODS.serverMetadata, verb: "GET" };
  if (path === "/v2/repository/index") return { method: METHODS.repositoryIndex, verb: "POST" };
  const repository = REPOSITORY_MODEL.exec(path);
  if (repository !== null)
    return {
      method:
        repository[2] === "load" ? METHODS.repositoryModelLoad : METHODS.repositoryModelUnload,
      verb: "POST",
      model: decoded(repository[1] ?? ""),
      version: "",
    };
  const match = MODEL.exec(path);
  if (match === null) return undefined;
  const [, model = "", version, tail] = match;
  const named = { model: decoded(model), version: decoded(version ?? "") };
  if (tail === "/infer") return { method: METHODS.modelInfer, verb: "POST", ...named };
  if (tail === "/ready") return { method: METHODS.modelReady, verb: "GET", ...named };
  return { method: METHODS.modelMetadata, verb: "GET", ...named };
}

/** A path segment decoded; one that is not valid percent-encoding stays as it came. */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Builds the handler; bodies are limited to `maxBodyBytes` as every REST body is. */
export function createOipRestHandler(
  binding: ServiceBinding,
  options: { readonly maxBodyBytes: number },
): OipRestHandler {
  return async (req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (binding.inference === undefined || (path !== "/v2" && !path.startsWith("/v2/")))
      return false;
    const route = routeOf(path);
    if (route === undefined) return false;
    const call = new Call(binding, "rest", route.method);
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      const verb = req.method === "HEAD" ? "GET" : req.method;
      if (verb !== route.verb) throw new MethodNotAllowedError(req.method ?? "", [route.verb]);
      call.admit((name) => headerOf(req, name));
      if (route.method === METHODS.modelInfer) {
        const { json, binary } = splitBody(
          await readBody(req, options.maxBodyBytes, headerOf(req, "content-encoding")),
          headerOf(req, HEADER_LENGTH),
        );
        const { request, binaryOutput } = inferRequestOf(route, json, binary);
        const response = (await call.unary(request, abort.signal)) as ModelInferResponse;
        sendInferAnswer(res, response, binaryOutput);
        call.ok(response);
      } else if (route.method === METHODS.repositoryIndex) {
        const body = await readBody(req, options.maxBodyBytes, headerOf(req, "content-encoding"));
        const json = body.byteLength === 0 ? {} : objectAt(parseJsonBody(body), "body");
        if (json.ready !== undefined && typeof json.ready !== "boolean")
          throw new InvalidInputError("ready", "expected true or false");
        const request = create(RepositoryIndexRequestSchema, { ready: json.ready === true });
        const response = (await call.unary(request, abort.signal)) as RepositoryIndexResponse;
        send(
          res,
          200,
          response.models.map((m) => ({
            name: m.name,
            version: m.version,
            state: m.state,
            ...(m.reason === "" ? {} : { reason: m.reason }),
          })),
        );
        call.ok(response);
      } else {
        // A load's or unload's body (the protocol's parameters) is read and left unused.
        if (route.verb === "POST")
          await readBody(req, options.maxBodyBytes, headerOf(req, "content-encoding"));
        const response = await call.unary(plainRequestOf(route), abort.signal);
        const { status, body } = answerOf(route, response);
        send(res, status, body);
        call.ok(response);
      }
    } catch (error) {
      const failed = call.fail(error);
      if (!res.headersSent) {
        for (const [name, value] of failed.metadata) res.setHeader(name, value);
        if (!req.complete) res.setHeader("connection", "close");
        send(res, httpStatusOf(failed), { error: failed.rawMessage });
      } else res.end();
    }
    return true;
  };
}

/** The request message of a call whose path says everything. */
function plainRequestOf(route: Route): unknown {
  switch (route.method) {
    case METHODS.serverLive:
      return create(ServerLiveRequestSchema);
    case METHODS.serverReady:
      return create(ServerReadyRequestSchema);
    case METHODS.serverMetadata:
      return create(ServerMetadataRequestSchema);
    case METHODS.modelReady:
      return create(ModelReadyRequestSchema, { name: route.model, version: route.version });
    case METHODS.repositoryModelLoad:
      return create(RepositoryModelLoadRequestSchema, { modelName: route.model });
    case METHODS.repositoryModelUnload:
      return create(RepositoryModelUnloadRequestSchema, { modelName: route.model });
    default:
      return create(ModelMetadataRequestSchema, { name: route.model, version: route.version });
  }
}

/** What the protocol's REST face answers for a call's response. */
function answerOf(route: Route, response: unknown): { status: number; body: JsonValue } {
  switch (route.method) {
    case METHODS.serverLive:
    case METHODS.serverReady:
    case METHODS.modelReady: {
      const { live, ready } = response as { live?: boolean; ready?: boolean };
      const yes = live ?? ready ?? false;
      // The protocol: 200 means true; a not-ready server answers an error status.
      return {
        status: yes ? 200 : 503,
        body: live === undefined ? { ready: yes } : { live: yes },
      };
    }
    case METHODS.repositoryModelLoad:
    case METHODS.repositoryModelUnload:
      return { status: 200, body: {} };
    case METHODS.serverMetadata: {
      const m = response as { name: string; version: string; extensions: string[] };
      return { status: 200, body: { name: m.name, version: m.version, extensions: m.extensions } };
    }
    default: {
      const m = response as ModelMetadataResponse;
      const tensors = (list: ModelMetadataResponse["inputs"]) =>
        list.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(Number) }));
      return {
        status: 200,
        body: {
          name: m.name,
          versions: m.versions,
          platform: m.platform,
          inputs: tensors(m.inputs),
          outputs: tensors(m.outputs),
        },
      };
    }
  }
}

/**
 * Writes a ModelInfer's answer: JSON with each output's `data` (numbers, booleans for BOOL,
 * strings for BYTES), or, when the request asked for binary outputs, the JSON (each output with
 * its `binary_data_size`) followed by the outputs' little-endian elements, its length in
 * `Inference-Header-Content-Length`. The request went in as raw contents, so outputs come raw.
 */
function sendInferAnswer(res: ServerResponse, m: ModelInferResponse, binary: boolean): void {
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
function inferRequestOf(
  route: Route,
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

function objectAt(value: JsonValue | undefined, field: string): Record<string, JsonValue> {
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
const HEADER_LENGTH = "inference-header-content-length";

/** A body's JSON, and the binary data after it when `headerLength` says where the JSON ends. */
function splitBody(
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

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function send(res: ServerResponse, status: number, body: JsonValue): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
