/**
 * `npm run bench:jobs`: a data set as one job against raw onnxruntime-node, on a heavy model
 * (64 -> 4096 -> 4096 -> 3, built here). Its parts, each in the same run:
 * - raw: one bare session per thread running batches of `--batch` in a tight loop for
 *   `--raw-seconds`; items/s and CPU per item (this process's CPU, every thread);
 * - job: the server (`npm start` build, `--threads` inference threads, MAX_BATCH_SIZE=`--batch`)
 *   takes a `--lines` JSONL upload streamed over REST and runs it; items/s from the job's own
 *   start and end, CPU per item from the server's CPU (every thread, /proc) from the first byte
 *   of the upload to the job's end, and apart for the upload alone; lines are counted by outcome
 *   from the downloaded results, and only those with an output count;
 * - named: the same job with its lines by name (`{"inputs": {"input": {"values": [...]}}}`), kept as
 *   typed tensors and answered with every output by name; the same figures;
 * - online: p50/p99 of 1-item `critical` Infer requests on the default model at `--probe-rps`,
 *   without a job, then while a job of `--probe-lines` lines runs;
 * - memory (`--rss-lines`, 0 to skip): the server's RSS while a job of that many 64-float lines
 *   on the default model runs, against its RSS before the upload;
 * - redis: what a cluster's Redis holds per line: `--redis-lines` lines of 64 numbers stored as a
 *   job's chunks, then their outcomes (3 numbers each), measured by Redis's `used_memory`.
 * Usage: npm run bench:jobs [-- --lines 200000 --threads 2 --batch 64
 *   --parts raw,job,named,online,memory,redis --out FILE]
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { Redis } from "ioredis";
import {
  HEAVY_JOB_LAYERS,
  HEAVY_JOB_MODEL,
  writeHeavyJobModel,
} from "../scripts/build-bench-model.js";
import { CHUNK_LINES, floatInput, type JobLine } from "../src/engine/index.js";
import { RedisJobStore } from "../src/store/redis-job-store.js";
import { jobEnded, jobOutcomes, uploadJob } from "./lib/bench-jobs.js";
import { type BenchServer, startBenchServer } from "./lib/bench-server.js";
import { measureCpu, rssBytes } from "./lib/proc.js";
import { seriesSum } from "./lib/prometheus-text.js";

const { values } = parseArgs({
  options: {
    lines: { type: "string", default: "200000" },
    threads: { type: "string", default: "2" },
    batch: { type: "string", default: "64" },
    "raw-seconds": { type: "string", default: "30" },
    "probe-rps": { type: "string", default: "20" },
    "probe-lines": { type: "string", default: "30000" },
    "rss-lines": { type: "string", default: "1000000" },
    parts: { type: "string", default: "raw,job,named,online,memory,redis" },
    "redis-lines": { type: "string", default: "200000" },
    /** Runs the server with every priority_latency_ms 0 (no online classes), to compare. */
    "no-latency-targets": { type: "boolean", default: false },
    out: { type: "string" },
  },
});
const LINES = Number(values.lines);
const THREADS = Number(values.threads);
const BATCH = Number(values.batch);
const RAW_SECONDS = Number(values["raw-seconds"]);
const PROBE_RPS = Number(values["probe-rps"]);
const PROBE_LINES = Number(values["probe-lines"]);
const RSS_LINES = Number(values["rss-lines"]);
const PARTS = new Set(values.parts.split(","));
const REDIS_LINES = Number(values["redis-lines"]);
const LAYERS = HEAVY_JOB_LAYERS;
const WIDTH = LAYERS[0];
const KEY = "bench-key";
const root = fileURLToPath(new URL("..", import.meta.url));
const log = (text: string) => process.stderr.write(`${text}\n`);

// The model repository: the shipped default and the heavy model.
const modelDir = mkdtempSync(join(tmpdir(), "bp-bench-jobs-models-"));
writeHeavyJobModel(modelDir, BATCH);
mkdirSync(join(modelDir, "default"));
for (const file of ["model.onnx", "config.json"])
  writeFileSync(
    join(modelDir, "default", file),
    execFileSync("cat", [join(root, "models", "default", file)]),
  );

