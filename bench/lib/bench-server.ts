/**
 * The server a benchmark measures: the `npm start` build (`dist/`, built by the caller) started as
 * a child process on free ports with a key of its own, a data folder of its own and `env` on top,
 * resolved once `/ready` answers. `stop()` ends it and removes its data folder.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.js";

/** A started server. */
export interface BenchServer {
  readonly child: ChildProcess;
  readonly apiPort: number;
  readonly grpcPort: number;
  /** `http://127.0.0.1:<apiPort>`. */
  readonly base: string;
  readonly dataDir: string;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const READY_WITHIN_MS = 120_000;

/**
 * Resolves once the server at `base` answers `/ready`; fails when its process exits first, or
 * after `withinMs` with the reasons its last `/ready` gave (a model missing from the repository,
 * say), so that a server that will never be ready is not waited on in silence.
 */
export async function untilReady(
  base: string,
  child: ChildProcess,
  withinMs = READY_WITHIN_MS,
): Promise<void> {
  const started = Date.now();
  for (;;) {
    const answer = await fetch(`${base}/ready`).then(
      async (r) => ({ ok: r.ok, text: await r.text() }),
      (e: Error) => ({ ok: false, text: e.message }),
    );
    if (answer.ok) return;
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    if (Date.now() - started > withinMs)
      throw new Error(`the server did not get ready within ${withinMs} ms: ${answer.text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Starts the server with API key `key`, `env`, and `nodeArgs` for Node itself; see the file comment. */
export async function startBenchServer(
  key: string,
  env: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
): Promise<BenchServer> {
  const [apiPort, grpcPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), "bp-bench-"));
  const child = spawn(
    process.execPath,
    [...nodeArgs, join(ROOT, "dist", "src", "cli.js"), "serve"],
    {
      env: {
        ...process.env,
        API_HOST: "127.0.0.1",
        API_PORT: String(apiPort),
        GRPC_PORT: String(grpcPort),
        API_KEYS: key,
        DATA_DIR: dataDir,
        LOG_LEVEL: "warn",
        ...env,
      },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const kill = () => child.kill("SIGKILL");
  process.on("exit", kill);
  const base = `http://127.0.0.1:${apiPort}`;
  await untilReady(base, child);
  return {
    child,
    apiPort,
    grpcPort,
    base,
    dataDir,
    async stop() {
      process.off("exit", kill);
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
