/**
 * What a model reload costs the traffic it happens under: in-process (no network), `--clients`
 * loops each send 1-item Infer calls to the heavy model without pause; after a steady phase the
 * heavy model's file is rewritten and the repository reloaded (new threads load, warm up, then
 * take over) while the loops go on. It reports how long the reload took, and per phase (before,
 * during, after) the answers per second, how many calls failed, and latency p50/p99.
 * Usage: npm run bench:reload [-- --clients 16 --seconds 4 --rounds 3]
 */
import { copyFileSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { HEAVY_LAYERS, writeHeavyModel } from "../scripts/build-bench-model.js";
import { BatchProcessor, type ModelCatalog } from "../src/engine/index.js";
import { createInferencePool } from "../src/inference/piscina-pool.js";
import { SqliteJobStore } from "../src/store/sqlite-job-store.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "16" },
    seconds: { type: "string", default: "4" },
    rounds: { type: "string", default: "3" },
    out: { type: "string" },
  },
});
const clients = Number(values.clients);
const phaseMs = Number(values.seconds) * 1000;
const rounds = Number(values.rounds);

const benchModels = fileURLToPath(new URL("./models", import.meta.url));
if (!existsSync(join(benchModels, "heavy", "model.onnx"))) writeHeavyModel(benchModels);
// A repository of its own: the reload rewrites the model's file.
const repo = mkdtempSync(join(tmpdir(), "bp-reload-"));
cpSync(join(benchModels, "heavy"), join(repo, "heavy"), { recursive: true });

const threads = availableParallelism();
const started = await createInferencePool({
  modelDir: repo,
  threads,
  executionProviders: ["cpu"],
});
const processor = await BatchProcessor.create({
  pool: started.pool,
  models: started.models,
  store: new SqliteJobStore({ dataDir: ":memory:" }),
});
const principal = { owner: "bench", admin: true };
const width = HEAVY_LAYERS[0];

interface Call {
  readonly at: number;
  readonly ms: number;
  readonly ok: boolean;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : (sorted[Math.floor(q * (sorted.length - 1))] as number);
}

interface Phase {
  readonly answersPerSecond: number;
  readonly failed: number;
  readonly p50: number;
  readonly p99: number;
}

function phase(calls: readonly Call[], from: number, to: number): Phase {
  const inside = calls.filter((c) => c.at >= from && c.at < to);
  const ok = inside.filter((c) => c.ok).map((c) => c.ms);
  ok.sort((a, b) => a - b);
  return {
    answersPerSecond: ok.length / ((to - from) / 1000),
    failed: inside.length - ok.length,
    p50: quantile(ok, 0.5),
    p99: quantile(ok, 0.99),
  };
}

async function round(): Promise<{ reloadMs: number; phases: Record<string, Phase> }> {
  const calls: Call[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async (_, k) => {
    const input = Array.from({ length: width }, (_, i) => Math.sin(k + i));
    while (running) {
      const at = performance.now();
      let ok = false;
      try {
        const { results } = await processor.infer(principal, {
          data: [{ input }],
          metadata: { model_id: "heavy" },
          timeoutMs: 60_000,
        });
        ok = results[0]?.error == null && (results[0]?.output.length ?? 0) > 0;
      } catch {
        ok = false;
      }
      calls.push({ at, ms: performance.now() - at, ok });
    }
  });
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, phaseMs));
  // A new version: the same graph written again (a new modification time).
  const file = join(repo, "heavy", "model.onnx");
  copyFileSync(file, `${file}.new`);
  rmSync(file);
  copyFileSync(`${file}.new`, file);
  rmSync(`${file}.new`);
  const t1 = performance.now();
  const outcomes = await started.reload({
    warmUp: (pool, models: ModelCatalog) => processor.warmUp(pool, models),
  });
  const t2 = performance.now();
  if (outcomes.find((o) => o.name === "heavy")?.outcome !== "updated")
    throw new Error(`the reload did not update the model: ${JSON.stringify(outcomes)}`);
  await new Promise((resolve) => setTimeout(resolve, phaseMs));
  running = false;
  await Promise.all(loops);
  const t3 = performance.now();
  return {
    reloadMs: t2 - t1,
    phases: {
      before: phase(calls, t0, t1),
      during: phase(calls, t1, t2),
      after: phase(calls, t2, t3),
    },
  };
}

const results: Awaited<ReturnType<typeof round>>[] = [];
for (let r = 0; r < rounds; r++) results.push(await round());
await processor.close({ timeoutMs: 10_000 });
rmSync(repo, { recursive: true, force: true });

const f = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : "–");
const lines = [
  `# Model reload under load (${new Date().toISOString().slice(0, 10)})`,
  "",
  `\`npm run bench:reload -- --clients ${clients} --seconds ${phaseMs / 1000} --rounds ${rounds}\`: ` +
    `${threads} inference threads, heavy model (${HEAVY_LAYERS.join(" → ")}), 1-item Infer calls ` +
    `from ${clients} loops in-process; the model's file rewritten and the repository reloaded ` +
    "between two steady phases. Only answers with an output count.",
  "",
  "| round | reload, ms | phase | answers/s | failed | p50, ms | p99, ms |",
  "| ----- | ---------- | ----- | --------- | ------ | ------- | ------- |",
];
results.forEach((r, i) => {
  for (const [name, p] of Object.entries(r.phases)) {
    lines.push(
      `| ${i + 1} | ${f(r.reloadMs, 0)} | ${name} | ${f(p.answersPerSecond, 0)} | ${p.failed} | ${f(p.p50, 2)} | ${f(p.p99, 2)} |`,
    );
  }
});
const report = `${lines.join("\n")}\n`;
process.stdout.write(report);
if (values.out !== undefined) writeFileSync(values.out, report);
