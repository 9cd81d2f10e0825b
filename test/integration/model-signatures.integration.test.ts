/**
 * What a model's graph declares is shown by ListModels (names, element types, shapes), and models
 * the server cannot feed yet (an int64 input, two named inputs, float16) are unavailable with a
 * reason naming the input and its type, instead of loading and then failing every item with
 * INTERNAL; a call to one answers UNAVAILABLE with that reason, and the models it can feed keep
 * serving.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import {
  createTestModelRepo,
  type TestModelRepo,
  writeUnfedModels,
} from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const KEY = "signatures-key";
let repo: TestModelRepo;
let server: RunningServer;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  writeUnfedModels(repo.dir);
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
      ids: /input "x" is int64; this server feeds and reads float32 tensors only/,
      classifier:
        /the graph has 2 inputs \(input_ids int64\[batch, sequence\], attention_mask int64\[batch, sequence\]\); this server feeds one float32 input per model/,
      half: /input "x" is float16; this server feeds and reads float32 tensors only/,
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
    expect(signature("classifier")).toEqual({
      inputs: [
        { name: "input_ids", datatype: "INT64", shape: [-1, -1] },
        { name: "attention_mask", datatype: "INT64", shape: [-1, -1] },
      ],
      outputs: [
        { name: "token_values", datatype: "FP32", shape: [-1, -1] },
        { name: "mask_values", datatype: "FP32", shape: [-1, -1] },
      ],
    });
    expect(signature("ids")).toEqual({
      inputs: [{ name: "x", datatype: "INT64", shape: [-1, 4] }],
      outputs: [{ name: "y", datatype: "FP32", shape: [-1, 4] }],
    });
    expect(signature("half").inputs).toEqual([{ name: "x", datatype: "FP16", shape: [-1, 4] }]);
    expect(byName.get("default")?.available).toBe(true);
    expect((signature("default").inputs as { datatype: string }[])[0]?.datatype).toBe("FP32");
    const served = await call("/infer", { data: [{ input: [1, 2, 3, 4] }] });
    expect(served.status).toBe(200);
  });
});
