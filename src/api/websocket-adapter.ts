/**
 * The v1 API's WebSocket endpoint, `ws://host:API_PORT/ws/batch-processor`: a thin adapter
 * (the `ws` package) over the same WatchBatch stream as every other protocol. The key is read
 * from the upgrade request's headers (a refused upgrade gets the HTTP error and no socket); each
 * `{"action": "subscribe", "batch_id": ...}` is one WatchBatch call under that key (same
 * ownership, log line and metrics), whose status events are sent as the REST API's JSON plus
 * `total_time_ms` once the batch has completed; `{"action": "unsubscribe", "batch_id": ...}`
 * stops one. A bad message or a failed subscription answers `{"error", "message", "batch_id"?}`
 * and leaves the socket open.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { type WebSocket, WebSocketServer } from "ws";
import {
  BatchProcessorService,
  type BatchStatus,
  BatchStatusSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { InvalidInputError } from "../engine/index.js";
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

/** Answers HTTP upgrades on {@link WEBSOCKET_PATH}; false for any other path (not handled). */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;

/** Builds the upgrade handler; `close()` ends every socket (shutdown). */
export function createWebSocketHandler(binding: ServiceBinding): {
  upgrade: UpgradeHandler;
  close: () => void;
} {
  const server = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  const upgrade: UpgradeHandler = (req, socket, head) => {
    if ((req.url ?? "").split("?")[0] !== WEBSOCKET_PATH) return false;
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    // The key decides before the upgrade: a refused client gets a plain HTTP answer.
    try {
      binding.auth.authenticate(header);
    } catch (error) {
      const body = JSON.stringify(restErrorBody(toConnectError(error, binding.log)));
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return true;
    }
    server.handleUpgrade(req, socket, head, (ws) => serve(ws, header, binding));
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

/** One socket: its subscriptions by batch id. */
function serve(
  ws: WebSocket,
  header: (name: string) => string | undefined,
  binding: ServiceBinding,
): void {
  const subscriptions = new Map<string, AbortController>();
  const send = (body: JsonObject) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(body));
  };
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? undefined : data.toString();
    let batchId = batchIdIn(text);
    try {
      const message = parse(text);
      batchId = message.batchId;
      if (message.action === "unsubscribe") {
        subscriptions.get(batchId)?.abort();
        subscriptions.delete(batchId);
        return;
      }
      if (subscriptions.has(batchId)) return;
      if (subscriptions.size >= MAX_SUBSCRIPTIONS)
        throw new InvalidInputError(
          "action",
          `this connection follows ${MAX_SUBSCRIPTIONS} batches already; unsubscribe from one first`,
        );
      const controller = new AbortController();
      subscriptions.set(batchId, controller);
      void follow(binding, header, batchId, controller.signal, send).finally(() => {
        if (subscriptions.get(batchId as string) === controller)
          subscriptions.delete(batchId as string);
      });
    } catch (error) {
      send({
        ...errorBody(error, binding),
        ...(batchId === undefined ? {} : { batch_id: batchId }),
      });
    }
  });
  ws.on("close", () => {
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
    send({ ...restErrorBody(call.fail(error)), batch_id: batchId });
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

function errorBody(error: unknown, binding: ServiceBinding): JsonObject {
  return restErrorBody(toConnectError(error, binding.log, { protocol: "websocket" })) as JsonObject;
}
