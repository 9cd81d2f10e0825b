/**
 * Priority under load: 1-item `critical` Infer requests on the heavy model, sent at a steady rate
 * over gRPC, first on an idle server and then beside a saturating background of 1,000-item `low`
 * Infer requests on the same model; the background's own throughput alone (before and after) and
 * beside the probe. Latencies count answers with an output; the background's items/s come from
 * the server's count of items that succeeded over each window, and its answers are decoded and
 * counted by outcome as well. One background batch's run time is the mean of the heavy model's
 * batches while the background ran alone.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { SECONDS_BUCKETS } from "../../src/metrics/prometheus.js";
import { grpcClient } from "./grpc-client.js";
import { encodedHeavyInfer, type InferAnswer } from "./heavy-infer.js";
import { measureCpu } from "./proc.js";
import { seriesSum } from "./prometheus-text.js";

export interface PriorityLoadSpec {
  readonly grpc: string;
  readonly metricsUrl: string;
  readonly key: string;
  readonly pid: number;
  readonly width: number;
  /** Numbers in an item's output. */
  readonly outputWidth: number;
  /** Length of each measured window, s. */
  readonly seconds: number;
  /** Probe requests per second. @defaultValue 20 */
  readonly probeRps?: number;
  /** Background requests in flight at once. @defaultValue 4 */
  readonly backgroundRequests?: number;
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
  readonly loaded: Latencies;
  /** The background alone, the mean of a window before and one after the probe's. */
  readonly alone: Background;
  readonly beside: Background;
  /** `beside / alone` items/s. */
  readonly ratio: number;
  /** Mean run time of one background model batch, ms, and its mean size. */
  readonly batchRunMs: number;
  readonly meanBatch: number;
  /** Background answers decoded over the whole run: items with an output, and the others. */
  readonly backgroundOutputs: number;
  readonly backgroundErrors: number;
}

type Scrape = (name: string, labels?: Record<string, string>) => number;

/** The upper bound of the bucket holding the p99 of critical heavy items between two scrapes, ms. */
function bucketP99Ms(before: Scrape, after: Scrape): number {
  const name = "batch_processor_item_latency_seconds_bucket";
  const labels = { model: "heavy", priority: "critical" };
  const count = (le: string) => after(name, { ...labels, le }) - before(name, { ...labels, le });
  const total = count("+Inf");
  for (const le of SECONDS_BUCKETS) if (count(String(le)) >= 0.99 * total) return le * 1000;
  return Number.POSITIVE_INFINITY;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** See the file comment. */
export async function priorityUnderLoad(spec: PriorityLoadSpec): Promise<PriorityLoadFigures> {
  // The probe has a connection of its own, as an online caller would, and the background runs in
  // another process (`background-load.ts`).
  const online = grpcClient(spec.grpc, spec.key);
  const probeBody = encodedHeavyInfer(1, spec.width, "critical");
  const scrape = async () => {
    const text = await (await fetch(spec.metricsUrl)).text();
    return (name: string, labels: Record<string, string> = {}) => seriesSum(text, name, labels);
  };

  const probe = async (ms: number): Promise<Latencies> => {
    const latencies: number[] = [];
    const pending: Promise<void>[] = [];
    const before = await scrape();
    const ends = performance.now() + ms;
    while (performance.now() < ends) {
      const sent = performance.now();
      pending.push(
        online.call("infer", probeBody).then(
          (answer) => {
            if ((answer as InferAnswer).results?.[0]?.output?.length === spec.outputWidth)
              latencies.push(performance.now() - sent);
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
      serverP99AtMostMs: bucketP99Ms(before, after),
      loopDelayP99Ms: after("nodejs_eventloop_lag_p99_seconds") * 1000,
    };
  };

  /** Starts the background process; the returned stop ends it and reads its counts. */
  const startBackground = () => {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        fileURLToPath(new URL("../background-load.ts", import.meta.url)),
        JSON.stringify({
          grpc: spec.grpc,
          key: spec.key,
          width: spec.width,
          outputWidth: spec.outputWidth,
          requests: spec.backgroundRequests ?? 4,
        }),
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    return async (): Promise<{ outputs: number; errors: number }> => {
      child.stdin?.end();
      await exited;
      return JSON.parse(out) as { outputs: number; errors: number };
    };
  };
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
      after(name, { model: "heavy", ...labels }) - before(name, { model: "heavy", ...labels });
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
    };
  };

  try {
    const ms = spec.seconds * 1000;
    const idle = await probe(ms);
    const stopBackground = startBackground();
    await sleep(2000); // the background saturates the threads before anything is measured
    const first = await window(() => sleep(ms));
    let loaded: Latencies | undefined;
    const beside = await window(async () => {
      loaded = await probe(ms);
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
      loaded: loaded as Latencies,
      alone,
      // The probe's own scrapes restart the server's event-loop delay histogram: its reading is
      // the one for this window.
      beside: { ...beside.background, loopDelayP99Ms: (loaded as Latencies).loopDelayP99Ms },
      ratio: beside.background.itemsPerSecond / alone.itemsPerSecond,
      batchRunMs: (first.runMs + second.runMs) / (first.batches + second.batches),
      meanBatch: (first.batchItems + second.batchItems) / (first.batches + second.batches),
      backgroundOutputs: counted.outputs,
      backgroundErrors: counted.errors,
    };
  } finally {
    online.close();
  }
}
