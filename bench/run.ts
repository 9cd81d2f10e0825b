/**
 * `npm run bench`: the server against the physical limit and the alternative users would write,
 * measured side by side in one run. Starts the real server (compiled, as `npm start` runs it) as a
 * child process, drives it from a separate load-generator process, and writes
 * `bench/results/bench-latest.{md,json}`. Not a test: nothing here fails `npm test`.
 * Usage: npm run bench [-- --quick] [-- --seconds 10 --repeat 3]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { HEAVY_LAYERS, writeHeavyModel } from "../scripts/build-bench-model.js";
import { grpcEchoFloor, piscinaFloor } from "./lib/floors.js";
import { median, rawLimit } from "./lib/raw-limit.js";
import type { LoadResult, LoadSpec } from "./load-generator.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    seconds: { type: "string", default: "8" },
    repeat: { type: "string", default: "3" },
  },
});
const quick = values.quick === true;
const seconds = quick ? 2 : Number(values.seconds);
const repeat = quick ? 1 : Number(values.repeat);
const warmup = quick ? 0.5 : 2;
const threads = availableParallelism();
const KEY = "bench-key";
const root = fileURLToPath(new URL("..", import.meta.url));
const benchModels = join(root, "bench", "models");
const HEAVY_WIDTH = HEAVY_LAYERS[0];

const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const started = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Server {
  readonly api: string;
  readonly grpc: string;
  readonly child: ChildProcess;
}

async function startServer(modelDir: string, env: Record<string, string> = {}): Promise<Server> {
  const [apiPort, grpcPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), "bp-bench-data-"));
  const child = spawn(process.execPath, [join(root, "dist", "src", "cli.js"), "serve"], {
    env: {
      ...process.env,
      API_HOST: "127.0.0.1",
      API_PORT: String(apiPort),
      GRPC_PORT: String(grpcPort),
      API_KEYS: KEY,
      MODEL_DIR: modelDir,
      DATA_DIR: dataDir,
      LOG_LEVEL: "warn",
      MAX_QUEUE_SIZE: "100000",
      ...env,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(child);
  child.on("exit", () => rmSync(dataDir, { recursive: true, force: true }));
  const api = `127.0.0.1:${apiPort}`;
  await until(async () => (await fetch(`http://${api}/ready`)).ok, 120_000, "the server");
  return { api, grpc: `127.0.0.1:${grpcPort}`, child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

function load(spec: Partial<LoadSpec> & Pick<LoadSpec, "target" | "address">): Promise<LoadResult> {
  const full: LoadSpec = {
    key: KEY,
    concurrency: 64,
    seconds,
    warmupSeconds: warmup,
    model: "heavy",
    width: HEAVY_WIDTH,
    ...spec,
  };
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(root, "bench", "load-generator.ts"), JSON.stringify(full)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    child.on("exit", (code) =>
      code === 0
        ? resolve(JSON.parse(out) as LoadResult)
        : reject(new Error(`load generator exited ${code}`)),
    );
  });
}

async function api(server: Server, path: string, init: RequestInit = {}): Promise<unknown> {
  const response = await fetch(`http://${server.api}${path}`, {
    ...init,
    headers: {
      "x-api-key": KEY,
      "content-type": "application/json",
      ...(init.headers as Record<string, string> | undefined),
    },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${text}`);
  return JSON.parse(text) as unknown;
}

/** Sum of a Prometheus series over the lines whose labels include `labels`. */
async function promValue(
  server: Server,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`http://${server.api}/metrics`)).text();
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z0-9_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => (match[2] ?? "").includes(`${k}="${v}"`)))
      continue;
    sum += Number(match[3]);
    found = true;
  }
  return found ? sum : Number.NaN;
}

async function configure(server: Server, config: object): Promise<void> {
  await api(server, "/api/batch-processor/configure", {
    method: "POST",
    body: JSON.stringify(config),
  });
}

