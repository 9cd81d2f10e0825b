/**
 * `npm run bench:websocket`: `/health` while hostile WebSocket clients press the server (the
 * `npm start` build, default settings): first one socket sending `--frames` 100-byte frames as
 * fast as it can, then `--sockets` upgrades attempted from one key and held open. `/health` is
 * read every 20 ms throughout; p50/p99/max of its answers, the frames answered, the sockets let in.
 * Usage: npm run bench:websocket [-- --frames 50000 --sockets 20000]
 */
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { startBenchServer } from "./lib/bench-server.js";

const { values } = parseArgs({
  options: {
    frames: { type: "string", default: "50000" },
    sockets: { type: "string", default: "20000" },
  },
});
const FRAMES = Number(values.frames);
const SOCKETS = Number(values.sockets);
const KEY = "bench-key";
const root = fileURLToPath(new URL("..", import.meta.url));

execFileSync(
  process.execPath,
  [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")],
  { stdio: "inherit" },
);
const server = await startBenchServer(KEY);
const { apiPort, base } = server;
const url = `ws://127.0.0.1:${apiPort}/ws/batch-processor`;

/** Reads /health every 20 ms until `stop` resolves; the answers' times, ms. */
async function probe(stop: Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  let done = false;
  void stop.then(() => {
    done = true;
  });
  while (!done) {
    const started = performance.now();
    const ok = await fetch(`${base}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) times.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return times;
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;
const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");

// 1. One socket floods.
const flooder = new WebSocket(url, { headers: { "X-API-Key": KEY } });
await new Promise((resolve) => flooder.once("open", resolve));
let answered = 0;
flooder.on("message", () => answered++);
const frame = JSON.stringify({ action: "dance", batch_id: "x".repeat(60) });
const floodFor = new Promise<void>((resolve) => setTimeout(resolve, 10_000));
const flood = (async () => {
  for (let k = 0; k < FRAMES; k++) {
    flooder.send(frame);
    if (k % 1000 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
})();
const floodHealth = await probe(Promise.all([flood, floodFor]));
flooder.terminate();

// 2. One key opens sockets until refused, and holds them.
let admitted = 0;
let refused = 0;
const held: WebSocket[] = [];
const opening = (async () => {
  for (let k = 0; k < SOCKETS; k += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, SOCKETS - k) }, () => {
        const ws = new WebSocket(url, { headers: { "X-API-Key": KEY } });
        held.push(ws);
        return new Promise<void>((resolve) => {
          ws.once("open", () => {
            admitted++;
            resolve();
          });
          ws.once("unexpected-response", () => {
            refused++;
            resolve();
          });
          ws.once("error", () => resolve());
        });
      }),
    );
  }
  await new Promise((resolve) => setTimeout(resolve, 3000));
})();
const socketHealth = await probe(opening);
for (const ws of held) ws.terminate();
await server.stop();

process.stdout.write(
  [
    `# WebSocket pressure: ${new Date().toISOString()}`,
    "",
    `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}; the \`npm start\` build with its defaults.`,
    "",
    "| pressure | /health answers | p50 ms | p99 ms | max ms | what the server did |",
    "|---|---|---|---|---|---|",
    `| one socket sends ${FRAMES} frames of ${frame.length} bytes (10 s window) | ${floodHealth.length} | ${f(pct(floodHealth, 50))} | ${f(pct(floodHealth, 99))} | ${f(Math.max(...floodHealth))} | ${answered} frames answered |`,
    `| ${SOCKETS} upgrades from one key, held open | ${socketHealth.length} | ${f(pct(socketHealth, 50))} | ${f(pct(socketHealth, 99))} | ${f(Math.max(...socketHealth))} | ${admitted} let in, ${refused} refused (429) |`,
    "",
  ].join("\n"),
);
