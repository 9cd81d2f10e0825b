/**
 * Scaling out: the same burst of durable batches through one node on SQLite, and through 1..N
 * nodes sharing one Redis (each a whole server process with `--threads` inference threads, on
 * the heavy bench model). Batches are submitted over REST round-robin to the nodes, their status
 * read from the nodes round-robin until each has ended, and every item's outcome read back and
 * counted: only completed items count. Also: the Redis commands the cluster spent per item.
 * Usage: npm run bench:cluster [-- --batches 50 --items 1000 --nodes 3 --threads 1]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { HEAVY_LAYERS, writeHeavyModel } from "../scripts/build-bench-model.js";
import { freePort } from "./lib/free-port.js";

const { values } = parseArgs({
  options: {
    batches: { type: "string", default: "50" },
    items: { type: "string", default: "1000" },
    nodes: { type: "string", default: "3" },
    threads: { type: "string", default: "1" },
    redis: { type: "string", default: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" },
    out: { type: "string" },
  },
});
const batches = Number(values.batches);
const perBatch = Number(values.items);
const maxNodes = Number(values.nodes);
const threads = values.threads as string;
const redisUrl = values.redis as string;
const modelRoot = fileURLToPath(new URL("./models", import.meta.url));
if (!existsSync(join(modelRoot, "heavy", "model.onnx"))) writeHeavyModel(modelRoot);
const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const input = Array.from({ length: HEAVY_LAYERS[0] }, (_, k) => Math.sin(k));

interface Node {
  readonly proc: ChildProcess;
  readonly url: string;
}

/** Every node started, killed on the way out whatever happens. */
const started: ChildProcess[] = [];
process.on("exit", () => {
  for (const proc of started) proc.kill("SIGKILL");
});

