/**
 * Every example in examples/ run as a user runs it, against a real server: curl, Python over
 * REST (requests, and asyncio with aiohttp), Node over REST, Python over gRPC with stubs
 * generated from proto/, and the TypeScript client. Python is Debian's /usr/bin/python3 (with
 * python3-requests, -aiohttp, -grpcio; .ci/run installs them).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const EXAMPLES = `${ROOT}examples/`;
const PYTHON = "/usr/bin/python3";
const KEY = "example-key";
/** The TypeScript example bundled with its package import pointed at this checkout's source. */
const TS_BUNDLE = `${ROOT}.tmp/examples-test-${process.pid}/typescript_client.mjs`;

let repo: TestModelRepo;
let server: RunningServer;

beforeAll(async () => {
  repo = createTestModelRepo();
  server = await startTestServer(repo.dir, { API_KEYS: KEY });
  await build({
    entryPoints: [`${EXAMPLES}typescript_client.ts`],
    outfile: TS_BUNDLE,
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    alias: { "batch-processor/client": `${ROOT}src/client/index.ts` },
    logLevel: "silent",
  });
});

afterAll(async () => {
  await server.close();
  repo.cleanup();
  rmSync(dirname(TS_BUNDLE), { recursive: true, force: true });
});

/** Runs a command (spawned: the server runs in this process) with the examples' environment. */
function run(command: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const child: ChildProcess = spawn(command, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      BATCH_PROCESSOR_URL: `http://127.0.0.1:${server.apiPort}`,
      BATCH_PROCESSOR_GRPC: `127.0.0.1:${server.grpcPort}`,
      API_KEY: KEY,
    },
  });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, out })));
}

/** Lines like `<request id> class_<k> <confidence>`. */
const resultLines = (out: string) =>
  out.split("\n").filter((line) => /^\S+ class_\d \d\.\d+$/.test(line));

describe("the examples", () => {
  it("curl.sh", async () => {
    const { code, out } = await run("bash", [`${EXAMPLES}curl.sh`]);
    expect(out).toMatch(/^submitted batch_/);
    expect(code).toBe(0);
    expect(out).toContain("completed 3/3");
    expect(resultLines(out).map((l) => l.split(" ")[0])).toEqual(["req_1", "req_2", "req_3"]);
  });

  it("python_rest.py (requests)", async () => {
    const { code, out } = await run(PYTHON, [`${EXAMPLES}python_rest.py`]);
    expect(out).toContain("completed 10 items");
    expect(code).toBe(0);
    expect(resultLines(out).map((l) => l.split(" ")[0])).toEqual(
      Array.from({ length: 10 }, (_, i) => `item-${i}`),
    );
  });

  it("python_asyncio.py (aiohttp)", async () => {
    const { code, out } = await run(PYTHON, [`${EXAMPLES}python_asyncio.py`]);
    expect(code).toBe(0);
    const lines = out.trim().split("\n");
    expect(lines.map((l) => l.split(" ").slice(1).join(" "))).toEqual(
      ["critical", "high", "normal", "low"].map((p) => `${p} completed 5 items`),
    );
  });

  it("node_rest.mjs", async () => {
    const { code, out } = await run(process.execPath, [`${EXAMPLES}node_rest.mjs`]);
    expect(code).toBe(0);
    expect(out).toContain("completed 2/2");
    expect(resultLines(out)).toHaveLength(2);
  });

  it("python_grpc/client.py with stubs generated from proto/", async () => {
    const generated = await run("bash", [`${EXAMPLES}python_grpc/generate.sh`]);
    expect(generated.out).toContain("stubs in examples/python_grpc/gen");
    expect(generated.code).toBe(0);
    const { code, out } = await run(PYTHON, [`${EXAMPLES}python_grpc/client.py`]);
    expect(out).toContain("unknown batch: NOT_FOUND");
    expect(code).toBe(0);
    expect(out).toContain("completed 4/4");
    expect(resultLines(out).map((l) => l.split(" ")[0])).toEqual([
      "item-0",
      "item-1",
      "item-2",
      "item-3",
    ]);
  });

  it("python_v2/client.py: the Open Inference Protocol with stubs generated from proto/inference", async () => {
    const generated = await run("bash", [`${EXAMPLES}python_v2/generate.sh`]);
    expect(generated.out).toContain("stubs in examples/python_v2/gen");
    expect(generated.code).toBe(0);
    const { code, out } = await run(PYTHON, [`${EXAMPLES}python_v2/client.py`]);
    expect(out).toContain("server batch-processor");
    expect(out).toContain("model default ready: True");
    expect(out).toMatch(/input \S+ FP32 \[-1, -1\]/);
    expect(out.match(/^item-\d \[/gm)).toHaveLength(3);
    expect(out).toContain("raw bytes give the same outputs: True");
    expect(out).toContain("unknown model: NOT_FOUND");
    expect(code).toBe(0);
  });

  it("typescript_client.ts (batch-processor/client)", async () => {
    const { code, out } = await run(process.execPath, [TS_BUNDLE]);
    expect(out).toContain("completed 3/3");
    expect(code).toBe(0);
    expect(resultLines(out)).toHaveLength(3);
    expect(out).toContain("models: default");
  });
});
