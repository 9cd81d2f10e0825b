/**
 * The CLI against a real server, as a user runs it: a 5,000-line JSONL file submitted as one job,
 * watched to the end (plain lines in a pipe, bars on a terminal), its results written in input
 * order; the jobs commands, with a watch resumed after Ctrl-C; the other commands over Connect
 * and gRPC; errors.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const SOURCE = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));
/** The CLI bundled once (tsx would compile it anew in every run), beside node_modules. */
const CLI = fileURLToPath(new URL(`../../.tmp/cli-test-${process.pid}/cli.mjs`, import.meta.url));
const KEY = "cli-key";

let repo: TestModelRepo;
let server: RunningServer;
let dir: string;

beforeAll(async () => {
  await build({
    entryPoints: [SOURCE],
    outfile: CLI,
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    logLevel: "silent",
  });
  repo = createTestModelRepo({ dense: true, log: true });
  server = await startTestServer(repo.dir, { API_KEYS: KEY, INFERENCE_THREADS: "2" });
  dir = mkdtempSync(join(tmpdir(), "bp-cli-"));
});

afterAll(async () => {
  await server.close();
  repo.cleanup();
  rmSync(dir, { recursive: true, force: true });
  rmSync(dirname(CLI), { recursive: true, force: true });
});

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: string[], options: { input?: string; url?: string } = {}): Promise<Ran> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: {
      ...process.env,
      BATCH_PROCESSOR_URL: options.url ?? `http://127.0.0.1:${server.apiPort}`,
      BATCH_PROCESSOR_API_KEY: KEY,
    },
  });
  child.stdin.end(options.input ?? "");
  return collect(child);
}

function collect(child: ChildProcess): Promise<Ran> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

/** A JSONL file of `n` items of the default model, each named by its line. */
function jsonl(name: string, n: number): string {
  const file = join(dir, name);
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ input: [i % 7, 1, 2, 3], request_id: `line-${i + 1}` }),
  );
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

