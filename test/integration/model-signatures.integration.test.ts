/**
 * What a model's graph declares is shown by ListModels (names, element types, shapes), and a model
 * the server cannot feed (an input without a batch axis) is unavailable with a reason naming the
 * input, instead of loading and then failing every item with INTERNAL; a call to one answers
 * UNAVAILABLE with that reason, and the models it can feed keep serving. Per-model settings of
 * config.json are checked and shown. A versioned (Triton-layout) repository serves its highest
 * version.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GraphBuilder } from "../../scripts/lib/onnx-builder.js";
import type { RunningServer } from "../../src/server.js";
import {
  createTestModelRepo,
  type TestModelRepo,
  writeLogModel,
  writeUnfeedableModel,
} from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const KEY = "signatures-key";
let repo: TestModelRepo;
let server: RunningServer;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  writeUnfeedableModel(repo.dir);
  for (const [name, extra] of [
    ["waits", { max_wait_time_ms: 5 }],
    ["badwait", { max_wait_time_ms: -1 }],
    ["cpuonly", { execution_providers: ["cpu"] }],
    ["preferring", { preferred_batch_sizes: [8, 4, 8] }],
    ["badpreferred", { preferred_batch_sizes: [0] }],
    ["badproviders", { execution_providers: [] }],
    ["pads", { padding: { input: 1 } }],
    ["badpadding", { padding: { input: "zero" } }],
    ["padsnothing", { padding: { pixels: 0 } }],
    ["badinstances", { instance_count: 0 }],
  ] as const) {
    writeLogModel(join(repo.dir, name));
    writeFileSync(
      join(repo.dir, name, "config.json"),
      JSON.stringify({ input_shape: [-1], output_kind: "raw", ...extra }),
    );
  }
  server = await startTestServer(repo.dir, { API_KEYS: KEY });
});

afterAll(async () => {
  await server.close();
  repo.cleanup();
});

async function call(
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "x-api-key": KEY, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("models the server cannot feed", () => {
  it("are unavailable, saying which input or output and what type, refuse calls with that reason, and show their graph", async () => {
    const { json } = await call("/models");
    const models = json.models as { name: string; available: boolean; reason?: string }[];
    const byName = new Map(models.map((m) => [m.name, m]));
    const expected: Record<string, RegExp> = {
      scalar: /input "x" is a scalar; this server batches items along a first axis/,
    };
    for (const [name, reason] of Object.entries(expected)) {
      expect(byName.get(name)?.available, name).toBe(false);
      expect(byName.get(name)?.reason, name).toMatch(reason);
      for (const path of ["/infer", "/submit"]) {
        const refused = await call(path, {
          data: [{ input: [1, 2, 3, 4] }],
          metadata: { model_id: name },
        });
        expect(refused.status, `${name} ${path}`).toBe(503);
        expect(refused.json.error, `${name} ${path}`).toBe("unavailable");
        expect(String(refused.json.message), `${name} ${path}`).toMatch(reason);
      }
    }
    // Each shows its graph as the model declares it, whether it serves or not.
    const signature = (name: string) => {
      const m = models.find((x) => x.name === name) as unknown as Record<string, unknown>;
      return { inputs: m.inputs, outputs: m.outputs };
    };
    expect(signature("scalar")).toEqual({
      inputs: [{ name: "x", datatype: "FP32", shape: [] }],
      outputs: [{ name: "y", datatype: "FP32", shape: [] }],
    });
    // A model's own max_wait_time_ms, checked as the configured one is.
    expect(byName.get("waits")).toMatchObject({ available: true, max_wait_time_ms: 5 });
    expect(byName.get("badwait")).toMatchObject({
      available: false,
      reason: "config.json: max_wait_time_ms must be an integer in 0..60000, got -1",
    });
    expect(byName.get("default")).not.toHaveProperty("max_wait_time_ms");
    expect(byName.get("preferring")).toMatchObject({ preferred_batch_sizes: [4, 8] });
    expect(byName.get("badinstances")).toMatchObject({
      available: false,
      reason: "config.json: instance_count must be an integer in 1..256, got 0",
    });
    expect(byName.get("badpreferred")).toMatchObject({
      available: false,
      reason: expect.stringMatching(/^config\.json: preferred_batch_sizes must be a list/),
    });
    // Padding: checked as config, then against the graph.
    expect(byName.get("pads")).toMatchObject({ available: true });
    expect(byName.get("badpadding")).toMatchObject({
      available: false,
      reason: expect.stringMatching(/^config\.json: padding must map 1\.\.64 input names/),
    });
    expect(byName.get("padsnothing")).toMatchObject({
      available: false,
      reason: expect.stringMatching(
        /config\.json: padding names input "pixels", which the graph does not have \(inputs: input\)/,
      ),
    });
    // Providers: a model may ask for its own; one that runs on the CPU though it asked for another
    // first says why, whichever machine this runs on (CUDA where the runtime has it).
    expect(byName.get("cpuonly")).toMatchObject({ available: true, execution_provider: "cpu" });
    expect(byName.get("cpuonly")).not.toHaveProperty("provider_fallback");
    expect(byName.get("badproviders")).toMatchObject({
      available: false,
      reason: expect.stringMatching(/^config\.json: execution_providers must be a list of 1\.\.8/),
    });
    const asked = byName.get("default") as Record<string, unknown>;
    if (asked.execution_provider === "cuda") expect(asked).not.toHaveProperty("provider_fallback");
    else {
      expect(asked.execution_provider).toBe("cpu");
      expect(asked.provider_fallback).toEqual(expect.any(String));
      expect(String(asked.provider_fallback).length).toBeGreaterThan(0);
    }
    expect(byName.get("default")?.available).toBe(true);
    expect((signature("default").inputs as { datatype: string }[])[0]?.datatype).toBe("FP32");
    const served = await call("/infer", { data: [{ input: [1, 2, 3, 4] }] });
    expect(served.status).toBe(200);
  });
});

describe("a versioned (Triton-layout) repository", () => {
  it("serves the highest version of <name>/<version>/model.onnx with <name>/config.json, lists a folder without a model as unavailable, and serves a new version after a reload", async () => {
    const versioned = createTestModelRepo({ dense: false });
    const folder = join(versioned.dir, "triton");
    mkdirSync(join(folder, "1"), { recursive: true });
    writeFileSync(join(folder, "1", "model.onnx"), "version 1 is not ONNX: it must not serve");
    writeLogModel(join(folder, "2"));
    rmSync(join(folder, "2", "config.json"));
    writeFileSync(
      join(folder, "config.json"),
      JSON.stringify({ input_shape: [-1], output_kind: "raw" }),
    );
    mkdirSync(join(versioned.dir, "empty", "1"), { recursive: true });
    writeFileSync(join(versioned.dir, "empty", "1", "model.pt"), "not ONNX");
    mkdirSync(join(versioned.dir, ".hidden"));
    const own = await startTestServer(versioned.dir, { API_KEYS: KEY });
    const at = async (path: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${own.apiPort}/api/batch-processor${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { "x-api-key": KEY, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return (await res.json()) as Record<string, unknown>;
    };
    const model = async (name: string) =>
      ((await at("/models")).models as Record<string, unknown>[]).find((m) => m.name === name);
    try {
      expect(await model("triton")).toMatchObject({ available: true, version: "2" });
      expect(await model("empty")).toMatchObject({
        available: false,
        reason: expect.stringMatching(
          /^no model\.onnx: neither <name>\/model\.onnx nor a version folder/,
        ),
      });
      expect(await model(".hidden")).toBeUndefined();
      expect(await model("default")).toMatchObject({ available: true, version: "" });
      const infer = async () =>
        (await at("/infer", {
          data: [{ input: [1, Math.E, Math.E ** 2] }],
          metadata: { model_id: "triton" },
        })) as { results: { output: number[] }[] };
      expect((await infer()).results[0]?.output.map((v) => Math.round(v * 1e4) / 1e4)).toEqual([
        0, 1, 2,
      ]);
      // A new version that does not load leaves the one serving; one that does takes over.
      mkdirSync(join(folder, "3"));
      writeFileSync(join(folder, "3", "model.onnx"), "version 3 is broken");
      await at("/models/reload", {});
      expect(await model("triton")).toMatchObject({
        available: true,
        version: "2",
        reload_error: expect.stringMatching(/could not load/),
      });
      writeLogModel(join(folder, "3"));
      rmSync(join(folder, "3", "config.json"));
      await at("/models/reload", {});
      const now = await model("triton");
      expect(now).toMatchObject({ available: true, version: "3" });
      expect(now).not.toHaveProperty("reload_error");
      expect((await infer()).results[0]?.output.map((v) => Math.round(v * 1e4) / 1e4)).toEqual([
        0, 1, 2,
      ]);
    } finally {
      await own.close();
      versioned.cleanup();
    }
  });
});

/** Writes `<folder>/<version>/model.onnx`: `y = x * version`, one float per item. */
function writeScaleVersion(folder: string, version: number): void {
  const g = new GraphBuilder(`scale${version}`);
  const k = g.constant(Float32Array.of(version), [1], "k");
  g.node("Mul", [g.input("x", ["batch", 1]), k], {}, "y");
  g.output("y", ["batch", 1]);
  mkdirSync(join(folder, String(version)), { recursive: true });
  writeFileSync(join(folder, String(version), "model.onnx"), g.encode());
}