async function startNode(env: Record<string, string>): Promise<Node> {
  const port = await freePort();
  const proc = spawn(process.execPath, ["--import", "tsx", CLI, "serve"], {
    env: {
      ...process.env,
      API_HOST: "127.0.0.1",
      API_PORT: String(port),
      GRPC_PORT: String(await freePort()),
      MODEL_DIR: modelRoot,
      REQUIRED_MODELS: "heavy",
      INFERENCE_THREADS: threads,
      REQUIRE_API_KEY: "false",
      LOG_LEVEL: "warn",
      MAX_QUEUE_SIZE: String(batches * perBatch),
      ...env,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  started.push(proc);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/ready`)).status === 200) return { proc, url };
    } catch (e) {
      if (i % 20 === 0) process.stderr.write(`waiting for ${url}: ${String(e)}\n`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`node on ${url} did not become ready`);
}

async function stopNode(node: Node): Promise<void> {
  const exited = new Promise((resolve) => node.proc.once("exit", resolve));
  node.proc.kill("SIGTERM");
  await exited;
}

async function json<T>(response: Promise<Response>): Promise<T> {
  const r = await response;
  if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

interface Round {
  readonly name: string;
  readonly nodes: number;
  readonly seconds: number;
  readonly completed: number;
  readonly failed: number;
  readonly commandsPerItem: number | undefined;
  /** Items each node ran, as a share of all it ran, in node order. */
  readonly shares: readonly number[];
}

/**
 * Items a node has run so far, from its own Prometheus counters (the v1 JSON metrics answer
 * for the whole cluster).
 */
async function processed(node: Node): Promise<number> {
  const response = await fetch(`${node.url}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics: ${response.status}`);
  let items = 0;
  for (const line of (await response.text()).split("\n")) {
    if (!line.startsWith("batch_processor_items_total{")) continue;
    if (/outcome="(success|failed|expired)"/.test(line)) items += Number(line.split(" ").at(-1));
  }
  return items;
}

/** One burst through `nodes`; returns what completed and how long it took. */
async function burst(name: string, nodes: Node[], redis: Redis | undefined): Promise<Round> {
  process.stderr.write(`${name}: submitting\n`);
  const processedBefore = await Promise.all(nodes.map(processed));
  const commandsBefore = redis === undefined ? 0 : await totalCommands(redis);
  const began = performance.now();
  const ids: string[] = [];
  for (let b = 0; b < batches; b++) {
    const node = nodes[b % nodes.length] as Node;
    const body = {
      data: Array.from({ length: perBatch }, () => ({ input })),
      metadata: { model_id: "heavy" },
      timeout_ms: 300_000,
    };
    const receipt = await json<{ batch_id: string }>(
      fetch(`${node.url}/api/batch-processor/submit`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
    );
    ids.push(receipt.batch_id);
  }
  process.stderr.write(`${name}: submitted, waiting\n`);
  const open = new Set(ids);
  let turn = 0;
  while (open.size > 0) {
    for (const id of [...open]) {
      const node = nodes[turn++ % nodes.length] as Node;
      const status = await json<{ status: string }>(
        fetch(`${node.url}/api/batch-processor/status/${id}`),
      );
      if (!["queued", "processing"].includes(status.status)) open.delete(id);
    }
    if (open.size > 0) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const seconds = (performance.now() - began) / 1000;
  const ran = (await Promise.all(nodes.map(processed))).map(
    (n, i) => n - (processedBefore[i] ?? 0),
  );
  const ranTotal = ran.reduce((a, b) => a + b, 0);
  const commands = redis === undefined ? undefined : (await totalCommands(redis)) - commandsBefore;
  let completed = 0;
  let failed = 0;
  for (const [i, id] of ids.entries()) {
    const node = nodes[i % nodes.length] as Node;
    const results = await json<{ results: { output?: number[]; error?: unknown }[] }>(
      fetch(`${node.url}/api/batch-processor/results/${id}`),
    );
    for (const r of results.results)
      if (r.error === undefined && r.output?.length === HEAVY_LAYERS.at(-1)) completed++;
      else failed++;
  }
  return {
    name,
    nodes: nodes.length,
    seconds,
    completed,
    failed,
    commandsPerItem: commands === undefined ? undefined : commands / (batches * perBatch),
    shares: ran.map((n) => n / ranTotal),
  };
}

async function totalCommands(redis: Redis): Promise<number> {
  const info = await redis.info("stats");
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1]);
}

const rounds: Round[] = [];
const dataDir = mkdtempSync(join(tmpdir(), "bp-cluster-bench-"));
try {
  const single = await startNode({ DATA_DIR: dataDir });
  rounds.push(await burst("one node, SQLite", [single], undefined));
  await stopNode(single);
  const redis = new Redis(redisUrl);
  for (let n = 1; n <= maxNodes; n++) {
    const prefix = `bench-${process.pid}-${n}`;
    const nodes: Node[] = [];
    for (let i = 0; i < n; i++)
      nodes.push(
        await startNode({
          REDIS_URL: redisUrl,
          CLUSTER_PREFIX: prefix,
          OWNER_SECRET: "bench-owner-secret-of-at-least-32-characters",
        }),
      );
    rounds.push(await burst(`${n} node${n > 1 ? "s" : ""}, Redis`, nodes, redis));
    for (const node of nodes) await stopNode(node);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

const items = batches * perBatch;
const base = rounds[0] as Round;
const lines = [
  `# Scaling out: ${batches} batches of ${perBatch} heavy-model items`,
  "",
  `Each node a server process with ${threads} inference thread(s), on this machine; batches`,
  "submitted over REST round-robin to the nodes, status read round-robin every 250 ms until each",
  "batch ended, then every item's outcome read back; only completed items count.",
  "",
  "| setup | completed / failed | seconds | items/s | vs one node on SQLite | Redis commands per item | items run per node |",
  "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
  ...rounds.map((r) => {
    const rate = r.completed / r.seconds;
    const ratio = rate / (base.completed / base.seconds);
    const commands = r.commandsPerItem === undefined ? "n/a" : r.commandsPerItem.toFixed(2);
    const shares = r.shares.map((x) => `${(x * 100).toFixed(0)} %`).join(" / ");
    return `| ${r.name} | ${r.completed} / ${r.failed} | ${r.seconds.toFixed(1)} | ${rate.toFixed(0)} | ${ratio.toFixed(2)}x | ${commands} | ${shares} |`;
  }),
  "",
  `Items per round: ${items}.`,
];
const report = lines.join("\n");
process.stdout.write(`${report}\n`);
if (values.out !== undefined) writeFileSync(values.out, `${report}\n`);