describe("the batch-processor CLI", () => {
  it("submits 5,000 lines as one job, watches it end and writes the results in order", async () => {
    const file = jsonl("five-thousand.jsonl", 5000);
    const out = join(dir, "results.jsonl");
    const ran = await cli(["submit", file, "--watch", "-o", out, "--priority", "high"]);
    expect(ran.stderr).toContain(
      "5000 items are more than one batch (1000): submitting them as one job",
    );
    expect(ran.code).toBe(0);
    const jobId = /job (\S+): 5000 lines stored \(0 invalid\)/.exec(ran.stdout)?.[1];
    expect(jobId).toBeDefined();
    // Plain lines when stdout is not a terminal: no control codes, the last one at 100 %.
    expect(ran.stdout).not.toContain("\u001b[");
    expect(ran.stdout).toContain("5000/5000 items (100 %), 0 failed");
    expect(ran.stdout).toContain(
      `completed: 5000 completed, 0 failed, 0 invalid of 5000 lines; results in ${out}`,
    );
    const results = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { line: number; id: string; output: number[] });
    expect(results.map((r) => r.id)).toEqual(
      Array.from({ length: 5000 }, (_, i) => `line-${i + 1}`),
    );
    expect(results.map((r) => r.line)).toEqual(Array.from({ length: 5000 }, (_, i) => i + 1));
    for (const r of results) expect(r.output.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    // The job is readable by the jobs commands, over gRPC too.
    const status = await cli(["jobs", "status", jobId as string], {
      url: `grpc://127.0.0.1:${server.grpcPort}`,
    });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      job_id: jobId,
      status: "completed",
      priority: "high",
      counts: { total: 5000, completed: 5000 },
    });
  });

  it("streams a JSONL file as a job with jobs submit: bars on a terminal, bad lines named", async () => {
    const file = jsonl("job.jsonl", 3000);
    writeFileSync(file, `${readFileSync(file, "utf8")}{"input": [1, "x"]}\n`);
    const out = join(dir, "job-results.jsonl");
    const command = [
      process.execPath,
      CLI,
      "jobs",
      "submit",
      file,
      "--watch",
      "-o",
      out,
      "--job-id",
      "cli-job",
    ]
      .map((part) => `'${part}'`)
      .join(" ");
    const ran = await collect(
      spawn("script", ["-qfec", command, "/dev/null"], {
        env: {
          ...process.env,
          BATCH_PROCESSOR_URL: `http://127.0.0.1:${server.apiPort}`,
          BATCH_PROCESSOR_API_KEY: KEY,
        },
      }),
    );
    expect(ran.code).toBe(1);
    expect(ran.stdout).toMatch(/upload .*\u2588+.*bytes/);
    expect(ran.stdout).toContain("100% | 3001/3001 items | 1 failed");
    expect(ran.stdout).toContain("completed: 3000 completed, 0 failed, 1 invalid of 3001 lines");
    const lines = readFileSync(out, "utf8").trim().split("\n");
    expect(lines).toHaveLength(3001);
    expect(JSON.parse(lines[3000] as string)).toEqual({
      line: 3001,
      error: {
        code: "INVALID_ARGUMENT",
        message: 'line 3001: input[1]: expected a finite number, got "x"',
      },
    });
    const list = await cli(["jobs", "list", "--status", "completed"]);
    expect(list.stdout).toContain('"job_id":"cli-job"');
    const from = await cli(["jobs", "results", "cli-job", "--from-line", "2999"]);
    expect(
      from.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).line),
    ).toEqual([2999, 3000, 3001]);
    const cancel = await cli(["jobs", "cancel", "cli-job"]);
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toMatch(/^error: failed_precondition: job "cli-job" has already ended/);
  });

  it("draws a bar on a terminal", async () => {
    const file = jsonl("bar.jsonl", 1500);
    const command = [process.execPath, CLI, "submit", file, "--watch"]
      .map((part) => `'${part}'`)
      .join(" ");
    // `script` gives the CLI a pseudo-terminal for stdout (spawned: the server runs in this process).
    const ran = await collect(
      spawn("script", ["-qfec", command, "/dev/null"], {
        env: {
          ...process.env,
          BATCH_PROCESSOR_URL: `http://127.0.0.1:${server.apiPort}`,
          BATCH_PROCESSOR_API_KEY: KEY,
        },
      }),
    );
    expect(ran.code).toBe(0);
    const output = ran.stdout;
    expect(output).toMatch(/\u2588+/); // the bar's filled part
    expect(output).toContain("100% | 1500/1500 items | 0 failed");
    expect(output).toContain("completed: 1500 completed, 0 failed, 0 invalid of 1500 lines");
  });

  it("prints models and batches as tables on a terminal, JSON with --json, from the one-file bundle", async () => {
    // The bundle `npm run build` writes as the package's bin, here into a folder of the test's.
    const bundle = join(dir, "batch-processor.mjs");
    const bundled = await collect(
      spawn(process.execPath, [
        fileURLToPath(new URL("../../scripts/bundle-cli.mjs", import.meta.url)),
        bundle,
      ]),
    );
    expect(bundled.code, bundled.stderr).toBe(0);
    const onTerminal = async (args: string[]) => {
      const command = [process.execPath, bundle, ...args].map((part) => `'${part}'`).join(" ");
      return collect(
        spawn("script", ["-qfec", command, "/dev/null"], {
          env: {
            ...process.env,
            BATCH_PROCESSOR_URL: `http://127.0.0.1:${server.apiPort}`,
            BATCH_PROCESSOR_API_KEY: KEY,
          },
        }),
      );
    };
    const models = await onTerminal(["models"]);
    expect(models.code).toBe(0);
    expect(models.stdout).toMatch(/^MODEL\s+VERSION\s+STATE\s+INPUTS\s+OUTPUTS\s+PROVIDER/m);
    expect(models.stdout).toMatch(/^default\s+-\s+ready\s+input FP32\[-1,-1\]/m);
    const list = await onTerminal(["list", "--limit", "5"]);
    expect(list.stdout).toMatch(
      /^BATCH\s+STATUS\s+PROGRESS\s+ITEMS\s+FAILED\s+PRIORITY\s+MODEL\s+CREATED/m,
    );
    const json = await onTerminal(["models", "--json"]);
    expect(JSON.parse(json.stdout.split("\n")[0] as string)).toMatchObject({ name: "default" });
  });

  it("answers the other commands, over Connect and gRPC", async () => {
    for (const url of [
      `http://127.0.0.1:${server.apiPort}`,
      `grpc://127.0.0.1:${server.grpcPort}`,
    ]) {
      const infer = await cli(["infer", "[1,2,3]", '{"input":[4,5,6],"request_id":"x"}'], { url });
      expect(infer.code).toBe(0);
      // An item that fails (the log of a negative number is not a number): every result is
      // printed, and the exit status says that one failed.
      const failing = await cli(["infer", "--model", "log", "[1]", "[-1]"], { url });
      expect(failing.code).toBe(1);
      expect(JSON.parse(failing.stdout).results).toHaveLength(2);
      expect(failing.stderr).toMatch(/^1 of 2 items failed; first: \S+/);
      const answer = JSON.parse(infer.stdout) as {
        status: string;
        results: { request_id: string }[];
      };
      expect(answer.status).toBe("completed");
      expect(answer.results.map((r) => r.request_id)).toEqual(["req_1", "x"]);
      const models = await cli(["models"], { url });
      expect(models.stdout).toContain('"name":"default"');
      // Items by name, answered by name; a version the model does not serve is refused.
      const named = await cli(
        ["infer", "--model", "log", "--model-version", "1", '{"inputs":{"input":{"values":[1]}}}'],
        { url },
      );
      expect(named.code).toBe(0);
      expect(JSON.parse(named.stdout).results[0].outputs).toEqual({
        log: { datatype: "FP32", shape: [1], values: [0], strings: [] },
      });
      const noVersion = await cli(["infer", "--model-version", "2", "[1]"], { url });
      expect(noVersion.code).toBe(1);
      expect(noVersion.stderr).toMatch(
        /metadata\.model_version: model "default" has no version "2"/,
      );
      // The rest go the same way on both protocols: once, over Connect.
      if (url.startsWith("grpc")) continue;
      const fromStdin = await cli(["infer", "--model", "default"], {
        url,
        input: "[1,2]\n[3,4]\n",
      });
      expect(JSON.parse(fromStdin.stdout).results).toHaveLength(2);
      const config = await cli(["config"], { url });
      const size = (JSON.parse(config.stdout) as { max_batch_size: number }).max_batch_size;
      expect(size).toBeGreaterThan(0);
      // Configure (this server's one key is an admin's): the effective configuration comes back.
      const configured = await cli(["configure", JSON.stringify({ max_batch_size: size })], {
        url,
      });
      expect(configured.code, configured.stderr).toBe(0);
      expect(JSON.parse(configured.stdout)).toMatchObject({ max_batch_size: size });
      const badConfigure = await cli(["configure", "{nope"], { url });
      expect(badConfigure.code).toBe(2);
      expect(badConfigure.stderr).toMatch(/^configure: not JSON/);
      const refusedConfigure = await cli(["configure", '{"max_batch_size": 0}'], { url });
      expect(refusedConfigure.code).toBe(1);
      expect(refusedConfigure.stderr).toMatch(/^error: invalid_argument: max_batch_size/);
      const metrics = await cli(["metrics"], { url });
      expect(JSON.parse(metrics.stdout)).toHaveProperty("current_stats");
      const reloaded = await cli(["reload-models"], { url });
      expect(reloaded.code).toBe(0);
      expect(JSON.parse(reloaded.stdout).changes).toContainEqual({
        name: "default",
        outcome: "unchanged",
      });
      const submitted = await cli(["submit", "-", "--watch"], { url, input: "[1,2,3]\n" });
      expect(submitted.code).toBe(0);
      const batch_id = /submitted 1 items as batch (\S+)/.exec(submitted.stdout)?.[1];
      const list = await cli(["list", "--limit", "100"], { url });
      expect(list.stdout).toContain(batch_id);
      const results = await cli(["results", batch_id as string], { url });
      expect(results.code).toBe(0);
      expect(JSON.parse(results.stdout)).toMatchObject({
        batch_id,
        request_id: "req_1",
        label: expect.stringMatching(/^class_\d$/),
      });
      const status = await cli(["status", batch_id as string], { url });
      expect(JSON.parse(status.stdout)).toMatchObject({ batch_id, status: "completed" });
      // It has ended: the server refuses the cancel, and the CLI says why.
      const cancel = await cli(["cancel", batch_id as string], { url });
      expect(cancel.code).toBe(1);
      expect(cancel.stderr).toMatch(/^error: failed_precondition: /);
    }
  });

  it("prints the server's error and exits non-zero; a bad command line exits 2", async () => {
    const missing = await cli(["status", "no-such-batch"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: not_found: /);
    const invalid = await cli(["infer", '{"input":"nope"}']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('"input" must be an array of numbers');
    const badItem = await cli(["infer", "--priority", "urgent", "[1]"]);
    expect(badItem.code).toBe(1);
    expect(badItem.stderr).toMatch(/^error: invalid_argument: priority: /);
    const tooLong = await cli(["infer", "--timeout-ms", "999999999999", "[1]"]);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toContain("--timeout-ms must be a whole number up to 4294967295");
    const wrongKey = await cli(["models", "--api-key", "wrong"]);
    expect(wrongKey.stderr).toMatch(/^error: unauthenticated: /);
    const usage = await cli(["submit"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("submit needs a file");
    const unknown = await cli(["status", "--nope"]);
    expect(unknown.code).toBe(2);
  });

  it("leaves the job running on Ctrl-C, and the command it prints picks up where it stopped", async () => {
    // Slow the server down so that the run is still going when the user interrupts it.
    const admin = { "x-api-key": KEY, "content-type": "application/json" };
    await fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor/configure`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ max_batch_size: 1, enable_dynamic_batching: false }),
    });
    const LINES = 20_000;
    try {
      const file = join(dir, "dense.jsonl");
      writeFileSync(
        file,
        Array.from({ length: LINES }, (_, i) => JSON.stringify(Array(256).fill(i % 3))).join("\n"),
      );
      const out = join(dir, "dense-results.jsonl");
      const env = {
        ...process.env,
        BATCH_PROCESSOR_URL: `http://127.0.0.1:${server.apiPort}`,
        BATCH_PROCESSOR_API_KEY: KEY,
      };
      const child = spawn(
        process.execPath,
        [CLI, "jobs", "submit", file, "--watch", "--model", "dense", "-o", out],
        { env },
      );
      const ran = collect(child);
      let seen = "";
      await new Promise<void>((resolve) =>
        child.stdout?.on("data", (c: Buffer) => {
          seen += c.toString();
          if (/\d+\/\d+ items \(/.test(seen)) resolve();
        }),
      );
      child.kill("SIGINT");
      const { code, stdout } = await ran;
      expect(code).toBe(130);
      const resume = /resume with: (batch-processor jobs watch (\S+) -o (\S+))/.exec(stdout);
      expect(resume?.[3]).toBe(out);
      const jobId = resume?.[2] as string;
      const status = await fetch(
        `http://127.0.0.1:${server.apiPort}/api/batch-processor/jobs/${jobId}`,
        {
          headers: admin,
        },
      );
      expect(((await status.json()) as { status: string }).status).toBe("running");
      await fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor/configure`, {
        method: "POST",
        headers: admin,
        body: JSON.stringify({ max_batch_size: 64, enable_dynamic_batching: true }),
      });
      const resumed = await cli(["jobs", "watch", jobId, "-o", out]);
      expect(resumed.code).toBe(0);
      const lines = readFileSync(out, "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { line: number }).line);
      expect(lines).toEqual(Array.from({ length: LINES }, (_, i) => i + 1));
    } finally {
      await fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor/configure`, {
        method: "POST",
        headers: admin,
        body: JSON.stringify({ max_batch_size: 64, enable_dynamic_batching: true }),
      });
    }
  });
});
