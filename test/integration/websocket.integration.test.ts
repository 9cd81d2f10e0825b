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

describe("the WebSocket endpoint's bounds", () => {
  const CAROL = "ws-carol";
  let bounded: RunningServer;
  const logLines: string[] = [];
  beforeAll(async () => {
    bounded = await startTestServer(
      repo.dir,
      {
        API_KEYS: `${ALICE},${BOB},${CAROL}`,
        WS_MAX_CONNECTIONS: "4",
        WS_MAX_CONNECTIONS_PER_KEY: "2",
        WS_IDLE_TIMEOUT_MS: "1000",
        WS_MESSAGES_PER_SECOND: "10",
        LOG_LEVEL: "info",
      },
      logLines,
    );
  });
  afterAll(async () => {
    await bounded.close();
  });
  const boundedUrl = () => `ws://127.0.0.1:${bounded.apiPort}/ws/batch-processor`;

  /** Opens a socket; resolves with it once open, or with the HTTP status that refused it. */
  function connect(
    key: string,
    options: { autoPong?: boolean } = {},
  ): Promise<{ ws: WebSocket; status?: number; messages: Record<string, unknown>[] }> {
    const ws = new WebSocket(boundedUrl(), { headers: { "X-API-Key": key }, ...options });
    const messages: Record<string, unknown>[] = [];
    ws.on("message", (data) =>
      messages.push(JSON.parse(data.toString()) as Record<string, unknown>),
    );
    return new Promise((resolve) => {
      ws.once("open", () => resolve({ ws, messages }));
      ws.once("unexpected-response", (_req, res) =>
        resolve({ ws, status: res.statusCode, messages }),
      );
      ws.once("error", () => {});
    });
  }

  it("caps the sockets of one key and of all keys, refusing the upgrade with 429 and 503", async () => {
    const a1 = await connect(ALICE);
    const a2 = await connect(ALICE);
    expect([a1.status, a2.status]).toEqual([undefined, undefined]);
    expect((await connect(ALICE)).status).toBe(429);
    const b1 = await connect(BOB);
    const b2 = await connect(BOB);
    expect([b1.status, b2.status]).toEqual([undefined, undefined]);
    expect((await connect(CAROL)).status).toBe(503);
    // A socket that closes gives its place back (once the server has seen it close).
    a1.ws.close();
    await until(() => a1.ws.readyState === WebSocket.CLOSED);
    let again = await connect(ALICE);
    for (let attempt = 0; attempt < 50 && again.status !== undefined; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      again = await connect(ALICE);
    }
    expect(again.status).toBeUndefined();
    for (const s of [a2, b1, b2, again]) s.ws.close();
    await until(() => [a2, b1, b2, again].every((s) => s.ws.readyState === WebSocket.CLOSED));
  });

  it("closes a socket that answers no ping for the idle timeout, and keeps one that does", async () => {
    const silent = await connect(ALICE, { autoPong: false });
    const lively = await connect(BOB);
    await until(() => silent.ws.readyState === WebSocket.CLOSED, 10_000);
    expect(lively.ws.readyState).toBe(WebSocket.OPEN);
    lively.ws.close();
    await until(() => lively.ws.readyState === WebSocket.CLOSED);
  });

  it("reads a flooding socket at its pace: every message answered, none dropped, a burst at once", async () => {
    const { ws, messages } = await connect(ALICE);
    for (let k = 0; k < 60; k++)
      ws.send(JSON.stringify({ action: "dance", batch_id: `flood-${k}` }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The burst (twice the rate) and what the rate refills meanwhile, not the whole flood.
    expect(messages.length).toBeLessThanOrEqual(30);
    await until(() => messages.length === 60, 15_000);
    expect(messages.map((m) => m.batch_id)).toEqual(
      Array.from({ length: 60 }, (_, k) => `flood-${k}`),
    );
    ws.close();
    await until(() => ws.readyState === WebSocket.CLOSED);
  }, 20_000);

  it("writes one log line per socket, not one per message", async () => {
    const { ws, messages } = await connect(CAROL);
    const before = logLines.length;
    for (let k = 0; k < 12; k++) ws.send(JSON.stringify({ action: "dance", batch_id: `log-${k}` }));
    ws.send(JSON.stringify({ action: "subscribe", batch_id: "no-such-batch" }));
    await until(() => messages.length === 13);
    ws.close();
    await until(() => logLines.slice(before).some((l) => l.includes('"websocket closed"')));
    const lines = logLines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.msg === "request")).toEqual([]);
    expect(lines.filter((l) => l.msg === "websocket closed")).toEqual([
      expect.objectContaining({ messages: 13, subscriptions: 1, refusedMessages: 12 }),
    ]);
  });

  it("echoes an id at most its first characters", async () => {
    const { ws, messages } = await connect(BOB);
    ws.send(JSON.stringify({ action: "dance", batch_id: "x".repeat(60_000) }));
    await until(() => messages.length === 1);
    expect(String(messages[0]?.batch_id).length).toBeLessThan(100);
    expect(JSON.stringify(messages[0]).length).toBeLessThan(400);
    ws.close();
    await until(() => ws.readyState === WebSocket.CLOSED);
  });
});
