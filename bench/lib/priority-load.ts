/**
 * Priority under load: 1-item `critical` Infer requests on a heavy model, sent at a steady rate
 * over gRPC, first on an idle server and then beside a saturating `low` background: 1,000-item
 * Infer requests on the same model from another process, or one job; the background's own
 * throughput alone (before and after) and beside the probe. Latencies count answers with an
 * output; the background's items/s come from the server's count of items that succeeded over
 * each window, and its answers (or the job's results) are decoded and counted by outcome as
 * well. One background batch's run time is the mean of the model's batches while the background
 * ran alone.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { SECONDS_BUCKETS } from "../../src/metrics/prometheus.js";
import { cancelJob, type JobServer, jobOutcomes, jobView, uploadJob } from "./bench-jobs.js";
import { grpcClient } from "./grpc-client.js";
import { encodedHeavyInfer, type InferAnswer } from "./heavy-infer.js";
import { measureCpu } from "./proc.js";
import { seriesSum } from "./prometheus-text.js";
import type { TraceReceiver } from "./trace-receiver.js";

/** A model of the server's repository, as the harness sends to it. */
export interface BenchModel {
  readonly name: string;
  /** Numbers in an item's input, and in its output. */
  readonly width: number;
  readonly outputWidth: number;
}

export interface PriorityLoadSpec {
  readonly grpc: string;
  /** The server's REST base, `http://host:port`: metrics, and the job background. */
  readonly base: string;
  readonly key: string;
  readonly pid: number;
  /** The probe's model, and the background requests'. */
  readonly model: BenchModel;
  /**
   * When given, the background is one job on this model instead of 1,000-item Infer requests
   * kept in flight by another process: uploaded before the first window and long enough to
   * outlast the last one (sized from a short job's items/s), cancelled after it.
   */
  readonly job?: BenchModel;
  /** Length of each measured window, s. */
  readonly seconds: number;
  /** Probe requests per second. @defaultValue 20 */
  readonly probeRps?: number;
  /** Background requests in flight at once. @defaultValue 4 */
  readonly backgroundRequests?: number;
  /**
   * Where the server sends its spans (it samples only requests that ask to be traced): each
   * probe beside the background is then traced and its time split into {@link Stages}.
   */
  readonly traces?: TraceReceiver;
}

/** One probe's trip, split by the server's spans; ms. */
const STAGES = [
  ["to the handler", "client send → the call's span starts (transport, decoding, a busy loop)"],
  ["admission", "the call's span starts → its item is queued"],
  ["queue", "queued → dispatched (the queue span)"],
  ["to the thread and back", "the batch span less its inference span"],
  ["inference", "the inference span"],
  ["answer", "the batch ends → the call's span ends"],
  ["to the client", "the call's span ends → the client has the answer"],
] as const;

export type StageName = (typeof STAGES)[number][0];

/** Where the traced probes' time went. */
export interface Stages {
  /** Probes answered whose spans all arrived, and those whose spans did not. */
  readonly probes: number;
  readonly missing: number;
  /** Per stage: p50, p99, and its mean over the probes at or above the p99 of the whole trip. */
  readonly stages: readonly {
    readonly name: StageName;
    readonly meaning: string;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly tailMeanMs: number;
  }[];
}

interface TracedProbe {
  readonly traceId: string;
  /** Epoch ms, the client's clock. */
  readonly sent: number;
  readonly got: number;
}

export interface Latencies {
  readonly answers: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /**
   * The same requests' items as the server timed them (arrival to outcome): the upper bound of
   * the histogram bucket holding their p99, ms; it tells the server's share of the tail from the
   * network's and the client's.
   */
  readonly serverP99AtMostMs: number;
  /** The server's event-loop delay p99 over the same window, ms. */
  readonly loopDelayP99Ms: number;
  /** The traced probes (only with {@link PriorityLoadSpec.traces}, beside the background). */
  readonly traced?: readonly TracedProbe[];
}

export interface Background {
  readonly itemsPerSecond: number;
  /** Server CPU per item over the window, µs. */
  readonly cpuUsPerItem: number;
  /** The server's main thread, percent of a core, and its event-loop delay p99 (ms) over the window. */
  readonly mainPercent: number;
  readonly loopDelayP99Ms: number;
}

