import ort from "onnxruntime-node";
import type { Datatype } from "../engine/index.js";
import { firstLine } from "./error-text.js";
import type { ModelLoadReport, TensorInfo, WorkerInit, WorkerModelVersion } from "./messages.js";

/** A model as this thread holds it: its version, its session and the names it feeds and reads. */
export interface Loaded {
  readonly model: WorkerModelVersion;
  readonly session: ort.InferenceSession;
  readonly inputName: string;
  readonly outputName: string;
}

async function createSession(
  version: WorkerModelVersion,
  init: WorkerInit,
): Promise<{ session: ort.InferenceSession; provider: string; fallbackReason?: string }> {
  // ONNX Runtime reads a model from an ArrayBuffer only, not from shared memory: this thread
  // copies the files for the time the session takes to build.
  const model = new Uint8Array(version.bytes);
  const base = {
    intraOpNumThreads: init.intraOpNumThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all" as const,
    ...(version.externalData.length === 0
      ? {}
      : {
          externalData: version.externalData.map((file) => ({
            path: file.path,
            data: new Uint8Array(file.bytes),
          })),
        }),
  };
  const providers = version.executionProviders ?? init.executionProviders;
  const preferred = providers.filter((p) => p !== "cpu");
  if (preferred.length > 0) {
    // ORT prints a native error line for a provider it cannot load; that case is expected and
    // reported once by the main thread, so keep ORT quiet for this attempt only.
    const level = ort.env.logLevel;
    ort.env.logLevel = "fatal";
    try {
      const session = await ort.InferenceSession.create(model, {
        ...base,
        executionProviders: providers.map((name) =>
          name === "cuda" ? { name, deviceId: init.cudaDeviceId } : name,
        ),
      });
      return { session, provider: preferred[0] as string };
    } catch (error) {
      if (!providers.includes("cpu")) throw error;
      const session = await ort.InferenceSession.create(model, {
        ...base,
        executionProviders: ["cpu"],
      });
      // Shown to every key in ListModels: no path under the server's working directory.
      const fallbackReason = firstLine(error).split(`${process.cwd()}/`).join("");
      return { session, provider: "cpu", fallbackReason };
    } finally {
      ort.env.logLevel = level ?? "warning";
    }
  }
  return {
    session: await ort.InferenceSession.create(model, { ...base, executionProviders: ["cpu"] }),
    provider: "cpu",
  };
}

function tensorInfo(metadata: readonly ort.InferenceSession.ValueMetadata[]): TensorInfo[] {
  return metadata.map((m) => ({
    name: m.name,
    type: m.isTensor ? m.type : "not a tensor",
    dims: m.isTensor ? [...m.shape] : [],
  }));
}

/** A graph that loaded but that this server cannot feed: its signature goes with the reason. */
class UnfeedableModel extends Error {
  constructor(
    message: string,
    readonly inputs: TensorInfo[],
    readonly outputs: TensorInfo[],
  ) {
    super(message);
  }
}

/** ONNX Runtime's element types by their names in the Open Inference Protocol. */
export const ORT_TYPES: Readonly<Record<Datatype, ort.Tensor.Type>> = {
  BOOL: "bool",
  UINT8: "uint8",
  UINT16: "uint16",
  UINT32: "uint32",
  UINT64: "uint64",
  INT8: "int8",
  INT16: "int16",
  INT32: "int32",
  INT64: "int64",
  FP16: "float16",
  FP32: "float32",
  FP64: "float64",
  BYTES: "string",
};

/** The Open Inference Protocol's name of an ONNX Runtime element type; undefined if none. */
export function datatypeOf(type: string): Datatype | undefined {
  return DATATYPES_BY_ORT_TYPE.get(type);
}

/** {@link ORT_TYPES} the other way round, built once: every output of every batch asks it. */
const DATATYPES_BY_ORT_TYPE: ReadonlyMap<string, Datatype> = new Map(
  Object.entries(ORT_TYPES).map(([datatype, ortType]) => [ortType, datatype as Datatype]),
);

/**
 * Throws, saying why, unless this server can feed the model: every input and output a tensor of
 * an element type it knows, each with a batch axis first. A model that breaks this would load and
 * then fail every item; refused here, it is unavailable with the reason in ListModels instead.
 */