describe("a version policy", () => {
  it("serves the versions it names, routed by version on the native API and the v2 protocol, the latest by default", async () => {
    const versioned = createTestModelRepo({ dense: false });
    const write = (name: string, policy: unknown, versions: number[]) => {
      const folder = join(versioned.dir, name);
      for (const v of versions) writeScaleVersion(folder, v);
      writeFileSync(
        join(folder, "config.json"),
        JSON.stringify({ output_kind: "raw", version_policy: policy }),
      );
    };
    write("latest2", { latest: { num_versions: 2 } }, [1, 2, 3]);
    write("picked", { specific: { versions: [1, 3] } }, [1, 2, 3]);
    write("every", { all: {} }, [1, 2]);
    write("badpolicy", { newest: 1 }, [1]);
    const own = await startTestServer(versioned.dir, { API_KEYS: KEY });
    const at = async (path: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${own.apiPort}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { "x-api-key": KEY, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const infer = async (metadata: Record<string, string>) =>
      at("/api/batch-processor/infer", { data: [{ input: [1.5] }], metadata });
    try {
      const models = (await at("/api/batch-processor/models")).json.models as {
        name: string;
        version: string;
        available: boolean;
        reason?: string;
      }[];
      const served = (name: string) =>
        models.filter((m) => m.name === name).map((m) => [m.version, m.available]);
      expect(served("latest2")).toEqual([
        ["3", true],
        ["2", true],
      ]);
      expect(served("picked")).toEqual([
        ["3", true],
        ["1", true],
      ]);
      expect(served("every")).toEqual([
        ["2", true],
        ["1", true],
      ]);
      expect(models.find((m) => m.name === "badpolicy")?.reason).toMatch(
        /^config\.json: version_policy must be/,
      );
      const output = (answer: { json: Record<string, unknown> }) =>
        (answer.json.results as { output: number[] }[])[0]?.output;
      expect(output(await infer({ model_id: "latest2" }))).toEqual([4.5]);
      expect(output(await infer({ model_id: "latest2", model_version: "2" }))).toEqual([3]);
      expect(output(await infer({ model_id: "latest2/2" }))).toEqual([3]);
      expect(output(await infer({ model_id: "picked", model_version: "1" }))).toEqual([1.5]);
      const missing = await infer({ model_id: "latest2", model_version: "1" });
      expect(missing.status).toBe(404);
      expect(missing.json.message).toBe(
        'metadata.model_version: model "latest2" has no version "1"; it serves versions "3", "2"',
      );
      // A durable batch keeps the version it was sent to.
      const receipt = await at("/api/batch-processor/submit", {
        data: [{ input: [2] }],
        metadata: { model_id: "latest2", model_version: "2" },
      });
      const id = receipt.json.batch_id as string;
      let results = await at(`/api/batch-processor/results/${id}`);
      for (let i = 0; i < 50 && results.status === 409; i++) {
        await new Promise((r) => setTimeout(r, 50));
        results = await at(`/api/batch-processor/results/${id}`);
      }
      expect(output(results)).toEqual([4]);
      // The v2 protocol: its versions, and infer at /versions/{v}.
      expect((await at("/v2/models/latest2")).json).toMatchObject({ versions: ["3", "2"] });
      const v2 = await at("/v2/models/latest2/versions/2/infer", {
        inputs: [{ name: "x", shape: [1, 1], datatype: "FP32", data: [5] }],
      });
      expect(v2.json).toMatchObject({
        model_name: "latest2",
        model_version: "2",
        outputs: [{ name: "y", data: [10] }],
      });
      expect((await at("/v2/models/latest2/versions/1/ready")).status).toBe(503);
      expect((await at("/v2/models/latest2/versions/2/ready")).status).toBe(200);
    } finally {
      await own.close();
      versioned.cleanup();
    }
  });
});

describe("the repository extension", () => {
  it("indexes, unloads and loads one model for admin keys over v2 REST, the others serving throughout", async () => {
    const own = createTestModelRepo({ dense: false });
    writeLogModel(join(own.dir, "log"));
    // Threads of its own: its unload and load start and stop those alone.
    const config = join(own.dir, "log", "config.json");
    writeFileSync(
      config,
      JSON.stringify({ ...JSON.parse(readFileSync(config, "utf8")), instance_count: 1 }),
    );
    const ADMIN = "repo-admin";
    const USER = "repo-user";
    const server = await startTestServer(own.dir, {
      API_KEYS: `${ADMIN},${USER}`,
      ADMIN_API_KEYS: ADMIN,
    });
    const at = async (path: string, body?: unknown, key = ADMIN) => {
      const res = await fetch(`http://127.0.0.1:${server.apiPort}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { "x-api-key": key, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as unknown };
    };
    const infer = (model: string) =>
      at("/api/batch-processor/infer", { data: [{ input: [1] }], metadata: { model_id: model } });
    try {
      expect(await at("/v2/repository/index", {})).toEqual({
        status: 200,
        json: [
          { name: "default", version: "1", state: "READY" },
          { name: "log", version: "1", state: "READY" },
        ],
      });
      // ListModels says which model has threads of its own.
      const listed = (await at("/api/batch-processor/models")).json as {
        models: { name: string; instance_count?: number }[];
      };
      expect(listed.models.map((m) => [m.name, m.instance_count])).toEqual([
        ["default", undefined],
        ["log", 1],
      ]);
      expect((await at("/v2/repository/models/log/unload", {}, USER)).status).toBe(403);
      expect((await at("/v2/repository/index", {}, USER)).status).toBe(403);
      expect(await at("/v2/repository/models/log/unload", {})).toEqual({ status: 200, json: {} });
      const refused = await infer("log");
      expect(refused.status).toBe(503);
      expect((refused.json as { message: string }).message).toMatch(/unloaded by an admin/);
      expect((await infer("default")).status).toBe(200);
      expect(await at("/v2/repository/index", { ready: true })).toEqual({
        status: 200,
        json: [{ name: "default", version: "1", state: "READY" }],
      });
      expect((await at("/v2/models/log/ready")).status).toBe(503);
      expect(await at("/v2/repository/models/log/load", {})).toEqual({ status: 200, json: {} });
      expect((await infer("log")).status).toBe(200);
      const missing = await at("/v2/repository/models/nope/load", {});
      expect(missing.status).toBe(404);
      expect((missing.json as { error: string }).error).toMatch(
        /^model_name: model "nope" not found/,
      );
    } finally {
      await server.close();
      own.cleanup();
    }
  });
});