execFileSync(
  process.execPath,
  [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")],
  { stdio: "inherit" },
);

/** Raw onnxruntime-node: items/s and CPU µs per item. */
async function raw(): Promise<{ itemsPerSecond: number; cpuUsPerItem: number }> {
  const workers = Array.from(
    { length: THREADS },
    () =>
      new Worker(new URL("./raw-ort-worker.mjs", import.meta.url), {
        workerData: {
          modelPath: join(modelDir, HEAVY_JOB_MODEL, "model.onnx"),
          batch: BATCH,
          width: WIDTH,
          durationMs: RAW_SECONDS * 1000,
        },
      }),
  );
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))));
  const cpuBefore = process.cpuUsage();
  const results = await Promise.all(
    workers.map((w) => {
      const done = new Promise<{ items: number; ms: number }>((resolve) =>
        w.once("message", resolve),
      );
      w.postMessage("go");
      return done;
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  await Promise.all(workers.map((w) => w.terminate()));
  const items = results.reduce((n, r) => n + r.items, 0);
  const ms = Math.max(...results.map((r) => r.ms));
  return {
    itemsPerSecond: (items / ms) * 1000,
    cpuUsPerItem: (cpu.user + cpu.system) / items,
  };
}

function startServer(): Promise<BenchServer> {
  return startBenchServer(KEY, {
    MODEL_DIR: modelDir,
    INFERENCE_THREADS: String(THREADS),
    MAX_BATCH_SIZE: String(BATCH),
  });
}

const jobServer = (server: BenchServer) => ({ base: server.base, key: KEY });

/** Sends 1-item critical Infer requests at `rps` until `stop` resolves; their latencies, ms. */
async function probe(server: BenchServer, stop: Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  let done = false;
  void stop.then(() => {
    done = true;
  });
  const body = JSON.stringify({
    data: [{ input: [0.1, 0.2, 0.3, 0.4] }],
    priority: "critical",
    metadata: { model_id: "default" },
  });
  const pending: Promise<void>[] = [];
  while (!done) {
    const sent = performance.now();
    pending.push(
      fetch(`${server.base}/api/batch-processor/infer`, {
        method: "POST",
        headers: { "x-api-key": KEY, "content-type": "application/json" },
        body,
      }).then(async (response) => {
        const answer = (await response.json()) as { results?: { output?: number[] }[] };
        if (response.ok && (answer.results?.[0]?.output?.length ?? 0) > 0)
          latencies.push(performance.now() - sent);
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000 / PROBE_RPS));
  }
  await Promise.allSettled(pending);
  return latencies;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

interface JobFigures {
  readonly lines: number;
  readonly output: number;
  readonly error: number;
  readonly itemsPerSecond: number;
  readonly cpuUsPerItem: number;
  readonly runCpuUsPerItem: number;
  readonly mainUsPerItem: number;
  readonly ortUsPerItem: number;
  readonly uploadSeconds: number;
  readonly uploadUsPerLine: number;
  readonly meanBatch: number;
}

/**
 * A job of `LINES` heavy lines (by name when `named`): items/s over its own start to end, server
 * CPU per item.
 */
async function jobRun(server: BenchServer, named = false): Promise<JobFigures> {
  log(`job: uploading ${LINES} lines${named ? " by name" : ""}`);
  const pid = server.child.pid as number;
  const cpuAll = measureCpu(pid);
  const cpuUpload = measureCpu(pid);
  const uploadStarted = performance.now();
  const before = await (await fetch(`${server.base}/metrics`)).text();
  const created = await uploadJob(jobServer(server), HEAVY_JOB_MODEL, LINES, WIDTH, named);
  const uploadSeconds = (performance.now() - uploadStarted) / 1000;
  const uploadCpu = cpuUpload();
  const job = await jobEnded(jobServer(server), created.job_id);
  const allCpu = cpuAll();
  const allSeconds = (performance.now() - uploadStarted) / 1000;
  const metrics = await (await fetch(`${server.base}/metrics`)).text();
  const since = (name: string) =>
    seriesSum(metrics, name, { model: HEAVY_JOB_MODEL }) -
    seriesSum(before, name, { model: HEAVY_JOB_MODEL });
  const modelBatches = since("batch_processor_model_batches_total");
  const ortSeconds = since("batch_processor_inference_seconds_sum");
  const counted = await jobOutcomes(jobServer(server), job.job_id, LAYERS[3]);
  const runSeconds = (Date.parse(job.completed_at ?? "") - Date.parse(job.started_at ?? "")) / 1000;
  const uploadCpuSeconds = ((uploadCpu?.totalPercent ?? Number.NaN) / 100) * uploadSeconds;
  const allCpuSeconds = ((allCpu?.totalPercent ?? Number.NaN) / 100) * allSeconds;
  const mainCpuSeconds = ((allCpu?.mainPercent ?? Number.NaN) / 100) * allSeconds;
  const figures: JobFigures = {
    lines: LINES,
    output: counted.output,
    error: counted.error + counted.cancelled,
    itemsPerSecond: counted.output / runSeconds,
    cpuUsPerItem: (allCpuSeconds / counted.output) * 1e6,
    runCpuUsPerItem: ((allCpuSeconds - uploadCpuSeconds) / counted.output) * 1e6,
    mainUsPerItem: (mainCpuSeconds / counted.output) * 1e6,
    ortUsPerItem: (ortSeconds / counted.output) * 1e6,
    uploadSeconds,
    uploadUsPerLine: (uploadCpuSeconds / LINES) * 1e6,
    meanBatch: counted.output / modelBatches,
  };
  log(
    `job: ${job.status}, ${counted.output} outputs, ${counted.error} errors, ${f(figures.itemsPerSecond)} items/s, ${f(figures.cpuUsPerItem)} µs CPU per item (${f(figures.runCpuUsPerItem)} without the upload)`,
  );
  return figures;
}

/** Online latency without a job, then while one runs. */
async function online(server: BenchServer): Promise<OnlineFigures> {
  log(`online: ${PROBE_RPS} 1-item critical Infer/s, 10 s without a job`);
  const idle = await probe(server, new Promise((resolve) => setTimeout(resolve, 10_000)));
  log(`online: the same while a job of ${PROBE_LINES} heavy lines runs`);
  const busyJob = await uploadJob(jobServer(server), HEAVY_JOB_MODEL, PROBE_LINES, WIDTH);
  const done = jobEnded(jobServer(server), busyJob.job_id);
  const busy = await probe(server, done);
  const job = await done;
  const seconds = (Date.parse(job.completed_at ?? "") - Date.parse(job.started_at ?? "")) / 1000;
  return { idle, busy, jobItemsPerSecond: job.counts.completed / seconds };
}

interface OnlineFigures {
  readonly idle: number[];
  readonly busy: number[];
  /** The background job's items/s over its own start to end, with the probe's traffic. */
  readonly jobItemsPerSecond: number;
}

interface MemoryFigures {
  readonly before: number;
  readonly peak: number;
  readonly afterUpload: number;
  readonly lines: number;
  readonly seconds: number;
}

/** The server's RSS while a large job of 64-float lines runs on the default model. */
async function memory(): Promise<MemoryFigures> {
  const server = await startServer();
  const pid = server.child.pid as number;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const before = rssBytes(pid) ?? Number.NaN;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid) ?? 0);
  }, 100);
  log(`memory: a job of ${RSS_LINES} lines of ${WIDTH} numbers on the default model`);
  const started = performance.now();
  const big = await uploadJob(jobServer(server), "default", RSS_LINES, WIDTH);
  const afterUpload = peak;
  const bigEnded = await jobEnded(jobServer(server), big.job_id);
  clearInterval(sampler);
  await server.stop();
  return {
    before,
    peak,
    afterUpload,
    lines: bigEnded.counts.completed,
    seconds: (performance.now() - started) / 1000,
  };
}

