/**
 * The v1 API's own example clients (`test/fixtures/v1-clients/`, copied from the specification as
 * written) against this server: the blocking one (`requests`, polling status) and the asyncio
 * one (`aiohttp`, five batches at once), on Debian's python3. The only changes are the harness's:
 * the base URL points at the test server (the clients' default is localhost:8000), the server
 * takes their default key, and the asyncio example's commented-out run line is run.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const CLIENTS = fileURLToPath(new URL("../fixtures/v1-clients/", import.meta.url));
/** The key the v1 examples send. */
const THEIR_KEY = "your-api-key";
let repo: TestModelRepo;
let server: RunningServer;
let work: string;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  server = await startTestServer(repo.dir, { API_KEYS: THEIR_KEY });
  work = mkdtempSync(join(tmpdir(), "bp-v1-clients-"));
});

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** Runs a v1 client with its base URL pointed at the test server; `extra` is appended. */
function runClient(file: string, extra = ""): Promise<{ code: number | null; out: string }> {
  const source = readFileSync(join(CLIENTS, file), "utf8").replaceAll(
    "http://localhost:8000",
    `http://127.0.0.1:${server.apiPort}`,
  );
  const path = join(work, file);
  writeFileSync(path, source + extra);
  const child: ChildProcess = spawn("/usr/bin/python3", [path]);
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out })));
}

describe("the v1 API's example clients, unedited", () => {
  it("the blocking client submits, polls the status to completed and reads the results", async () => {
    const { code, out } = await runClient("sync_client.py");
    expect(code, out).toBe(0);
    expect(out).toMatch(/^Submitted batch: batch_\w+$/m);
    expect(out).toContain("Batch completed successfully");
    expect(out).toContain("Results: 3 items processed");
  });

  it("the asyncio client submits five batches at once and reads each one's results", async () => {
    const { code, out } = await runClient("async_client.py", "\nasyncio.run(main())\n");
    expect(code, out).toBe(0);
    expect(out).toContain("Submitted 5 batches");
    expect(out).toContain("Processed 5 batches");
    for (let i = 0; i < 5; i++) expect(out).toContain(`Batch ${i}: 10 items processed`);
  });
});
