/**
 * The Open Inference Protocol's REST face (KServe v2), on the API port beside the native REST API:
 * `GET /v2/health/live|ready`, `GET /v2`, `GET /v2/models/{name}[/versions/{v}]`, `GET
 * .../ready` and `POST .../infer` with JSON tensors. Each is a call of the protocol's gRPC service
 * (`inference.GRPCInferenceService`), admitted, authenticated, logged and counted as every call
 * is, so the two faces answer alike; only the JSON is this protocol's (`data` for a tensor's
 * elements, flat or nested; errors as `{"error": "<message>"}`).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { create, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import {
  GRPCInferenceService,
  type InferParameter,
  type ModelInferRequest_InferInputTensor,
  ModelInferRequest_InferInputTensorSchema,
  ModelInferRequestSchema,
  type ModelInferResponse,
  ModelMetadataRequestSchema,
  type ModelMetadataResponse,
  ModelReadyRequestSchema,
  ServerLiveRequestSchema,
  ServerMetadataRequestSchema,
  ServerReadyRequestSchema,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import { InvalidInputError } from "../engine/index.js";
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

/** The route of `path`, if it is one of the protocol's. */
function routeOf(path: string): Route | undefined {
  if (path === "/v2/health/live") return { method: METHODS.serverLive, verb: "GET" };
  if (path === "/v2/health/ready") return { method: METHODS.serverReady, verb: "GET" };
  if (path === "/v2") return { method: METHODS.serverMetadata, verb: "GET" };
  const match = MODEL.exec(path);
  if (match === null) return undefined;
  const [, model = "", version, tail] = match;
  const named = { model: decodeURIComponent(model), version: decodeURIComponent(version ?? "") };
  if (tail === "/infer") return { method: METHODS.modelInfer, verb: "POST", ...named };
  if (tail === "/ready") return { method: METHODS.modelReady, verb: "GET", ...named };
  return { method: METHODS.modelMetadata, verb: "GET", ...named };
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
      call.admit((name) => {
        const value = req.headers[name];
        return Array.isArray(value) ? value[0] : value;
      });
      const request =
        route.method === METHODS.modelInfer
          ? inferRequestOf(route, await readJson(req, options.maxBodyBytes))
          : plainRequestOf(route);
      const response = await call.unary(request, abort.signal);
      const { status, body } = answerOf(route, response);
      send(res, status, body);
      call.ok(response);
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
    case METHODS.serverMetadata: {
      const m = response as { name: string; version: string; extensions: string[] };
      return { status: 200, body: { name: m.name, version: m.version, extensions: m.extensions } };
    }
    case METHODS.modelMetadata: {
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
    default: {
      const m = response as ModelInferResponse;
      return {
        status: 200,
        body: {
          model_name: m.modelName,
          model_version: m.modelVersion,
          ...(m.id === "" ? {} : { id: m.id }),
          outputs: m.outputs.map((t) => ({
            name: t.name,
            datatype: t.datatype,
            shape: t.shape.map(Number),
            data: Array.from(t.contents?.fp32Contents ?? []),
          })),
        },
      };
    }
  }
}

/**
 * A ModelInferRequest from the protocol's JSON: `inputs` (each `name`, `shape`, `datatype`,
 * `data` flat or nested), optional `id`, `parameters` and `outputs`. FP32 elements go to the
 * tensor's `fp32_contents`; the service checks the rest against the model, naming the fields.
 */
function inferRequestOf(route: Route, body: JsonValue | undefined) {
  const json = objectAt(body, "body");
  const inputs = arrayAt(json.inputs, "inputs").map(
    (value, i): ModelInferRequest_InferInputTensor => {
      const field = `inputs[${i}]`;
      const input = objectAt(value, field);
      const shape = arrayAt(input.shape, `${field}.shape`).map((d, k) => {
        if (typeof d !== "number" || !Number.isSafeInteger(d))
          throw new InvalidInputError(`${field}.shape[${k}]`, "expected an integer");
        return BigInt(d);
      });
      const datatype = stringAt(input.datatype, `${field}.datatype`);
      const data = flatNumbers(input.data, `${field}.data`);
      return create(ModelInferRequest_InferInputTensorSchema, {
        name: typeof input.name === "string" ? input.name : "",
        datatype,
        shape,
        contents: datatype === "FP32" ? { fp32Contents: data } : undefined,
      });
    },
  );
  const outputs =
    json.outputs === undefined
      ? []
      : arrayAt(json.outputs, "outputs").map((value, i) => ({
          name: stringAt(objectAt(value, `outputs[${i}]`).name, `outputs[${i}].name`),
        }));
  const parameters: Record<string, InferParameter> = {};
  if (json.parameters !== undefined)
    for (const [name, value] of Object.entries(objectAt(json.parameters, "parameters")))
      parameters[name] = parameterOf(value, `parameters.${name}`);
  return create(ModelInferRequestSchema, {
    modelName: route.model,
    modelVersion: route.version,
    id: typeof json.id === "string" ? json.id : "",
    inputs,
    outputs,
    parameters,
  });
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

/** A tensor's elements, row-major, from a flat or nested JSON array of numbers. */
function flatNumbers(value: JsonValue | undefined, field: string): number[] {
  const out: number[] = [];
  const walk = (v: JsonValue, path: string) => {
    if (Array.isArray(v)) {
      for (const [k, x] of v.entries()) walk(x, `${path}[${k}]`);
    } else if (typeof v === "number") out.push(v);
    else throw new InvalidInputError(path, "expected a number");
  };
  walk(arrayAt(value, field), field);
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

async function readJson(req: IncomingMessage, limit: number): Promise<JsonValue | undefined> {
  const encoding = req.headers["content-encoding"];
  return parseJsonBody(
    await readBody(req, limit, Array.isArray(encoding) ? encoding[0] : encoding),
  );
}

function send(res: ServerResponse, status: number, body: JsonValue): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
