/**
 * The v1 API's WebSocket endpoint, `ws://host:API_PORT/ws/batch-processor`: a thin adapter
 * (the `ws` package) over the same WatchBatch stream as every other protocol. The key is read
 * from the upgrade request's headers (a refused upgrade gets the HTTP error and no socket); each
 * `{"action": "subscribe", "batch_id": ...}` is one WatchBatch call under that key (same
 * ownership, log line and metrics), whose status events are sent as the REST API's JSON plus
 * `total_time_ms` once the batch has completed; `{"action": "unsubscribe", "batch_id": ...}`
 * stops one. A bad message or a failed subscription answers `{"error", "message", "batch_id"?}`
 * (ids echoed at most 64 characters) and leaves the socket open.
 *
 * Sockets are bounded so that no client can hold the server: in number, in all and per key
 * (an upgrade past them gets 503 or 429 and no socket); in time (one that neither sends nor
 * answers a ping for the idle timeout is closed); and in rate (a socket past its messages per
 * second, or any message while the event loop runs late, is not read for a while, so its
 * flood waits in its own TCP buffers rather than in the server's event loop).
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import {
  BatchProcessorService,
  type BatchStatus,
  BatchStatusSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import {
  ECHO_MAX_CHARS,
  InvalidInputError,
  MAX_ID_LENGTH,
  OverloadedError,
} from "../engine/index.js";
import { JSON_WRITE_OPTIONS } from "../wire/index.js";
import { Call, type ServiceBinding } from "./call.js";
import { restErrorBody, toConnectError } from "./error-mapping.js";

/** The endpoint's path. */
export const WEBSOCKET_PATH = "/ws/batch-processor";

/** Largest message a client may send, bytes: a subscribe is a few dozen. */
const MAX_MESSAGE_BYTES = 64 * 1024;

/** Batches one socket follows at once. */
export const MAX_SUBSCRIPTIONS = 100;

const WATCH = BatchProcessorService.method.watchBatch;

/** The bounds of the endpoint's sockets (settings WS_*). */
export interface WebSocketLimits {
  /** Sockets open at once, of every key; 0: no WebSockets. */
  readonly maxConnections: number;
  /** Sockets one key (owner) holds at once. */
  readonly maxConnectionsPerKey: number;
  /** A socket silent this long (no message, no pong) is closed, ms. */
  readonly idleTimeoutMs: number;
  /** Messages a socket may send per second; bursts of twice that. */
  readonly messagesPerSecond: number;
}

/** Answers HTTP upgrades on {@link WEBSOCKET_PATH}; false for any other path (not handled). */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;

/** Builds the upgrade handler; `close()` ends every socket (shutdown). */
export function createWebSocketHandler(
  binding: ServiceBinding,
  limits: WebSocketLimits,
): {
  upgrade: UpgradeHandler;
  close: () => void;
} {
  const server = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  const perOwner = new Map<string, number>();
  let open = 0;
  const upgrade: UpgradeHandler = (req, socket, head) => {
    if ((req.url ?? "").split("?")[0] !== WEBSOCKET_PATH) return false;
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    // The key and the bounds decide before the upgrade: a refused client gets a plain HTTP answer.
    let owner: string;
    try {
      owner = binding.auth.authenticate(header).owner;
    } catch (error) {
      refuse(socket, 401, "Unauthorized", restErrorBody(toConnectError(error, binding.log)));
      return true;
    }
    const held = perOwner.get(owner) ?? 0;
    if (open >= limits.maxConnections) {
      refuse(socket, 503, "Service Unavailable", {
        error: "unavailable",
        message: `the server holds ${limits.maxConnections} WebSockets already (WS_MAX_CONNECTIONS); retry later`,
      });
      return true;
    }
    if (held >= limits.maxConnectionsPerKey) {
      refuse(socket, 429, "Too Many Requests", {
        error: "resource_exhausted",
        message: `this API key holds ${limits.maxConnectionsPerKey} WebSockets already (WS_MAX_CONNECTIONS_PER_KEY); close one first`,
      });
      return true;
    }
    open++;
    perOwner.set(owner, held + 1);
    const release = () => {
      open--;
      const left = (perOwner.get(owner) ?? 1) - 1;
      if (left > 0) perOwner.set(owner, left);
      else perOwner.delete(owner);
    };
    server.handleUpgrade(req, socket, head, (ws) => {
      ws.once("close", release);
      serve(ws, header, binding, limits);
    });
    return true;
  };
  return {
    upgrade,
    close: () => {
      for (const ws of server.clients) ws.close(1001, "the server is shutting down");
      server.close();
    },
  };
}

