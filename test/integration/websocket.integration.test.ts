/**
 * The v1 API's WebSocket endpoint: key from the upgrade's headers, subscribe by batch id,
 * status updates to the end with `total_time_ms`, ownership, bad messages answered in place.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningServer } from "../../src/server.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const ALICE = "ws-alice";
const BOB = "ws-bob";

let repo: TestModelRepo;
let server: RunningServer;

beforeAll(async () => {
  repo = createTestModelRepo();
  server = await startTestServer(repo.dir, { API_KEYS: `${ALICE},${BOB}` });
});

afterAll(async () => {
  await server.close();
  repo.cleanup();
});

const url = () => `ws://127.0.0.1:${server.apiPort}/ws/batch-processor`;

/** Opens a socket with `key`; resolves once open, with the messages it receives. */
async function open(key: string): Promise<{ ws: WebSocket; messages: Record<string, unknown>[] }> {
  const ws = new WebSocket(url(), { headers: { "X-API-Key": key } });
  const messages: Record<string, unknown>[] = [];
  ws.on("message", (data) => messages.push(JSON.parse(data.toString()) as Record<string, unknown>));
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return { ws, messages };
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function submit(key: string, items: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${server.apiPort}/api/batch-processor/submit`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({ data: Array.from({ length: items }, (_, i) => ({ input: [i, 1, 2] })) }),
  });
  return ((await response.json()) as { batch_id: string }).batch_id;
}

describe("the WebSocket endpoint", () => {
  it("streams a subscribed batch's updates to its end, with total_time_ms when completed", async () => {
    const { ws, messages } = await open(ALICE);
    const batchId = await submit(ALICE, 200);
    ws.send(JSON.stringify({ action: "subscribe", batch_id: batchId }));
    await until(() => messages.some((m) => m.status === "completed"));
    const last = messages.at(-1) as Record<string, unknown>;
    expect(last).toMatchObject({ batch_id: batchId, status: "completed", progress: 1 });
    expect(typeof last.total_time_ms).toBe("number");
    expect(messages.every((m) => m.batch_id === batchId)).toBe(true);
    expect(messages.slice(0, -1).every((m) => m.total_time_ms === undefined)).toBe(true);
    // Progress never goes back.
    const progress = messages.map((m) => m.progress as number);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    ws.close();
  });

  it("refuses the upgrade without a valid key, with the API's error", async () => {
    const refused = new WebSocket(url(), { headers: { "X-API-Key": "wrong" } });
    const status = await new Promise<number | undefined>((resolve) => {
      refused.once("unexpected-response", (_req, res) => resolve(res.statusCode));
      refused.once("open", () => resolve(undefined));
      refused.once("error", () => {});
    });
    expect(status).toBe(401);
  });

  it("answers bad messages and others' batches in place, and keeps the socket open", async () => {
    const { ws, messages } = await open(BOB);
    const alices = await submit(ALICE, 3);
    ws.send("not json");
    ws.send(JSON.stringify({ action: "dance", batch_id: "x" }));
    ws.send(JSON.stringify({ action: "subscribe" }));
    ws.send(JSON.stringify({ action: "subscribe", batch_id: alices }));
    await until(() => messages.length >= 4);
    expect(messages[0]).toMatchObject({
      error: "invalid_argument",
      message: "message: expected JSON",
    });
    expect(messages[1]).toMatchObject({ error: "invalid_argument", batch_id: "x" });
    expect(String(messages[1]?.message)).toMatch(/^action: /);
    expect(String(messages[2]?.message)).toMatch(/^batch_id: /);
    expect(messages[3]).toMatchObject({ error: "not_found", batch_id: alices });
    // Still open: a batch of its own streams as usual.
    const own = await submit(BOB, 3);
    ws.send(JSON.stringify({ action: "subscribe", batch_id: own }));
    await until(() => messages.some((m) => m.batch_id === own && m.status === "completed"));
    ws.close();
  });
});
