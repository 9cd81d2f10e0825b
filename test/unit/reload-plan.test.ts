/**
 * The model host's decisions, apart from its threads: what a reload does with each model of the
 * repository (keep, leave, try), which versions the new threads are offered, and what serves and
 * what the catalog says once they have loaded.
 */
import { describe, expect, it } from "vitest";
import type { ModelInfo } from "../../src/engine/index.js";
import type { ModelLoadReport, WorkerModelVersion } from "../../src/inference/messages.js";
import type { RepositoryEntry } from "../../src/inference/model-repository.js";
import {
  DEFAULT_MODEL_MAX_BATCH_SIZE,
  planReload,
  type Served,
  type ServingSet,
  settleReload,
  workerModels,
} from "../../src/inference/reload-plan.js";

const log = { debug() {}, info() {}, warn() {}, error() {} };

function entry(
  name: string,
  fingerprint: string,
  extra: Partial<RepositoryEntry> = {},
): RepositoryEntry {
  return {
    name,
    path: `/models/${name}/model.onnx`,
    version: undefined,
    maxBatchSize: undefined,
    maxWaitTimeMs: undefined,
    preferredBatchSizes: undefined,
    executionProviders: undefined,
    instanceCount: undefined,
    inputName: undefined,
    outputName: undefined,
    inputShape: undefined,
    outputKind: "probabilities",
    labels: undefined,
    padding: undefined,
    description: undefined,
    problem: undefined,
    otherFiles: [],
    fingerprint,
    ...extra,
  };
}

/** A version whose bytes say which files it came from. */
function version(of: RepositoryEntry): WorkerModelVersion {
  return {
    bytes: new TextEncoder().encode(of.fingerprint),
    externalData: [],
    outputKind: of.outputKind,
  };
}

const read = async (e: RepositoryEntry) => version(e);

function loaded(
  name: string,
  index = 0,
  dims: (number | string)[] = ["batch", 16],
): ModelLoadReport {
  return {
    name,
    ok: true,
    version: index,
    errors: index === 0 ? [] : ["Failed to load model because protobuf parsing failed."],
    provider: "cpu",
    inputs: [{ name: "input", type: "float32", dims }],
    outputs: [{ name: "output", type: "float32", dims: ["batch", 3] }],
  };
}

function failed(name: string, error: string): ModelLoadReport {
  return { name, ok: false, errors: [error], inputs: [], outputs: [] };
}

/** What serves after a first load of `entries`. */
async function firstLoad(entries: RepositoryEntry[]): Promise<ServingSet> {
  const steps = await planReload(entries, undefined, new Map(), true, read);
  return settleReload(
    steps,
    entries.map((e) => loaded(e.name)),
    undefined,
    1000,
    log,
  );
}

describe("planReload", () => {
  it("keeps a served version whose files did not change and tries one whose files did, offering the new files with the served version as fallback", async () => {
    const a = entry("a", "a1");
    const b = entry("b", "b1");
    const serving = await firstLoad([a, b]);
    const b2 = entry("b", "b2");
    const steps = await planReload([a, b2], serving, new Map(), true, read);
    expect(steps.map((s) => s.kind)).toEqual(["keep", "try"]);
    const models = workerModels(steps);
    expect(
      models.map((m) => [m.name, m.versions.map((v) => new TextDecoder().decode(v.bytes))]),
    ).toEqual([
      ["a", ["a1"]],
      ["b", ["b2", "b1"]],
    ]);
  });

  it("leaves files that failed before and did not change, unless told to retry them", async () => {
    const tried = new Map<string, string>();
    const broken = entry("c", "c1");
    const first = await planReload([broken], undefined, tried, true, read);
    const serving = settleReload(first, [failed("c", "bad graph")], undefined, 1, log);
    expect(serving.catalog.get("c")).toMatchObject({ available: false, reason: "bad graph" });
    const watch = await planReload([broken], serving, tried, false, read);
    expect(watch.map((s) => s.kind)).toEqual(["untried"]);
    const explicit = await planReload([broken], serving, tried, true, read);
    expect(explicit.map((s) => s.kind)).toEqual(["try"]);
  });

  it("tries a model whose files cannot be read with the reason, offering no version of it", async () => {
    const steps = await planReload([entry("d", "d1")], undefined, new Map(), true, async () => {
      throw new Error("EACCES");
    });
    expect(steps).toMatchObject([{ kind: "try", problem: "the model's files could not be read" }]);
    expect(workerModels(steps)).toEqual([]);
  });
});

describe("settleReload", () => {
  it("serves what loaded: a new model added, its shape and batch limit read from the graph", async () => {
    const a = entry("a", "a1");
    const steps = await planReload([a], undefined, new Map(), true, read);
    const settled = settleReload(steps, [loaded("a", 0, [8, 16])], undefined, 1234, log);
    expect(settled.outcomes).toEqual([{ name: "a", outcome: "added" }]);
    expect(settled.catalog.get("a")).toMatchObject({
      available: true,
      itemShape: [16],
      maxBatchSize: 8,
      executionProvider: "cpu",
      loadedAt: 1234,
    });
    expect([...settled.fresh.keys()]).toEqual(["a"]);
    const dynamic = settleReload(steps, [loaded("a")], undefined, 1, log);
    expect(dynamic.catalog.get("a")?.maxBatchSize).toBe(DEFAULT_MODEL_MAX_BATCH_SIZE);
  });

  it("keeps the served version when the new files do not load, saying why beside it", async () => {
    const serving = await firstLoad([entry("b", "b1")]);
    const steps = await planReload([entry("b", "b2")], serving, new Map(), true, read);
    const settled = settleReload(steps, [loaded("b", 1)], serving, 2000, log);
    expect(settled.outcomes).toEqual([
      {
        name: "b",
        outcome: "failed",
        reason: "Failed to load model because protobuf parsing failed.",
      },
    ]);
    expect(settled.served.get("b")).toBe(serving.served.get("b") as Served);
    expect(settled.catalog.get("b")).toMatchObject({
      available: true,
      loadedAt: 1000,
      reloadError: "Failed to load model because protobuf parsing failed.",
    });
    expect(settled.fresh.size).toBe(0);
  });

  it("updates a model whose new files load, and marks unavailable one that loads in no version", async () => {
    const serving = await firstLoad([entry("b", "b1")]);
    const steps = await planReload(
      [entry("b", "b2"), entry("e", "e1")],
      serving,
      new Map(),
      true,
      read,
    );
    const settled = settleReload(
      steps,
      [loaded("b", 0), failed("e", "no such input")],
      serving,
      3000,
      log,
    );
    expect(settled.outcomes).toEqual([
      { name: "b", outcome: "updated" },
      { name: "e", outcome: "failed", reason: "no such input" },
    ]);
    expect(settled.catalog.get("e")).toEqual<ModelInfo>(
      expect.objectContaining({ available: false, reason: "no such input" }),
    );
    expect(settled.served.has("e")).toBe(false);
  });

  it("reports a kept model the new threads could not load as failed and unavailable", async () => {
    const serving = await firstLoad([entry("a", "a1")]);
    const steps = await planReload([entry("a", "a1")], serving, new Map(), true, read);
    const settled = settleReload(steps, [failed("a", "out of memory")], serving, 4000, log);
    expect(settled.outcomes).toEqual([{ name: "a", outcome: "failed", reason: "out of memory" }]);
    expect(settled.catalog.get("a")).toMatchObject({ available: false });
    expect(settled.served.has("a")).toBe(false);
  });
});
