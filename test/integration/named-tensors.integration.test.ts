/**
 * Models of named tensors of any type, as users export them: a text-classifier-like graph (int64
 * `input_ids` and `attention_mask` of dynamic length, three outputs of two types), a float16 model,
 * a two-input float model and a bool model, each served over every native protocol and over the
 * Open Inference Protocol (REST JSON, gRPC contents and raw bytes); items of many clients meet in
 * one model batch; requests that do not fit the signature are refused naming the input; the
 * runtime's own refusal reaches the caller in its words.
 */
import { create, type Message } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GRPCInferenceService,
  type ModelInferResponse,
  type ModelMetadataResponse,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import { grpcServiceDefinition } from "../../src/api/grpc-services.js";
import type { RunningServer } from "../../src/server.js";
import {
  type CallResult,
  connectClient,
  grpcClient,
  grpcWebClient,
  type ProtocolClient,
  restClient,
} from "../fixtures/api-clients.js";
import {
  createTestModelRepo,
  type TestModelRepo,
  writeTensorModels,
  writeUnfeedableModel,
} from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const KEY = "tensors-key";
let repo: TestModelRepo;
let server: RunningServer;
let clients: ProtocolClient[];
let v2grpc: Record<string, (...args: unknown[]) => unknown> & grpc.Client;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  writeTensorModels(repo.dir);
  writeUnfeedableModel(repo.dir);
  server = await startTestServer(repo.dir, { API_KEYS: KEY, MAX_WAIT_TIME_MS: "30" });
  const base = `http://127.0.0.1:${server.apiPort}`;
  clients = [
    restClient(base),
    connectClient(base),
    grpcWebClient(base),
    grpcClient(`127.0.0.1:${server.grpcPort}`),
  ];
  const Client = grpc.makeGenericClientConstructor(
    grpcServiceDefinition(GRPCInferenceService),
    "GRPCInferenceService",
  );
  v2grpc = new Client(
    `127.0.0.1:${server.grpcPort}`,
    grpc.credentials.createInsecure(),
  ) as unknown as typeof v2grpc;
});

afterAll(async () => {
  for (const c of clients ?? []) c.close();
  v2grpc?.close();
  await server.close();
  repo.cleanup();
});

type Tensor = { datatype: string; shape: number[]; values?: number[]; strings?: string[] };
type Result = { output: number[]; outputs: Record<string, Tensor>; error?: string };

const infer = (client: ProtocolClient, model: string, body: Record<string, unknown>) =>
  client.call("Infer", { ...body, metadata: { model_id: model } } as never, KEY);

function results(answer: CallResult): Result[] {
  if (!answer.ok) throw new Error(`${answer.code}: ${answer.message}`);
  return (answer.json as { results: Result[] }).results;
}

/** One classifier item: ids, and the mask that keeps the first `kept` of them. */
const sentence = (ids: number[], kept: number) => ({
  inputs: {
    input_ids: { values: ids },
    attention_mask: { values: ids.map((_, k) => (k < kept ? 1 : 0)), datatype: "INT64" },
  },
});

