/**
 * `npm run bench:priority`: how long a `critical` request waits while background work saturates
 * the threads (`bench/lib/priority-load.ts`), with the latency targets as configured, with them
 * but no online threads, and with none (every class plain weighted work), the order reversed from
 * one round to the next so that every mode sees the same machine. The verdict follows the target: loaded p99 ≤ idle p99 + one background batch's
 * run time, and the background keeps ≥ 0.95 × its items/s alone beside the probe.
 * With `--stages`, each probe beside the background is traced through the server's own spans and
 * its time split by them (`lib/trace-receiver.ts`). `--background job` makes the background one
 * `low` job on the job benchmarks' model instead of 1,000-item Infer requests on the heavy model
 * (the probe stays on the heavy model).
 * Usage: npm run bench:priority [-- --rounds 2 --seconds 10 --threads N --stages
 *   --background requests|job --modes defaults,no-online,none --out FILE]
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  HEAVY_JOB_LAYERS,
  HEAVY_JOB_MODEL,
  HEAVY_LAYERS,
  writeHeavyJobModel,
  writeHeavyModel,
} from "../scripts/build-bench-model.js";
import { startBenchServer } from "./lib/bench-server.js";
import { heavyModelDir } from "./lib/heavy-model-dir.js";
import {
  type BenchModel,
  type PriorityLoadFigures,
  priorityUnderLoad,
} from "./lib/priority-load.js";
import { startTraceReceiver } from "./lib/trace-receiver.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "2" },
    seconds: { type: "string", default: "10" },
    /** INFERENCE_THREADS of the server; its default (the cores) when absent. */
    threads: { type: "string" },
    /** Trace each probe beside the background and split its time by the server's spans. */
    stages: { type: "boolean", default: false },
    /** The modes to run, of defaults, no-online and none. */
    modes: { type: "string", default: "defaults,no-online,none" },
    /** What saturates the threads: 1,000-item Infer requests, or a job. */
    background: { type: "string", default: "requests" },
    out: { type: "string" },
  },
});
if (values.background !== "requests" && values.background !== "job")
  throw new Error(`--background: requests or job, not ${values.background}`);
const BACKGROUND = values.background;
const HEAVY: BenchModel = { name: "heavy", width: HEAVY_LAYERS[0], outputWidth: HEAVY_LAYERS[3] };
/** A job's lines are on a model of narrow input (see `HEAVY_JOB_LAYERS`). */
const JOB: BenchModel | undefined =
  BACKGROUND === "job"
    ? { name: HEAVY_JOB_MODEL, width: HEAVY_JOB_LAYERS[0], outputWidth: HEAVY_JOB_LAYERS[3] }
    : undefined;
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const KEY = "bench-key";
const root = fileURLToPath(new URL("..", import.meta.url));