interface RedisFigures {
  readonly lines: number;
  readonly inputBytes: number;
  readonly outcomeBytes: number;
}

/** Redis's memory for a job's lines and outcomes, as a cluster keeps them. */
async function redisMemory(): Promise<RedisFigures> {
  const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const prefix = `bench-jobs-${process.pid}`;
  const store = new RedisJobStore({ url, prefix });
  await store.ready();
  const redis = new Redis(url);
  const used = async () => Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
  try {
    log(`redis: ${REDIS_LINES} lines of ${WIDTH} numbers as a job's chunks, then their outcomes`);
    const before = await used();
    const { record } = await store.jobs.createJob({
      owner: "bench",
      jobId: "bench",
      modelId: "default",
      priority: "low",
      createdAt: Date.now(),
      expiresAt: Date.now() + 3_600_000,
      callback: null,
      keepMs: null,
    });
    const chunks = Math.ceil(REDIS_LINES / CHUNK_LINES);
    for (let c = 0; c < chunks; c++) {
      const lines: JobLine[] = [];
      for (
        let line = c * CHUNK_LINES + 1;
        line <= Math.min(REDIS_LINES, (c + 1) * CHUNK_LINES);
        line++
      )
        lines.push({
          line,
          id: `l${line}`,
          named: false,
          inputs: [
            floatInput(
              [WIDTH],
              Float32Array.from({ length: WIDTH }, (_, k) => Math.sin(line + k)),
            ),
          ],
        });
      await store.jobs.addChunk(record.pk, c, lines);
    }
    await store.jobs.sealJob(record.pk, {
      total: REDIS_LINES,
      invalid: 0,
      chunks,
      payloadHash: "b",
    });
    const afterInputs = await used();
    for (let c = 0; c < chunks; c++) {
      const lines = await store.jobs.chunkLines(record.pk, c);
      await store.jobs.saveChunk(
        record.pk,
        c,
        lines.map((l) => ({
          line: l.line,
          id: l.id,
          output: Float32Array.from([0.2, 0.3, 0.5]),
          confidence: 0.5,
          error: null,
        })),
        {
          pk: record.pk,
          status: "running",
          error: null,
          startedAt: Date.now(),
          completedAt: null,
          addCompleted: lines.length,
          addFailed: 0,
        },
      );
    }
    const afterOutcomes = await used();
    await store.jobs.dropJob(record.pk);
    return {
      lines: REDIS_LINES,
      inputBytes: afterInputs - before,
      outcomeBytes: afterOutcomes - afterInputs,
    };
  } finally {
    await store.close();
    redis.disconnect();
  }
}

