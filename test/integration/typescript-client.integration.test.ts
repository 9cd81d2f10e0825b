/**
 * The TypeScript client package (`clients/typescript`, `@batch-processor/client`) as a user gets
 * it: built, packed (under 200 KB), installed into a fresh project without the network (from its
 * tarball and its dependencies' tarballs), and a short script using it type-checked against the
 * published types and run against a real server, over Node's transport and the browser entry's
 * fetch transport.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { launchChromium } from "../fixtures/browser.js";
import { runCommand } from "../fixtures/commands.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PACKAGE = join(ROOT, "clients", "typescript");
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");
/** The client's dependencies, packed from the server's own install (the same pinned versions). */
const DEPENDENCIES = [
  "@bufbuild/protobuf",
  "@connectrpc/connect",
  "@connectrpc/connect-node",
  "@connectrpc/connect-web",
];
const KEY = "ts-client-key";
/** The origin of a web app the server lets call it (CORS_ALLOWED_ORIGINS). */
const APP_ORIGIN = "http://localhost:5173";
let repo: TestModelRepo;
let server: RunningServer;
let work: string;

const run = (command: string, args: string[], cwd: string, env: Record<string, string> = {}) =>
  runCommand(command, args, { cwd, env });

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  server = await startTestServer(repo.dir, { API_KEYS: KEY, CORS_ALLOWED_ORIGINS: APP_ORIGIN });
  work = mkdtempSync(join(tmpdir(), "bp-ts-client-"));
});

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** The script a user writes: a batch watched to its end, and an infer from the browser entry. */
const SCRIPT = `import { BatchProcessorClient, isTerminal, type BatchResults } from "@batch-processor/client";
import { BatchProcessorClient as WebClient } from "@batch-processor/client/web";

const url = process.env.BATCH_PROCESSOR_URL as string;
const apiKey = process.env.BATCH_PROCESSOR_API_KEY;
const client = new BatchProcessorClient({ url, apiKey });
const receipt = await client.submit({ data: [{ input: [1, 2, 3] }, { input: [4, 5, 6] }] });
const seen: string[] = [];
for await (const status of client.watch(receipt.batchId)) {
  seen.push(status.status);
  if (isTerminal(status.status)) break;
}
const results: BatchResults = await client.results(receipt.batchId);
const web = new WebClient({ url, apiKey });
const inferred = await web.infer({ data: [{ input: [0.5, 0.5] }] });
const models = await web.models();
console.log(JSON.stringify({
  last: seen.at(-1),
  outputs: results.results.map((r) => r.output.length),
  labels: results.results.map((r) => r.label),
  inferred: inferred.results[0]?.output.length,
  models: models.map((m) => m.name),
}));
`;