const modelDir = heavyModelDir((dir) => {
  if (JOB !== undefined) writeHeavyJobModel(dir);
  return writeHeavyModel(dir);
});
execFileSync(
  process.execPath,
  [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")],
  { stdio: "inherit" },
);

const NO_TARGETS = { critical: 0, high: 0, normal: 0, low: 0 };
/** The server's defaults; the same targets on the regular threads alone; no targets at all. */
const MODES = [
  { id: "defaults", name: "latency targets (the defaults)", targets: undefined, env: {} },
  {
    id: "no-online",
    name: "latency targets, no online threads",
    targets: undefined,
    env: { ONLINE_THREADS: "0" },
  },
  { id: "none", name: "no latency targets", targets: NO_TARGETS, env: {} },
] as const;
const wanted = values.modes.split(",");
const unknown = wanted.filter((id) => !MODES.some((m) => m.id === id));
if (unknown.length > 0)
  throw new Error(
    `--modes: ${unknown.join(", ")}; expected some of ${MODES.map((m) => m.id).join(", ")}`,
  );
const modes = MODES.filter((m) => wanted.includes(m.id));

const traces = values.stages ? await startTraceReceiver() : undefined;
// Only the probe's requests ask to be traced; spans leave the server within half a second.
const tracing: Record<string, string> =
  traces === undefined
    ? {}
    : {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces.url,
        OTEL_TRACES_SAMPLER: "parentbased_always_off",
        OTEL_BSP_SCHEDULE_DELAY: "500",
      };

const rows: { round: number; mode: string; figures: PriorityLoadFigures }[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  // Reverse the order each round, so that no mode always meets the machine warmer.
  const order = round % 2 === 1 ? modes : [...modes].reverse();
  for (const mode of order) {
    console.error(`round ${round}/${ROUNDS}: ${mode.name}`);
    const server = await startBenchServer(KEY, {
      MODEL_DIR: modelDir,
      ...(values.threads === undefined ? {} : { INFERENCE_THREADS: values.threads }),
      ...mode.env,
      ...tracing,
    });
    try {
      if (mode.targets !== undefined)
        await fetch(`${server.base}/api/batch-processor/configure`, {
          method: "POST",
          headers: { "x-api-key": KEY, "content-type": "application/json" },
          body: JSON.stringify({ priority_latency_ms: mode.targets }),
        }).then((r) => {
          if (!r.ok) throw new Error(`configure: ${r.status}`);
        });
      const figures = await priorityUnderLoad({
        grpc: `127.0.0.1:${server.grpcPort}`,
        base: server.base,
        key: KEY,
        pid: server.child.pid as number,
        model: HEAVY,
        ...(JOB === undefined ? {} : { job: JOB }),
        seconds: SECONDS,
        ...(traces === undefined ? {} : { traces }),
      });
      rows.push({ round, mode: mode.name, figures });
      console.error(JSON.stringify(figures));
    } finally {
      await server.stop();
    }
  }
}
await traces?.close();

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const lines = [
  "# Priority under load",
  "",
  `\`npm run bench:priority -- --rounds ${ROUNDS} --seconds ${SECONDS}${values.threads === undefined ? "" : ` --threads ${values.threads}`}${BACKGROUND === "job" ? " --background job" : ""}\` on ${availableParallelism()} cores`,
  `(${values.threads ?? availableParallelism()} inference threads) (${cpus()[0]?.model ?? "unknown CPU"}), ${new Date().toISOString()}. 1-item \`critical\` Infer on the heavy model (${HEAVY_LAYERS.join(" → ")}) at 20/s over gRPC, idle and beside ${BACKGROUND === "job" ? `one \`low\` job on the ${HEAVY_JOB_MODEL} model (${HEAVY_JOB_LAYERS.join(" → ")}; JSONL uploaded over REST before the windows, cancelled after them)` : "4 × 1,000-item `low` Infer kept in flight on the same model"}; ${SECONDS} s windows; the background alone is the mean of a window before and one after the probe's.`,
  "",
  "| round | mode | critical p50 / p99 ms, idle | beside the background | bound: idle p99 + one background batch | within | background items/s alone (CPU µs/item) | beside the probe (CPU µs/item) | ratio (≥ 0.95) | the probe's own server CPU per request, idle (its share of the cores) | background batch: mean size, run ms (mean size beside the probe) | server main thread % / event-loop delay p99 ms, alone → beside | background answers: outputs / errors |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ...rows.map(({ round, mode, figures: x }) => {
    const bound = x.idle.p99Ms + x.batchRunMs;
    return `| ${round} | ${mode} | ${f(x.idle.p50Ms, 1)} / ${f(x.idle.p99Ms, 1)} (${x.idle.answers}) | ${f(x.loaded.p50Ms, 1)} / ${f(x.loaded.p99Ms, 1)} (${x.loaded.answers}); server p99 ≤ ${f(x.loaded.serverP99AtMostMs)} (idle ≤ ${f(x.idle.serverP99AtMostMs)}) | ${f(bound, 1)} | ${x.loaded.p99Ms <= bound ? "yes" : "no"} | ${f(x.alone.itemsPerSecond)} (${f(x.alone.cpuUsPerItem)}) | ${f(x.beside.itemsPerSecond)} (${f(x.beside.cpuUsPerItem)}) | ${f(x.ratio, 3)} | ${f(x.probeCpuMs, 2)} ms (${f(x.probeShare * 100, 1)} %) | ${f(x.meanBatch, 1)}, ${f(x.batchRunMs, 1)} (${f(x.besideMeanBatch, 1)}) | ${f(x.alone.mainPercent)} / ${f(x.alone.loopDelayP99Ms, 1)} → ${f(x.beside.mainPercent)} / ${f(x.beside.loopDelayP99Ms, 1)} | ${x.backgroundOutputs} / ${x.backgroundErrors} |`;
  }),
  "",
  "Latencies count answers with an output (their number in brackets); the background's items/s are the server's count of `low` items that succeeded over each window.",
  "",
  ...stageLines(),
];

/** With `--stages`: where the probes beside the background spent their time, by the server's spans. */
function stageLines(): string[] {
  const traced = rows.filter((r) => r.figures.stages !== undefined);
  const first = traced[0]?.figures.stages;
  if (first === undefined) return [];
  return [
    "## Where the probe's time goes beside the background (`--stages`)",
    "",
    "Each probe beside the background carries a sampled trace context and the server sends only those requests' spans (OTLP/HTTP to this harness); each trip is split by them. Per stage: p50 / p99 over the probes, and its mean over the probes at or above the p99 of the whole trip (the tail). The client's and the server's clocks are the same machine's; the queue and batch spans have the engine's millisecond timestamps.",
    "",
    `| round | mode | probes (spans missing) | ${first.stages.map((x) => x.name).join(" | ")} |`,
    `| --- | --- | --- | ${first.stages.map(() => "---").join(" | ")} |`,
    ...traced.map(({ round, mode, figures }) => {
      const st = figures.stages as NonNullable<PriorityLoadFigures["stages"]>;
      return `| ${round} | ${mode} | ${st.probes} (${st.missing}) | ${st.stages.map((x) => `${f(x.p50Ms, 1)} / ${f(x.p99Ms, 1)} / **${f(x.tailMeanMs, 1)}**`).join(" | ")} |`;
    }),
    "",
    ...first.stages.map((x) => `- ${x.name}: ${x.meaning}.`),
    "",
  ];
}
const out = values.out ?? join(root, "bench", "results", "priority-latest.md");
writeFileSync(out, lines.join("\n"));
console.log(lines.join("\n"));
