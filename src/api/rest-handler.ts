/**
 * The REST/JSON adapter: serves the routes transcoded from the contract's `google.api.http`
 * annotations with plain JSON bodies (the v1 REST API's), and server streams as NDJSON or, for
 * `Accept: text/event-stream`, Server-Sent Events (`event: status` or `error`, ids that honour
 * `Last-Event-ID`, so a browser's EventSource resumes). A call is admitted from its headers before
 * its body is read.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type JsonValue, type Message, toJson } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { BatchProcessorService } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { echo, InvalidInputError, isJobEnded, isTerminal } from "../engine/index.js";
import {
  bodyStream,
  drainUpload,
  JSON_WRITE_OPTIONS,
  jsonWriteOptionsOf,
  lastEventId,
  ndjsonLine,
  parseJsonBody,
  readBody,
  sseEvent,
} from "../wire/index.js";
import { Call, type ServiceBinding } from "./call.js";
import { httpStatusOf, restErrorBody } from "./error-mapping.js";
import { MethodNotAllowedError } from "./http-errors.js";
import { decodeRestRequest, decodeRestUpload, matchRoute, routesOf } from "./rest-transcoder.js";

/** Options of {@link createRestHandler}. */
export interface RestHandlerOptions {
  /** Largest request body accepted, after decompression, bytes. */
  readonly maxBodyBytes: number;
}

/** Handles a request if it matches a REST route; resolves false when it does not. */
export type RestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** Builds the REST adapter for the contract's service. */
export function createRestHandler(
  binding: ServiceBinding,
  options: RestHandlerOptions,
): RestHandler {
  const routes = routesOf(BatchProcessorService);
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const match = matchRoute(routes, req.method ?? "GET", url.pathname);
    if (match === undefined) return false;
    const call = new Call(binding, "rest", match.route.method);
    const abort = new AbortController();
    // "close" also follows a normal end; only a client that went away aborts the call.
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      if ("allowed" in match) throw new MethodNotAllowedError(req.method ?? "", match.allowed);
      call.admit((name) => headerValue(req, name));
      const { route, params } = match;
      if (route.method.methodKind === "client_streaming") {
        const requests = decodeRestUpload(route, params, url.searchParams, uploadBody(req));
        const response = (await call.clientStream(requests, abort.signal)) as Message;
        sendJson(res, 201, toJson(route.method.output, response, JSON_WRITE_OPTIONS));
        call.ok(response);
        return true;
      }
      const read = async () =>
        decodeRestRequest(
          route,
          params,
          url.searchParams,
          route.body === "*" ? await readJson(req, options.maxBodyBytes) : undefined,
        );
      if (route.method.methodKind === "server_streaming") {
        const streamed = call.stream(await read(), abort.signal) as AsyncIterable<Message>;
        await stream(req, res, call, streamed);
      } else {
        const { answer } = await call.startUnary(read, abort.signal);
        const response = (await answer) as Message;
        sendJson(res, 200, toJson(route.method.output, response, JSON_WRITE_OPTIONS));
        call.ok(response);
      }
    } catch (error) {
      const failed = call.fail(error);
      if (match.route.method.methodKind === "client_streaming") await drainUpload(req);
      sendError(req, res, failed);
    }
    return true;
  };
}

async function stream(
  req: IncomingMessage,
  res: ServerResponse,
  call: Call,
  events: AsyncIterable<Message>,
): Promise<void> {
  const schema = call.method.output;
  const sse = (req.headers.accept ?? "").includes("text/event-stream");
  const resumed = sse ? lastEventId(headerValue(req, "last-event-id")) : undefined;
  if (resumed?.ended === true) {
    // The client has seen the end: 204 tells an EventSource to stop reconnecting.
    res.writeHead(204);
    res.end();
    call.ok();
    return;
  }
  const iterator = events[Symbol.asyncIterator]();
  // The first event decides the status: errors before it (unknown batch, no key) are plain errors.
  const first = await iterator.next();
  res.writeHead(200, {
    "content-type": sse ? "text/event-stream" : "application/x-ndjson",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  // SSE ids go on from the client's Last-Event-ID; the id of the last event ends in "-end".
  let seq = resumed?.seq ?? 0;
  const write = (json: JsonValue, event: "status" | "error") => {
    if (!sse) return res.write(ndjsonLine(json));
    const status = String((json as { status?: unknown }).status);
    const ended = event === "error" || isTerminal(status) || isJobEnded(status);
    seq++;
    return res.write(sseEvent(seq, ended, event, json));
  };
  const jsonOptions = jsonWriteOptionsOf(schema.typeName);
  try {
    for (let step = first; !step.done; step = await iterator.next()) {
      // A slow reader holds the stream back rather than the server's memory growing.
      if (!write(toJson(schema, step.value as never, jsonOptions), "status")) await drained(res);
    }
  } catch (error) {
    // Past the status line an error is a frame of its own, from the same mapping.
    const body = restErrorBody(call.fail(error));
    write(sse ? body : { error: body }, "error");
  }
  res.end();
  call.ok();
}

/** Resolves once `res` takes more, or has closed. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** An upload's body as it arrives, inflated; bodies are taken whatever their type but multipart. */
function uploadBody(req: IncomingMessage): AsyncIterable<Buffer> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type.startsWith("multipart/"))
    throw new InvalidInputError("content-type", `expected application/x-ndjson, got ${echo(type)}`);
  return bodyStream(req, headerValue(req, "content-encoding"));
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads and parses a JSON body; bodies are JSON whatever their declared type but multipart. */
async function readJson(req: IncomingMessage, limit: number): Promise<JsonValue | undefined> {
  // curl -d sends form-urlencoded; only multipart, which is never JSON, is refused outright.
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type.startsWith("multipart/"))
    throw new InvalidInputError("content-type", `expected application/json, got ${echo(type)}`);
  return parseJsonBody(await readBody(req, limit, headerValue(req, "content-encoding")));
}

function sendJson(res: ServerResponse, status: number, body: JsonValue | object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Writes an error as the one mapping says. A request whose body was not read to its end (refused
 * before or while reading it) closes its connection, so nothing more of it is read.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, error: ConnectError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [name, value] of error.metadata) res.setHeader(name, value);
  if (!req.complete) res.setHeader("connection", "close");
  sendJson(res, httpStatusOf(error), restErrorBody(error));
}