describe("the TypeScript client package", () => {
  it("runs in a browser: the browser entry speaks Connect and gRPC-Web over fetch, and a listed origin of another page may call (CORS) while another may not", async () => {
    const bundled = await build({
      entryPoints: [join(ROOT, "src", "client", "web.ts")],
      bundle: true,
      platform: "browser",
      format: "iife",
      globalName: "BatchProcessor",
      write: false,
      logLevel: "silent",
    });
    const script = bundled.outputFiles[0]?.text ?? "";
    // No CORS: the page is served at the server's origin (the browser fetches it from the test,
    // every call goes to the server), as a same-origin app's is.
    const origin = `http://127.0.0.1:${server.apiPort}`;
    // Both origins here are this machine's: Chromium's local-network checks (which ask the user
    // before a page reaches a loopback address) are not what this test is about.
    const context = await launchChromium(join(work, "chromium"), {
      args: ["--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests"],
    });
    try {
      const page = await context.newPage();
      await page.route(`${origin}/client-test.html`, (route) =>
        route.fulfill({
          contentType: "text/html",
          body: `<!doctype html><html><body><script>${script}</script></body></html>`,
        }),
      );
      await page.goto(`${origin}/client-test.html`);
      type Client = {
        infer(r: object): Promise<{ status: string; results: { output: number[] }[] }>;
      };
      const answers = await page.evaluate(
        async ({ key, origin }) => {
          const { BatchProcessorClient } = (
            globalThis as unknown as {
              BatchProcessor: { BatchProcessorClient: new (o: object) => Client };
            }
          ).BatchProcessor;
          const out: Record<string, unknown> = {};
          for (const protocol of ["connect", "grpc-web"]) {
            const client = new BatchProcessorClient({ url: origin, apiKey: key, protocol });
            const answer = await client.infer({ data: [{ input: [1, 2, 3] }] });
            out[protocol] = [answer.status, answer.results[0]?.output.length];
          }
          return out;
        },
        { key: KEY, origin },
      );
      expect(answers).toEqual({ connect: ["completed", 3], "grpc-web": ["completed", 3] });
      // A page of another origin: the one the server lists may call it, another may not.
      for (const [pageOrigin, allowed] of [
        [APP_ORIGIN, true],
        ["http://localhost:5174", false],
      ] as const) {
        await page.route(`${pageOrigin}/index.html`, (route) =>
          route.fulfill({
            contentType: "text/html",
            body: `<!doctype html><html><body><script>${script}</script></body></html>`,
          }),
        );
        await page.goto(`${pageOrigin}/index.html`);
        const outcome = await page.evaluate(
          async ({ key, origin }) => {
            const { BatchProcessorClient } = (
              globalThis as unknown as {
                BatchProcessor: { BatchProcessorClient: new (o: object) => Client };
              }
            ).BatchProcessor;
            try {
              const client = new BatchProcessorClient({ url: origin, apiKey: key });
              return (await client.infer({ data: [{ input: [1, 2] }] })).status;
            } catch (error) {
              return `refused: ${String(error)}`;
            }
          },
          { key: KEY, origin },
        );
        if (allowed) expect(outcome, pageOrigin).toBe("completed");
        else expect(outcome, pageOrigin).toMatch(/^refused: .*fetch/i);
      }
    } finally {
      await context.close();
    }
  }, 60_000);

  it("answers the preflight of a listed origin, and tells no other origin anything", async () => {
    const preflight = (origin: string) =>
      fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor/infer`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type, x-api-key",
        },
      });
    const listed = await preflight(APP_ORIGIN);
    expect(listed.status).toBe(204);
    expect(listed.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(listed.headers.get("access-control-allow-headers")).toMatch(/X-API-Key/);
    expect(listed.headers.get("access-control-allow-methods")).toMatch(/POST/);
    const other = await preflight("http://localhost:5174");
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    expect(other.headers.get("vary")).toBe("Origin");
  });

  it("packs under 200 KB, installs offline into a fresh project, type-checks and runs a script against a server", async () => {
    const built = await run(process.execPath, [TSC, "-p", "tsconfig.json"], PACKAGE);
    expect(built.code, built.out + built.err).toBe(0);
    const tarballs = join(work, "tarballs");
    mkdirSync(tarballs);
    const packed = await run("npm", ["pack", "--pack-destination", tarballs], PACKAGE);
    expect(packed.code, packed.err).toBe(0);
    const [client] = readdirSync(tarballs);
    expect(client).toMatch(/^batch-processor-client-.*\.tgz$/);
    expect(statSync(join(tarballs, client as string)).size).toBeLessThan(200 * 1024);
    for (const dependency of DEPENDENCIES) {
      const dep = await run(
        "npm",
        ["pack", join(ROOT, "node_modules", dependency), "--pack-destination", tarballs],
        work,
      );
      expect(dep.code, dep.err).toBe(0);
    }
    const project = join(work, "project");
    mkdirSync(project);
    writeFileSync(
      join(project, "package.json"),
      JSON.stringify({ name: "uses-client", private: true, type: "module" }),
    );
    const installed = await run(
      "npm",
      [
        "install",
        "--offline",
        "--no-audit",
        "--no-fund",
        ...readdirSync(tarballs).map((t) => join(tarballs, t)),
      ],
      project,
    );
    expect(installed.code, installed.err).toBe(0);
    writeFileSync(join(project, "script.ts"), SCRIPT);
    const checked = await run(
      process.execPath,
      [
        TSC,
        "--strict",
        "--target",
        "es2022",
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--typeRoots",
        join(ROOT, "node_modules", "@types"),
        "--types",
        "node",
        "--lib",
        "es2023,dom",
        "--outDir",
        "out",
        "script.ts",
      ],
      project,
    );
    expect(checked.code, checked.out + checked.err).toBe(0);
    const ran = await run(process.execPath, [join("out", "script.js")], project, {
      BATCH_PROCESSOR_URL: `http://127.0.0.1:${server.apiPort}`,
      BATCH_PROCESSOR_API_KEY: KEY,
    });
    expect(ran.code, ran.err).toBe(0);
    expect(JSON.parse(ran.out)).toEqual({
      last: "completed",
      outputs: [3, 3],
      labels: [expect.stringMatching(/^class_\d$/), expect.stringMatching(/^class_\d$/)],
      inferred: 3,
      models: ["default"],
    });
  });

  it("leaves the server's own tarball without tests, benchmarks, clients or models but the default", async () => {
    const listed = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], ROOT);
    expect(listed.code, listed.err).toBe(0);
    const files = (JSON.parse(listed.out) as { files: { path: string }[] }[])[0]?.files ?? [];
    const paths = files.map((f) => f.path);
    expect(paths).toContain("models/default/model.onnx");
    expect(paths).toContain("dashboard/index.html");
    expect(
      paths.filter(
        (p) =>
          /^(test|bench|clients|examples|scripts)\//.test(p) ||
          (p.startsWith("models/") && !p.startsWith("models/default/")),
      ),
    ).toEqual([]);
  });
});
