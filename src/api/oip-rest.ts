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
import { InvalidInputError } from "../engine/index.js";
import { parseJsonBody, readBody } from "../wire/index.js";
import { Call, type ServiceBinding } from "./call.js";
import { httpStatusOf } from "./error-mapping.js";
import { MethodNotAllowedError } from "./http-errors.js";
import {
  HEADER_LENGTH,
  inferRequestOf,
  objectAt,
  send,
  sendInferAnswer,
  splitBody,
} from "./oip-json.js";

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
        let binaryOutput = false;
        const { answer } = await call.startUnary(async () => {
          const { json, binary } = splitBody(
            await readBody(req, options.maxBodyBytes, headerOf(req, "content-encoding")),
            headerOf(req, HEADER_LENGTH),
          );
          const read = inferRequestOf(route, json, binary);
          binaryOutput = read.binaryOutput;
          return read.request;
        }, abort.signal);
        const response = (await answer) as ModelInferResponse;
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

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
