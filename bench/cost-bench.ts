/**
 * `npm run bench:cost`: what the server spends per 1-item Infer, against a bare grpc-js echo.
 * h2load (a C load generator, Debian's nghttp2-client) sends 1-item Infer requests on the
 * default model over gRPC, Connect and REST, and 1-item ModelInfer requests of the Open Inference
 * Protocol over gRPC (the same model, the same items), and 1,000-item Infer requests on the heavy
 * bench model over gRPC (4 in flight: the main thread's share of a large request, which every
 * request arriving beside it waits out); the server's CPU over the measured window, minus
 * the time its threads spent inside ONNX Runtime (its own counter), divided by the requests it
 * answered OK (its own counter), is its cost per request. The echo's is its CPU per request.
 * Usage: npm run bench:cost [-- --seconds 8 --repeat 3 --out FILE]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { SubmitBatchRequestSchema } from "../gen/batchprocessor/v1/batch_processor_pb.js";
import { ModelInferRequestSchema } from "../gen/inference/grpc_predict_v2_pb.js";
import { HEAVY_LAYERS } from "../scripts/build-bench-model.js";
import { freePort } from "./lib/free-port.js";
import { grpcFrame, h2load } from "./lib/h2load.js";
import { encodedHeavyInfer } from "./lib/heavy-infer.js";
import { heavyModelDir } from "./lib/heavy-model-dir.js";
import { inferCost } from "./lib/infer-cost.js";
import { median } from "./lib/raw-limit.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    warmup: { type: "string", default: "2" },
    repeat: { type: "string", default: "3" },
    streams: { type: "string", default: "64" },
    out: { type: "string" },
  },
});
const seconds = Number(values.seconds);
const warmupSeconds = Number(values.warmup);
const repeat = Number(values.repeat);
const streams = Number(values.streams);
const root = fileURLToPath(new URL("..", import.meta.url));
const KEY = "bench-key";
const INFER = "/batchprocessor.v1.BatchProcessorService/Infer";
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const started = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - started > 120_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Starts `args` and returns the child once `ready` says so. */
async function start(args: string[], env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  return child;
}

const message = toBinary(
  SubmitBatchRequestSchema,
  create(SubmitBatchRequestSchema, {
    data: [{ input: [0.1, 0.2, 0.3, 0.4] }],
    metadata: { model_id: "default" },
  }),
);
const modelInfer = toBinary(
  ModelInferRequestSchema,
  create(ModelInferRequestSchema, {
    modelName: "default",
    inputs: [
      {
        name: "input",
        datatype: "FP32",
        shape: [1n, 4n],
        contents: { fp32Contents: [0.1, 0.2, 0.3, 0.4] },
      },
    ],
  }),
);
const LARGE_ITEMS = 1000;
const large = encodedHeavyInfer(LARGE_ITEMS, HEAVY_LAYERS[0], "normal");
const modelDir = heavyModelDir();
const json = new TextEncoder().encode(
  JSON.stringify({ data: [{ input: [0.1, 0.2, 0.3, 0.4] }], metadata: { model_id: "default" } }),
);