describe("named tensors over the native API", () => {
  it("serves int64 inputs of dynamic length and answers every output by name in its type, on every protocol", async () => {
    for (const client of clients) {
      const [a, b] = results(
        await infer(client, "classifier", {
          data: [sentence([5, 7, 9], 2), sentence([4, 6, 8], 3)],
        }),
      );
      expect(a?.output, client.name).toEqual([]);
      expect(a?.outputs, client.name).toEqual({
        logits: { datatype: "FP32", shape: [2], values: [12, 2], strings: [] },
        length: { datatype: "INT64", shape: [1], values: [2], strings: [] },
        token_scores: { datatype: "FP32", shape: [3], values: [5, 7, 0], strings: [] },
      });
      expect(b?.outputs.logits?.values, client.name).toEqual([18, 3]);
      // Another length in the same request: its own shape.
      const [long] = results(
        await infer(client, "classifier", {
          data: [sentence([1, 2, 3, 4, 5, 6], 6)],
          output_names: ["length", "logits"],
        }),
      );
      expect(Object.keys(long?.outputs ?? {}), client.name).toEqual(["length", "logits"]);
      expect(long?.outputs.length?.values, client.name).toEqual([6]);
    }
  });

  it("converts the shorthand and named numbers to float16 and bool, and reads them back", async () => {
    const rest = clients[0] as ProtocolClient;
    const [half] = results(await infer(rest, "half", { data: [{ input: [0.5, 1.5, -2, 1000] }] }));
    expect(half?.output).toEqual([1, 3, -4, 2000]);
    const [named] = results(
      await infer(rest, "half", {
        data: [{ inputs: { x: { values: [0.25, 3, -0.125, 2] } } }],
      }),
    );
    expect(named?.outputs.y).toEqual({
      datatype: "FP16",
      shape: [4],
      values: [0.5, 6, -0.25, 4],
      strings: [],
    });
    const [flags] = results(
      await infer(rest, "flags", { data: [{ inputs: { x: { values: [1, 0, 1] } } }] }),
    );
    expect(flags?.outputs.y).toEqual({
      datatype: "BOOL",
      shape: [3],
      values: [0, 1, 0],
      strings: [],
    });
    const [pair] = results(
      await infer(rest, "pair", {
        data: [{ inputs: { a: { values: [1, 2, 3] }, b: { values: [4, 5, 6] } } }],
        output_names: ["product"],
      }),
    );
    expect(pair?.outputs).toEqual({
      product: { datatype: "FP32", shape: [3], values: [4, 10, 18], strings: [] },
    });
  });

  it("refuses a request that does not fit the model's signature, naming the input, what it expects and what came", async () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      [
        "classifier",
        { data: [{ inputs: { input_ids: { values: [1, 2] } } }] },
        /^data\[0\]\.inputs: missing "attention_mask" \(attention_mask INT64 \[\*\]\)/,
      ],
      [
        "classifier",
        {
          data: [{ inputs: { ...sentence([1, 2], 2).inputs, input_ids: { values: [1, 2.5] } } }],
        },
        /^data\[0\]\.inputs\.input_ids\.values\[1\]: expected an integer in .* \(INT64\), got 2\.5/,
      ],
      [
        "classifier",
        {
          data: [
            {
              inputs: {
                ...sentence([1, 2], 2).inputs,
                input_ids: { values: [1, 2], datatype: "FP32" },
              },
            },
          ],
        },
        /^data\[0\]\.inputs\.input_ids\.datatype: expected INT64 \(the model's input "input_ids"\), got "FP32"/,
      ],
      [
        "classifier",
        { data: [{ inputs: { ...sentence([1], 1).inputs, token_type_ids: { values: [0] } } }] },
        /^data\[0\]\.inputs\.token_type_ids: model "classifier" has no input "token_type_ids"; its inputs are input_ids INT64/,
      ],
      [
        "classifier",
        { data: [{ input: [1, 2, 3] }] },
        /^data\[0\]\.inputs: model "classifier" takes 2 inputs \(input_ids INT64 \[\*\], attention_mask INT64 \[\*\]\); give each by name in inputs/,
      ],
      [
        "classifier",
        { data: [sentence([1], 1)], output_names: ["probabilities"] },
        /^output_names\[0\]: model "classifier" has no output "probabilities"; its outputs are logits, length, token_scores/,
      ],
      [
        "pair",
        { data: [{ inputs: { a: { values: [1, 2] }, b: { values: [1, 2, 3] } } }] },
        /^data\[0\]\.inputs\.a\.values: expected 3 elements for "a" \(a FP32 \[3\]\), got 2/,
      ],
      [
        "half",
        { data: [{ input: [70000, 1, 2, 3] }] },
        /^data\[0\]\.input\[0\]: 70000 is outside the FP16 range/,
      ],
      [
        "flags",
        { data: [{ inputs: { x: { values: [1, 2, 0] } } }] },
        /^data\[0\]\.inputs\.x\.values\[1\]: expected true, false, 0 or 1, got 2/,
      ],
    ];
    for (const client of [clients[0], clients[3]] as ProtocolClient[])
      for (const [model, body, message] of cases) {
        const answer = await infer(client, model, body);
        expect(answer.ok, `${client.name} ${message}`).toBe(false);
        expect(answer, `${client.name} ${message}`).toMatchObject({ code: "invalid_argument" });
        expect((answer as { message: string }).message, client.name).toMatch(message);
      }
  });

  it("keeps durable batches of items by name and answers their results by name, on every protocol", async () => {
    for (const client of clients) {
      const submitted = await client.call(
        "SubmitBatch",
        {
          data: [sentence([5, 7, 9], 2), { request_id: "long", ...sentence([1, 2, 3, 4], 4) }],
          metadata: { model_id: "classifier" },
        } as never,
        KEY,
      );
      if (!submitted.ok) throw new Error(`${client.name}: ${submitted.message}`);
      const batchId = (submitted.json as { batch_id: string }).batch_id;
      let status = "";
      for (let tries = 0; tries < 200 && status !== "completed"; tries++) {
        const read = await client.call("GetBatchStatus", { batch_id: batchId } as never, KEY);
        status = read.ok ? (read.json as { status: string }).status : read.code;
        if (status !== "completed") await new Promise((r) => setTimeout(r, 20));
      }
      expect(status, client.name).toBe("completed");
      const read = await client.call("GetBatchResults", { batch_id: batchId } as never, KEY);
      const [a, b] = results(read);
      expect(a?.output, client.name).toEqual([]);
      expect(a?.outputs, client.name).toEqual({
        logits: { datatype: "FP32", shape: [2], values: [12, 2], strings: [] },
        length: { datatype: "INT64", shape: [1], values: [2], strings: [] },
        token_scores: { datatype: "FP32", shape: [3], values: [5, 7, 0], strings: [] },
      });
      expect(b?.outputs.length?.values, client.name).toEqual([4]);
    }
    // A float model's items in the shorthand, answered with the outputs it names.
    const rest = clients[0] as ProtocolClient;
    const pair = await rest.call(
      "SubmitBatch",
      {
        data: [{ inputs: { a: { values: [1, 2, 3] }, b: { values: [2, 2, 2] } } }],
        output_names: ["product"],
        metadata: { model_id: "pair" },
      } as never,
      KEY,
    );
    if (!pair.ok) throw new Error(pair.message);
    const pairId = (pair.json as { batch_id: string }).batch_id;
    await fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor/watch/${pairId}`, {
      headers: { "x-api-key": KEY },
    }).then((r) => r.text());
    const [product] = results(
      await rest.call("GetBatchResults", { batch_id: pairId } as never, KEY),
    );
    expect(product?.outputs).toEqual({
      product: { datatype: "FP32", shape: [3], values: [2, 4, 6], strings: [] },
    });
  });

  it("refuses inputs that give one named axis two lengths, and passes the runtime's own refusal of a batch to its caller in its words", async () => {
    const rest = clients[0] as ProtocolClient;
    const uneven = await infer(rest, "classifier", {
      data: [{ inputs: { input_ids: { values: [1, 2, 3] }, attention_mask: { values: [1, 1] } } }],
    });
    expect(uneven).toMatchObject({ ok: false, code: "invalid_argument" });
    expect((uneven as { message: string }).message).toMatch(
      /^data\[0\]\.inputs\.attention_mask\.shape: axis 0 \("sequence"\) is 2 long, but "input_ids"'s "sequence" is 3/,
    );
    // An id past the lookup table is valid to admission and fails in the runtime.
    const [item] = results(
      await infer(rest, "lookup", { data: [{ inputs: { ids: { values: [9] } } }] }),
    );
    expect(item?.error).toMatch(/^INTERNAL: model "lookup" failed to run: .*indices/);
    expect(item?.error).not.toContain(process.cwd());
    const [fine] = results(
      await infer(rest, "lookup", { data: [{ inputs: { ids: { values: [2] } } }] }),
    );
    expect(fine?.outputs.vectors?.values).toEqual([20, 21]);
  });

  it("pads items of different lengths into one model batch where the model says how, and cuts outputs back per item", async () => {
    const scrape = async (model: string) => {
      const text = await (await fetch(`http://127.0.0.1:${server.apiPort}/metrics`)).text();
      const count = new RegExp(
        `batch_processor_model_batch_size_count\\{model="${model}"\\} (\\d+)`,
      ).exec(text)?.[1];
      return Number(count ?? 0);
    };
    const rest = clients[0] as ProtocolClient;
    const data = [sentence([5, 7], 2), sentence([1, 2, 3], 2), sentence([4, 4, 4, 4, 4], 5)];
    const expected = [
      { logits: [12, 2], scores: [5, 7] },
      { logits: [3, 2], scores: [1, 2, 0] },
      { logits: [20, 5], scores: [4, 4, 4, 4, 4] },
    ];
    for (const model of ["padded", "classifier"]) {
      const before = await scrape(model);
      const answer = results(await infer(rest, model, { data }));
      answer.forEach((r, k) => {
        expect(r.outputs.logits?.values, model).toEqual(expected[k]?.logits);
        expect(r.outputs.token_scores, model).toMatchObject({
          shape: [expected[k]?.scores.length],
          values: expected[k]?.scores,
        });
      });
      // Padded: one model batch for the three lengths; without padding, one per length.
      expect((await scrape(model)) - before, model).toBe(model === "padded" ? 1 : 3);
    }
  });

  it("puts the items of many clients in one model batch", async () => {
    const scrape = async () => {
      const text = await (await fetch(`http://127.0.0.1:${server.apiPort}/metrics`)).text();
      const count = /batch_processor_model_batch_size_count\{model="classifier"\} (\d+)/.exec(
        text,
      )?.[1];
      return Number(count ?? 0);
    };
    const before = await scrape();
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, k) =>
        infer(clients[k % clients.length] as ProtocolClient, "classifier", {
          data: [sentence([k, k + 1, k + 2, k + 3], 4)],
        }),
      ),
    );
    answers.forEach((answer, k) => {
      expect(results(answer)[0]?.outputs.logits?.values).toEqual([4 * k + 6, 4]);
    });
    const batches = (await scrape()) - before;
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(40);
  });

  it("lists each model's signature, and a model it cannot feed as unavailable with the reason", async () => {
    const answer = await (clients[0] as ProtocolClient).call("ListModels", {}, KEY);
    const models = (answer as unknown as { json: { models: Record<string, unknown>[] } }).json
      .models;
    const byName = new Map(models.map((m) => [m.name as string, m]));
    expect(byName.get("classifier")).toMatchObject({
      available: true,
      inputs: [
        { name: "input_ids", datatype: "INT64", shape: [-1, -1] },
        { name: "attention_mask", datatype: "INT64", shape: [-1, -1] },
      ],
      outputs: [
        { name: "logits", datatype: "FP32", shape: [-1, 2] },
        { name: "length", datatype: "INT64", shape: [-1, 1] },
        { name: "token_scores", datatype: "FP32", shape: [-1, -1] },
      ],
    });
    expect(byName.get("scalar")).toMatchObject({
      available: false,
      reason: expect.stringMatching(
        /input "x" is a scalar; this server batches items along a first axis/,
      ),
    });
  });
});