let rawRun: { itemsPerSecond: number; cpuUsPerItem: number } | undefined;
if (PARTS.has("raw")) {
  log(`raw: ${THREADS} thread(s), batches of ${BATCH}, ${RAW_SECONDS} s`);
  rawRun = await raw();
  log(`raw: ${f(rawRun.itemsPerSecond)} items/s, ${f(rawRun.cpuUsPerItem)} µs CPU per item`);
}
let jobFigures: JobFigures | undefined;
let namedFigures: JobFigures | undefined;
let latencies: OnlineFigures | undefined;
if (PARTS.has("job") || PARTS.has("named") || PARTS.has("online")) {
  const server = await startServer();
  if (values["no-latency-targets"] === true) {
    const none = { critical: 0, high: 0, normal: 0, low: 0 };
    const answer = await fetch(`${server.base}/api/batch-processor/configure`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/json" },
      body: JSON.stringify({ priority_latency_ms: none }),
    });
    if (!answer.ok) throw new Error(`configure: ${answer.status}`);
  }
  if (PARTS.has("job")) jobFigures = await jobRun(server);
  if (PARTS.has("named")) namedFigures = await jobRun(server, true);
  if (PARTS.has("online")) latencies = await online(server);
  await server.stop();
}
const rss = PARTS.has("memory") && RSS_LINES > 0 ? await memory() : undefined;
const redisFigures = PARTS.has("redis") ? await redisMemory() : undefined;
rmSync(modelDir, { recursive: true, force: true });