execFileSync(
  process.execPath,
  [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")],
  { stdio: "inherit" },
);

const runs: Record<string, number[]> = {};
const keep = (name: string, value: number) => {
  runs[name] = [...(runs[name] ?? []), value];
};

for (let round = 0; round < repeat; round++) {
  process.stderr.write(`round ${round + 1}/${repeat}: echo\n`);
  const echo = await start(["--import", "tsx", join(root, "bench", "echo-server.ts"), "10"], {});
  const echoPort = await new Promise<number>((resolve) =>
    echo.stdout?.on("data", (c: Buffer) => resolve(Number(/listening (\d+)/.exec(`${c}`)?.[1]))),
  );
  const echoRun = await h2load({
    url: `http://127.0.0.1:${echoPort}${INFER}`,
    body: grpcFrame(message),
    headers: { "content-type": "application/grpc", te: "trailers" },
    clients: 1,
    streams,
    seconds,
    warmupSeconds,
    watch: [echo.pid as number],
  });
  echo.kill("SIGKILL");
  const echoCpuSeconds = ((echoRun.watchedCpu[0]?.totalPercent ?? Number.NaN) / 100) * seconds;
  keep("echoRps", echoRun.requestsPerSecond);
  const echoRequests = echoRun.requestsPerSecond * seconds;
  keep("echoUs", (echoCpuSeconds / echoRequests) * 1e6);
  keep(
    "echoGeneratorUs",
    (((echoRun.generatorCpu?.totalPercent ?? Number.NaN) / 100) * seconds * 1e6) / echoRequests,
  );

  process.stderr.write(`round ${round + 1}/${repeat}: server\n`);
  const [apiPort, grpcPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), "bp-cost-"));
  const server = await start([join(root, "dist", "src", "cli.js"), "serve"], {
    API_HOST: "127.0.0.1",
    API_PORT: String(apiPort),
    GRPC_PORT: String(grpcPort),
    API_KEYS: KEY,
    DATA_DIR: dataDir,
    MODEL_DIR: modelDir,
    LOG_LEVEL: "warn",
  });
  await until(async () => (await fetch(`http://127.0.0.1:${apiPort}/ready`)).ok, "the server");
  const targets = [
    {
      name: "grpc",
      url: `http://127.0.0.1:${grpcPort}${INFER}`,
      body: grpcFrame(message),
      headers: { "content-type": "application/grpc", te: "trailers", "x-api-key": KEY },
      clients: 1,
      streams,
    },
    {
      name: "connect",
      url: `http://127.0.0.1:${apiPort}${INFER}`,
      body: message,
      headers: { "content-type": "application/proto", "x-api-key": KEY },
      clients: streams,
      streams: 1,
      h1: true,
    },
    {
      name: "rest",
      url: `http://127.0.0.1:${apiPort}/api/batch-processor/infer`,
      body: json,
      headers: { "content-type": "application/json", "x-api-key": KEY },
      clients: streams,
      streams: 1,
      h1: true,
    },
    {
      name: "large",
      url: `http://127.0.0.1:${grpcPort}${INFER}`,
      body: grpcFrame(large),
      headers: { "content-type": "application/grpc", te: "trailers", "x-api-key": KEY },
      clients: 1,
      streams: 4,
    },
    {
      name: "v2",
      url: `http://127.0.0.1:${grpcPort}/inference.GRPCInferenceService/ModelInfer`,
      body: grpcFrame(modelInfer),
      headers: { "content-type": "application/grpc", te: "trailers", "x-api-key": KEY },
      clients: 1,
      streams,
    },
  ] as const;
  for (const { name, ...target } of targets) {
    const cost = await inferCost(
      { ...target, seconds, warmupSeconds },
      server.pid as number,
      `http://127.0.0.1:${apiPort}/metrics`,
      name === "v2" ? "ModelInfer" : "Infer",
    );
    const { ok } = cost;
    keep(`${name}Rps`, ok / seconds);
    keep(`${name}Items`, cost.items / seconds);
    keep(`${name}Us`, cost.usPerRequest);
    keep(`${name}MainUs`, (cost.mainSeconds / ok) * 1e6);
    keep(`${name}OrtUs`, (cost.ortSeconds / ok) * 1e6);
    keep(`${name}/echo`, cost.usPerRequest / (runs.echoUs?.at(-1) as number));
    if (name === "v2") keep("v2/grpc", cost.usPerRequest / (runs.grpcUs?.at(-1) as number));
    if (name === "large") {
      // Every thread's CPU, ORT included: a large request's runs are long, and their wall time
      // (what the server counts) is no measure of their CPU on a busy machine.
      keep("largeCpuPerItemUs", ((cost.cpuSeconds / ok) * 1e6) / LARGE_ITEMS);
      keep("largeMainPerItemUs", ((cost.mainSeconds / ok) * 1e6) / LARGE_ITEMS);
      keep("largeMainMs", (cost.mainSeconds / ok) * 1e3);
      continue;
    }
    keep(
      `${name}GeneratorUs`,
      ((((cost.result.generatorCpu?.totalPercent ?? Number.NaN) / 100) * seconds) / ok) * 1e6,
    );
  }
  server.kill("SIGTERM");
  await new Promise((resolve) => server.once("exit", resolve));
  rmSync(dataDir, { recursive: true, force: true });
}

const TARGET_NAMES: Record<string, string> = {
  grpc: "gRPC",
  connect: "Connect",
  rest: "REST",
  v2: "v2 ModelInfer (gRPC)",
};
const m = (name: string) => median(runs[name] ?? [Number.NaN]);
const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const lines = [
  `# Cost per request: ${new Date().toISOString()}`,
  "",
  `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}. h2load, ${streams} concurrent 1-item Infer requests on the default model (gRPC: one connection, ${streams} streams; Connect and REST: ${streams} HTTP/1.1 connections), ${seconds} s measured after ${warmupSeconds} s, ${repeat} round(s), medians (ratios: medians of each round's ratio). Server: \`npm start\` build, defaults. CPU per request = the server's CPU (every thread) over the window, minus its threads' time inside ONNX Runtime, over the requests it answered OK.`,
  "",
  "| target | answers/s | items with an output/s | CPU µs per request (without ORT) | of which main thread | ORT µs per request | vs echo | target ≤ 1.5× | h2load µs per request |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
  `| bare grpc-js echo | ${f(m("echoRps"))} | n/a | ${f(m("echoUs"))} | n/a | n/a | 1.00× | | ${f(m("echoGeneratorUs"))} |`,
  ...["grpc", "connect", "rest", "v2"].map(
    (t) =>
      `| server, ${TARGET_NAMES[t]} | ${f(m(`${t}Rps`))} | ${f(m(`${t}Items`))} | ${f(m(`${t}Us`))} | ${f(m(`${t}MainUs`))} | ${f(m(`${t}OrtUs`))} | ${f(m(`${t}/echo`), 2)}× | ${m(`${t}/echo`) <= 1.5 ? "met" : "**not met**"} | ${f(m(`${t}GeneratorUs`))} |`,
  ),
  "",
  `1,000-item Infer on the heavy model (${HEAVY_LAYERS.join(" → ")}), gRPC, 4 in flight: ${f(m("largeRps"), 1)} answers/s, ${f(m("largeItems"))} items with an output/s, ${f(m("largeCpuPerItemUs"), 1)} µs CPU per item (every thread, ORT included), of which the main thread ${f(m("largeMainPerItemUs"), 1)} µs: **${f(m("largeMainMs"), 1)} ms of the main thread per request**.`,
  "",
  `The Open Inference Protocol's ModelInfer costs ${f(m("v2/grpc"), 2)}× the native gRPC Infer's CPU per request (median of each round's ratio).`,
];
const report = lines.join("\n");
console.log(report);
if (values.out !== undefined) writeFileSync(values.out, `${report}\n`);
writeFileSync(
  join(root, "bench", "results", "cost-latest.json"),
  `${JSON.stringify(runs, null, 2)}\n`,
);
process.exit(0);