export interface PriorityLoadFigures {
  readonly idle: Latencies;
  /**
   * The server's CPU (every thread) per probe request on the idle server, less what the server
   * uses with no traffic, ms; and what the probe's rate of them takes of the machine's cores: the
   * share of the machine the background cannot have beside the probe, however the server
   * schedules (an estimate: the idle window's code paths are colder than the loaded window's).
   */
  readonly probeCpuMs: number;
  readonly probeShare: number;
  readonly loaded: Latencies;
  /** The background alone, the mean of a window before and one after the probe's. */
  readonly alone: Background;
  readonly beside: Background;
  /** `beside / alone` items/s. */
  readonly ratio: number;
  /** Mean run time of one background model batch, ms, and its mean size. */
  readonly batchRunMs: number;
  readonly meanBatch: number;
  /** The background's mean batch beside the probe (batches of more than one item). */
  readonly besideMeanBatch: number;
  /**
   * Background answers (or the job's results) decoded over the whole run: items with an output,
   * and the others (a job's lines ended by its cancel after the last window not counted).
   */
  readonly backgroundOutputs: number;
  readonly backgroundErrors: number;
  /** Where the probes beside the background spent their time, when they were traced. */
  readonly stages?: Stages;
}

/** Splits each traced probe's trip by its spans; see {@link STAGES}. */
function stagesOf(traced: readonly TracedProbe[], receiver: TraceReceiver): Stages {
  const trips: { total: number; parts: number[] }[] = [];
  let missing = 0;
  for (const probe of traced) {
    const spans = receiver.spansOf(probe.traceId);
    const call = spans.find((x) => x.name.endsWith("/Infer"));
    const queue = spans.find((x) => x.name === "queue");
    const batch = spans.find((x) => x.name.startsWith("batch "));
    const inference = spans.find((x) => x.name === "inference");
    if (!call || !queue || !batch || !inference) {
      missing++;
      continue;
    }
    const run = inference.end - inference.start;
    trips.push({
      total: probe.got - probe.sent,
      parts: [
        call.start - probe.sent,
        queue.start - call.start,
        queue.end - queue.start,
        batch.end - batch.start - run,
        run,
        call.end - batch.end,
        probe.got - call.end,
      ],
    });
  }
  const cut = percentile(
    trips.map((t) => t.total),
    99,
  );
  const tail = trips.filter((t) => t.total >= cut);
  return {
    probes: trips.length,
    missing,
    stages: STAGES.map(([name, meaning], k) => {
      const values = trips.map((t) => t.parts[k] as number);
      return {
        name,
        meaning,
        p50Ms: percentile(values, 50),
        p99Ms: percentile(values, 99),
        tailMeanMs: tail.reduce((sum, t) => sum + (t.parts[k] as number), 0) / tail.length,
      };
    }),
  };
}

type Scrape = (name: string, labels?: Record<string, string>) => number;

/** The upper bound of the bucket holding the p99 of `model`'s critical items between two scrapes, ms. */
function bucketP99Ms(model: string, before: Scrape, after: Scrape): number {
  const name = "batch_processor_item_latency_seconds_bucket";
  const labels = { model, priority: "critical" };
  const count = (le: string) => after(name, { ...labels, le }) - before(name, { ...labels, le });
  const total = count("+Inf");
  for (const le of SECONDS_BUCKETS) if (count(String(le)) >= 0.99 * total) return le * 1000;
  return Number.POSITIVE_INFINITY;
}

/** Stops a background and reads its counts: items with an output, and the others. */
type StopBackground = () => Promise<{ outputs: number; errors: number }>;

/** Starts `background-load.ts` in a process of its own. */
async function startRequestBackground(spec: PriorityLoadSpec): Promise<StopBackground> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      fileURLToPath(new URL("../background-load.ts", import.meta.url)),
      JSON.stringify({
        grpc: spec.grpc,
        key: spec.key,
        model: spec.model.name,
        width: spec.model.width,
        outputWidth: spec.model.outputWidth,
        requests: spec.backgroundRequests ?? 4,
      }),
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return async () => {
    child.stdin?.end();
    await exited;
    return JSON.parse(out) as { outputs: number; errors: number };
  };
}

/** Lines of the short job that sizes the background job (and warms the model's batches). */
const SIZING_LINES = 30_000;
/** The background job's lines over what its items/s alone would run in the time it must last. */
const JOB_MARGIN = 1.5;

