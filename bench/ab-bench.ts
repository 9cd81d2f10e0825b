/**
 * `npm run bench:ab -- --base DIR`: this checkout's server against another build of it (DIR: a
 * checkout or worktree of another commit, built with `npm run build`), side by side on one
 * machine. Both servers start (one inference thread each, the default model); h2load then sends
 * 64 concurrent 1-item Infer requests to one and the other in turn, the order flipped every pair,
 * and each window gives that server's CPU per request it answered OK (minus its time inside ONNX
 * Runtime). Each pair's ratio (this / base) is taken under the same machine conditions, so the
 * median ratio holds where this machine's speed moves between minutes.
 * Usage: npm run bench:ab -- --base ../other [--protocol grpc|connect|rest] [--pairs 10] [--seconds 5]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { SubmitBatchRequestSchema } from "../gen/batchprocessor/v1/batch_processor_pb.js";
import { freePort } from "./lib/free-port.js";
import { grpcFrame, type H2loadSpec } from "./lib/h2load.js";
import { inferCost } from "./lib/infer-cost.js";
import { median } from "./lib/raw-limit.js";

const { values } = parseArgs({
  options: {
    base: { type: "string" },
    protocol: { type: "string", default: "grpc" },
    pairs: { type: "string", default: "10" },
    seconds: { type: "string", default: "5" },
  },
});
if (values.base === undefined) throw new Error("--base DIR: a built checkout to compare with");
const protocol = values.protocol as "grpc" | "connect" | "rest";
if (!["grpc", "connect", "rest"].includes(protocol))
  throw new Error("--protocol must be grpc, connect or rest");
const pairs = Number(values.pairs);
const seconds = Number(values.seconds);
const KEY = "bench-key";
const INFER = "/batchprocessor.v1.BatchProcessorService/Infer";
const here = fileURLToPath(new URL("..", import.meta.url));
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

const message = toBinary(
  SubmitBatchRequestSchema,
  create(SubmitBatchRequestSchema, { data: [{ input: [0.1, 0.2, 0.3, 0.4] }] }),
);
const json = new TextEncoder().encode(JSON.stringify({ data: [{ input: [0.1, 0.2, 0.3, 0.4] }] }));

interface Server {
  readonly name: string;
  readonly api: number;
  readonly grpc: number;
  readonly child: ChildProcess;
  readonly dataDir: string;
}

async function start(name: string, root: string): Promise<Server> {
  const [api, grpc] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), "bp-ab-"));
  const child = spawn(process.execPath, [join(root, "dist", "src", "cli.js"), "serve"], {
    env: {
      ...process.env,
      API_HOST: "127.0.0.1",
      API_PORT: String(api),
      GRPC_PORT: String(grpc),
      API_KEYS: KEY,
      DATA_DIR: dataDir,
      LOG_LEVEL: "warn",
      INFERENCE_THREADS: "1",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(child);
  const started = Date.now();
  while (
    !(await fetch(`http://127.0.0.1:${api}/ready`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (Date.now() - started > 120_000) throw new Error(`${name} did not become ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name, api, grpc, child, dataDir };
}

/** One window on `server`: its CPU µs per request answered OK, without ONNX Runtime's time. */
async function window(server: Server): Promise<number> {
  const target: Omit<H2loadSpec, "seconds" | "warmupSeconds"> =
    protocol === "grpc"
      ? {
          url: `http://127.0.0.1:${server.grpc}${INFER}`,
          body: grpcFrame(message),
          headers: { "content-type": "application/grpc", te: "trailers", "x-api-key": KEY },
          clients: 1,
          streams: 64,
        }
      : {
          url:
            protocol === "connect"
              ? `http://127.0.0.1:${server.api}${INFER}`
              : `http://127.0.0.1:${server.api}/api/batch-processor/infer`,
          body: protocol === "connect" ? message : json,
          headers: {
            "content-type": protocol === "connect" ? "application/proto" : "application/json",
            "x-api-key": KEY,
          },
          clients: 64,
          streams: 1,
          h1: true,
        };
  const cost = await inferCost(
    { ...target, seconds, warmupSeconds: 1 },
    server.child.pid as number,
    `http://127.0.0.1:${server.api}/metrics`,
  );
  return cost.usPerRequest;
}

const base = await start("base", resolve(values.base));
const head = await start("this", here);
const us = { base: [] as number[], this: [] as number[] };
for (let pair = 0; pair < pairs; pair++) {
  for (const server of pair % 2 === 0 ? [base, head] : [head, base])
    us[server === base ? "base" : "this"].push(await window(server));
  process.stderr.write(`pair ${pair + 1}/${pairs}\n`);
}
for (const server of [base, head]) {
  server.child.kill("SIGKILL");
  rmSync(server.dataDir, { recursive: true, force: true });
}
const ratios = us.this.map((v, i) => v / (us.base[i] as number));
const round = (n: number) => Math.round(n);
console.log(
  [
    `# A/B, ${protocol}: ${pairs} pairs of ${seconds} s windows, 64 concurrent 1-item Infer, one inference thread each`,
    "",
    `| build | CPU µs per request (without ORT), each window | median |`,
    `| --- | --- | ---: |`,
    `| base (${values.base}) | ${us.base.map(round).join(", ")} | ${round(median(us.base))} |`,
    `| this checkout | ${us.this.map(round).join(", ")} | ${round(median(us.this))} |`,
    "",
    `Ratios this / base per pair: ${ratios.map((r) => r.toFixed(2)).join(", ")}; median ${median(ratios).toFixed(2)}.`,
  ].join("\n"),
);
process.exit(0);
