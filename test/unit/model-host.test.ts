/**
 * The model host's lifecycle with fake threads (no ONNX Runtime), each model on threads of its
 * own: what serves, what a reload starts and retires, and what keeps serving when new threads
 * fail. Files in a temporary repository stand for models; a version whose file holds "bad" does
 * not load.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type InferencePool,
  type ModelCatalog,
  ModelUnavailableError,
} from "../../src/engine/index.js";
import type {
  ModelLoadReport,
  RunReply,
  WorkerInit,
  WorkerTask,
} from "../../src/inference/messages.js";
import { ModelHost } from "../../src/inference/model-host.js";
import type { SetSize, StartedThreads, Threads } from "../../src/inference/threads.js";

/** One model's fake threads: they answer every run with the version loaded, and record their end. */
class FakeThreads implements Threads {
  ended: "closed" | "destroyed" | undefined;
  readonly runs: string[] = [];
  constructor(
    readonly loaded: ReadonlyMap<string, string>,
    readonly count: number,
    readonly online: number,
  ) {}
  async run(task: WorkerTask): Promise<unknown> {
    if (task.kind !== "run") throw new Error("only runs");
    this.runs.push(task.model);
    const reply: RunReply = {
      output: Float32Array.of(Number(this.loaded.get(task.model)?.replace(/\D/g, "") ?? -1)),
      outputSize: 1,
      outputDims: [1, 1],
      confidence: null,
      inferenceMs: 1,
    };
    return reply;
  }
  async close() {
    this.ended = "closed";
  }
  async destroy() {
    this.ended = "destroyed";
  }
}

const dirs: string[] = [];
const hosts: ModelHost[] = [];

afterEach(async () => {
  for (const host of hosts.splice(0)) await host.destroy();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function repository(models: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "bp-host-"));
  dirs.push(dir);
  write(dir, models);
  return dir;
}

function write(dir: string, models: Record<string, string>): void {
  for (const [name, content] of Object.entries(models)) {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, "model.onnx"), content);
  }
}

/** A host whose thread sets are fake; `failStart` makes the next start throw. */
function host(modelDir: string, onlineThreads?: number) {
  const generations: FakeThreads[] = [];
  const control = { failStart: false };
  const start = async (
    init: WorkerInit,
    size: SetSize,
    created?: (t: Threads) => void,
  ): Promise<StartedThreads> => {
    if (control.failStart) throw new Error("Worker terminated: out of memory\nstack…");
    const loaded = new Map<string, string>();
    const reports: ModelLoadReport[] = init.models.map((model) => {
      const texts = model.versions.map((v) => new TextDecoder().decode(v.bytes));
      const index = texts.findIndex((text) => !text.includes("bad"));
      if (index >= 0) loaded.set(model.name, texts[index] as string);
      return {
        name: model.name,
        ok: index >= 0,
        version: index >= 0 ? index : undefined,
        errors: texts.slice(0, index >= 0 ? index : undefined).map(() => "protobuf parsing failed"),
        provider: "cpu",
        inputs: [{ name: "input", type: "float32", dims: ["batch", 4] }],
        outputs: [{ name: "output", type: "float32", dims: ["batch", 1] }],
      };
    });
    const threads = new FakeThreads(loaded, size.threads, size.online);
    created?.(threads);
    generations.push(threads);
    return { piscina: threads, reports, niceError: undefined };
  };
  const h = new ModelHost({
    modelDir,
    threads: 2,
    init: { executionProviders: ["cpu"], cudaDeviceId: 0, intraOpNumThreads: 1, nice: 0 },
    log: { debug() {}, info() {}, warn() {}, error() {} },
    start,
    ...(onlineThreads === undefined ? {} : { onlineThreads }),
  });
  hosts.push(h);
  return { h, generations, control };
}

const batchOf4 = (model: string) => ({
  model,
  inputs: [{ name: "", datatype: "FP32", dims: [1, 4], data: new Float32Array(4) }] as const,
  named: false,
});
const run = (h: ModelHost, model: string) => h.run(batchOf4(model));