function assertFeedable(session: ort.InferenceSession): void {
  for (const [kind, metadata] of [
    ["input", session.inputMetadata],
    ["output", session.outputMetadata],
  ] as const)
    for (const m of metadata) {
      if (!m.isTensor)
        throw new Error(
          `${kind} ${JSON.stringify(m.name)} is not a tensor; this server feeds and reads tensors only`,
        );
      if (datatypeOf(m.type) === undefined)
        throw new Error(
          `${kind} ${JSON.stringify(m.name)} is ${m.type}, an element type this server does not serve`,
        );
      if (m.shape.length === 0)
        throw new Error(
          `${kind} ${JSON.stringify(m.name)} is a scalar; this server batches items along a first axis`,
        );
    }
}

/**
 * Throws, saying why, unless every input `padding` names is one of the graph's with a dynamic axis
 * past the batch's to pad.
 */
function assertPaddable(
  session: ort.InferenceSession,
  padding: Readonly<Record<string, number>> | undefined,
): void {
  for (const name of Object.keys(padding ?? {})) {
    const m = session.inputMetadata.find((v) => v.name === name);
    if (m === undefined)
      throw new Error(
        `config.json: padding names input ${JSON.stringify(name)}, which the graph does not have (inputs: ${session.inputNames.join(", ")})`,
      );
    if (!m.isTensor || !m.shape.slice(1).some((d) => typeof d !== "number" || d < 1))
      throw new Error(
        `config.json: padding names input ${JSON.stringify(name)}, which has no dynamic axis past the batch's to pad`,
      );
  }
}

/** Builds a session for one version and checks it against its config; throws saying why not. */
async function loadVersion(
  version: WorkerModelVersion,
  init: WorkerInit,
): Promise<{ loaded: Loaded; provider: string; fallbackReason: string | undefined }> {
  let created: Awaited<ReturnType<typeof createSession>>;
  try {
    created = await createSession(version, init);
  } catch (error) {
    // Loaded from bytes, a model's relative paths (external data it names but the folder lacks)
    // resolve against the working directory: callers read the path as the model gave it.
    const reason = firstLine(error).split(`${process.cwd()}/`).join("");
    throw new Error(`ONNX Runtime could not load model.onnx: ${reason}`);
  }
  const { session, provider, fallbackReason } = created;
  try {
    const inputName = version.inputName ?? session.inputNames[0];
    const outputName = version.outputName ?? session.outputNames[0];
    if (inputName === undefined || !session.inputNames.includes(inputName)) {
      throw new Error(
        `input ${JSON.stringify(inputName)} not in the graph (inputs: ${session.inputNames.join(", ")})`,
      );
    }
    if (outputName === undefined || !session.outputNames.includes(outputName)) {
      throw new Error(
        `output ${JSON.stringify(outputName)} not in the graph (outputs: ${session.outputNames.join(", ")})`,
      );
    }
    try {
      assertFeedable(session);
      assertPaddable(session, version.padding);
    } catch (error) {
      throw new UnfeedableModel(
        firstLine(error),
        tensorInfo(session.inputMetadata),
        tensorInfo(session.outputMetadata),
      );
    }
    const input = session.inputMetadata.find((m) => m.name === inputName);
    if (
      version.inputShape === undefined &&
      (input === undefined || !input.isTensor || input.shape.length < 2)
    )
      throw new Error("cannot tell the per-item input shape; set input_shape in config.json");
    return { loaded: { model: version, session, inputName, outputName }, provider, fallbackReason };
  } catch (error) {
    await session.release();
    throw error;
  }
}

export async function loadAll(
  init: WorkerInit,
): Promise<{ loaded: Map<string, Loaded>; reports: ModelLoadReport[] }> {
  const loaded = new Map<string, Loaded>();
  const reports: ModelLoadReport[] = [];
  for (const model of init.models) {
    const errors: string[] = [];
    let report: ModelLoadReport | undefined;
    /** The signature of a version that was read as a graph but could not be fed. */
    let read: UnfeedableModel | undefined;
    for (const [index, version] of model.versions.entries()) {
      try {
        const result = await loadVersion(version, init);
        loaded.set(model.name, result.loaded);
        const { session } = result.loaded;
        report = {
          name: model.name,
          ok: true,
          version: index,
          errors,
          provider: result.provider,
          fallbackReason: result.fallbackReason,
          inputs: tensorInfo(session.inputMetadata),
          outputs: tensorInfo(session.outputMetadata),
        };
        break;
      } catch (error) {
        if (error instanceof UnfeedableModel) read ??= error;
        errors.push(firstLine(error));
      }
    }
    reports.push(
      report ?? {
        name: model.name,
        ok: false,
        errors,
        inputs: read?.inputs ?? [],
        outputs: read?.outputs ?? [],
      },
    );
  }
  return { loaded, reports };
}
