/**
 * Kill -9 in the middle of a run, restart on the same DATA_DIR: every acknowledged item runs to
 * exactly one result, and the results are right.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeOutcomes } from "../../src/store/job-chunks.js";
import { until } from "../fixtures/fake-pool.js";
import {
  createTestModelRepo,
  DENSE_LAYERS,
  type TestModelRepo,
  vector,
} from "../fixtures/model-repo.js";

const CHILD = fileURLToPath(new URL("../fixtures/crash-child.ts", import.meta.url));
const BATCHES = 4;
const ITEMS = 500;

let repo: TestModelRepo;
let dataDir: string;
beforeAll(() => {
  repo = createTestModelRepo({ dense: true });
  dataDir = mkdtempSync(join(tmpdir(), "bp-crash-"));
});
afterAll(() => {
  repo.cleanup();
  rmSync(dataDir, { recursive: true, force: true });
});

function child(mode: "submit" | "job" | "resume"): {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
} {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", CHILD, mode, dataDir, repo.dir, String(BATCHES), String(ITEMS)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  proc.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  proc.stderr?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

function counts(): { done: number; total: number; withOutput: number } {
  const db = new Database(join(dataDir, "batch-processor.db"), {
    readonly: true,
    fileMustExist: true,
  });
  try {
    return db
      .prepare(
        `SELECT (SELECT COUNT(*) FROM results) AS done, (SELECT COUNT(*) FROM items) AS total,
           (SELECT COUNT(*) FROM results WHERE output IS NOT NULL) AS withOutput`,
      )
      .get() as {
      done: number;
      total: number;
      withOutput: number;
    };
  } finally {
    db.close();
  }
}

describe("crash recovery", () => {
  it("goes on with a job where it stopped after a SIGKILL mid-job: one outcome per line", async () => {
    const jobDir = mkdtempSync(join(tmpdir(), "bp-crash-job-"));
    const db = () => new Database(join(jobDir, "batch-processor.db"), { readonly: true });
    const chunksDone = () => {
      const handle = db();
      try {
        return handle.prepare("SELECT COUNT(*) FROM job_outcomes").pluck().get() as number;
      } finally {
        handle.close();
      }
    };
    const run = (mode: "job" | "resume") => {
      const proc = spawn(
        process.execPath,
        ["--import", "tsx", CHILD, mode, jobDir, repo.dir, "5", "1024"],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      proc.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
      proc.stderr?.on("data", (chunk: Buffer) => (out += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => proc.on("exit", resolve));
      return { proc, output: () => out, exited };
    };
    try {
      const first = run("job");
      await until(() => first.output().includes("SUBMITTED"), 60_000);
      await until(() => chunksDone() > 0, 60_000);
      first.proc.kill("SIGKILL");
      await first.exited;
      const atKill = chunksDone();
      expect(atKill, "the child must be killed mid-job").toBeLessThan(5);

      const second = run("resume");
      expect(await second.exited, second.output()).toBe(0);
      const handle = db();
      const job = handle
        .prepare("SELECT status, total, completed, failed, invalid, chunks FROM jobs")
        .get();
      const outcomes = handle
        .prepare("SELECT chunk, data FROM job_outcomes ORDER BY chunk")
        .all() as {
        chunk: number;
        data: Buffer;
      }[];
      handle.close();
      expect(job).toEqual({
        status: "completed",
        total: 5 * 1024,
        completed: 5 * 1024,
        failed: 0,
        invalid: 0,
        chunks: 5,
      });
      // Every line once, in order, each with an output.
      const lines = outcomes.flatMap(({ data }) => decodeOutcomes(data));
      expect(lines.map((l) => l.line)).toEqual(Array.from({ length: 5 * 1024 }, (_, k) => k + 1));
      expect(lines.every((l) => l.output !== null && l.output.length === 10)).toBe(true);
    } finally {
      rmSync(jobDir, { recursive: true, force: true });
    }
  });

  it("finishes every batch with one result per item after a SIGKILL mid-run", async () => {
    const first = child("submit");
    await until(() => first.output().includes("SUBMITTED"), 60_000);
    await until(() => counts().done > 0, 60_000);
    first.proc.kill("SIGKILL");
    await first.exited;
    const atKill = counts();
    expect(atKill.total).toBe(BATCHES * ITEMS);
    expect(atKill.done, "the child must be killed mid-run").toBeLessThan(atKill.total);

    const second = child("resume");
    expect(await second.exited, second.output()).toBe(0);
    expect(second.output()).toContain("DONE");

    const db = new Database(join(dataDir, "batch-processor.db"), { readonly: true });
    const batches = db
      .prepare("SELECT batch_id, status, total, succeeded, failed FROM batches ORDER BY batch_id")
      .all() as {
      batch_id: string;
      status: string;
      total: number;
      succeeded: number;
      failed: number;
    }[];
    expect(batches.map((b) => [b.batch_id, b.status, b.succeeded, b.failed])).toEqual(
      Array.from({ length: BATCHES }, (_, b) => [`crash-${b}`, "completed", ITEMS, 0]),
    );
    const items = db
      .prepare(
        `SELECT b.batch_id, i.idx, r.output, r.idx IS NOT NULL AS done
         FROM items i JOIN batches b ON b.pk = i.batch_pk
         LEFT JOIN results r ON r.batch_pk = i.batch_pk AND r.idx = i.idx`,
      )
      .all() as {
      batch_id: string;
      idx: number;
      output: Buffer | null;
      done: number;
    }[];
    db.close();
    expect(items).toHaveLength(BATCHES * ITEMS);
    expect(
      items.every((i) => i.done === 1 && i.output !== null && i.output.byteLength === 10 * 4),
    ).toBe(true);

    // Spot-check outputs (both runs' items) against a direct session.run.
    const session = await ort.InferenceSession.create(join(repo.dir, "dense", "model.onnx"));
    for (const item of items.filter((_, k) => k % 97 === 0)) {
      const b = Number(item.batch_id.split("-")[1]);
      const input = Float32Array.from(vector(b * 100_000 + item.idx, DENSE_LAYERS[0]));
      const logits = (
        await session.run({ input: new ort.Tensor("float32", input, [1, input.length]) })
      ).logits?.data as Float32Array;
      const max = Math.max(...logits);
      const exp = Array.from(logits, (v) => Math.exp(v - max));
      const sum = exp.reduce((a, c) => a + c, 0);
      const stored = new Float32Array(new Uint8Array(item.output as Buffer).buffer);
      stored.forEach((p, k) => {
        expect(p).toBeCloseTo((exp[k] as number) / sum, 5);
      });
    }
    await session.release();
  });
});