describe("ModelHost", () => {
  it("serves the models its threads loaded and refuses a batch of any other, saying why", async () => {
    const dir = repository({ a: "v1", broken: "bad" });
    const { h } = host(dir);
    expect(await h.reload()).toEqual([
      { name: "a", outcome: "added" },
      { name: "broken", outcome: "failed", reason: "protobuf parsing failed" },
    ]);
    expect((await run(h, "a")).output).toEqual(Float32Array.of(1));
    await expect(run(h, "broken")).rejects.toThrow(ModelUnavailableError);
    await expect(run(h, "missing")).rejects.toThrow(/not in the model repository/);
    expect(h.catalog.list().map((m) => [m.name, m.available])).toEqual([
      ["a", true],
      ["broken", false],
    ]);
  });

  it("starts nothing when nothing changed", async () => {
    const { h, generations } = host(repository({ a: "v1" }));
    await h.reload();
    expect(await h.reload()).toEqual([{ name: "a", outcome: "unchanged" }]);
    expect(generations).toHaveLength(1);
  });

  it("moves traffic to new threads only after their warm-up, and closes the old ones, which finish what they hold", async () => {
    const dir = repository({ a: "v1", b: "v1" });
    const { h, generations } = host(dir);
    await h.reload();
    write(dir, { b: "v22" });
    const warmed: string[] = [];
    const outcomes = await h.reload({
      warmUp: async (pool: InferencePool, models: ModelCatalog) => {
        warmed.push(...models.list().map((m) => m.name));
        // During the warm-up the old threads still serve.
        expect((await run(h, "b")).output).toEqual(Float32Array.of(1));
        expect((await pool.run(batchOf4("b"))).output).toEqual(Float32Array.of(22));
      },
    });
    expect(outcomes).toEqual([
      { name: "a", outcome: "unchanged" },
      { name: "b", outcome: "updated" },
    ]);
    expect(warmed).toEqual(["b"]);
    expect((await run(h, "b")).output).toEqual(Float32Array.of(22));
    // Models without threads of their own share a set: it starts anew, the old one closes.
    expect(generations.map((g) => [[...g.loaded.keys()], g.ended])).toEqual([
      [["a", "b"], "closed"],
      [["a", "b"], undefined],
    ]);
  });

  it("gives a model with an instance_count threads of its own, and loads, reloads and unloads it without touching the others", async () => {
    const dir = repository({ a: "v1", b: "v1", c: "v1", d: "v1" });
    writeFileSync(join(dir, "a", "config.json"), JSON.stringify({ instance_count: 1 }));
    writeFileSync(join(dir, "b", "config.json"), JSON.stringify({ instance_count: 3 }));
    const { h, generations } = host(dir, 1);
    await h.reload();
    const sets = () => generations.map((g) => [[...g.loaded.keys()].join(), g.count, g.ended]);
    // Each set, the shared one and each model's own, starts its online thread beside its own.
    expect(generations.map((g) => g.online)).toEqual([1, 1, 1]);
    expect(sets()).toEqual([
      ["a", 1, undefined],
      ["b", 3, undefined],
      ["c,d", 2, undefined],
    ]);
    expect([h.laneOf("a"), h.laneOf("b"), h.laneOf("c"), h.laneOf("nope")]).toEqual([
      { key: "a", threads: 1 },
      { key: "b", threads: 3 },
      { key: "", threads: 2 },
      undefined,
    ]);
    // Every set's threads: the shared 2, a's 1 and b's 3.
    expect([h.threads, h.allThreads]).toEqual([2, 6]);
    for (const name of ["a", "b", "c", "d"]) await run(h, name);
    expect(generations.map((g) => g.runs)).toEqual([["a"], ["b"], ["c", "d"]]);
    // A change to a's files starts a's threads alone.
    write(dir, { a: "v4" });
    expect(await h.reload()).toEqual([
      { name: "a", outcome: "updated" },
      { name: "b", outcome: "unchanged" },
      { name: "c", outcome: "unchanged" },
      { name: "d", outcome: "unchanged" },
    ]);
    expect((await run(h, "a")).output).toEqual(Float32Array.of(4));
    // Unloading b stops b's threads alone; loading it starts them again.
    expect(await h.unload("b")).toEqual([
      { name: "b", outcome: "removed", reason: "unloaded by an admin; a load serves it again" },
    ]);
    expect(await h.load("b")).toEqual([{ name: "b", outcome: "added" }]);
    expect(sets()).toEqual([
      ["a", 1, "closed"],
      ["b", 3, "closed"],
      ["c,d", 2, undefined],
      ["a", 1, undefined],
      ["b", 3, undefined],
    ]);
    // Unloading a model of the shared set starts that set anew without it.
    await h.unload("d");
    expect(sets().slice(2)).toEqual([
      ["c,d", 2, "closed"],
      ["a", 1, undefined],
      ["b", 3, undefined],
      ["c", 2, undefined],
    ]);
  });

  it("keeps other models serving when one model's threads do not start, and starts the host only if some do", async () => {
    const dir = repository({ a: "v1", b: "v1" });
    const { h, control } = host(dir);
    control.failStart = true;
    await expect(h.reload()).rejects.toThrow(
      /the inference threads did not start: Worker terminated: out of memory$/,
    );
    control.failStart = false;
    await h.reload();
    write(dir, { c: "v1" });
    control.failStart = true;
    expect(await h.reload()).toEqual([
      { name: "a", outcome: "unchanged" },
      { name: "b", outcome: "unchanged" },
      {
        name: "c",
        outcome: "failed",
        reason: "the new inference threads did not start: Worker terminated: out of memory",
      },
    ]);
    expect((await run(h, "a")).output).toEqual(Float32Array.of(1));
    expect(h.catalog.get("c")).toMatchObject({ available: false });
  });

  it("keeps serving the loaded version when the new files do not load, and says why in the catalog", async () => {
    const dir = repository({ a: "v1" });
    const { h } = host(dir);
    await h.reload();
    write(dir, { a: "bad!" });
    expect(await h.reload()).toEqual([
      { name: "a", outcome: "failed", reason: "protobuf parsing failed" },
    ]);
    expect((await run(h, "a")).output).toEqual(Float32Array.of(1));
    expect(h.catalog.get("a")).toMatchObject({
      available: true,
      reloadError: "protobuf parsing failed",
    });
  });

  it("keeps every model serving when the new threads do not start, and tries the files again next time", async () => {
    const dir = repository({ a: "v1" });
    const { h, generations, control } = host(dir);
    await h.reload();
    write(dir, { a: "v333" });
    control.failStart = true;
    expect(await h.reload()).toEqual([
      {
        name: "a",
        outcome: "failed",
        reason: "the new inference threads did not start: Worker terminated: out of memory",
      },
    ]);
    expect((await run(h, "a")).output).toEqual(Float32Array.of(1));
    control.failStart = false;
    expect(await h.reload({ retryFailed: false })).toEqual([{ name: "a", outcome: "updated" }]);
    expect(generations).toHaveLength(2);
  });

  it("unloads a model removed from the repository", async () => {
    const dir = repository({ a: "v1", b: "v1" });
    const { h } = host(dir);
    await h.reload();
    rmSync(join(dir, "b"), { recursive: true });
    expect(await h.reload()).toEqual([
      { name: "a", outcome: "unchanged" },
      { name: "b", outcome: "removed" },
    ]);
    await expect(run(h, "b")).rejects.toThrow(ModelUnavailableError);
  });

  it("runs reloads one at a time, and refuses one once closed", async () => {
    const dir = repository({ a: "v1" });
    const { h, generations } = host(dir);
    const [first, second] = await Promise.all([h.reload(), h.reload()]);
    expect(first).toEqual([{ name: "a", outcome: "added" }]);
    expect(second).toEqual([{ name: "a", outcome: "unchanged" }]);
    expect(generations).toHaveLength(1);
    await h.close();
    expect(generations[0]?.ended).toBe("closed");
    await expect(h.reload()).rejects.toThrow(/closed/);
  });

  it("loads one model alone, leaving the others' new files unread, and unloads one until it is loaded again", async () => {
    const dir = repository({ a: "v1", b: "v1" });
    const { h } = host(dir);
    await h.reload();
    write(dir, { a: "v33", b: "v22" });
    expect(await h.load("b")).toEqual([{ name: "b", outcome: "updated" }]);
    expect((await run(h, "a")).output).toEqual(Float32Array.of(1));
    expect((await run(h, "b")).output).toEqual(Float32Array.of(22));
    expect(await h.load("nope")).toEqual([]);
    const unloaded = await h.unload("a");
    expect(unloaded).toEqual([
      { name: "a", outcome: "removed", reason: "unloaded by an admin; a load serves it again" },
    ]);
    await expect(run(h, "a")).rejects.toThrow(/unloaded by an admin/);
    expect(h.catalog.get("a")).toMatchObject({ available: false });
    // A reload leaves it out, though its files changed; a load brings it back.
    expect(await h.reload()).toEqual([{ name: "b", outcome: "unchanged" }]);
    await expect(run(h, "a")).rejects.toThrow(/unloaded by an admin/);
    expect(h.catalog.list().map((m) => m.name)).toEqual(["a", "b"]);
    expect(await h.load("a")).toEqual([{ name: "a", outcome: "added" }]);
    expect((await run(h, "a")).output).toEqual(Float32Array.of(33));
    expect(await h.unload("nope")).toEqual([]);
  });
});
