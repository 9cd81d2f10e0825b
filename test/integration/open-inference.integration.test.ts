/**
 * The Open Inference Protocol (KServe v2) over native gRPC, with a grpc-js client built from
 * `proto/inference/grpc_predict_v2.proto`: health, metadata, and ModelInfer through the same
 * batcher as the native Infer (the same outputs, requests of many clients in one model batch),
 * with tensors in `contents` or raw bytes, keys, and errors that name the protocol's fields.
 */
import { create, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GRPCInferenceService,
  type ModelInferRequest,
  type ModelInferRequest_InferInputTensorSchema,
  ModelInferRequestSchema,
  type ModelInferResponse,
  type ModelMetadataResponse,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import { grpcServiceDefinition } from "../../src/api/grpc-services.js";
import type { RunningServer } from "../../src/server.js";
import {
  createTestModelRepo,
  type TestModelRepo,
  writeLogModel,
  writeUnfeedableModel,
} from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const KEY = "v2-key";
let repo: TestModelRepo;
let server: RunningServer;
let client: Record<string, (...args: unknown[]) => unknown> & grpc.Client;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: true });
  writeLogModel(`${repo.dir}/log`);
  writeUnfeedableModel(repo.dir);
  server = await startTestServer(repo.dir, { API_KEYS: KEY, MAX_WAIT_TIME_MS: "20" });
  const Client = grpc.makeGenericClientConstructor(
    grpcServiceDefinition(GRPCInferenceService),
    "GRPCInferenceService",
  );
  client = new Client(
    `127.0.0.1:${server.grpcPort}`,
    grpc.credentials.createInsecure(),
  ) as unknown as typeof client;
});

afterAll(async () => {
  client?.close();
  await server.close();
  repo.cleanup();
});

type Outcome<T> = { ok: true; response: T } | { ok: false; code: grpc.status; details: string };

function call<T>(method: string, request: object, key: string | null = KEY): Promise<Outcome<T>> {
  const metadata = new grpc.Metadata();
  if (key !== null) metadata.set("x-api-key", key);
  const desc = GRPCInferenceService.methods.find((m) => m.name === method);
  if (desc === undefined) throw new Error(`no method ${method}`);
  // grpc-js names a generic client's methods by the descriptor's local name (`modelInfer`).
  const fn = (client[desc.localName] as (...args: unknown[]) => unknown).bind(client);
  return new Promise((resolve) => {
    fn(
      create(desc.input, request as never),
      metadata,
      (error: grpc.ServiceError | null, response: Message) =>
        resolve(
          error === null
            ? { ok: true, response: response as T }
            : { ok: false, code: error.code, details: error.details },
        ),
    );
  });
}

async function ok<T>(method: string, request: object): Promise<T> {
  const outcome = await call<T>(method, request);
  if (!outcome.ok) throw new Error(`${method}: ${outcome.code} ${outcome.details}`);
  return outcome.response;
}

function inferRequest(fields: MessageInitShape<typeof ModelInferRequestSchema>): ModelInferRequest {
  return create(ModelInferRequestSchema, fields);
}

/** Rows of `width` numbers, each distinct. */
const rows = (count: number, width: number) =>
  Array.from({ length: count }, (_, r) =>
    Array.from({ length: width }, (_, c) => Math.round((r * 0.37 + c * 0.11) * 1000) / 1000),
  );