describe("named tensors over the Open Inference Protocol", () => {
  function v2call<T>(method: string, request: object): Promise<T> {
    const metadata = new grpc.Metadata();
    metadata.set("x-api-key", KEY);
    const desc = GRPCInferenceService.methods.find((m) => m.name === method);
    if (desc === undefined) throw new Error(`no method ${method}`);
    const fn = (v2grpc[desc.localName] as (...args: unknown[]) => unknown).bind(v2grpc);
    return new Promise((resolve, reject) => {
      fn(
        create(desc.input, request as never),
        metadata,
        (error: grpc.ServiceError | null, response: Message) =>
          error === null ? resolve(response as T) : reject(new Error(error.details)),
      );
    });
  }

  const v2rest = async (path: string, body: unknown) => {
    const res = await fetch(`http://127.0.0.1:${server.apiPort}${path}`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  it("runs the classifier over gRPC with int64 contents, and with raw bytes", async () => {
    const metadata = await v2call<ModelMetadataResponse>("ModelMetadata", { name: "classifier" });
    expect(metadata.inputs.map((t) => [t.name, t.datatype])).toEqual([
      ["input_ids", "INT64"],
      ["attention_mask", "INT64"],
    ]);
    const viaContents = await v2call<ModelInferResponse>("ModelInfer", {
      modelName: "classifier",
      inputs: [
        {
          name: "input_ids",
          datatype: "INT64",
          shape: [2n, 3n],
          contents: { int64Contents: [5n, 7n, 9n, 4n, 6n, 8n] },
        },
        {
          name: "attention_mask",
          datatype: "INT64",
          shape: [2n, 3n],
          contents: { int64Contents: [1n, 1n, 0n, 1n, 1n, 1n] },
        },
      ],
      outputs: [{ name: "logits" }, { name: "length" }],
    });
    expect(viaContents.outputs.map((o) => [o.name, o.datatype, o.shape.map(Number)])).toEqual([
      ["logits", "FP32", [2, 2]],
      ["length", "INT64", [2, 1]],
    ]);
    expect(viaContents.outputs[0]?.contents?.fp32Contents).toEqual([12, 2, 18, 3]);
    expect(viaContents.outputs[1]?.contents?.int64Contents).toEqual([2n, 3n]);
    const raw = (values: number[]) =>
      new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer);
    const viaRaw = await v2call<ModelInferResponse>("ModelInfer", {
      modelName: "classifier",
      inputs: [
        { name: "input_ids", datatype: "INT64", shape: [1n, 2n] },
        { name: "attention_mask", datatype: "INT64", shape: [1n, 2n] },
      ],
      rawInputContents: [raw([3, 4]), raw([1, 1])],
    });
    expect(viaRaw.outputs.map((o) => o.name)).toEqual(["logits", "length", "token_scores"]);
    const logits = new Float32Array(2);
    new Uint8Array(logits.buffer).set(viaRaw.rawOutputContents[0] as Uint8Array);
    expect(Array.from(logits)).toEqual([7, 2]);
    await expect(
      v2call("ModelInfer", {
        modelName: "classifier",
        inputs: [
          {
            name: "input_ids",
            datatype: "INT64",
            shape: [1n, 2n],
            contents: { int64Contents: [1n, 2n] },
          },
        ],
      }),
    ).rejects.toThrow(/^inputs: missing "attention_mask"/);
    await expect(
      v2call("ModelInfer", {
        modelName: "half",
        inputs: [{ name: "x", datatype: "FP16", shape: [1n, 4n], contents: { fp32Contents: [1] } }],
      }),
    ).rejects.toThrow(/^inputs\[0\]\.contents: FP16 elements travel in raw_input_contents only/);
  });

  it("runs float16, bool and two-input models over REST with JSON tensors", async () => {
    const half = await v2rest("/v2/models/half/infer", {
      inputs: [
        {
          name: "x",
          shape: [2, 4],
          datatype: "FP16",
          data: [
            [1, 2, 3, 4],
            [0.5, -1, 8, 0],
          ],
        },
      ],
    });
    expect(half.status).toBe(200);
    expect(half.json.outputs).toEqual([
      { name: "y", datatype: "FP16", shape: [2, 4], data: [2, 4, 6, 8, 1, -2, 16, 0] },
    ]);
    const flags = await v2rest("/v2/models/flags/infer", {
      inputs: [{ name: "x", shape: [1, 3], datatype: "BOOL", data: [true, false, true] }],
    });
    expect(flags.json.outputs).toEqual([
      { name: "y", datatype: "BOOL", shape: [1, 3], data: [false, true, false] },
    ]);
    const pair = await v2rest("/v2/models/pair/infer", {
      inputs: [
        { name: "a", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] },
        { name: "b", shape: [1, 3], datatype: "FP32", data: [2, 2, 2] },
      ],
      outputs: [{ name: "sum" }],
    });
    expect(pair.json.outputs).toEqual([
      { name: "sum", datatype: "FP32", shape: [1, 3], data: [3, 4, 5] },
    ]);
    const ids = await v2rest("/v2/models/classifier/infer", {
      inputs: [
        { name: "input_ids", shape: [1, 2], datatype: "INT64", data: [10, 20] },
        { name: "attention_mask", shape: [1, 2], datatype: "INT64", data: [1, 0.5] },
      ],
    });
    expect(ids.status).toBe(400);
    expect(ids.json.error).toMatch(/^inputs\[1\]\.data\[1\]: expected an integer/);
    const mismatch = await v2rest("/v2/models/pair/infer", {
      inputs: [
        { name: "a", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] },
        { name: "b", shape: [2, 3], datatype: "FP32", data: [1, 2, 3, 4, 5, 6] },
      ],
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.json.error).toMatch(
      /^inputs\[1\]\.shape\[0\]: every input holds the same items/,
    );
  });
});

