/**
 * The Python package (`clients/python`) installed as a user installs it, `pip install` into a fresh
 * venv on Debian's python3 with its grpcio and protobuf and nothing from PyPI, then run against a
 * real server with the blocking and the asyncio client: batches, watch, results, named inputs,
 * errors as exceptions with the gRPC code, and jobs from a file and from an iterable. Its stubs
 * must be what `generate.sh` writes from `proto/` now.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { runCommand } from "../fixtures/commands.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const PACKAGE = fileURLToPath(new URL("../../clients/python/", import.meta.url));
const KEY = "python-client-key";
let repo: TestModelRepo;
let server: RunningServer;
let work: string;

const run = (command: string, args: string[], env: Record<string, string> = {}) =>
  runCommand(command, args, { env });

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  server = await startTestServer(repo.dir, { API_KEYS: KEY });
  work = mkdtempSync(join(tmpdir(), "bp-python-client-"));
});

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** Every file under `dir`, relative, with its text. */
function filesOf(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true }))
    if (entry.isFile() && !entry.name.endsWith(".pyc")) {
      const path = join(entry.parentPath, entry.name);
      out.set(path.slice(dir.length), readFileSync(path, "utf8"));
    }
  return out;
}

describe("the Python client package", () => {
  it("carries the stubs generate.sh writes from proto/ now", async () => {
    const fresh = join(work, "gen");
    const generated = await run(join(PACKAGE, "generate.sh"), [fresh]);
    expect(generated.code, generated.err).toBe(0);
    expect(filesOf(fresh)).toEqual(filesOf(join(PACKAGE, "batch_processor_client", "_gen")));
  });

  it("installs with pip from Debian's grpcio and protobuf alone, and runs every call family, blocking and asyncio", async () => {
    const venv = join(work, "venv");
    const made = await run("/usr/bin/python3", ["-m", "venv", "--system-site-packages", venv]);
    expect(made.code, made.err).toBe(0);
    // A copy: pip builds in the folder it installs from, and the checkout stays clean.
    const source = join(work, "package");
    cpSync(PACKAGE, source, { recursive: true });
    const pip = await run(join(venv, "bin", "pip"), [
      "install",
      "--no-index",
      "--no-build-isolation",
      "--quiet",
      source,
    ]);
    expect(pip.code, pip.err).toBe(0);
    const smoke = await run(join(venv, "bin", "python"), [join(source, "tests", "smoke.py")], {
      BATCH_PROCESSOR_GRPC: `127.0.0.1:${server.grpcPort}`,
      BATCH_PROCESSOR_API_KEY: KEY,
      PYTHONPATH: "",
    });
    expect(smoke.code, smoke.err).toBe(0);
    const report = JSON.parse(smoke.out) as {
      blocking: Record<string, unknown>;
      asyncio: Record<string, unknown>;
    };
    const { blocking, asyncio } = report;
    expect(blocking.models).toContain("default");
    expect((blocking.statuses as string[]).at(-1)).toBe("completed");
    expect(blocking.results).toEqual([
      ["req_1", 3, expect.stringMatching(/^class_\d$/)],
      ["x", 3, expect.stringMatching(/^class_\d$/)],
    ]);
    expect(Object.keys(blocking.named as object)).toEqual(["probabilities"]);
    expect((blocking.named as Record<string, number[]>).probabilities).toHaveLength(3);
    expect(blocking.error).toEqual(["NOT_FOUND", 'batch "no-such-batch" not found']);
    expect(blocking.version_error).toEqual([
      true,
      'metadata.model_version: model "default" has no version "9"; it serves version "1"',
    ]);
    expect(blocking.job_ends).toBe("completed");
    expect(blocking.job_lines).toEqual([2500, 1, 2500, "line-2499"]);
    expect((asyncio.statuses as string[]).at(-1)).toBe("completed");
    expect(asyncio.results).toBe(2);
    expect(asyncio.job_ends).toBe("completed");
    expect(asyncio.job_lines).toBe(300);
    expect(asyncio.error).toBe("NOT_FOUND");
    // A wheel built here installs the same way (python3 -m pip install <wheel>).
    const wheels = join(work, "wheels");
    const built = await run(join(venv, "bin", "pip"), [
      "wheel",
      "--no-deps",
      "--no-index",
      "--no-build-isolation",
      "--quiet",
      "--wheel-dir",
      wheels,
      source,
    ]);
    expect(built.code, built.err).toBe(0);
    const [wheel] = readdirSync(wheels);
    expect(wheel).toMatch(/^batch_processor_client-0\.1\.0-py3-none-any\.whl$/);
    const other = join(work, "venv-wheel");
    await run("/usr/bin/python3", ["-m", "venv", "--system-site-packages", other]);
    const fromWheel = await run(join(other, "bin", "python"), [
      "-m",
      "pip",
      "install",
      "--no-index",
      "--quiet",
      join(wheels, wheel as string),
    ]);
    expect(fromWheel.code, fromWheel.err).toBe(0);
    const imported = await run(join(other, "bin", "python"), [
      "-c",
      "from batch_processor_client import Client, AsyncClient, BatchProcessorError; from batch_processor_client.messages import pb; print(pb.Item(input=[1.0]).input[0])",
    ]);
    expect(imported).toMatchObject({ code: 0, out: "1.0\n" });
  });
});
