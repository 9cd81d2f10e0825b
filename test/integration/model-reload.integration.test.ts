/**
 * Reloading the model repository while the server serves: real ONNX models in real Piscina
 * threads. A new version serves once its threads are ready; until then, and when the new files
 * do not load, the version loaded before keeps serving.
 */
import { copyFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BatchProcessor,
  type ModelCatalog,
  ModelNotFoundError,
  type Principal,
} from "../../src/engine/index.js";
import { createInferencePool, type StartedPool } from "../../src/inference/piscina-pool.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import { until } from "../fixtures/fake-pool.js";
import {
  createTestModelRepo,
  type TestModelRepo,
  writeExternalDataModel,
  writeLogModel,
} from "../fixtures/model-repo.js";

const me: Principal = { owner: "reload", admin: true };
let repo: TestModelRepo;
let processor: BatchProcessor | undefined;
let started: StartedPool;
let warmed: string[][];

beforeEach(async () => {
  repo = createTestModelRepo({ dense: true });
  started = await createInferencePool({
    modelDir: repo.dir,
    threads: 2,
    executionProviders: ["cpu"],
  });
  const { pool, models } = started;
  const p = await BatchProcessor.create({
    pool,
    models,
    store: new SqliteJobStore({ dataDir: ":memory:" }),
  });
  processor = p;
  warmed = [];
});

afterEach(async () => {
  await processor?.close({ timeoutMs: 5000 });
  processor = undefined;
  repo.cleanup();
});

function reload(retryFailed = true) {
  return started.reload({
    retryFailed,
    warmUp: async (pool, models: ModelCatalog) => {
      warmed.push(models.list().map((m) => m.name));
      await processor?.warmUp(pool, models);
    },
  });
}

async function infer(model: string, input: number[]): Promise<number[]> {
  const { results } = await (processor as BatchProcessor).infer(me, {
    data: [{ input }],
    metadata: { model_id: model },
  });
  const [result] = results;
  if (result?.error != null) throw new Error(result.error.message);
  return [...(result?.output ?? [])];
}

/** Replaces `default` with the log model: ln(x) per number instead of 3 class probabilities. */
function replaceDefaultWithLog(): void {
  writeLogModel(join(repo.dir, "default"));
}

