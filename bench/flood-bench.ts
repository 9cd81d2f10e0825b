import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { SubmitBatchRequestSchema } from "../gen/batchprocessor/v1/batch_processor_pb.js";
import { startBenchServer } from "./lib/bench-server.js";
import { grpcFrame, h2load } from "./lib/h2load.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "1" },
    streams: { type: "string", default: "64" },
    seconds: { type: "string", default: "8" },
    json: { type: "string" },
  },
});
const _root = fileURLToPath(new URL("..", import.meta.url));
const server = await startBenchServer("bench-key", { DATA_DIR: ":memory:" });
const { apiPort, grpcPort } = server;
const body = grpcFrame(
  toBinary(
    SubmitBatchRequestSchema,
    create(SubmitBatchRequestSchema, { data: [{ input: [0.1, 0.2, 0.3, 0.4] }] }),
  ),
);
const times: number[] = [];
let done = false;
const probe = (async () => {
  while (!done) {
    const started = performance.now();
    if ((await fetch(`http://127.0.0.1:${apiPort}/health`)).ok)
      times.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
})();
/** The flood's rate and what it was, for the report. */
let flood: string;
if (values.json === undefined) {
  const run = await h2load({
    url: `http://127.0.0.1:${grpcPort}/batchprocessor.v1.BatchProcessorService/Infer`,
    body,
    headers: { "content-type": "application/grpc", te: "trailers", "x-api-key": "bench-key" },
    clients: Number(values.clients),
    streams: Number(values.streams),
    seconds: Number(values.seconds),
    warmupSeconds: 1,
  });
  flood = `${values.clients} connection(s) x ${values.streams} streams of 1-item Infer over gRPC: ${Math.round(run.requestsPerSecond)} requests/s`;
} else {
  // 1,001 items of ~800 numbers each: about 15 MB, under the default 16 MiB limit.
  const item = { input: Array.from({ length: 800 }, (_, i) => 0.123456789012345 + i) };
  const large = JSON.stringify({ data: Array.from({ length: 1001 }, () => item) });
  const until = performance.now() + Number(values.seconds) * 1000;
  const outcomes = new Map<number, number>();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: Number(values.json) }, async () => {
      while (performance.now() < until) {
        const res = await fetch(`http://127.0.0.1:${apiPort}/api/batch-processor/submit`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": "bench-key" },
          body: large,
        });
        await res.arrayBuffer();
        outcomes.set(res.status, (outcomes.get(res.status) ?? 0) + 1);
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const sent = [...outcomes.values()].reduce((a, b) => a + b, 0);
  flood = `${values.json} client(s) posting ${(large.length / 1e6).toFixed(1)} MB JSON submits of 1,001 items: ${sent} sent in ${values.seconds} s, answers ${JSON.stringify(Object.fromEntries(outcomes))} (client CPU ${((cpu.user + cpu.system) / 1000 / sent).toFixed(0)} ms per request)`;
}
done = true;
await probe;
const sorted = [...times].sort((a, b) => a - b);
const at = (p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
await server.stop();
process.stdout.write(
  `${cpus().length} cores, Node ${process.version}: ${flood}; /health p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, max ${(sorted.at(-1) ?? Number.NaN).toFixed(1)} ms (${sorted.length} reads)\n`,
);
process.exit(0);
