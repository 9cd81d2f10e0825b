/**
 * The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`, KServe v2) over
 * the same processor as the native API: a ModelInfer is one synchronous request through the same
 * batcher, priorities, keys and metrics, the first dimension of its input tensors the items: item
 * `k` is row `k` of every input, and each output joins the items' rows back, `[items, ...]`, as
 * the model gives it (no softmax), in its datatype.
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
  type RepositoryIndexRequest,
  type RepositoryIndexResponse,
  RepositoryIndexResponseSchema,
  type RepositoryModelLoadRequest,
  type RepositoryModelLoadResponse,
  RepositoryModelLoadResponseSchema,
  type RepositoryModelUnloadRequest,
  type RepositoryModelUnloadResponse,
  RepositoryModelUnloadResponseSchema,
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
  type BatchResults,
  baseName,
  ItemFailedError,
  type ModelCatalog,
  type ModelInfo,
  ModelNotFoundError,
  type ModelReloadOutcome,
  ModelUnavailableError,
  modelVersion,
  PermissionDeniedError,
  type Principal,
  RepositoryControlUnavailableError,
  toRawBytes,
  versionOf,
  versionsOf,
} from "../engine/index.js";
import type { CallContext } from "./batch-processor-service.js";
import { inProtocolNames, itemsOf, joinedOutputs, parametersOf } from "./oip-infer.js";
import { contentsOf } from "./oip-tensors.js";

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
  repositoryIndex(
    request: RepositoryIndexRequest,
    call: CallContext,
  ): Promise<RepositoryIndexResponse>;
  repositoryModelLoad(
    request: RepositoryModelLoadRequest,
    call: CallContext,
  ): Promise<RepositoryModelLoadResponse>;
  repositoryModelUnload(
    request: RepositoryModelUnloadRequest,
    call: CallContext,
  ): Promise<RepositoryModelUnloadResponse>;
}

/** Loading and unloading one model of the repository (this node's). */
export interface ModelRepositoryControl {
  load(name: string): Promise<readonly ModelReloadOutcome[]>;
  unload(name: string): Promise<readonly ModelReloadOutcome[]>;
}

/** What the implementation runs on. */
export interface InferenceServiceDependencies {
  readonly processor: BatchProcessor;
  readonly catalog: ModelCatalog;
  /** Why the server is not ready (as `/ready` says); empty when it is. */
  readonly notReady: () => readonly string[];
  /** The server's version, for ServerMetadata. */
  readonly version: string;
  /** The repository extension's loads and unloads; absent, they answer UNIMPLEMENTED. */
  readonly repository?: ModelRepositoryControl | undefined;
}

/** The server's name in ServerMetadata. */
const SERVER_NAME = "batch-processor";
/** The platform of every model this server runs, in the protocol's words. */
const PLATFORM = "onnxruntime_onnx";

