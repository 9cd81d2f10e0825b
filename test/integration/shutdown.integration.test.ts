/**
 * Shutdown as DESIGN asks: open streams end with a final event, queued work stays stored, and the
 * next start runs it to the end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/logger.js";
import { type RunningServer, startServer } from "../../src/server.js";
import {
  createTestModelRepo,
  DENSE_LAYERS,
  type TestModelRepo,
  vector,
} from "../fixtures/model-repo.js";

const KEY = "shutdown-key";
let repo: TestModelRepo;
let dataDir: string;

beforeAll(() => {
  repo = createTestModelRepo({ dense: true });
  dataDir = mkdtempSync(join(tmpdir(), "bp-shutdown-"));
});
afterAll(() => {
  repo.cleanup();
  rmSync(dataDir, { recursive: true, force: true });
});

function start(): Promise<RunningServer> {
  const config = loadConfig({
    API_HOST: "127.0.0.1",
    API_PORT: "0",
    GRPC_PORT: "0",
    DATA_DIR: dataDir,
    MODEL_DIR: repo.dir,
    INFERENCE_THREADS: "1",
    API_KEYS: KEY,
    // One item per model batch: the batch below takes long enough to shut down in the middle.
    MAX_BATCH_SIZE: "1",
    ENABLE_DYNAMIC_BATCHING: "false",
    SHUTDOWN_TIMEOUT_MS: "5000",
    LOG_LEVEL: "silent",
    // The test process is the client too: its own work would read as the server's lag.
    MAX_EVENT_LOOP_DELAY_MS: "0",
  });
  return startServer(config, createLogger(config));
}

describe("shutdown", () => {
  it("ends open streams with a final event, keeps queued items, and finishes them after a restart", async () => {
    const first = await start();
    const base = `http://127.0.0.1:${first.apiPort}`;
    const headers = { "x-api-key": KEY, "content-type": "application/json" };
    const data = Array.from({ length: 1000 }, (_, i) => ({ input: vector(i, DENSE_LAYERS[0]) }));
    const submit = await fetch(`${base}/api/batch-processor/submit`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        data,
        metadata: { model_id: "dense" },
        timeout_ms: 300_000,
        batch_id: "long-one",
      }),
    });
    expect(submit.status).toBe(200);
    const watch = await fetch(`${base}/api/batch-processor/watch/long-one`, { headers });
    const reader = watch.body?.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    const firstChunk = await reader.read();
    expect(firstChunk.done).toBe(false);
    await first.close();
    let text = new TextDecoder().decode(firstChunk.value);
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      text += new TextDecoder().decode(chunk.value);
    const events = text
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as { status: string; completed_requests: number });
    const last = events.at(-1);
    expect(last?.status).toMatch(/^(queued|processing)$/);
    expect(last?.completed_requests).toBeLessThan(1000);

    const second = await start();
    try {
      const again = await fetch(
        `http://127.0.0.1:${second.apiPort}/api/batch-processor/watch/long-one`,
        { headers },
      );
      const final = (await again.text()).trim().split("\n").at(-1) as string;
      expect(JSON.parse(final)).toMatchObject({
        status: "completed",
        completed_requests: 1000,
        failed_requests: 0,
      });
    } finally {
      await second.close();
    }
  });
});
