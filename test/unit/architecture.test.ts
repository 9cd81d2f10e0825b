import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

function importsOf(dir: string): { file: string; specifier: string }[] {
  const out: { file: string; specifier: string }[] = [];
  for (const entry of readdirSync(join(SRC, dir), { withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".ts")) continue;
    const text = readFileSync(join(SRC, dir, entry.name), "utf8");
    for (const match of text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gms)) {
      out.push({ file: `${dir}/${entry.name}`, specifier: match[1] as string });
    }
  }
  return out;
}

describe("architecture", () => {
  it("keeps engine/ free of transports, runtimes, threads and generated code", () => {
    const forbidden =
      /^(@connectrpc\/|@grpc\/|onnxruntime-|piscina$|better-sqlite3$|node:http|node:worker_threads$|node:fs|\.\.\/)/;
    const imports = importsOf("engine");
    expect(imports.length).toBeGreaterThan(20);
    const offenders = imports.filter((i) => forbidden.test(i.specifier));
    expect(offenders).toEqual([]);
  });

  it("lets the store and inference layers depend on the engine, never the reverse", () => {
    const upward = [...importsOf("store"), ...importsOf("inference")].filter((i) =>
      /\.\.\/(config|cli)/.test(i.specifier),
    );
    expect(upward).toEqual([]);
  });
});
