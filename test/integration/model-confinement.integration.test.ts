/**
 * A model reads files only inside its own folder: one that names external data elsewhere (a path
 * that climbs out, an absolute path, a link that leads out) does not load, its reason names no
 * server path, and nothing of the outside file ever comes back as an output.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import {
  createTestModelRepo,
  type TestModelRepo,
  writeExternalDataModel,
} from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const KEY = "confine-key";
const W = [1, 2, 3, 4, 5, 6];
let repo: TestModelRepo;
let outside: string;
let server: RunningServer;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  // A "secret" beside the repository, 24 bytes: exactly what the model's weights would take.
  outside = mkdtempSync(join(tmpdir(), "bp-outside-"));
  writeFileSync(
    join(outside, "secret.bin"),
    new Uint8Array(new Float32Array([9, 9, 9, 9, 9, 9]).buffer),
  );
  writeExternalDataModel(join(repo.dir, "good"), W);
  writeExternalDataModel(
    join(repo.dir, "climbs"),
    W,
    `../../${outside.split("/").pop()}/secret.bin`,
  );
  writeExternalDataModel(join(repo.dir, "absolute"), W, join(outside, "secret.bin"));
  mkdirSync(join(repo.dir, "linked"));
  symlinkSync(outside, join(repo.dir, "linked", "weights"));
  writeExternalDataModel(join(repo.dir, "linked"), W, "weights/secret.bin");
  writeExternalDataModel(join(repo.dir, "missing"), W, "weights/none.bin");
  server = await startTestServer(repo.dir, { API_KEYS: KEY });
});

afterAll(async () => {
  await server.close();
  repo.cleanup();
  rmSync(outside, { recursive: true, force: true });
});

async function call(path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "x-api-key": KEY, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await res.json()) as Record<string, unknown>;
}

describe("models confined to their folder", () => {
  it("loads external data inside the folder, and refuses every model that names a file elsewhere", async () => {
    const { models } = (await call("/models")) as {
      models: { name: string; available: boolean; reason?: string }[];
    };
    const byName = new Map(models.map((m) => [m.name, m]));
    expect(byName.get("good")?.available).toBe(true);
    for (const name of ["climbs", "absolute", "linked", "missing"]) {
      const model = byName.get(name);
      expect(model?.available, name).toBe(false);
      expect(model?.reason, name).toMatch(/is not a file inside the model's folder/);
      // No server path in any answer: not the repository, not the working directory.
      expect(model?.reason, name).not.toContain(repo.dir);
      expect(model?.reason, name).not.toContain(process.cwd());
    }
    const good = (await call("/infer", {
      data: [{ input: [1, 1, 1] }],
      metadata: { model_id: "good" },
    })) as { results: { output: number[] }[] };
    expect(good.results[0]?.output).toEqual([9, 12]);
    const refused = await call("/infer", {
      data: [{ input: [1, 1, 1] }],
      metadata: { model_id: "climbs" },
    });
    expect(refused.error).toBe("unavailable");
    expect(JSON.stringify(refused)).not.toContain("27");
  });
});