/**
 * A job's items/s once it runs at full speed: the slope of its completed lines between a quarter
 * and three quarters of them, polled until it ends (its first batches are smaller while the
 * latency model learns the model).
 */
async function steadyItemsPerSecond(server: JobServer, jobId: string): Promise<number> {
  const seen: { at: number; completed: number }[] = [];
  const running = new Set(["validating", "queued", "running"]);
  for (;;) {
    const view = await jobView(server, jobId);
    seen.push({ at: performance.now(), completed: view.counts.completed });
    if (running.has(view.status)) await sleep(100);
    else if (view.status === "completed") break;
    else throw new Error(`the sizing job ended ${view.status}`);
  }
  const total = seen.at(-1)?.completed ?? 0;
  const from = seen.find((x) => x.completed >= total / 4);
  const to = seen.findLast((x) => x.completed <= (3 * total) / 4);
  if (from === undefined || to === undefined || to.at <= from.at)
    throw new Error("the sizing job ended too soon to time it");
  return ((to.completed - from.completed) / (to.at - from.at)) * 1000;
}

/**
 * Uploads a job on `model` that outlasts `lastsMs` once it runs: a short job first, whose
 * items/s size it. The stop checks it was still running (or its windows would have measured less
 * than a saturated server), cancels it and counts its results by outcome.
 */