const MiB = 1024 * 1024;
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? Number.NaN : a / b;
const report = [
  `# Jobs: ${new Date().toISOString()}`,
  "",
  `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}. Model ${LAYERS.join(" -> ")} (float32, built by the bench), ${THREADS} inference thread(s), batch size ${BATCH}. Parts: ${[...PARTS].join(", ")}.`,
  "",
];
if (rawRun !== undefined || jobFigures !== undefined || namedFigures !== undefined) {
  report.push(
    "| run | lines with an output | errors | items/s | CPU µs per item | vs raw (items/s) | vs raw (CPU per item) |",
    "|---|---|---|---|---|---|---|",
    rawRun === undefined
      ? "| raw onnxruntime-node | not run | | | | | |"
      : `| raw onnxruntime-node, ${RAW_SECONDS} s | - | - | ${f(rawRun.itemsPerSecond)} | ${f(rawRun.cpuUsPerItem)} | 1 | 1 |`,
  );
  const jobs = [
    [jobFigures, ""],
    [namedFigures, " by name"],
  ] as const;
  for (const [j, form] of jobs)
    if (j !== undefined)
      report.push(
        `| job of ${j.lines} lines${form} (upload to end) | ${j.output} | ${j.error} | ${f(j.itemsPerSecond)} | ${f(j.cpuUsPerItem)} | ${f(ratio(j.itemsPerSecond, rawRun?.itemsPerSecond), 3)} (target ≥ 0.85) | ${f(ratio(j.cpuUsPerItem, rawRun?.cpuUsPerItem), 3)} (target ≤ 1.15) |`,
        `| of which running (upload excluded) | | | | ${f(j.runCpuUsPerItem)} | | ${f(ratio(j.runCpuUsPerItem, rawRun?.cpuUsPerItem), 3)} |`,
        `| of which the main thread (upload included) | | | | ${f(j.mainUsPerItem)} | | |`,
        `| of which inside ONNX Runtime (wall time of its runs) | | | | ${f(j.ortUsPerItem)} | | |`,
      );
  for (const [j, form] of jobs)
    if (j !== undefined)
      report.push(
        "",
        `Upload${form}: ${f(j.uploadSeconds, 1)} s for ${j.lines} lines (${f(j.uploadUsPerLine)} µs server CPU per line). Mean model batch: ${f(j.meanBatch, 1)} items.`,
      );
  report.push(
    "",
    "Job items/s are over the job's own start to end (its `started_at`, `completed_at`).",
    "",
  );
}
if (latencies !== undefined) {
  const { idle, busy } = latencies;
  report.push(
    `Online latency, 1-item \`critical\` Infer on the default model at ${PROBE_RPS}/s (answers with an output only):`,
    "",
    "| | answers | p50 ms | p99 ms |",
    "|---|---|---|---|",
    `| no job | ${idle.length} | ${f(percentile(idle, 50), 1)} | ${f(percentile(idle, 99), 1)} |`,
    `| a ${PROBE_LINES}-line \`low\` job running | ${busy.length} | ${f(percentile(busy, 50), 1)} | ${f(percentile(busy, 99), 1)} |`,
    "",
    `The job ran at ${f(latencies.jobItemsPerSecond)} items/s (over its own start to end) beside the probe's traffic.`,
    "",
  );
}
if (rss !== undefined)
  report.push(
    `Memory: a job of ${RSS_LINES} lines of ${WIDTH} numbers on the default model (${rss.lines} with an output, upload to end ${f(rss.seconds, 1)} s): server RSS ${f(rss.before / MiB, 1)} MiB before the upload, peak ${f(rss.afterUpload / MiB, 1)} MiB by the upload's end and ${f(rss.peak / MiB, 1)} MiB while it ran: +${f((rss.peak - rss.before) / MiB, 1)} MiB (target ≤ 64 MiB + the chunks in flight).`,
    "",
  );
if (redisFigures !== undefined) {
  const perMillion = (bytes: number) => (bytes / redisFigures.lines) * 1e6;
  report.push(
    `Redis (a cluster's store): ${redisFigures.lines} lines of ${WIDTH} numbers take ${f(perMillion(redisFigures.inputBytes) / MiB, 0)} MiB per million lines as stored chunks, and their outcomes (3 numbers each) ${f(perMillion(redisFigures.outcomeBytes) / MiB, 0)} MiB per million more (Redis \`used_memory\`).`,
    "",
  );
}
const text = report.join("\n");
process.stdout.write(text);
if (values.out !== undefined) writeFileSync(values.out, text);
