/**
 * `npm run bench:flood`: `/health` while h2load floods the gRPC port with 1-item Infer requests
 * (the `npm start` build, defaults): `--clients` connections of `--streams` concurrent streams for
 * `--seconds`, `/health` read every 20 ms meanwhile; the flood's rate and `/health`'s p50/p99.
 * Usage: npm run bench:flood [-- --clients 1 --streams 64 --seconds 8]
 */
import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { SubmitBatchRequestSchema } from "../gen/batchprocessor/v1/batch_processor_pb.js";
import { freePort } from "./lib/free-port.js";
import { grpcFrame, h2load } from "./lib/h2load.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "1" },
    streams: { type: "string", default: "64" },
    seconds: { type: "string", default: "8" },
  },
});
const root = fileURLToPath(new URL("..", import.meta.url));
const [apiPort, grpcPort] = [await freePort(), await freePort()];
const server = spawn(process.execPath, [join(root, "dist", "src", "cli.js"), "serve"], {
  env: {
    ...process.env,
    API_HOST: "127.0.0.1",
    API_PORT: String(apiPort),
    GRPC_PORT: String(grpcPort),
    API_KEYS: "bench-key",
    DATA_DIR: ":memory:",
    LOG_LEVEL: "warn",
  },
  stdio: "ignore",
});
process.on("exit", () => server.kill("SIGKILL"));
while (
  !(await fetch(`http://127.0.0.1:${apiPort}/ready`).then(
    (r) => r.ok,
    () => false,
  ))
)
  await new Promise((resolve) => setTimeout(resolve, 100));
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
const run = await h2load({
  url: `http://127.0.0.1:${grpcPort}/batchprocessor.v1.BatchProcessorService/Infer`,
  body,
  headers: { "content-type": "application/grpc", te: "trailers", "x-api-key": "bench-key" },
  clients: Number(values.clients),
  streams: Number(values.streams),
  seconds: Number(values.seconds),
  warmupSeconds: 1,
});
done = true;
await probe;
const sorted = [...times].sort((a, b) => a - b);
const at = (p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
server.kill("SIGTERM");
process.stdout.write(
  `${cpus().length} cores, Node ${process.version}: ${values.clients} connection(s) x ${values.streams} streams of 1-item Infer over gRPC: ${Math.round(run.requestsPerSecond)} requests/s; /health p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms (${sorted.length} reads)\n`,
);
process.exit(0);
