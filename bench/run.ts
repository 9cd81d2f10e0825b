/**
 * `npm run bench`: the server against the physical limit and the alternative users would write,
 * measured side by side in one run. Starts the real server (compiled, as `npm start` runs it) as a
 * child process, drives it from a separate load-generator process, and writes
 * `bench/results/bench-latest.{md,json}`. Not a test: nothing here fails `npm test`.
 * Usage: npm run bench [-- --quick] [-- --seconds 10 --repeat 3]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  GetBatchStatusRequestSchema,
  SubmitBatchRequestSchema,
} from "../gen/batchprocessor/v1/batch_processor_pb.js";
import { ModelInferRequestSchema } from "../gen/inference/grpc_predict_v2_pb.js";
import {
  HEAVY_JOB_LAYERS,
  HEAVY_JOB_MODEL,
  HEAVY_LAYERS,
  writeHeavyJobModel,
  writeHeavyModel,
} from "../scripts/build-bench-model.js";
import { untilReady } from "./lib/bench-server.js";
import { collectGarbage } from "./lib/collect-garbage.js";
import { freePort } from "./lib/free-port.js";
import { grpcClient } from "./lib/grpc-client.js";
import { grpcFrame, type H2loadSpec, h2load } from "./lib/h2load.js";
import { encodedHeavyInfer } from "./lib/heavy-infer.js";
import { heavyModelDir } from "./lib/heavy-model-dir.js";
import { piscinaFloor } from "./lib/piscina-floor.js";
import { priorityUnderLoad } from "./lib/priority-load.js";
import { type CpuUse, measureCpu, rssBytes } from "./lib/proc.js";
import { seriesSum } from "./lib/prometheus-text.js";
import { median, rawLimit } from "./lib/raw-limit.js";
import type { LoadResult, LoadSpec } from "./load-generator.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    seconds: { type: "string", default: "8" },
    repeat: { type: "string", default: "3" },
    /** Renders the report again from a results JSON this harness wrote, measuring nothing. */
    from: { type: "string" },
  },
});
interface Saved {
  readonly runs: Record<string, number[]>;
  readonly detail: Record<string, unknown[]>;
  readonly seconds: number;
  readonly repeat: number;
  readonly threads: number;
  readonly warmup?: number;
  readonly quick?: boolean;
}
const saved =
  values.from === undefined ? undefined : (JSON.parse(readFileSync(values.from, "utf8")) as Saved);
const quick = saved?.quick ?? values.quick === true;
const seconds = saved?.seconds ?? (quick ? 2 : Number(values.seconds));
const repeat = saved?.repeat ?? (quick ? 1 : Number(values.repeat));
const warmup = saved?.warmup ?? (quick ? 0.5 : 2);
const threads = saved?.threads ?? availableParallelism();
const KEY = "bench-key";
const root = fileURLToPath(new URL("..", import.meta.url));
const benchModels = join(root, "bench", "models");
const HEAVY_WIDTH = HEAVY_LAYERS[0];
/** Items per request in T6 and T7 (see there). */
const BURST = 16;

const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

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

async function startServer(
  modelDir: string,
  env: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
): Promise<Server> {
  const [apiPort, grpcPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), "bp-bench-data-"));
  const child = spawn(
    process.execPath,
    [...nodeArgs, join(root, "dist", "src", "cli.js"), "serve"],
    {
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
    },
  );
  children.push(child);
  child.on("exit", () => rmSync(dataDir, { recursive: true, force: true }));
  const api = `127.0.0.1:${apiPort}`;
  await untilReady(`http://${api}`, child);
  return { api, grpc: `127.0.0.1:${grpcPort}`, child };
}

/** Starts a bench script (tsx) that prints "listening <port>", and returns its port. */
async function startScript(
  script: string,
  args: readonly string[],
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "bench", script), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const port = await new Promise<number>((resolve) =>
    child.stdout?.on("data", (c: Buffer) =>
      resolve(Number(/listening (\d+)/.exec(c.toString())?.[1])),
    ),
  );
  return { child, port };
}

/** CPU of `pid` over the load generator's measured window (after its warm-up). */
function cpuDuringLoad(pid: number | undefined): Promise<CpuUse | undefined> {
  if (pid === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) =>
    setTimeout(() => {
      const end = measureCpu(pid);
      setTimeout(() => resolve(end()), seconds * 1000);
    }, warmup * 1000),
  );
}

