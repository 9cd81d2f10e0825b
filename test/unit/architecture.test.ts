/**
 * The directions imports may take in src/, read from the source: the engine free of transports
 * and runtimes, its rooms layered, metrics free of the API, configuration free of
 * implementations, the implementations free of what sits above them, every subsystem reached
 * through its face, and no cycles.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

interface Import {
  /** The importing file, relative to src/ (`engine/jobs/job.ts`). */
  readonly file: string;
  readonly specifier: string;
  /** The imported file relative to src/, for a relative specifier inside src/. */
  readonly target: string | undefined;
}

function sources(dir: string): string[] {
  return readdirSync(join(SRC, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** `import … from "x"`, `export … from "x"`, `import "x"` and `import("x")`. */
const IMPORT =
  /^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"|^\s*import\s+"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/gms;

function importsOf(file: string): Import[] {
  const text = readFileSync(join(SRC, file), "utf8");
  return [...text.matchAll(IMPORT)].map((match) => {
    const specifier = (match[1] ?? match[2] ?? match[3]) as string;
    if (!specifier.startsWith(".")) return { file, specifier, target: undefined };
    const path = relative(SRC, resolve(join(SRC, dirname(file)), specifier)).replace(
      /\.js$/,
      ".ts",
    );
    return { file, specifier, target: path.startsWith("..") ? undefined : path };
  });
}

const ALL = sources("").flatMap(importsOf);
const under = (dir: string) => (path: string | undefined) => path?.startsWith(`${dir}/`) === true;
const from = (dir: string) => ALL.filter((i) => under(dir)(i.file));
const show = (imports: readonly Import[]) => imports.map((i) => `${i.file} -> ${i.specifier}`);

describe("architecture", () => {
  it("reads a real import graph", () => {
    expect(ALL.length).toBeGreaterThan(300);
    expect(from("engine").length).toBeGreaterThan(50);
  });

  it("keeps engine/ free of transports, runtimes, stores, threads and generated code", () => {
    const runtime =
      /^(@connectrpc\/|@grpc\/|@bufbuild\/|onnxruntime-|piscina$|better-sqlite3$|bullmq$|ioredis$|ws$|pino$|prom-client$|node:(http|http2|https|net|fs|worker_threads|child_process)$)/;
    const offenders = from("engine").filter(
      (i) =>
        runtime.test(i.specifier) || (i.specifier.startsWith(".") && !under("engine")(i.target)),
    );
    expect(show(offenders)).toEqual([]);
  });

  it("layers the engine's rooms: scheduling, then jobs, then placement, then bulk, then the facade", () => {
    const order = ["scheduling", "jobs", "placement", "bulk"];
    const roomOf = (path: string | undefined) =>
      order.findIndex((room) => under(`engine/${room}`)(path));
    const offenders = from("engine").filter((i) => {
      const source = roomOf(i.file);
      const target = roomOf(i.target);
      if (target === -1) return false;
      // A room reaches a lower room only through that room's face.
      const throughFace = i.target === `engine/${order[target]}/index.ts`;
      if (source === target) return false;
      if (source === -1) return !throughFace || !isFacadeSide(i.file);
      return target > source || !throughFace;
    });
    expect(show(offenders)).toEqual([]);
  });

  it("keeps metrics/ free of the API, the service and the wire", () => {
    const offenders = from("metrics").filter((i) =>
      ["api", "service", "wire", "cli", "client"].some((dir) => under(dir)(i.target)),
    );
    expect(show(offenders)).toEqual([]);
  });

  it("keeps the wire below the transports: wire/ imports no API, service or metrics", () => {
    const offenders = from("wire").filter((i) =>
      ["api", "service", "metrics", "cli", "client", "store", "cluster", "inference"].some((dir) =>
        under(dir)(i.target),
      ),
    );
    expect(show(offenders)).toEqual([]);
  });

  it("keeps config/ free of implementations", () => {
    const implementations = ["api", "service", "wire", "store", "cluster", "inference", "metrics"];
    const offenders = from("config").filter((i) =>
      implementations.some((dir) => under(dir)(i.target)),
    );
    expect(show(offenders)).toEqual([]);
  });

  it("lets the stores, inference and the cluster depend on the engine, never on what uses them", () => {
    const above = ["api", "service", "wire", "cli", "client"];
    const offenders = [...from("store"), ...from("inference"), ...from("cluster")].filter(
      (i) =>
        above.some((dir) => under(dir)(i.target)) ||
        // Configuration reaches them as plain options; only the bounds are shared constants.
        (under("config")(i.target) && i.target !== "config/bounds.ts"),
    );
    expect(show(offenders)).toEqual([]);
  });

  it("reaches the engine from outside only through its face, engine/index.ts", () => {
    const offenders = ALL.filter(
      (i) =>
        !under("engine")(i.file) && under("engine")(i.target) && i.target !== "engine/index.ts",
    );
    expect(show(offenders)).toEqual([]);
  });

  it("has no import cycles", () => {
    const edges = new Map<string, string[]>();
    for (const i of ALL)
      if (i.target !== undefined) edges.set(i.file, [...(edges.get(i.file) ?? []), i.target]);
    const state = new Map<string, "open" | "done">();
    const cycles: string[] = [];
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "open") {
        cycles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
        return;
      }
      state.set(file, "open");
      for (const next of edges.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, "done");
    };
    for (const file of edges.keys()) visit(file, []);
    expect(cycles).toEqual([]);
  });
});

/** Files of the engine outside its rooms that may use them: the facade and the face. */
function isFacadeSide(file: string): boolean {
  return [
    "engine/batch-lookup.ts",
    "engine/batch-processor.ts",
    "engine/index.ts",
    "engine/processor-options.ts",
    "engine/processor-rooms.ts",
  ].includes(file);
}