/** The native API's outputs of the same items (REST infer). */
async function nativeOutputs(model: string, items: number[][]): Promise<number[][]> {
  const res = await fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor/infer`, {
    method: "POST",
    headers: { "x-api-key": KEY, "content-type": "application/json" },
    body: JSON.stringify({
      data: items.map((input) => ({ input })),
      metadata: { model_id: model },
    }),
  });
  const body = (await res.json()) as { results: { output: number[] }[] };
  return body.results.map((r) => r.output);
}

describe("the Open Inference Protocol over gRPC", () => {
  it("answers health and metadata: the server, each model's versions, platform and tensors", async () => {
    expect(await ok("ServerLive", {})).toMatchObject({ live: true });
    expect(await ok("ServerReady", {})).toMatchObject({ ready: true });
    const health = (await (await fetch(`http://127.0.0.1:${server.apiPort}/health`)).json()) as {
      version: string;
    };
    expect(await ok("ServerMetadata", {})).toMatchObject({
      name: "batch-processor",
      version: health.version,
    });
    expect(await ok("ModelReady", { name: "default" })).toMatchObject({ ready: true });
    expect(await ok("ModelReady", { name: "default", version: "1" })).toMatchObject({
      ready: true,
    });
    expect(await ok("ModelReady", { name: "default", version: "7" })).toMatchObject({
      ready: false,
    });
    expect(await ok("ModelReady", { name: "scalar" })).toMatchObject({ ready: false });
    expect(await ok("ModelReady", { name: "nope" })).toMatchObject({ ready: false });
    const metadata = await ok<ModelMetadataResponse>("ModelMetadata", { name: "log" });
    expect(metadata).toMatchObject({ name: "log", versions: ["1"], platform: "onnxruntime_onnx" });
    expect(metadata.inputs.map((t) => [t.name, t.datatype, t.shape.map(Number)])).toEqual([
      ["input", "FP32", [-1, -1]],
    ]);
    expect(metadata.outputs.map((t) => [t.name, t.datatype])).toEqual([["log", "FP32"]]);
    // A model it cannot feed still shows what it declares.
    const scalar = await ok<ModelMetadataResponse>("ModelMetadata", { name: "scalar" });
    expect(scalar.inputs.map((t) => [t.name, t.shape.length])).toEqual([["x", 0]]);
    // The repository extension over gRPC (this server's one key is an admin's).
    const index = await ok<{ models: { name: string; state: string; reason: string }[] }>(
      "RepositoryIndex",
      {},
    );
    expect(index.models.find((m) => m.name === "default")).toMatchObject({ state: "READY" });
    expect(index.models.find((m) => m.name === "scalar")).toMatchObject({
      state: "UNAVAILABLE",
      reason: expect.stringMatching(/is a scalar/),
    });
    const unknown = await call("RepositoryModelUnload", { modelName: "nope" });
    expect(unknown).toMatchObject({ ok: false, code: grpc.status.NOT_FOUND });
    const missing = await call("ModelMetadata", { name: "nope" });
    expect(missing).toMatchObject({ ok: false, code: grpc.status.NOT_FOUND });
    expect((missing as { details: string }).details).toMatch(/^name: model "nope" not found/);
  });

  it("runs ModelInfer through the batcher: the native API's outputs, tensors in contents or raw bytes", async () => {
    const items = rows(3, 4);
    const expected = await nativeOutputs("default", items);
    const width = expected[0]?.length ?? 0;
    const viaContents = await ok<ModelInferResponse>(
      "ModelInfer",
      inferRequest({
        modelName: "default",
        id: "req-7",
        inputs: [
          {
            name: "input",
            datatype: "FP32",
            shape: [3n, 4n],
            contents: { fp32Contents: items.flat() },
          },
        ],
      }),
    );
    expect(viaContents).toMatchObject({ modelName: "default", modelVersion: "1", id: "req-7" });
    const [tensor] = viaContents.outputs;
    expect(tensor?.datatype).toBe("FP32");
    expect(tensor?.shape.map(Number)).toEqual([3, width]);
    const flat = Array.from(tensor?.contents?.fp32Contents ?? []);
    expect(flat.map((v) => Math.round(v * 1e5))).toEqual(
      expected.flat().map((v) => Math.round(v * 1e5)),
    );
    // Raw bytes in, raw bytes out.
    const raw = new Float32Array(items.flat());
    const viaRaw = await ok<ModelInferResponse>(
      "ModelInfer",
      inferRequest({
        modelName: "default",
        inputs: [{ name: "", datatype: "FP32", shape: [3n, 4n] }],
        rawInputContents: [new Uint8Array(raw.buffer)],
      }),
    );
    const bytes = viaRaw.rawOutputContents[0] as Uint8Array;
    const back = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(back.buffer).set(bytes);
    expect(Array.from(back).map((v) => Math.round(v * 1e5))).toEqual(
      expected.flat().map((v) => Math.round(v * 1e5)),
    );
    expect(viaRaw.outputs[0]?.contents).toBeUndefined();
  });

  it("puts the requests of many clients in one model batch", async () => {
    const scrape = async () => {
      const text = await (await fetch(`http://127.0.0.1:${server.apiPort}/metrics`)).text();
      const count = /batch_processor_model_batch_size_count\{model="log"\} (\d+)/.exec(text)?.[1];
      return Number(count ?? 0);
    };
    const before = await scrape();
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, k) =>
        ok<ModelInferResponse>(
          "ModelInfer",
          inferRequest({
            modelName: "log",
            inputs: [
              {
                name: "input",
                datatype: "FP32",
                shape: [1n, 2n],
                contents: { fp32Contents: [1, Math.E ** (k % 5)] },
              },
            ],
          }),
        ),
      ),
    );
    answers.forEach((answer, k) => {
      const values = Array.from(answer.outputs[0]?.contents?.fp32Contents ?? []);
      expect(values.map((v) => Math.round(v * 1e4) / 1e4)).toEqual([0, k % 5]);
    });
    const batches = (await scrape()) - before;
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(40);
  });

  it("refuses what does not fit, naming the protocol's field, and needs a key", async () => {
    type TensorInit = MessageInitShape<typeof ModelInferRequest_InferInputTensorSchema>;
    type RequestInit = MessageInitShape<typeof ModelInferRequestSchema>;
    const tensor: TensorInit = {
      name: "input",
      datatype: "FP32",
      shape: [1n, 4n],
      contents: { fp32Contents: [1, 2, 3, 4] },
    };
    const input = (fields: Partial<TensorInit>, request: RequestInit = {}) =>
      inferRequest({
        modelName: "default",
        inputs: [{ ...tensor, ...fields } as TensorInit],
        ...request,
      } as RequestInit);
    const cases: [ModelInferRequest, grpc.status, RegExp][] = [
      [
        input({ datatype: "INT64" }),
        grpc.status.INVALID_ARGUMENT,
        /^inputs\[0\]\.datatype: expected FP32/,
      ],
      [
        input({ contents: { fp32Contents: [1, 2, 3] } }),
        grpc.status.INVALID_ARGUMENT,
        /^inputs\[0\]\.contents\.fp32_contents: expected 4 elements/,
      ],
      [
        input({ shape: [4n] }),
        grpc.status.INVALID_ARGUMENT,
        /^inputs\[0\]\.shape: expected \[items/,
      ],
      [
        input({ name: "pixels" }),
        grpc.status.INVALID_ARGUMENT,
        /^inputs\[0\]\.name: model "default" has no input "pixels"/,
      ],
      [
        input({ contents: { fp32Contents: [1, 2, Number.NaN, 4] } }),
        grpc.status.INVALID_ARGUMENT,
        /^inputs\[0\]\.contents\.fp32_contents\[2\]: expected a finite number/,
      ],
      [
        input({}, { modelName: "dense" }),
        grpc.status.INVALID_ARGUMENT,
        /^inputs\[0\]\.shape: item 0: /,
      ],
      [
        input(
          {},
          { parameters: { timeout_ms: { parameterChoice: { case: "int64Param", value: 5n } } } },
        ),
        grpc.status.INVALID_ARGUMENT,
        /^parameters\.timeout_ms: expected an integer in 100\.\.300000/,
      ],
      [
        input({}, { modelName: "nope" }),
        grpc.status.NOT_FOUND,
        /^model_name: model "nope" not found/,
      ],
      [
        input({}, { modelVersion: "3" }),
        grpc.status.NOT_FOUND,
        /^model_version: model "default" has no version "3"; it serves version "1"/,
      ],
      [input({}, { modelName: "scalar" }), grpc.status.UNAVAILABLE, /input "x" is a scalar/],
      [
        input({}, { outputs: [{ name: "other" }] }),
        grpc.status.INVALID_ARGUMENT,
        /^outputs\[0\]\.name: model "default" has no output "other"; its outputs are probabilities/,
      ],
    ];
    for (const [request, code, message] of cases) {
      const outcome = await call("ModelInfer", request);
      expect(outcome.ok, String(message)).toBe(false);
      expect((outcome as { code: grpc.status }).code, String(message)).toBe(code);
      expect((outcome as { details: string }).details).toMatch(message);
    }
    const keyless = await call("ModelInfer", input({}), null);
    expect(keyless).toMatchObject({ ok: false, code: grpc.status.UNAUTHENTICATED });
  });
});