/** Builds the implementation. */
export function createInferenceService({
  processor,
  catalog,
  notReady,
  version,
  repository,
}: InferenceServiceDependencies): InferenceServiceImpl {
  const admin = (principal: Principal, what: string) => {
    if (!principal.admin) throw new PermissionDeniedError(what, principal.adminNote);
  };
  const control = (): ModelRepositoryControl => {
    if (repository === undefined) throw new RepositoryControlUnavailableError();
    return repository;
  };
  /** The outcomes of a load or unload of `name`: NOT_FOUND when it touched nothing. */
  const settled = (name: string, outcomes: readonly ModelReloadOutcome[]) => {
    if (outcomes.length === 0)
      throw new ModelNotFoundError(
        name,
        [...new Set(catalog.list().map((m) => baseName(m)))],
        "model_name",
      );
    const failed = outcomes.find((o) => o.outcome === "failed");
    if (failed !== undefined)
      throw new ModelUnavailableError(failed.name, failed.reason ?? "did not load");
  };
  return {
    async repositoryIndex(request, { principal }) {
      admin(principal, "read the model repository's index");
      const models = catalog
        .list()
        .filter((m) => !request.ready || m.available)
        .map((m) => ({
          name: baseName(m),
          version: versionOf(m),
          state: m.available ? "READY" : "UNAVAILABLE",
          reason: m.available ? "" : (m.reason ?? ""),
        }));
      return create(RepositoryIndexResponseSchema, { models });
    },
    async repositoryModelLoad(request, { principal }) {
      admin(principal, "load a model");
      settled(request.modelName, await control().load(request.modelName));
      return create(RepositoryModelLoadResponseSchema);
    },
    async repositoryModelUnload(request, { principal }) {
      admin(principal, "unload a model");
      settled(request.modelName, await control().unload(request.modelName));
      return create(RepositoryModelUnloadResponseSchema);
    },
    async serverLive() {
      return create(ServerLiveResponseSchema, { live: true });
    },
    async serverReady() {
      return create(ServerReadyResponseSchema, { ready: notReady().length === 0 });
    },
    async modelReady(request) {
      const versions = versionsOf(catalog, request.name);
      const model =
        request.version === ""
          ? versions[0]
          : versions.find((m) => versionOf(m) === request.version);
      return create(ModelReadyResponseSchema, { ready: model?.available === true });
    },
    async serverMetadata() {
      return create(ServerMetadataResponseSchema, {
        name: SERVER_NAME,
        version,
        extensions: repository === undefined ? [] : ["model_repository"],
      });
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
        name: baseName(model),
        versions: versionsOf(catalog, baseName(model)).map(versionOf),
        platform: PLATFORM,
        inputs: tensors(model.inputs),
        outputs: tensors(model.outputs),
      });
    },
    // Not async: the request and its items are let go before the wait for the results (an async
    // function keeps its arguments until it returns).
    modelInfer(request, { principal, signal }) {
      try {
        const model = modelOf(
          catalog,
          request.modelName,
          request.modelVersion,
          "model_name",
          "model_version",
        );
        if (!model.available)
          throw new ModelUnavailableError(model.name, model.reason ?? "not loaded");
        const { items, names, raw } = itemsOf(request, model);
        const running = processor.infer(
          principal,
          {
            data: items,
            outputNames: request.outputs.map((o) => o.name),
            metadata: { model_id: model.name },
            ...parametersOf(request),
          },
          signal,
        );
        return inferAnswer(running, { model, names, raw, id: request.id });
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
}

/** What `modelInfer` answers once its items have run: the outputs, or the first item's failure. */
async function inferAnswer(
  running: Promise<BatchResults>,
  asked: {
    model: ModelInfo;
    names: ReadonlyMap<string, { index: number; width: number }>;
    raw: boolean;
    id: string;
  },
): Promise<ModelInferResponse> {
  const { model, names, raw, id } = asked;
  const results = await running.catch((error: unknown) => {
    throw inProtocolNames(error, names);
  });
  const failed = results.results.find((r) => r.error !== null)?.error;
  if (failed !== undefined && failed !== null) {
    if (failed.code === "INTERNAL") throw new Error(failed.message);
    throw new ItemFailedError(failed.code, `${failed.code}: ${failed.message}`);
  }
  const outputs = joinedOutputs(results.results.map((r) => r.outputs ?? []));
  // The protocol has no contents field for FP16: an answer holding one is raw throughout.
  const rawOut = raw || outputs.some((o) => o.datatype === "FP16");
  return create(ModelInferResponseSchema, {
    modelName: baseName(model),
    modelVersion: versionOf(model),
    id,
    outputs: outputs.map((o) => ({
      name: o.name,
      datatype: o.datatype,
      shape: o.dims.map((d) => BigInt(d)),
      contents: rawOut ? undefined : contentsOf(o.datatype, o.data),
    })),
    rawOutputContents: rawOut ? outputs.map((o) => toRawBytes(o.data)) : [],
  });
}

/** The model a call names, in the version it asks for (the latest when empty). */
function modelOf(
  catalog: ModelCatalog,
  name: string,
  version: string,
  nameField: string,
  versionField: string,
): ModelInfo {
  return modelVersion(catalog, name, version, { name: nameField, version: versionField });
}