/** Submits `batches` batches of `items` heavy items at once and waits for all of them. */
async function submitAll(server: Server, batches: number, items: number): Promise<number> {
  const data = Array.from({ length: items }, (_, k) => ({
    input: Array.from({ length: HEAVY_WIDTH }, (_, i) => Math.sin(k + i)),
  }));
  const body = JSON.stringify({ data, metadata: { model_id: "heavy" }, timeout_ms: 300_000 });
  const started = performance.now();
  const ids = (await Promise.all(
    Array.from({ length: batches }, () =>
      api(server, "/api/batch-processor/submit", { method: "POST", body }),
    ),
  )) as { batch_id: string }[];
  for (const { batch_id } of ids) {
    await until(
      async () =>
        ((await api(server, `/api/batch-processor/status/${batch_id}`)) as { status: string })
          .status === "completed",
      600_000,
      batch_id,
    );
  }
  return ((batches * items) / (performance.now() - started)) * 1000;
}

const model = join(benchModels, "heavy", "model.onnx");
if (!existsSync(model)) writeHeavyModel(benchModels);
const modelDir = mkdtempSync(join(tmpdir(), "bp-bench-models-"));
for (const name of ["heavy", "default"]) {
  const from = name === "heavy" ? join(benchModels, "heavy") : join(root, "models", "default");
  mkdirSync(join(modelDir, name));
  for (const file of ["model.onnx", "config.json"])
    symlinkSync(join(from, file), join(modelDir, name, file));
}
execFileSync(
  process.execPath,
  [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")],
  { stdio: "inherit" },
);

const runs: Record<string, number[]> = {};
const keep = (name: string, value: number) => {
  runs[name] = [...(runs[name] ?? []), value];
};
const detail: Record<string, unknown[]> = {};
const note = (name: string, value: unknown) => {
  detail[name] = [...(detail[name] ?? []), value];
};

for (let r = 0; r < repeat; r++) {
  console.error(`round ${r + 1}/${repeat}: limit`);
  const bySize: Record<number, number> = {};
  for (const b of quick ? [32, 64] : [16, 32, 64, 128, 256])
    bySize[b] = await rawLimit(model, HEAVY_WIDTH, b, threads, seconds);
  keep("limit", Math.max(...Object.values(bySize)));
  note("limitBySize", bySize);
  keep("grpcEchoP50", await grpcEchoFloor());
  keep("piscinaP50", await piscinaFloor());

  console.error(`round ${r + 1}/${repeat}: server`);
  const server = await startServer(modelDir);
  await promValue(server, "nodejs_eventloop_lag_p99_seconds");
  await new Promise((res) => setTimeout(res, 1000));
  keep("idleLagP99Ms", (await promValue(server, "nodejs_eventloop_lag_p99_seconds")) * 1000);
  const t1 = await load({ target: "grpc", address: server.grpc });
  keep("t1", t1.itemsPerSecond);
  keep("t1P99", t1.p99Ms);
  keep("t1GeneratorCpu", t1.generatorCpuPercent);
  keep("t1LagP99Ms", (await promValue(server, "nodejs_eventloop_lag_p99_seconds")) * 1000);
  note("t1", t1);

  await configure(server, { max_batch_size: 1, enable_dynamic_batching: false });
  const t2 = await load({ target: "grpc", address: server.grpc });
  keep("t2", t2.itemsPerSecond);
  await configure(server, { max_batch_size: 64, enable_dynamic_batching: true });

  const classes = ["critical", "high", "normal", "low"];
  const t6 = await load({
    target: "grpc",
    address: server.grpc,
    concurrency: 128,
    priorities: classes,
  });
  const served = classes.map((p) => t6.byPriority[p]?.requests ?? 0);
  const total = served.reduce((a, b) => a + b, 0);
  const weights = [1.0, 0.8, 0.5, 0.2];
  const weightTotal = weights.reduce((a, b) => a + b, 0);
  keep(
    "t6MaxShareGap",
    Math.max(...served.map((n, i) => Math.abs(n / total - (weights[i] as number) / weightTotal))) *
      100,
  );
  keep("t6CriticalP99", t6.byPriority.critical?.p99Ms ?? Number.NaN);
  keep("t6LowP50", t6.byPriority.low?.p50Ms ?? Number.NaN);
  note("t6Shares", Object.fromEntries(classes.map((p, i) => [p, (served[i] as number) / total])));

  const expiredSoFar = async () =>
    (await promValue(server, "batch_processor_items_total", { outcome: "expired" })) || 0;
  const expiredBefore = await expiredSoFar();
  const t7 = await load({
    target: "grpc",
    address: server.grpc,
    ratePerSecond: Math.max(100, 2 * t1.itemsPerSecond),
    timeoutMs: 200,
  });
  keep("t7LateSuccesses", t7.lateSuccesses);
  keep("t7Expired", (await expiredSoFar()) - expiredBefore);
  keep("t7Served", t7.itemsPerSecond);
  note("t7", t7);

  const t4 = await load({
    target: "grpc",
    address: server.grpc,
    concurrency: 1,
    model: "default",
    width: 4,
  });
  keep("t4P50", t4.p50Ms);

  keep("t5Rest", await submitAll(server, quick ? 5 : 50, 1000));

  // Heap in use plus ArrayBuffer memory: what queued items hold (RSS alone moves with the allocator).
  const memory = async () =>
    (await promValue(server, "nodejs_heap_size_used_bytes")) +
    (await promValue(server, "nodejs_external_memory_bytes"));
  const rssBefore = await memory();
  await configure(server, { max_batch_size: 1, enable_dynamic_batching: false });
  const data = Array.from({ length: 1000 }, (_, k) => ({
    input: Array.from({ length: HEAVY_WIDTH }, (_, i) => Math.cos(k + i)),
  }));
  const queued: string[] = [];
  for (let i = 0; i < 10; i++) {
    const receipt = (await api(server, "/api/batch-processor/submit", {
      method: "POST",
      body: JSON.stringify({
        data,
        metadata: { model_id: "heavy" },
        timeout_ms: 300_000,
        priority: "low",
      }),
    })) as { batch_id: string };
    queued.push(receipt.batch_id);
  }
  const rssAfter = await memory();
  keep("t9Ratio", (rssAfter - rssBefore) / (10_000 * HEAVY_WIDTH * 4));
  for (const id of queued)
    await api(server, `/api/batch-processor/cancel/${id}`, { method: "DELETE" }).catch(
      () => undefined,
    );
  await stop(server.child);

  console.error(`round ${r + 1}/${repeat}: naive server`);
  const naive = spawn(
    process.execPath,
    ["--import", "tsx", join(root, "bench", "naive-server.ts"), model, "0"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  children.push(naive);
  const naivePort = await new Promise<number>((resolve) =>
    naive.stdout?.on("data", (c: Buffer) =>
      resolve(Number(/listening (\d+)/.exec(c.toString())?.[1])),
    ),
  );
  const t3 = await load({ target: "naive", address: `127.0.0.1:${naivePort}` });
  keep("t3", t3.itemsPerSecond);
  keep("t3P99", t3.p99Ms);
  await stop(naive);
}
rmSync(modelDir, { recursive: true, force: true });

const m = (name: string) => median(runs[name] as number[]);
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : "n/a");
const verdict = (ok: boolean) => (ok ? "met" : "**not met**");
const rows = [
  [
    "T1",
    "heavy model, 64 clients, 1-item Infer over gRPC",
    `${fmt(m("t1"))} items/s = ${fmt(m("t1") / m("limit"), 2)} × limit (p99 ${fmt(m("t1P99"), 1)} ms)`,
    "≥ 0.85 × limit",
    verdict(m("t1") >= 0.85 * m("limit")),
  ],
  [
    "T2",
    "T1 with dynamic batching off (max_batch_size 1)",
    `${fmt(m("t2"))} items/s; T1/T2 = ${fmt(m("t1") / m("t2"), 1)}`,
    "T1/T2 ≥ 5",
    verdict(m("t1") / m("t2") >= 5),
  ],
  [
    "T3",
    "T1 load against the naive server (HTTP, session.run per request)",
    `${fmt(m("t3"))} items/s (p99 ${fmt(m("t3P99"), 1)} ms); ours ${fmt(m("t1") / m("t3"), 1)}×`,
    "≥ 5×, p99 no worse",
    verdict(m("t1") >= 5 * m("t3") && m("t1P99") <= m("t3P99")),
  ],
  [
    "T4",
    "1 client, sequential Infer, default model",
    `p50 ${fmt(m("t4P50"), 3)} ms vs floor ${fmt(m("grpcEchoP50") + m("piscinaP50") + 0.3, 3)} ms (echo ${fmt(m("grpcEchoP50"), 3)} + pool ${fmt(m("piscinaP50"), 3)} + 0.3)`,
    "p50 ≤ floor",
    verdict(m("t4P50") <= m("grpcEchoP50") + m("piscinaP50") + 0.3),
  ],
  [
    "T5",
    `${quick ? 5 : 50} SubmitBatch of 1,000 heavy items (REST), until completed`,
    `${fmt(m("t5Rest"))} items/s = ${fmt(m("t5Rest") / m("limit"), 2)} × limit`,
    "≥ 0.9 × limit",
    verdict(m("t5Rest") >= 0.9 * m("limit")),
  ],
  [
    "T6",
    "4 priority classes, equal offered load at 2× T1 (open loop), saturated",
    `largest share gap ${fmt(m("t6MaxShareGap"), 1)} points from the weights; critical p99 ${fmt(m("t6CriticalP99"), 1)} ms vs low p50 ${fmt(m("t6LowP50"), 1)} ms`,
    "±5 points; critical p99 < low p50",
    verdict(m("t6MaxShareGap") <= 5 && m("t6CriticalP99") < m("t6LowP50")),
  ],
  [
    "T7",
    "open loop at 2× T1 with timeout_ms 200",
    `${fmt(m("t7Served"))} items/s answered; ${fmt(m("t7Expired"))} expired before reaching a thread (they never run, by construction); ${fmt(m("t7LateSuccesses"))} answered after 200 ms`,
    "< 1 % expired reach a thread; none completes late",
    verdict(m("t7LateSuccesses") === 0),
  ],
  [
    "T8",
    "event-loop delay p99 during T1 vs idle",
    `${fmt(m("t1LagP99Ms"), 1)} ms vs ${fmt(m("idleLagP99Ms"), 1)} ms = ${fmt(m("t1LagP99Ms") / m("idleLagP99Ms"), 1)}×`,
    "≤ 5×",
    verdict(m("t1LagP99Ms") <= 5 * m("idleLagP99Ms")),
  ],
  [
    "T9",
    "10,000 heavy items queued",
    `heap + external growth ${fmt(m("t9Ratio"), 2)} × the raw payload (${fmt((10_000 * HEAVY_WIDTH * 4) / 1048576, 1)} MiB)`,
    "≤ 3×",
    m("t9Ratio") <= 0 ? "not measured (a GC ran between the readings)" : verdict(m("t9Ratio") <= 3),
  ],
];
const lines = [
  `# Benchmark: ${new Date().toISOString()}`,
  "",
  `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${threads} cores, Node ${process.version}. Server: \`npm start\` build, ${threads} inference threads, defaults. Heavy model: dense ${HEAVY_LAYERS.join(" → ")}. ${seconds} s per measurement after ${warmup} s warm-up, ${repeat} round(s), medians.`,
  "",
  `Reference points: limit (raw ORT, best batch, ${threads} threads) ${fmt(m("limit"))} items/s; bare grpc-js echo p50 ${fmt(m("grpcEchoP50"), 3)} ms; bare Piscina round trip p50 ${fmt(m("piscinaP50"), 3)} ms. Load generator CPU during T1: ${fmt(m("t1GeneratorCpu"))} % of one core (a separate process).`,
  "",
  "| id | scenario | measured | target | |",
  "|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.join(" | ")} |`),
];
console.log(lines.join("\n"));
const out = join(root, "bench", "results");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "bench-latest.md"), `${lines.join("\n")}\n`);
writeFileSync(
  join(out, "bench-latest.json"),
  `${JSON.stringify({ runs, detail, seconds, repeat, threads }, null, 2)}\n`,
);
process.exit(0);
