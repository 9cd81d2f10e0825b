/**
 * `npm run bench:profile`: where the server's main thread spends its time and what it allocates
 * per request, for one kind of request under h2load. The `npm start` build runs with its
 * inspector open; over one window a CPU profile of its main thread is taken, over a second a
 * sampling heap profile that counts every allocation (collected or not). Requests are the server's
 * own count of calls answered OK. Both are grouped by origin (this server's modules by directory,
 * each package, Node's internals, the garbage collector) and by function.
 * Usage: npm run bench:profile [-- --target grpc|connect|rest|large --seconds 8 --out FILE]
 *   grpc, connect, rest: 64 concurrent 1-item Infer on the default model;
 *   large: 4 concurrent 1,000-item Infer on the heavy bench model over gRPC.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { SubmitBatchRequestSchema } from "../gen/batchprocessor/v1/batch_processor_pb.js";
import { HEAVY_LAYERS } from "../scripts/build-bench-model.js";
import { startBenchServer } from "./lib/bench-server.js";
import { freePort } from "./lib/free-port.js";
import { grpcFrame, type H2loadSpec, h2load } from "./lib/h2load.js";
import { encodedHeavyInfer } from "./lib/heavy-infer.js";
import { heavyModelDir } from "./lib/heavy-model-dir.js";
import {
  type CallFrame,
  type CpuProfile,
  connectInspector,
  type HeapNode,
  originOf,
  placeOf,
  startCpuProfile,
  startHeapSampling,
} from "./lib/inspector.js";
import { seriesSum } from "./lib/prometheus-text.js";

const { values } = parseArgs({
  options: {
    target: { type: "string", default: "grpc" },
    seconds: { type: "string", default: "8" },
    top: { type: "string", default: "15" },
    out: { type: "string" },
  },
});
const target = values.target as string;
const seconds = Number(values.seconds);
const top = Number(values.top);
const root = fileURLToPath(new URL("..", import.meta.url));
const KEY = "bench-key";
const INFER = "/batchprocessor.v1.BatchProcessorService/Infer";
if (!["grpc", "connect", "rest", "large"].includes(target))
  throw new Error(`--target: expected grpc, connect, rest or large, got ${target}`);

execFileSync(
  process.execPath,
  [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")],
  { stdio: "inherit" },
);
const modelDir = heavyModelDir();
const inspectPort = await freePort();
const server = await startBenchServer(KEY, { MODEL_DIR: modelDir }, [
  `--inspect=127.0.0.1:${inspectPort}`,
]);
const { base, grpcPort } = server;

const oneItem = { data: [{ input: [0.1, 0.2, 0.3, 0.4] }], metadata: { model_id: "default" } };
const proto = toBinary(SubmitBatchRequestSchema, create(SubmitBatchRequestSchema, oneItem));
const grpcHeaders = { "content-type": "application/grpc", te: "trailers", "x-api-key": KEY };
const SPECS: Record<string, Omit<H2loadSpec, "seconds" | "warmupSeconds" | "onWindow">> = {
  grpc: {
    url: `http://127.0.0.1:${grpcPort}${INFER}`,
    body: grpcFrame(proto),
    headers: grpcHeaders,
    clients: 1,
    streams: 64,
  },
  connect: {
    url: `${base}${INFER}`,
    body: proto,
    headers: { "content-type": "application/proto", "x-api-key": KEY },
    clients: 64,
    streams: 1,
    h1: true,
  },
  rest: {
    url: `${base}/api/batch-processor/infer`,
    body: new TextEncoder().encode(JSON.stringify(oneItem)),
    headers: { "content-type": "application/json", "x-api-key": KEY },
    clients: 64,
    streams: 1,
    h1: true,
  },
  large: {
    url: `http://127.0.0.1:${grpcPort}${INFER}`,
    body: grpcFrame(encodedHeavyInfer(1000, HEAVY_LAYERS[0], "normal")),
    headers: grpcHeaders,
    clients: 1,
    streams: 4,
  },
};
const spec = SPECS[target] as (typeof SPECS)[string];
const answered = async () =>
  seriesSum(await (await fetch(`${base}/metrics`)).text(), "batch_processor_requests_total", {
    method: "Infer",
    code: "ok",
  });

/** Runs one window of the load with a profile taken over it; the profile and the calls answered. */
async function profiled<T>(start: () => Promise<() => Promise<T>>): Promise<[T, number]> {
  let stop: (() => Promise<T>) | undefined;
  let before = 0;
  let profile: T | undefined;
  let calls = 0;
  await h2load({
    ...spec,
    seconds,
    warmupSeconds: 2,
    onWindow: async (edge) => {
      if (edge === "start") {
        before = await answered();
        stop = await start();
      } else {
        profile = await stop?.();
        calls = (await answered()) - before;
      }
    },
  });
  return [profile as T, calls];
}