describe("the Open Inference Protocol over REST", () => {
  const v2 = async (path: string, body?: unknown, key: string | null = KEY) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (key !== null) headers["x-api-key"] = key;
    const res = await fetch(`http://127.0.0.1:${server.apiPort}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  it("answers health and metadata at the protocol's paths", async () => {
    expect(await v2("/v2/health/live")).toEqual({ status: 200, json: { live: true } });
    expect(await v2("/v2/health/ready")).toEqual({ status: 200, json: { ready: true } });
    expect((await v2("/v2")).json).toMatchObject({
      name: "batch-processor",
      extensions: ["model_repository"],
    });
    expect(await v2("/v2/models/default/ready")).toEqual({ status: 200, json: { ready: true } });
    expect(await v2("/v2/models/default/versions/1/ready")).toEqual({
      status: 200,
      json: { ready: true },
    });
    expect((await v2("/v2/models/scalar/ready")).status).toBe(503);
    expect(await v2("/v2/models/log")).toEqual({
      status: 200,
      json: {
        name: "log",
        versions: ["1"],
        platform: "onnxruntime_onnx",
        inputs: [{ name: "input", datatype: "FP32", shape: [-1, -1] }],
        outputs: [{ name: "log", datatype: "FP32", shape: [-1, -1] }],
      },
    });
    expect(await v2("/v2/models/nope")).toEqual({
      status: 404,
      json: { error: expect.stringMatching(/^name: model "nope" not found/) },
    });
    expect((await v2("/v2/health/live", undefined, null)).status).toBe(401);
  });

  it("runs infer with JSON tensors, flat or nested, as gRPC's ModelInfer does", async () => {
    const items = rows(2, 4);
    const expected = await nativeOutputs("default", items);
    for (const data of [items.flat(), items]) {
      const { status, json } = await v2("/v2/models/default/infer", {
        id: "rest-1",
        parameters: { priority: "high", timeout_ms: 2000 },
        inputs: [{ name: "input", shape: [2, 4], datatype: "FP32", data }],
      });
      expect(status).toBe(200);
      expect(json).toMatchObject({ model_name: "default", model_version: "1", id: "rest-1" });
      const [output] = json.outputs as { shape: number[]; data: number[]; datatype: string }[];
      expect(output?.datatype).toBe("FP32");
      expect(output?.shape).toEqual([2, expected[0]?.length]);
      expect(output?.data.map((v) => Math.round(v * 1e5))).toEqual(
        expected.flat().map((v) => Math.round(v * 1e5)),
      );
    }
    // The binary tensor data extension: elements after the JSON, outputs back the same way.
    const head = Buffer.from(
      JSON.stringify({
        inputs: [
          { name: "input", shape: [2, 4], datatype: "FP32", parameters: { binary_data_size: 32 } },
        ],
        parameters: { binary_data_output: true },
      }),
    );
    const elements = new Float32Array(items.flat());
    const res = await fetch(`http://127.0.0.1:${server.apiPort}/v2/models/default/infer`, {
      method: "POST",
      headers: {
        "x-api-key": KEY,
        "content-type": "application/octet-stream",
        "inference-header-content-length": String(head.byteLength),
      },
      body: Buffer.concat([head, Buffer.from(elements.buffer)]),
    });
    expect(res.status).toBe(200);
    const jsonLength = Number(res.headers.get("inference-header-content-length"));
    const whole = Buffer.from(await res.arrayBuffer());
    const answer = JSON.parse(whole.subarray(0, jsonLength).toString()) as {
      outputs: { shape: number[]; parameters: { binary_data_size: number }; data?: unknown }[];
    };
    const size = answer.outputs[0]?.parameters.binary_data_size ?? 0;
    expect(answer.outputs[0]?.data).toBeUndefined();
    expect(size).toBe(2 * (expected[0]?.length ?? 0) * 4);
    const binaryOut = new Float32Array(size / 4);
    new Uint8Array(binaryOut.buffer).set(whole.subarray(jsonLength, jsonLength + size));
    expect(Array.from(binaryOut).map((v) => Math.round(v * 1e5))).toEqual(
      expected.flat().map((v) => Math.round(v * 1e5)),
    );
    const refusals: [unknown, number, RegExp][] = [
      [{ inputs: "x" }, 400, /^inputs: expected an array/],
      [
        {
          inputs: [
            {
              name: "input",
              shape: [1, 4],
              datatype: "FP32",
              parameters: { binary_data_size: 16 },
            },
          ],
        },
        400,
        /^inputs\[0\]\.parameters\.binary_data_size: 16 bytes from byte 0 of the binary data, which holds 0/,
      ],
      [
        { inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, "x", 4] }] },
        400,
        /^inputs\[0\]\.data\[2\]: expected a number/,
      ],
      [
        { inputs: [{ name: "input", shape: [1, 4], datatype: "INT64", data: [1, 2, 3, 4] }] },
        400,
        /^inputs\[0\]\.datatype: expected FP32/,
      ],
      [
        {
          inputs: [
            {
              name: "input",
              shape: [2, 2],
              datatype: "FP32",
              data: [
                [1, 2],
                [3, "x"],
              ],
            },
          ],
        },
        400,
        /^inputs\[0\]\.data\[1\]\[1\]: expected a number/,
      ],
      [
        {
          parameters: { [`p${"x".repeat(5000)}`]: [1] },
          inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }],
        },
        400,
        /^parameters\.px{63}: expected a string, a boolean or an integer$/,
      ],
      [
        {
          parameters: { priority: "urgent" },
          inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }],
        },
        400,
        /^parameters\.priority: expected a string_param, one of critical, high, normal, low/,
      ],
    ];
    for (const [body, status, message] of refusals) {
      const answer = await v2("/v2/models/default/infer", body);
      expect(answer.status, String(message)).toBe(status);
      expect(String(answer.json.error)).toMatch(message);
    }
    const wrongVersion = await v2("/v2/models/default/versions/9/infer", {
      inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }],
    });
    expect(wrongVersion.status).toBe(404);
    expect(String(wrongVersion.json.error)).toMatch(
      /^model_version: model "default" has no version "9"/,
    );
  });
});