/** Answers a refused upgrade on the raw socket and closes it. */
function refuse(socket: Duplex, status: number, reason: string, body: object): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n${status === 401 ? "" : "retry-after: 1\r\n"}connection: close\r\n\r\n${text}`,
  );
}

/** How long a message that met a late event loop waits, its socket unread, ms. */
const OVERLOAD_PAUSE_MS = 1000;

/** One socket: its subscriptions by batch id, its pace and its liveness. */
function serve(
  ws: WebSocket,
  header: (name: string) => string | undefined,
  binding: ServiceBinding,
  limits: WebSocketLimits,
): void {
  const subscriptions = new Map<string, AbortController>();
  const opened = Date.now();
  let received = 0;
  let followed = 0;
  let refusedMessages = 0;
  const send = (body: JsonObject) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(body));
  };
  /** Messages past the pace, waiting to be handled (see below). */
  const waiting: { data: RawData; isBinary: boolean }[] = [];
  // Liveness: any message or pong counts; a ping goes out every third of the idle time.
  let seen = Date.now();
  const alive = () => {
    seen = Date.now();
  };
  ws.on("pong", alive);
  const pinger = setInterval(
    () => {
      // A socket whose messages wait here is not idle: the server is the one not reading it.
      if (waiting.length > 0) alive();
      else if (Date.now() - seen >= limits.idleTimeoutMs) ws.terminate();
      else if (ws.readyState === ws.OPEN) ws.ping();
    },
    Math.max(100, Math.floor(limits.idleTimeoutMs / 3)),
  );
  pinger.unref();
  // Pace: a token bucket of twice the rate. Past it, messages wait in a queue of their own and
  // are handled at the rate, and the socket is not read meanwhile (what one read already brought
  // is all that can wait); a message while the event loop runs late waits a second.
  const burst = 2 * limits.messagesPerSecond;
  let tokens = burst;
  let filledAt = Date.now();
  let drainer: NodeJS.Timeout | undefined;
  const refill = () => {
    const now = Date.now();
    tokens = Math.min(burst, tokens + ((now - filledAt) * limits.messagesPerSecond) / 1000);
    filledAt = now;
  };
  const drain = () => {
    drainer = undefined;
    refill();
    while (waiting.length > 0 && tokens >= 1) {
      const next = waiting.shift() as { data: RawData; isBinary: boolean };
      if (!handle(next.data, next.isBinary)) return;
    }
    if (waiting.length > 0) later(Math.ceil(((1 - tokens) * 1000) / limits.messagesPerSecond));
    else if (ws.readyState === ws.OPEN) ws.resume();
  };
  const later = (ms: number) => {
    if (drainer === undefined) drainer = setTimeout(drain, Math.max(1, ms));
  };
  ws.on("message", (data, isBinary) => {
    alive();
    received++;
    refill();
    if (waiting.length === 0 && tokens >= 1) handle(data, isBinary);
    else {
      waiting.push({ data, isBinary });
      ws.pause();
      later(Math.ceil(((1 - tokens) * 1000) / limits.messagesPerSecond));
    }
  });
  /** Handles one message; false when it must wait (the loop runs late) and stays queued. */
  const handle = (data: RawData, isBinary: boolean): boolean => {
    try {
      // A message while the loop runs late is read by the same guard as every call.
      binding.guard.enter(true)();
    } catch (error) {
      if (!(error instanceof OverloadedError)) throw error;
      waiting.unshift({ data, isBinary });
      ws.pause();
      if (drainer === undefined) drainer = setTimeout(drain, OVERLOAD_PAUSE_MS);
      return false;
    }
    tokens--;
    const text = isBinary ? undefined : data.toString();
    let batchId = batchIdIn(text);
    try {
      const message = parse(text);
      batchId = message.batchId;
      if (message.action === "unsubscribe") {
        subscriptions.get(batchId)?.abort();
        subscriptions.delete(batchId);
        return true;
      }
      if (subscriptions.has(batchId)) return true;
      if (subscriptions.size >= MAX_SUBSCRIPTIONS)
        throw new InvalidInputError(
          "action",
          `this connection follows ${MAX_SUBSCRIPTIONS} batches already; unsubscribe from one first`,
        );
      const controller = new AbortController();
      subscriptions.set(batchId, controller);
      followed++;
      void follow(binding, header, batchId, controller.signal, send).finally(() => {
        if (subscriptions.get(batchId as string) === controller)
          subscriptions.delete(batchId as string);
      });
    } catch (error) {
      refusedMessages++;
      send({
        ...errorBody(error, binding),
        ...(batchId === undefined ? {} : { batch_id: boundedId(batchId) }),
      });
    }
    return true;
  };
  ws.on("close", (code) => {
    binding.log.info(
      {
        protocol: "websocket",
        code,
        durationMs: Date.now() - opened,
        messages: received,
        subscriptions: followed,
        refusedMessages,
      },
      "websocket closed",
    );
    clearInterval(pinger);
    clearTimeout(drainer);
    waiting.length = 0;
    for (const controller of subscriptions.values()) controller.abort();
    subscriptions.clear();
  });
  ws.on("error", () => {
    // A broken socket closes; its subscriptions end with it.
  });
}

/** Streams one batch's status to the socket until it ends, the client leaves or unsubscribes. */
async function follow(
  binding: ServiceBinding,
  header: (name: string) => string | undefined,
  batchId: string,
  signal: AbortSignal,
  send: (body: JsonObject) => void,
): Promise<void> {
  const call = new Call(binding, "websocket", WATCH);
  try {
    call.admit(header);
    for await (const status of call.stream({ batchId }, signal) as AsyncIterable<BatchStatus>) {
      if (signal.aborted) break;
      send(update(status));
    }
    call.ok();
  } catch (error) {
    if (signal.aborted) {
      call.cancelled();
      return;
    }
    send({ ...restErrorBody(call.fail(error)), batch_id: boundedId(batchId) });
  }
}

/** A status event as the v1 API's WebSocket client reads it. */
function update(status: BatchStatus): JsonObject {
  const json = toJson(BatchStatusSchema, status, JSON_WRITE_OPTIONS) as JsonObject;
  return status.status === "completed" ? { ...json, total_time_ms: status.processingTimeMs } : json;
}

/** A client message: `{"action": "subscribe" | "unsubscribe", "batch_id": "..."}`. */
function parse(text: string | undefined): {
  action: "subscribe" | "unsubscribe";
  batchId: string;
} {
  if (text === undefined) throw new InvalidInputError("message", "expected a JSON text message");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidInputError("message", "expected JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new InvalidInputError("message", "expected a JSON object");
  const { action, batch_id: batchId } = value as Record<string, unknown>;
  if (action !== "subscribe" && action !== "unsubscribe")
    throw new InvalidInputError("action", 'expected "subscribe" or "unsubscribe"');
  if (typeof batchId !== "string" || batchId === "")
    throw new InvalidInputError("batch_id", "expected the id of a batch");
  return { action, batchId };
}

/** The `batch_id` a message names, if any, so that an error about it can name it too. */
function batchIdIn(text: string | undefined): string | undefined {
  try {
    const id = (JSON.parse(text ?? "") as { batch_id?: unknown } | null)?.batch_id;
    return typeof id === "string" && id !== "" ? id : undefined;
  } catch {
    return undefined;
  }
}

/** An id as the client sent it, cut to its first characters when it is longer than any id. */
function boundedId(id: string): string {
  return id.length <= MAX_ID_LENGTH
    ? id
    : `${id.slice(0, ECHO_MAX_CHARS)}… (${id.length} characters)`;
}

function errorBody(error: unknown, binding: ServiceBinding): JsonObject {
  return restErrorBody(toConnectError(error, binding.log, { protocol: "websocket" })) as JsonObject;
}