const inspector = await connectInspector(inspectPort);
const [cpu, cpuCalls] = await profiled(() => startCpuProfile(inspector));
const [heap, heapCalls] = await profiled(() => startHeapSampling(inspector));
inspector.close();

/** Self time per origin and per function, of a CPU profile; idle apart. */
function cpuBreakdown(profile: CpuProfile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const originById = new Map<number, string>();
  const visit = (id: number, inherited: string) => {
    const node = byId.get(id);
    if (node === undefined) return;
    const frame = node.callFrame;
    const origin =
      frame.url === "" && !frame.functionName.startsWith("(") ? inherited : originOf(frame);
    originById.set(id, origin);
    for (const child of node.children ?? []) visit(child, origin);
  };
  visit(profile.nodes[0]?.id ?? 1, "(root)");
  const origins = new Map<string, number>();
  const places = new Map<string, number>();
  let idle = 0;
  for (const id of profile.samples) {
    const node = byId.get(id) as CpuProfile["nodes"][number];
    if (node.callFrame.functionName === "(idle)") {
      idle++;
      continue;
    }
    const origin = originById.get(id) ?? "?";
    origins.set(origin, (origins.get(origin) ?? 0) + 1);
    const place = placeOf(node.callFrame);
    places.set(place, (places.get(place) ?? 0) + 1);
  }
  const busy = profile.samples.length - idle;
  const busyMs = ((profile.endTime - profile.startTime) / 1000) * (busy / profile.samples.length);
  return { origins, places, busy, busyMs };
}

/** Bytes per origin and per allocating function, of a heap profile. */
function heapBreakdown(head: HeapNode) {
  const origins = new Map<string, number>();
  const places = new Map<string, number>();
  let total = 0;
  const visit = (node: HeapNode, inherited: CallFrame) => {
    const frame = node.callFrame.url === "" ? inherited : node.callFrame;
    if (node.selfSize > 0) {
      total += node.selfSize;
      const origin = originOf(frame);
      origins.set(origin, (origins.get(origin) ?? 0) + node.selfSize);
      const place = placeOf(node.callFrame.url === "" ? node.callFrame : frame);
      const where = node.callFrame.url === "" ? `${place} in ${placeOf(frame)}` : place;
      places.set(where, (places.get(where) ?? 0) + node.selfSize);
    }
    for (const child of node.children) visit(child, frame);
  };
  visit(head, head.callFrame);
  return { origins, places, total };
}

const c = cpuBreakdown(cpu);
const h = heapBreakdown(heap);
const share = (n: number, of: number) => `${((100 * n) / of).toFixed(1)} %`;
const ranked = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]);
const perCallUs = (c.busyMs * 1000) / cpuCalls;
const lines = [
  `# Where the main thread goes: ${target}, ${new Date().toISOString()}`,
  "",
  `\`npm run bench:profile -- --target ${target} --seconds ${seconds}\`: ${spec.clients} connection(s) × ${spec.streams} stream(s) of ${target === "large" ? "1,000-item Infer on the heavy model" : "1-item Infer on the default model"}; ${seconds} s windows after 2 s of warm-up.`,
  "",
  `CPU profile: ${cpuCalls} calls answered OK, the main thread busy ${share(c.busy, cpu.samples.length)} of the window, **${perCallUs.toFixed(1)} µs of main thread per call** (sampled).`,
  "",
  "| origin | share of the busy main thread | µs per call |",
  "| --- | ---: | ---: |",
  ...ranked(c.origins).map(
    ([origin, n]) =>
      `| ${origin} | ${share(n, c.busy)} | ${((perCallUs * n) / c.busy).toFixed(1)} |`,
  ),
  "",
  `| function (self time), top ${top} | share of busy |`,
  "| --- | ---: |",
  ...ranked(c.places)
    .slice(0, top)
    .map(([place, n]) => `| \`${place}\` | ${share(n, c.busy)} |`),
  "",
  `Heap profile: ${heapCalls} calls answered OK, **${(h.total / heapCalls / 1024).toFixed(1)} KiB allocated per call** (sampled, collected objects included).`,
  "",
  "| origin | share of the bytes | KiB per call |",
  "| --- | ---: | ---: |",
  ...ranked(h.origins).map(
    ([origin, n]) => `| ${origin} | ${share(n, h.total)} | ${(n / heapCalls / 1024).toFixed(2)} |`,
  ),
  "",
  `| allocating function, top ${top} | share of the bytes |`,
  "| --- | ---: |",
  ...ranked(h.places)
    .slice(0, top)
    .map(([place, n]) => `| \`${place}\` | ${share(n, h.total)} |`),
];
const report = lines.join("\n");
console.log(report);
if (values.out !== undefined) writeFileSync(values.out, `${report}\n`);
await server.stop();
process.exit(0);