describe("named tensors in jobs", () => {
  const api = `/api/batch-processor/jobs`;
  async function createJob(query: string, body: string) {
    const response = await fetch(`http://127.0.0.1:${server.apiPort}${api}?${query}`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/x-ndjson" },
      body,
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  }
  async function ended(jobId: string): Promise<Record<string, unknown>> {
    const response = await fetch(`http://127.0.0.1:${server.apiPort}${api}/${jobId}/watch`, {
      headers: { "x-api-key": KEY },
    });
    const events = (await response.text()).trim().split("\n");
    return JSON.parse(events.at(-1) as string);
  }
  async function resultLines(jobId: string): Promise<Record<string, unknown>[]> {
    const response = await fetch(`http://127.0.0.1:${server.apiPort}${api}/${jobId}/results`, {
      headers: { "x-api-key": KEY },
    });
    return (await response.text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
  }

  it("runs lines by name of dynamic length and stores every output by name in its type", async () => {
    const n = 1500;
    const lines: string[] = [];
    for (let i = 1; i <= n; i++) {
      const ids = Array.from({ length: 1 + (i % 5) }, (_, k) => i + k);
      lines.push(JSON.stringify({ id: `s${i}`, ...sentence(ids, Math.min(ids.length, 2)) }));
    }
    lines.push('{"inputs": {"input_ids": {"values": [1, 2]}}}');
    lines.push(
      JSON.stringify({ inputs: { ...sentence([1], 1).inputs, input_ids: { values: [0.5] } } }),
    );
    lines.push("[1, 2, 3]");
    const created = await createJob("model_id=padded&job_id=named-1", `${lines.join("\n")}\n`);
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ counts: { total: n + 3, invalid: 3 } });
    expect(await ended("named-1")).toMatchObject({
      status: "completed",
      counts: { total: n + 3, completed: n, failed: 0, invalid: 3 },
    });
    const read = await resultLines("named-1");
    expect(read).toHaveLength(n + 3);
    for (const i of [1, 2, 5, 1024, 1025, n]) {
      const ids = Array.from({ length: 1 + (i % 5) }, (_, k) => i + k);
      const kept = Math.min(ids.length, 2);
      const sum = ids.slice(0, kept).reduce((a, b) => a + b, 0);
      expect(read[i - 1]).toEqual({
        line: i,
        id: `s${i}`,
        outputs: {
          logits: { datatype: "FP32", shape: [2], values: [sum, kept] },
          length: { datatype: "INT64", shape: [1], values: [kept] },
          token_scores: {
            datatype: "FP32",
            shape: [ids.length],
            values: ids.map((id, k) => (k < kept ? id : 0)),
          },
        },
      });
    }
    expect(read[n]).toMatchObject({
      line: n + 1,
      error: {
        code: "INVALID_ARGUMENT",
        message: expect.stringMatching(/^line 1501: inputs: missing "attention_mask"/),
      },
    });
    expect((read[n + 1] as { error: { message: string } }).error.message).toMatch(
      /^line 1502: inputs\.input_ids\.values\[0\]: expected an integer/,
    );
    expect((read[n + 2] as { error: { message: string } }).error.message).toMatch(
      /^line 1503: inputs: model "padded" takes 2 inputs/,
    );
  });

  it("answers lines in the shorthand with output and lines by name with outputs, in one job of a float16 model", async () => {
    const body = [
      '{"input": [0.5, 1, 2, 3], "id": "plain"}',
      '{"inputs": {"x": {"values": [0.25, -1, 4, 1000]}}, "id": "named"}',
      "[1, 1, 1, 1]",
    ].join("\n");
    expect((await createJob("model_id=half&job_id=half-1", body)).status).toBe(201);
    expect(await ended("half-1")).toMatchObject({ status: "completed" });
    const [plain, named, bare] = await resultLines("half-1");
    expect(plain).toMatchObject({ line: 1, id: "plain", output: [1, 2, 4, 6] });
    expect(plain).not.toHaveProperty("outputs");
    expect(named).toEqual({
      line: 2,
      id: "named",
      outputs: { y: { datatype: "FP16", shape: [4], values: [0.5, -2, 8, 2000] } },
    });
    expect(bare).toMatchObject({ line: 3, output: [2, 2, 2, 2] });
  });

  it("takes items by name over gRPC, and fails alone the line the runtime cannot take", async () => {
    const { BatchProcessorClient } = await import("../../src/client/index.js");
    const client = new BatchProcessorClient({
      url: `grpc://127.0.0.1:${server.grpcPort}`,
      apiKey: KEY,
    });
    const ids = [0, 1, 2, 3, 9, 2, 1, 0];
    async function* parts() {
      yield {
        items: ids.map((id, k) => ({
          id: `i${k}`,
          inputs: { ids: { values: [id], datatype: "INT64" } },
        })),
      };
    }
    const job = await client.createJob({ modelId: "lookup", jobId: "lookup-1" }, parts());
    expect(job.counts?.total).toBe(ids.length);
    let last: { status: string } | undefined;
    for await (const view of client.watchJob("lookup-1")) last = view;
    expect(last?.status).toBe("completed");
    const read = [];
    for await (const r of client.jobResults("lookup-1")) read.push(r);
    expect(read.map((r) => r.outputs.vectors?.values ?? r.error?.code)).toEqual([
      [0, 1],
      [10, 11],
      [20, 21],
      [30, 31],
      "INTERNAL",
      [20, 21],
      [10, 11],
      [0, 1],
    ]);
    expect(read[4]?.error?.message).toMatch(/^model "lookup" failed to run: .*indices/);
  });
});
