/**
 * What a server spends on 1-item Infer (or v2 ModelInfer) requests over one h2load window: its CPU (every thread and
 * the main thread), its time inside ONNX Runtime, and the requests and items it answered, read
 * from its own Prometheus counters (h2load sees HTTP statuses, not gRPC's).
 */
import { type H2loadResult, type H2loadSpec, h2load } from "./h2load.js";
import { seriesSum } from "./prometheus-text.js";

/** One window's figures. */
export interface InferCost {
  readonly result: H2loadResult;
  /** Infer calls answered OK over the window, and items with an output. */
  readonly ok: number;
  readonly items: number;
  /** The server's CPU over the window, seconds: every thread, and the main thread. */
  readonly cpuSeconds: number;
  readonly mainSeconds: number;
  /** Of that, its threads' time inside ONNX Runtime, seconds. */
  readonly ortSeconds: number;
  /** CPU µs per request answered OK, without ONNX Runtime's time. */
  readonly usPerRequest: number;
}

/**
 * Runs `spec` against the server whose process is `pid` and whose `/metrics` is at `metricsUrl`,
 * scraping its counters as the measured window opens and closes.
 */
export async function inferCost(
  spec: Omit<H2loadSpec, "watch" | "onWindow">,
  pid: number,
  metricsUrl: string,
  /** The RPC counted as answered (its `method` label). */
  method = "Infer",
): Promise<InferCost> {
  let before = "";
  let after = "";
  const scrape = async () => (await fetch(metricsUrl)).text();
  const result = await h2load({
    ...spec,
    watch: [pid],
    onWindow: async (edge) => {
      if (edge === "start") before = await scrape();
      else after = await scrape();
    },
  });
  const delta = (name: string, labels: Record<string, string> = {}) =>
    seriesSum(after, name, labels) - seriesSum(before, name, labels);
  const ok = delta("batch_processor_requests_total", { method, code: "ok" });
  const ortSeconds = delta("batch_processor_inference_seconds_sum");
  const cpu = result.watchedCpu[0];
  const cpuSeconds = ((cpu?.totalPercent ?? Number.NaN) / 100) * spec.seconds;
  return {
    result,
    ok,
    items: delta("batch_processor_items_total", { outcome: "success" }),
    cpuSeconds,
    mainSeconds: ((cpu?.mainPercent ?? Number.NaN) / 100) * spec.seconds,
    ortSeconds,
    usPerRequest: ((cpuSeconds - ortSeconds) / ok) * 1e6,
  };
}