describe("model reload", () => {
  it("serves the new version of a changed model once it is ready, the old one until then", async () => {
    const before = started.models.get("default");
    expect(await infer("default", [1, 2, 3])).toHaveLength(3);
    replaceDefaultWithLog();
    // Requests keep flowing while the new threads load and warm up: none may fail.
    let reloading = true;
    let answered = 0;
    const failures: unknown[] = [];
    const traffic = (async () => {
      while (reloading) {
        try {
          await infer("default", [1, 2, 3, 4]);
          answered++;
        } catch (error) {
          failures.push(error);
        }
      }
    })();
    const outcomes = await reload();
    reloading = false;
    await traffic;
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(0);
    expect(outcomes).toEqual([
      { name: "default", outcome: "updated" },
      { name: "dense", outcome: "unchanged" },
    ]);
    expect(warmed).toEqual([["default"]]);
    const after = started.models.get("default");
    expect(after?.outputKind).toBe("raw");
    expect(after?.loadedAt).toBeGreaterThanOrEqual(before?.loadedAt ?? Number.POSITIVE_INFINITY);
    const output = await infer("default", [1, Math.E, 4]);
    expect(output[0]).toBe(0);
    expect(output[1]).toBeCloseTo(1, 5);
    expect(output).toHaveLength(3);
    // The unchanged model still serves.
    expect(
      await infer(
        "dense",
        Array.from({ length: 256 }, () => 0.5),
      ),
    ).toHaveLength(10);
  });

  it("keeps the old version serving when the new files do not load, and says why", async () => {
    const loadedAt = started.models.get("default")?.loadedAt;
    writeFileSync(join(repo.dir, "default", "model.onnx"), "not a model");
    const outcomes = await reload();
    expect(outcomes.find((o) => o.name === "default")).toEqual({
      name: "default",
      outcome: "failed",
      reason:
        "ONNX Runtime could not load model.onnx: Failed to load model because protobuf parsing failed.",
    });
    const info = started.models.get("default");
    expect(info?.available).toBe(true);
    expect(info?.loadedAt).toBe(loadedAt);
    expect(info?.reloadError).toContain("protobuf parsing failed");
    expect(await infer("default", [1, 2, 3])).toHaveLength(3);
    // The watch does not try the same broken files again; an explicit reload does.
    expect((await reload(false)).every((o) => o.outcome === "unchanged")).toBe(true);
    expect((await reload()).find((o) => o.name === "default")?.outcome).toBe("failed");
    // A bad config.json is reported the same way, before any thread tries the model.
    replaceDefaultWithLog();
    writeFileSync(join(repo.dir, "default", "config.json"), '{"max_batch_size": 0}');
    const badConfig = (await reload()).find((o) => o.name === "default");
    expect(badConfig?.outcome).toBe("failed");
    expect(badConfig?.reason).toContain("max_batch_size must be an integer in 1..65536");
    expect(started.models.get("default")?.available).toBe(true);
    expect(await infer("default", [1, 2, 3])).toHaveLength(3);
    // Fixed files load, and the error is gone.
    replaceDefaultWithLog();
    expect((await reload()).find((o) => o.name === "default")?.outcome).toBe("updated");
    expect(started.models.get("default")?.reloadError).toBeUndefined();
    expect((await infer("default", [1]))[0]).toBe(0);
  });

  it("loads a model added to the repository and unloads a removed one", async () => {
    writeLogModel(join(repo.dir, "log"));
    const added = await reload();
    expect(added.find((o) => o.name === "log")).toEqual({ name: "log", outcome: "added" });
    expect((await infer("log", [1]))[0]).toBe(0);
    rmSync(join(repo.dir, "log"), { recursive: true });
    const removed = await reload();
    expect(removed.find((o) => o.name === "log")).toEqual({ name: "log", outcome: "removed" });
    expect(started.models.get("log")).toBeUndefined();
    await expect(infer("log", [1])).rejects.toThrow(ModelNotFoundError);
    expect(await infer("default", [1, 2, 3])).toHaveLength(3);
  });

  it("loads a model whose weights are external data, and reloads when only they change", async () => {
    const folder = join(repo.dir, "external");
    writeExternalDataModel(folder, [1, 2, 3, 4, 5, 6]);
    expect((await reload()).find((o) => o.name === "external")?.outcome).toBe("added");
    expect(await infer("external", [1, 1, 1])).toEqual([9, 12]);
    // The weights rewritten in place: a new version, although model.onnx did not change.
    writeFileSync(
      join(folder, "weights", "w.bin"),
      new Uint8Array(new Float32Array(6).fill(2).buffer),
    );
    expect((await reload()).find((o) => o.name === "external")?.outcome).toBe("updated");
    expect(await infer("external", [1, 1, 1])).toEqual([6, 6]);
    // Weights that no longer fit: the version in memory, weights and all, keeps serving.
    writeFileSync(join(folder, "weights", "w.bin"), new Uint8Array(8));
    expect((await reload()).find((o) => o.name === "external")?.outcome).toBe("failed");
    expect(await infer("external", [1, 1, 1])).toEqual([6, 6]);
    // Weights gone: the reason names the file as the model does, not where the server runs.
    rmSync(join(folder, "weights"), { recursive: true });
    const missing = (await reload()).find((o) => o.name === "external");
    expect(missing?.outcome).toBe("failed");
    expect(missing?.reason).toContain("weights/w.bin");
    expect(missing?.reason).not.toContain(process.cwd());
  });

  it("changes nothing when the files have not changed", async () => {
    const loadedAt = started.models.get("dense")?.loadedAt;
    const outcomes = await reload();
    expect(outcomes.map((o) => o.outcome)).toEqual(["unchanged", "unchanged"]);
    expect(warmed).toEqual([]);
    expect(started.models.get("dense")?.loadedAt).toBe(loadedAt);
  });

  it("reloads by itself when watching and a file changes", async () => {
    started.watch(50, {
      warmUp: async (pool, models) => {
        await processor?.warmUp(pool, models);
      },
    });
    const loadedAt = started.models.get("default")?.loadedAt ?? 0;
    // The same bytes with a new modification time count as a new version.
    copyFileSync(join(repo.dir, "default", "model.onnx"), join(repo.dir, "model.copy"));
    rmSync(join(repo.dir, "default", "model.onnx"));
    copyFileSync(join(repo.dir, "model.copy"), join(repo.dir, "default", "model.onnx"));
    const later = new Date(Date.now() + 5000);
    utimesSync(join(repo.dir, "default", "model.onnx"), later, later);
    await until(() => (started.models.get("default")?.loadedAt ?? 0) > loadedAt, 20_000);
    expect(await infer("default", [1, 2, 3])).toHaveLength(3);
  });
});