async function startJobBackground(
  spec: PriorityLoadSpec,
  model: BenchModel,
  lastsMs: number,
): Promise<StopBackground> {
  const server = { base: spec.base, key: spec.key };
  const sizing = await uploadJob(server, model.name, SIZING_LINES, model.width);
  const rate = await steadyItemsPerSecond(server, sizing.job_id);
  const lines = Math.ceil(rate * (lastsMs / 1000) * JOB_MARGIN);
  const job = await uploadJob(server, model.name, lines, model.width);
  return async () => {
    const view = await jobView(server, job.job_id);
    if (view.status !== "running")
      throw new Error(`the background job was ${view.status} before the last window ended`);
    await cancelJob(server, job.job_id);
    const counted = await jobOutcomes(server, job.job_id, model.outputWidth);
    return { outputs: counted.output, errors: counted.error };
  };
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** The window that reads the idle server's own CPU before the probe's, ms. */
const QUIET_MS = 3000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** See the file comment. */
export async function priorityUnderLoad(spec: PriorityLoadSpec): Promise<PriorityLoadFigures> {
  // The probe has a connection of its own, as an online caller would; background requests come
  // from another process (`background-load.ts`).
  const online = grpcClient(spec.grpc, spec.key);
  const probeBody = encodedHeavyInfer(1, spec.model.width, "critical", spec.model.name);
  const scrape = async () => {
    const text = await (await fetch(`${spec.base}/metrics`)).text();
    return (name: string, labels: Record<string, string> = {}) => seriesSum(text, name, labels);
  };

  const probe = async (ms: number, trace = false): Promise<Latencies> => {
    const latencies: number[] = [];
    const traced: TracedProbe[] = [];
    const pending: Promise<void>[] = [];
    const before = await scrape();
    const ends = performance.now() + ms;
    while (performance.now() < ends) {
      // A sampled W3C trace context of its own: the server traces this request and no other.
      const traceId = trace ? randomBytes(16).toString("hex") : "";
      const headers = trace
        ? { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` }
        : undefined;
      const sent = performance.now();
      pending.push(
        online.call("infer", probeBody, headers).then(
          (answer) => {
            if ((answer as InferAnswer).results?.[0]?.output?.length !== spec.model.outputWidth)
              return;
            const got = performance.now();
            latencies.push(got - sent);
            if (trace) {
              const origin = performance.timeOrigin;
              traced.push({ traceId, sent: origin + sent, got: origin + got });
            }
          },
          () => undefined,
        ),
      );
      await sleep(1000 / (spec.probeRps ?? 20));
    }
    await Promise.all(pending);
    const after = await scrape();
    return {
      answers: latencies.length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      serverP99AtMostMs: bucketP99Ms(spec.model.name, before, after),
      loopDelayP99Ms: after("nodejs_eventloop_lag_p99_seconds") * 1000,
      ...(trace ? { traced } : {}),
    };
  };

  const ms = spec.seconds * 1000;
  /** The background, which must last 2 s to saturate the threads, then three windows. */
  const startBackground = () =>
    spec.job === undefined
      ? startRequestBackground(spec)
      : startJobBackground(spec, spec.job, 2000 + 3 * ms);
  /** The background's model: its items and batches are what the windows count. */
  const background = (spec.job ?? spec.model).name;
  const succeeded = { outcome: "success", priority: "low" };
  /** The background's figures over a window in which `during` runs. */
  const window = async (during: () => Promise<unknown>) => {
    // prom-client's event-loop delay histogram restarts at every scrape: this one starts the window.
    const before = await scrape();
    const cpu = measureCpu(spec.pid);
    const started = performance.now();
    await during();
    const use = cpu();
    const elapsed = (performance.now() - started) / 1000;
    const after = await scrape();
    const since = (name: string, labels: Record<string, string> = {}) =>
      after(name, { model: background, ...labels }) -
      before(name, { model: background, ...labels });
    const items = since("batch_processor_items_total", succeeded);
    const cpuSeconds = ((use?.totalPercent ?? Number.NaN) / 100) * elapsed;
    return {
      background: {
        itemsPerSecond: items / elapsed,
        cpuUsPerItem: (cpuSeconds / items) * 1e6,
        mainPercent: use?.mainPercent ?? Number.NaN,
        loopDelayP99Ms: after("nodejs_eventloop_lag_p99_seconds") * 1000,
      },
      batches: since("batch_processor_inference_seconds_count"),
      runMs: since("batch_processor_inference_seconds_sum") * 1000,
      batchItems: since("batch_processor_model_batch_size_sum"),
      sizedBatches: since("batch_processor_model_batch_size_count"),
      // 1-item batches: the probe's, where it shares the background's model.
      singles: since("batch_processor_model_batch_size_bucket", { le: "1" }),
    };
  };

  try {
    // The idle server's own CPU (its timers), so that the probe's is told apart from it.
    const quietCpu = measureCpu(spec.pid);
    await sleep(QUIET_MS);
    const quietPercent = quietCpu()?.totalPercent ?? Number.NaN;
    const idleCpu = measureCpu(spec.pid);
    const idleStarted = performance.now();
    const idle = await probe(ms);
    const idleMs = performance.now() - idleStarted;
    const probePercent = (idleCpu()?.totalPercent ?? Number.NaN) - quietPercent;
    const probeCpuMs = ((probePercent / 100) * idleMs) / idle.answers;
    const stopBackground = await startBackground();
    await sleep(2000); // the background saturates the threads before anything is measured
    const first = await window(() => sleep(ms));
    let loaded: Latencies | undefined;
    const beside = await window(async () => {
      loaded = await probe(ms, spec.traces !== undefined);
    });
    const second = await window(() => sleep(ms));
    const counted = await stopBackground();
    const mean = (key: keyof Background) => (first.background[key] + second.background[key]) / 2;
    const alone: Background = {
      itemsPerSecond: mean("itemsPerSecond"),
      cpuUsPerItem: mean("cpuUsPerItem"),
      mainPercent: mean("mainPercent"),
      loopDelayP99Ms: mean("loopDelayP99Ms"),
    };
    return {
      idle,
      probeCpuMs,
      probeShare: (probeCpuMs * (spec.probeRps ?? 20)) / 1000 / availableParallelism(),
      loaded: loaded as Latencies,
      alone,
      // The probe's own scrapes restart the server's event-loop delay histogram: its reading is
      // the one for this window.
      beside: { ...beside.background, loopDelayP99Ms: (loaded as Latencies).loopDelayP99Ms },
      ratio: beside.background.itemsPerSecond / alone.itemsPerSecond,
      batchRunMs: (first.runMs + second.runMs) / (first.batches + second.batches),
      meanBatch: (first.batchItems + second.batchItems) / (first.batches + second.batches),
      besideMeanBatch:
        (beside.batchItems - beside.singles) / (beside.sizedBatches - beside.singles),
      backgroundOutputs: counted.outputs,
      backgroundErrors: counted.errors,
      // By now the server has sent every span of the probe's window (a window has passed).
      ...(spec.traces === undefined
        ? {}
        : { stages: stagesOf((loaded as Latencies).traced ?? [], spec.traces) }),
    };
  } finally {
    online.close();
  }
}