/** Waits until the server's queues are empty (a scenario's backlog must not spill into the next). */
async function drained(server: Server): Promise<void> {
  await until(
    async () =>
      ((await promValue(server, "batch_processor_pending_items")) || 0) === 0 &&
      ((await promValue(server, "batch_processor_active_batches")) || 0) === 0,
    120_000,
    "the queues to drain",
  );
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

/** One scrape of `/metrics`: the sum of a series over the lines whose labels include `labels`. */
async function scrape(
  server: Server,
): Promise<(name: string, labels?: Record<string, string>) => number> {
  const text = await (await fetch(`http://${server.api}/metrics`)).text();
  return (name, labels = {}) => seriesSum(text, name, labels, Number.NaN);
}

async function promValue(
  server: Server,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return (await scrape(server))(name, labels);
}

/**
 * Sampling interval of prom-client's event-loop monitor (its default), ms. Each sample is the
 * time between two ticks of a timer of this interval, so the interval is in every sample.
 */
const LAG_SAMPLING_MS = 10;

/** The server's event-loop delay p99 since the last scrape, without the sampling interval, ms. */
async function loopDelayP99Ms(server: Server): Promise<number> {
  const p99 = (await promValue(server, "nodejs_eventloop_lag_p99_seconds")) * 1000;
  return Math.max(0, p99 - LAG_SAMPLING_MS);
}

async function configure(server: Server, config: object): Promise<void> {
  await api(server, "/api/batch-processor/configure", {
    method: "POST",
    body: JSON.stringify(config),
  });
}

function heavyItems(items: number, seed: number): { input: number[] }[] {
  return Array.from({ length: items }, (_, k) => ({
    input: Array.from({ length: HEAVY_WIDTH }, (_, i) => Math.sin(seed + k + i)),
  }));
}

/**
 * Submits `batches` batches of `items` heavy items at once (REST or gRPC) and waits until every
 * one has completed; items/s from the first submit to the last completion.
 */
async function submitAll(
  server: Server,
  protocol: "rest" | "grpc",
  batches: number,
  items: number,
): Promise<number> {
  const restBody = JSON.stringify({
    data: heavyItems(items, 0),
    metadata: { model_id: "heavy" },
    timeout_ms: 300_000,
  });
  const grpcBody = encodedHeavyInfer(items, HEAVY_WIDTH, "normal");
  const client = grpcClient(server.grpc, KEY);
  const started = performance.now();
  const ids =
    protocol === "rest"
      ? (
          (await Promise.all(
            Array.from({ length: batches }, () =>
              api(server, "/api/batch-processor/submit", { method: "POST", body: restBody }),
            ),
          )) as { batch_id: string }[]
        ).map((r) => r.batch_id)
      : (
          (await Promise.all(
            Array.from({ length: batches }, () => client.call("submitBatch", grpcBody)),
          )) as { batchId: string }[]
        ).map((r) => r.batchId);
  for (const batchId of ids) {
    for (;;) {
      const status = (await client.call(
        "getBatchStatus",
        create(GetBatchStatusRequestSchema, { batchId }),
      )) as { status: string; error?: string };
      if (status.status === "completed") break;
      if (status.status === "failed" || status.status === "cancelled")
        throw new Error(`${batchId} ${status.status}: ${status.error}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const perSecond = ((batches * items) / (performance.now() - started)) * 1000;
  client.close();
  return perSecond;
}

/**
 * T1 driven by h2load: 64 concurrent 1-item heavy Infer requests. Items with an output and OK
 * answers per second come from the server's own counters over the measured window (h2load sees
 * HTTP statuses, not gRPC's); CPU of h2load and of the server over the same window; the event
 * loop's delay p99 over it (T8).
 */
async function h2T1(server: Server, protocol: "grpc" | "rest" | "v2") {
  const item = { data: heavyItems(1, 0), metadata: { model_id: "heavy" } };
  const grpcBody = grpcFrame(
    toBinary(SubmitBatchRequestSchema, create(SubmitBatchRequestSchema, item)),
  );
  // The same item as the Open Inference Protocol's ModelInfer: a [1, width] FP32 tensor.
  const v2Body = grpcFrame(
    toBinary(
      ModelInferRequestSchema,
      create(ModelInferRequestSchema, {
        modelName: "heavy",
        inputs: [
          {
            name: "input",
            datatype: "FP32",
            shape: [1n, BigInt(HEAVY_WIDTH)],
            contents: { fp32Contents: item.data[0]?.input ?? [] },
          },
        ],
      }),
    ),
  );
  const method = protocol === "v2" ? "ModelInfer" : "Infer";
  const target: Omit<H2loadSpec, "seconds" | "warmupSeconds"> =
    protocol === "v2"
      ? {
          url: `http://${server.grpc}/inference.GRPCInferenceService/ModelInfer`,
          body: v2Body,
          headers: { "content-type": "application/grpc", te: "trailers", "x-api-key": KEY },
          clients: 1,
          streams: 64,
        }
      : protocol === "grpc"
        ? {
            url: `http://${server.grpc}/batchprocessor.v1.BatchProcessorService/Infer`,
            body: grpcBody,
            headers: { "content-type": "application/grpc", te: "trailers", "x-api-key": KEY },
            clients: 1,
            streams: 64,
          }
        : {
            url: `http://${server.api}/api/batch-processor/infer`,
            body: new TextEncoder().encode(JSON.stringify(item)),
            headers: { "content-type": "application/json", "x-api-key": KEY },
            clients: 64,
            streams: 1,
            h1: true,
          };
  let before: Awaited<ReturnType<typeof scrape>> | undefined;
  let after: Awaited<ReturnType<typeof scrape>> | undefined;
  const result = await h2load({
    ...target,
    seconds,
    warmupSeconds: warmup,
    watch: [server.child.pid as number],
    onWindow: async (edge) => {
      if (edge === "start") before = await scrape(server);
      else after = await scrape(server);
    },
  });
  const delta = (name: string, labels: Record<string, string> = {}) =>
    ((after as NonNullable<typeof after>)(name, labels) || 0) -
    ((before as NonNullable<typeof before>)(name, labels) || 0);
  const answers = delta("batch_processor_requests_total", { method, code: "ok" });
  const serverCpu = result.watchedCpu[0]?.totalPercent ?? Number.NaN;
  return {
    items: delta("batch_processor_items_total", { outcome: "success" }) / seconds,
    answers: answers / seconds,
    generatorCpu: result.generatorCpu?.totalPercent ?? Number.NaN,
    serverCpu,
    /** Server CPU per answer outside ONNX Runtime, µs: what the protocol and the batcher cost. */
    usPerAnswer:
      (((serverCpu / 100) * seconds - delta("batch_processor_inference_seconds_sum")) / answers) *
      1e6,
    // prom-client restarts the delay histogram at each scrape: the end scrape covers the window.
    lagP99Ms: Math.max(
      0,
      ((after as NonNullable<typeof after>)("nodejs_eventloop_lag_p99_seconds") || 0) * 1000 -
        LAG_SAMPLING_MS,
    ),
  };
}

const PRIORITY_CLASSES = ["critical", "high", "normal", "low"] as const;
const DEFAULT_WEIGHTS = [1.0, 0.8, 0.5, 0.2];

/**
 * T6: 64 closed-loop clients per class, `items` per request: the largest gap between a class's
 * share of served items and its weight's share, points; critical p99 and low p50.
 */
async function shares(server: Server, items: number) {
  const t6 = await load({
    target: "grpc",
    address: server.grpc,
    concurrency: 64 * PRIORITY_CLASSES.length,
    itemsPerRequest: items,
    priorities: PRIORITY_CLASSES,
  });
  const served = PRIORITY_CLASSES.map((p) => t6.byPriority[p]?.requests ?? 0);
  const total = served.reduce((a, b) => a + b, 0);
  const weightTotal = DEFAULT_WEIGHTS.reduce((a, b) => a + b, 0);
  const gaps = served.map((n, i) =>
    Math.abs(n / total - (DEFAULT_WEIGHTS[i] as number) / weightTotal),
  );
  return {
    maxGap: Math.max(...gaps) * 100,
    criticalP99: t6.byPriority.critical?.p99Ms ?? Number.NaN,
    lowP50: t6.byPriority.low?.p50Ms ?? Number.NaN,
    shares: Object.fromEntries(PRIORITY_CLASSES.map((p, i) => [p, (served[i] as number) / total])),
  };
}

/**
 * T7: `items`-item Infer, open loop at twice `capacity` (items/s), timeout_ms 200. What ran and
 * ended late (server counters), what expired unrun, and the goodput: items answered with an
 * output within the timeout, per second.
 */
async function deadlines(server: Server, items: number, capacity: number) {
  const counter = async (name: string, labels: Record<string, string> = {}) =>
    (await promValue(server, name, labels)) || 0;
  const before = {
    expired: await counter("batch_processor_items_total", { outcome: "expired" }),
    late: await counter("batch_processor_late_items_total"),
    ran: await counter("batch_processor_model_batch_size_sum"),
  };
  const t7 = await load({
    target: "grpc",
    address: server.grpc,
    itemsPerRequest: items,
    ratePerSecond: (2 * capacity) / items,
    timeoutMs: 200,
  });
  return {
    Expired:
      (await counter("batch_processor_items_total", { outcome: "expired" })) - before.expired,
    LateItems: (await counter("batch_processor_late_items_total")) - before.late,
    Ran: (await counter("batch_processor_model_batch_size_sum")) - before.ran,
    LateAnswers: t7.lateSuccesses,
    Answers: t7.answeredOfSent,
    Goodput: t7.inTimePerSecond,
    Served: t7.itemsPerSecond,
  };
}

/**
 * A model folder of its own for T10 beside a job (the heavy model, the job model and the
 * default), built when first asked for.
 */
let jobModels: string | undefined;
function jobModelDir(): string {
  jobModels ??= heavyModelDir((dir) => {
    writeHeavyJobModel(dir);
    return writeHeavyModel(dir);
  });
  return jobModels;
}

const model = join(benchModels, "heavy", "model.onnx");
if (saved === undefined && !existsSync(model)) writeHeavyModel(benchModels);
const modelDir = mkdtempSync(join(tmpdir(), "bp-bench-models-"));
for (const name of ["heavy", "default"]) {
  const from = name === "heavy" ? join(benchModels, "heavy") : join(root, "models", "default");
  mkdirSync(join(modelDir, name));
  for (const file of ["model.onnx", "config.json"])
    symlinkSync(join(from, file), join(modelDir, name, file));
}
if (saved === undefined)
  execFileSync(
    process.execPath,
    [
      join(root, "node_modules", "typescript", "bin", "tsc"),
      "-p",
      join(root, "tsconfig.build.json"),
    ],
    { stdio: "inherit" },
  );

const runs: Record<string, number[]> = saved?.runs ?? {};
const keep = (name: string, value: number) => {
  runs[name] = [...(runs[name] ?? []), value];
};
const detail: Record<string, unknown[]> = saved?.detail ?? {};
const note = (name: string, value: unknown) => {
  detail[name] = [...(detail[name] ?? []), value];
};

for (let r = 0; r < (saved === undefined ? repeat : 0); r++) {
  console.error(`round ${r + 1}/${repeat}: limit`);
  const bySize: Record<number, number> = {};
  for (const b of quick ? [32, 64] : [16, 32, 64, 128, 256])
    bySize[b] = await rawLimit(model, HEAVY_WIDTH, b, threads, seconds);
  keep("limit", Math.max(...Object.values(bySize)));
  note("limitBySize", bySize);
  const bestSize = Number(
    Object.entries(bySize).reduce((a, b) => (b[1] > a[1] ? b : a), ["1", 0] as [string, number])[0],
  );
  keep("piscinaP50", await piscinaFloor());

  console.error(`round ${r + 1}/${repeat}: bare grpc-js echo`);
  const echo = await startScript("echo-server.ts", ["10"]);
  const echoAddress = `127.0.0.1:${echo.port}`;
  const echoSequential = await load({
    target: "grpc",
    address: echoAddress,
    concurrency: 1,
    model: "default",
    width: 4,
  });
  keep("grpcEchoP50", echoSequential.p50Ms);
  const echoCpu = cpuDuringLoad(echo.child.pid);
  const echoT1 = await load({ target: "grpc", address: echoAddress });
  keep("echoT1", echoT1.itemsPerSecond);
  keep("echoT1GeneratorCpu", echoT1.generatorCpuPercent);
  keep("echoT1ServerCpu", (await echoCpu)?.totalPercent ?? Number.NaN);
  await stop(echo.child);

  console.error(`round ${r + 1}/${repeat}: server`);
  const server = await startServer(modelDir);
  await promValue(server, "nodejs_eventloop_lag_p99_seconds");
  await new Promise((res) => setTimeout(res, 1000));
  keep("idleLagP99Ms", await loopDelayP99Ms(server));
  const t1Cpu = cpuDuringLoad(server.child.pid);
  const t1 = await load({ target: "grpc", address: server.grpc });
  keep("t1", t1.itemsPerSecond);
  keep("t1P99", t1.p99Ms);
  keep("t1GeneratorCpu", t1.generatorCpuPercent);
  // Read first: prom-client restarts the event-loop delay histogram at every scrape.
  keep("t1LagP99Ms", await loopDelayP99Ms(server));
  const t1Use = await t1Cpu;
  keep("t1ServerMainCpu", t1Use?.mainPercent ?? Number.NaN);
  keep("t1ServerCpu", t1Use?.totalPercent ?? Number.NaN);
  keep(
    "t1MeanBatch",
    (await promValue(server, "batch_processor_model_batch_size_sum", { model: "heavy" })) /
      (await promValue(server, "batch_processor_model_batch_size_count", { model: "heavy" })),
  );
  note("t1", t1);

  // T1 as defined now: h2load, which costs a fraction of the Node generator's CPU per request, so
  // the cores go to the server. Over gRPC (one connection, 64 streams) and REST (64 connections).
  // V2: the same load as the Open Inference Protocol's ModelInfer, right after the native one.
  for (const protocol of ["grpc", "rest", "v2"] as const) {
    await drained(server);
    const run = await h2T1(server, protocol);
    keep(`t1H2${protocol}`, run.items);
    keep(`t1H2${protocol}Answers`, run.answers);
    keep(`t1H2${protocol}GeneratorCpu`, run.generatorCpu);
    keep(`t1H2${protocol}ServerCpu`, run.serverCpu);
    keep(`t1H2${protocol}Us`, run.usPerAnswer);
    if (protocol === "grpc") keep("t1H2LagP99Ms", run.lagP99Ms);
  }

  await configure(server, { max_batch_size: 1, enable_dynamic_batching: false });
  const t2 = await load({ target: "grpc", address: server.grpc });
  keep("t2", t2.itemsPerSecond);
  await configure(server, { max_batch_size: 64, enable_dynamic_batching: true });

  // T6 and T7 load the engine, not the machine: on a small machine one-item requests overload
  // the load generator and the server's event loop first, and a backlog in a socket is one no
  // scheduler can see. Requests of BURST items put the backlog where priorities and deadlines act.
  const t1Burst = await load({ target: "grpc", address: server.grpc, itemsPerRequest: BURST });
  keep("t1Burst", t1Burst.itemsPerSecond);

  // T6: equal offered load = the same number of identical closed-loop clients per class (64
  // each); saturated = their items in flight keep the batcher backlogged.
  for (const [suffix, items] of [
    ["", BURST],
    ["One", 1],
  ] as const) {
    await drained(server);
    const t6 = await shares(server, items);
    keep(`t6${suffix}MaxShareGap`, t6.maxGap);
    keep(`t6${suffix}CriticalP99`, t6.criticalP99);
    keep(`t6${suffix}LowP50`, t6.lowP50);
    note(`t6${suffix}`, t6);
  }

  // T7: open loop at twice what the setup sustains with requests of that size, timeout 200 ms.
  for (const [suffix, items, capacity] of [
    ["", BURST, t1Burst.itemsPerSecond],
    ["One", 1, t1.itemsPerSecond],
  ] as const) {
    await drained(server);
    const t7 = await deadlines(server, items, capacity);
    for (const [name, value] of Object.entries(t7)) keep(`t7${suffix}${name}`, value);
    keep(`t7${suffix}Capacity`, capacity);
  }
  await drained(server);

  const t4 = await load({
    target: "grpc",
    address: server.grpc,
    concurrency: 1,
    model: "default",
    width: 4,
  });
  keep("t4P50", t4.p50Ms);

  const t5Batches = quick ? 5 : 50;
  keep("t5Grpc", await submitAll(server, "grpc", t5Batches, 1000));
  // The limit's best batch size is a setting an operator would make; measured with it too.
  await configure(server, { max_batch_size: bestSize });
  keep("t5GrpcTuned", await submitAll(server, "grpc", t5Batches, 1000));
  keep("t5RestTuned", await submitAll(server, "rest", t5Batches, 1000));
  await stop(server.child);

  // T10: a critical client beside saturating background work, on a fresh server with the
  // default configuration (the latency targets included): 1,000-item Infer requests, then one
  // `low` job (the background jobs make the normal state of a server), the job on a model of
  // narrow input so that its data set stays small.
  for (const [prefix, job] of [
    ["t10", undefined],
    [
      "t10Job",
      { name: HEAVY_JOB_MODEL, width: HEAVY_JOB_LAYERS[0], outputWidth: HEAVY_JOB_LAYERS[3] },
    ],
  ] as const) {
    console.error(
      `round ${r + 1}/${repeat}: priority ${job === undefined ? "under load" : "beside a job"}`,
    );
    const fresh = await startServer(job === undefined ? modelDir : jobModelDir());
    const x = await priorityUnderLoad({
      grpc: fresh.grpc,
      base: `http://${fresh.api}`,
      key: KEY,
      pid: fresh.child.pid as number,
      model: { name: "heavy", width: HEAVY_WIDTH, outputWidth: HEAVY_LAYERS[3] },
      ...(job === undefined ? {} : { job }),
      seconds: Math.max(seconds, 10),
    });
    keep(`${prefix}IdleP50`, x.idle.p50Ms);
    keep(`${prefix}IdleP99`, x.idle.p99Ms);
    keep(`${prefix}LoadedP50`, x.loaded.p50Ms);
    keep(`${prefix}LoadedP99`, x.loaded.p99Ms);
    keep(`${prefix}BatchMs`, x.batchRunMs);
    keep(`${prefix}Alone`, x.alone.itemsPerSecond);
    keep(`${prefix}AloneUs`, x.alone.cpuUsPerItem);
    keep(`${prefix}Beside`, x.beside.itemsPerSecond);
    keep(`${prefix}BesideUs`, x.beside.cpuUsPerItem);
    keep(`${prefix}Ratio`, x.ratio);
    keep(`${prefix}Within`, x.loaded.p99Ms <= x.idle.p99Ms + x.batchRunMs ? 1 : 0);
    keep(`${prefix}ProbeShare`, x.probeShare);
    note(prefix, x);
    await stop(fresh.child);
  }

  // T9: a server whose queue holds at most 10,000 items, filled over gRPC while batching is off
  // (so the queue drains slowly). The verdict is on resident memory (what the machine gives the
  // process) per queued item's raw bytes, read after a full garbage collection, so it holds what
  // queued items keep and what the allocator kept, not garbage awaiting a collection; live memory
  // (V8 heap in use + ArrayBuffer/external memory) beside it.
  console.error(`round ${r + 1}/${repeat}: queued memory`);
  const inspectPort = await freePort();
  const small = await startServer(modelDir, { MAX_QUEUE_SIZE: "10000" }, [
    `--inspect=127.0.0.1:${inspectPort}`,
  ]);
  await configure(small, { max_batch_size: 1, enable_dynamic_batching: false });
  const pid = small.child.pid as number;
  const submitBody = encodedHeavyInfer(1000, HEAVY_WIDTH, "low");
  const client = grpcClient(small.grpc, KEY);
  await client.call("submitBatch", encodedHeavyInfer(10, HEAVY_WIDTH, "normal")); // first-call allocations out of the way
  await drained(small);
  const memory = async () => {
    await collectGarbage(inspectPort);
    const value = await scrape(small);
    return {
      live: value("nodejs_heap_size_used_bytes") + value("nodejs_external_memory_bytes"),
      rss: rssBytes(pid) ?? Number.NaN,
      queued: value("batch_processor_pending_items") || 0,
    };
  };
  const before = await memory();
  // One at a time: what is measured is what queued items hold, not eleven 2 MiB requests in flight.
  const receipts: PromiseSettledResult<unknown>[] = [];
  for (let i = 0; i < 11; i++)
    receipts.push(...(await Promise.allSettled([client.call("submitBatch", submitBody)])));
  const after = await memory();
  client.close();
  const raw = after.queued * HEAVY_WIDTH * 4;
  keep("t9Queued", after.queued);
  keep("t9Rejected", receipts.filter((p) => p.status === "rejected").length);
  keep("t9Ratio", (after.live - before.live) / raw);
  keep("t9RssRatio", (after.rss - before.rss) / raw);
  await stop(small.child);

  console.error(`round ${r + 1}/${repeat}: naive server`);
  const naive = await startScript("naive-server.ts", [model, "0"]);
  const t3 = await load({ target: "naive", address: `127.0.0.1:${naive.port}` });
  keep("t3", t3.itemsPerSecond);
  keep("t3P99", t3.p99Ms);
  await stop(naive.child);

  // Ratios of this round's figures: the report gives their medians over rounds.
  const last = (name: string) => runs[name]?.at(-1) as number;
  const ratio = (name: string, of: string, by: string) => keep(name, last(of) / last(by));
  ratio("t1/limit", "t1", "limit");
  ratio("t1H2grpc/limit", "t1H2grpc", "limit");
  ratio("v2Us/grpcUs", "t1H2v2Us", "t1H2grpcUs");
  ratio("t1H2rest/limit", "t1H2rest", "limit");
  ratio("t1/echo", "t1", "echoT1");
  ratio("t1/t2", "t1", "t2");
  ratio("t1/t3", "t1", "t3");
  ratio("t1Burst/limit", "t1Burst", "limit");
  for (const t5 of ["t5Grpc", "t5GrpcTuned", "t5RestTuned"]) ratio(`${t5}/limit`, t5, "limit");
  // CPU per request, µs: percent of a core × 10^4 / requests per second.
  for (const [name, cpu, rate] of [
    ["t1GeneratorUs", "t1GeneratorCpu", "t1"],
    ["t1ServerUs", "t1ServerCpu", "t1"],
    ["t1ServerMainUs", "t1ServerMainCpu", "t1"],
    ["echoServerUs", "echoT1ServerCpu", "echoT1"],
    ["echoGeneratorUs", "echoT1GeneratorCpu", "echoT1"],
  ] as const)
    keep(name, (last(cpu) * 1e4) / last(rate));
  for (const suffix of ["", "One"]) {
    ratio(`t7${suffix}Late/ran`, `t7${suffix}LateItems`, `t7${suffix}Ran`);
    ratio(`t7${suffix}Goodput/capacity`, `t7${suffix}Goodput`, `t7${suffix}Capacity`);
  }
}
rmSync(modelDir, { recursive: true, force: true });

const m = (name: string) => median(runs[name] as number[]);
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : "n/a");
const verdict = (ok: boolean) => (ok ? "met" : "**not met**");
const rows = [
  [
    "T1",
    "heavy model, 64 concurrent 1-item Infer, driven by h2load",
    `gRPC ${fmt(m("t1H2grpc"))} items/s with an output = ${fmt(m("t1H2grpc/limit"), 2)} × limit (h2load ${fmt(m("t1H2grpcGeneratorCpu"))} % of a core, server ${fmt(m("t1H2grpcServerCpu"))} %); REST ${fmt(m("t1H2rest"))} = ${fmt(m("t1H2rest/limit"), 2)} × limit (h2load ${fmt(m("t1H2restGeneratorCpu"))} %, server ${fmt(m("t1H2restServerCpu"))} %). The old definition (Node load generator, target ≥ 0.85 × limit, kept for comparison): ${fmt(m("t1"))} items/s = ${fmt(m("t1/limit"), 2)} × limit, ${fmt(m("t1/echo"), 2)} × the bare echo under the same load (p99 ${fmt(m("t1P99"), 1)} ms, mean model batch ${fmt(m("t1MeanBatch"), 1)})`,
    "≥ 0.6 × limit over gRPC and over REST",
    verdict(m("t1H2grpc/limit") >= 0.6 && m("t1H2rest/limit") >= 0.6),
  ],
  [
    "V2",
    "T1's load as the Open Inference Protocol's ModelInfer over gRPC (a [1, width] FP32 tensor), beside the native Infer of the same round",
    `ModelInfer ${fmt(m("t1H2v2"))} items/s at ${fmt(m("t1H2v2Us"))} µs of server CPU per request outside ONNX Runtime; native Infer ${fmt(m("t1H2grpc"))} items/s at ${fmt(m("t1H2grpcUs"))} µs: ${fmt(m("v2Us/grpcUs"), 2)} × the native CPU per request`,
    "reported (the protocol's cost)",
    "—",
  ],
  [
    "T2",
    "T1 with dynamic batching off (max_batch_size 1)",
    `${fmt(m("t2"))} items/s; T1/T2 = ${fmt(m("t1/t2"), 1)}`,
    "T1/T2 ≥ 5",
    verdict(m("t1/t2") >= 5),
  ],
  [
    "T3",
    "T1 load against the naive server (HTTP, session.run per request, ORT's default threads)",
    `${fmt(m("t3"))} items/s (p99 ${fmt(m("t3P99"), 1)} ms); ours ${fmt(m("t1/t3"), 1)}×`,
    "≥ 5×, p99 no worse",
    verdict(m("t1/t3") >= 5 && m("t1P99") <= m("t3P99")),
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
    `${quick ? 5 : 50} SubmitBatch of 1,000 heavy items at once, until all completed`,
    `gRPC ${fmt(m("t5Grpc"))} items/s = ${fmt(m("t5Grpc/limit"), 2)} × limit at the default max_batch_size 64; with max_batch_size set to the limit's best size: gRPC ${fmt(m("t5GrpcTuned"))} (${fmt(m("t5GrpcTuned/limit"), 2)} ×), REST ${fmt(m("t5RestTuned"))} (${fmt(m("t5RestTuned/limit"), 2)} ×)`,
    "≥ 0.75 × limit",
    verdict(Math.max(m("t5Grpc/limit"), m("t5GrpcTuned/limit"), m("t5RestTuned/limit")) >= 0.75),
  ],
  ...(["", "One"] as const).map((suffix) => {
    const items = suffix === "" ? BURST : 1;
    return [
      `T6${suffix === "" ? "" : " (1 item)"}`,
      `4 priority classes × 64 closed-loop clients of ${items}-item Infer (equal offered load, saturated)`,
      `largest share gap ${fmt(m(`t6${suffix}MaxShareGap`), 1)} points from the weights; critical p99 ${fmt(m(`t6${suffix}CriticalP99`), 1)} ms vs low p50 ${fmt(m(`t6${suffix}LowP50`), 1)} ms`,
      "±5 points; critical p99 < low p50",
      verdict(
        m(`t6${suffix}MaxShareGap`) <= 5 && m(`t6${suffix}CriticalP99`) < m(`t6${suffix}LowP50`),
      ),
    ];
  }),
  ...(["", "One"] as const).map((suffix) => {
    const items = suffix === "" ? BURST : 1;
    const late = m(`t7${suffix}Late/ran`);
    const goodput = m(`t7${suffix}Goodput/capacity`);
    return [
      `T7${suffix === "" ? "" : " (1 item)"}`,
      `open loop, ${items}-item Infer at 2× what the setup sustains with ${items}-item requests (${fmt(m(`t7${suffix}Capacity`))} items/s), timeout_ms 200`,
      `of the ${fmt(m(`t7${suffix}Ran`))} items that ran, ${fmt(m(`t7${suffix}LateItems`))} ended after their deadline (${fmt(late * 100, 2)} %, server clock); goodput ${fmt(m(`t7${suffix}Goodput`))} items/s answered with an output within 200 ms = ${fmt(goodput, 2)} × capacity; ${fmt(m(`t7${suffix}Expired`))} items expired unrun; ${fmt(m(`t7${suffix}LateAnswers`))} of ${fmt(m(`t7${suffix}Answers`))} answers to requests sent in the window came after 200 ms (client clock)`,
      "late / ran ≤ 1 % and goodput ≥ 0.5 × capacity",
      verdict(late <= 0.01 && goodput >= 0.5),
    ];
  }),
  [
    "T8",
    "event-loop delay p99 under T1 load (h2load over gRPC), beyond prom-client's 10 ms sampling interval",
    `${fmt(m("t1H2LagP99Ms"), 1)} ms under T1 load (${fmt(m("t1LagP99Ms"), 1)} ms under the Node generator's lighter load); ${fmt(m("idleLagP99Ms"), 1)} ms idle`,
    "≤ 10 ms",
    verdict(m("t1H2LagP99Ms") <= 10),
  ],
  [
    "T9",
    "MAX_QUEUE_SIZE=10,000, heavy items queued over gRPC, read after a full GC",
    `resident memory grew ${fmt(m("t9RssRatio"), 2)} × the raw bytes of the ${fmt(m("t9Queued"))} items queued at the reading (${fmt((m("t9Queued") * HEAVY_WIDTH * 4) / 1048576, 1)} MiB); live memory (heap in use + ArrayBuffers) ${fmt(m("t9Ratio"), 2)} ×; ${fmt(m("t9Rejected"))} of 11 submits of 1,000 refused as over the limit`,
    "RSS ≤ 3×",
    verdict(m("t9RssRatio") <= 3),
  ],
  [
    "T10",
    "1-item critical Infer at 20/s, idle and beside 4 × 1,000-item low Infer in flight (heavy model, gRPC)",
    `critical p50 / p99 ${fmt(m("t10IdleP50"), 1)} / ${fmt(m("t10IdleP99"), 1)} ms idle, ${fmt(m("t10LoadedP50"), 1)} / ${fmt(m("t10LoadedP99"), 1)} ms beside the background (one background batch runs ${fmt(m("t10BatchMs"), 1)} ms); background ${fmt(m("t10Alone"))} items/s alone (${fmt(m("t10AloneUs"))} µs CPU per item), ${fmt(m("t10Beside"))} beside the probe (${fmt(m("t10BesideUs"))} µs) = ${fmt(m("t10Ratio"), 3)} ×; p99 within its bound in ${fmt((runs.t10Within ?? []).reduce((a, b) => a + b, 0))} of ${(runs.t10Within ?? []).length} rounds`,
    "loaded p99 ≤ idle p99 + one background batch; background ≥ 0.95 ×",
    verdict(m("t10LoadedP99") <= m("t10IdleP99") + m("t10BatchMs") && m("t10Ratio") >= 0.95),
  ],
  [
    "T10, beside a job",
    `the same probe, idle and beside one low job on the ${HEAVY_JOB_MODEL} model (${HEAVY_JOB_LAYERS.join(" → ")}), uploaded over REST before the windows`,
    `critical p50 / p99 ${fmt(m("t10JobIdleP50"), 1)} / ${fmt(m("t10JobIdleP99"), 1)} ms idle, ${fmt(m("t10JobLoadedP50"), 1)} / ${fmt(m("t10JobLoadedP99"), 1)} ms beside the job (one job batch runs ${fmt(m("t10JobBatchMs"), 1)} ms); the job ${fmt(m("t10JobAlone"))} items/s alone (${fmt(m("t10JobAloneUs"))} µs CPU per item), ${fmt(m("t10JobBeside"))} beside the probe (${fmt(m("t10JobBesideUs"))} µs) = ${fmt(m("t10JobRatio"), 3)} ×, of which the probe's own server CPU takes ${fmt(m("t10JobProbeShare") * 100, 1)} % of the cores (${fmt(m("t10ProbeShare") * 100, 1)} % in T10); p99 within its bound in ${fmt((runs.t10JobWithin ?? []).reduce((a, b) => a + b, 0))} of ${(runs.t10JobWithin ?? []).length} rounds`,
    "loaded p99 ≤ idle p99 + one job batch; the job ≥ 0.95 ×",
    verdict(
      m("t10JobLoadedP99") <= m("t10JobIdleP99") + m("t10JobBatchMs") && m("t10JobRatio") >= 0.95,
    ),
  ],
];
const lines = [
  `# Benchmark: ${new Date().toISOString()}`,
  "",
  `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${threads} cores, Node ${process.version}. Server: \`npm start\` build, ${threads} inference threads, defaults. Heavy model: dense ${HEAVY_LAYERS.join(" → ")}. ${seconds} s per measurement after ${warmup} s warm-up, ${repeat} round(s), medians.`,
  "",
  `Reference points: limit (raw ORT, best batch, ${threads} threads) ${fmt(m("limit"))} items/s; bare grpc-js echo (a separate process, the load generator's sequential client) p50 ${fmt(m("grpcEchoP50"), 3)} ms; bare Piscina round trip p50 ${fmt(m("piscinaP50"), 3)} ms.`,
  "",
  `CPU during T1, percent of one core (this machine has ${threads}, ${threads * 100} % in all): load generator ${fmt(m("t1GeneratorCpu"))} % (${fmt(m("t1GeneratorUs"))} µs per request), server ${fmt(m("t1ServerCpu"))} % (${fmt(m("t1ServerUs"))} µs per request), of which its main thread ${fmt(m("t1ServerMainCpu"))} % (${fmt(m("t1ServerMainUs"))} µs per request). The same load against the bare grpc-js echo: ${fmt(m("echoT1"))} requests/s with the load generator at ${fmt(m("echoT1GeneratorCpu"))} % (${fmt(m("echoGeneratorUs"))} µs per request) and the echo server at ${fmt(m("echoT1ServerCpu"))} % (${fmt(m("echoServerUs"))} µs per request): no server can be driven past that from one generator on this machine, and the limit alone needs all ${threads} cores. With ${BURST} items per request (same 64 clients) the server sustains ${fmt(m("t1Burst"))} items/s = ${fmt(m("t1Burst/limit"), 2)} × limit. Every items/s figure counts items answered with an output (answers decoded); ratios are medians of each round's ratio.`,
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
  `${JSON.stringify({ runs, detail, seconds, repeat, threads, warmup, quick }, null, 2)}\n`,
);
process.exit(0);
