/**
 * The REST/JSON adapter: serves the routes transcoded from the contract's `google.api.http`
 * annotations with plain JSON bodies (the seed's API), and server streams as NDJSON or, for
 * `Accept: text/event-stream`, Server-Sent Events.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Transform } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { type JsonValue, type Message, toJson } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { BatchProcessorService } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { InvalidInputError, PayloadTooLargeError } from "../engine/errors.js";
import type { EngineLogger } from "../engine/logger.js";
import { callContext, implMethod, type ServiceBinding } from "./call-context.js";
import { codeName, httpStatusOf, restErrorBody, toConnectError } from "./error-mapping.js";
import { JSON_WRITE_OPTIONS } from "./json-options.js";
import { batchIdOf, finishRequest } from "./request-log.js";
import { decodeRestRequest, matchRoute, routesOf } from "./rest-transcoder.js";

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
  log: EngineLogger,
  options: RestHandlerOptions,
): RestHandler {
  const routes = routesOf(BatchProcessorService);
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const match = matchRoute(routes, req.method ?? "GET", url.pathname);
    if (match === undefined) return false;
    const abort = new AbortController();
    // "close" also follows a normal end; only a client that went away aborts the call.
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    const started = performance.now();
    const method = "route" in match ? match.route.method.name : `${req.method} ${url.pathname}`;
    let code = "ok";
    let batchId: string | undefined;
    try {
      if ("allowed" in match) {
        res.setHeader("allow", match.allowed.join(", "));
        throw new InvalidInputError(
          "method",
          `${req.method} is not allowed here; use ${match.allowed.join(" or ")}`,
        );
      }
      const { route, params } = match;
      const call = callContext(binding, (name) => headerValue(req, name), abort.signal);
      const body = route.body === "*" ? await readJsonBody(req, options.maxBodyBytes) : undefined;
      const request = decodeRestRequest(route, params, url.searchParams, body);
      batchId = batchIdOf(request);
      const fn = implMethod(binding.impl, route.method.localName);
      if (route.method.methodKind === "server_streaming") {
        code = await stream(
          req,
          res,
          route.method.output,
          fn(request as never, call) as AsyncIterable<Message>,
          log,
          method,
        );
      } else {
        const response = (await fn(request as never, call)) as Message;
        batchId = batchIdOf(request, response);
        sendJson(res, 200, toJson(route.method.output, response, JSON_WRITE_OPTIONS));
      }
    } catch (error) {
      const connectError = toConnectError(error, log, { method });
      code = codeName(connectError.code);
      sendError(res, connectError);
    } finally {
      finishRequest(binding, log, {
        protocol: "rest",
        method,
        code,
        durationMs: performance.now() - started,
        batchId,
      });
    }
    return true;
  };
}

async function stream(
  req: IncomingMessage,
  res: ServerResponse,
  schema: Parameters<typeof toJson>[0],
  events: AsyncIterable<Message>,
  log: EngineLogger,
  method: string,
): Promise<string> {
  const sse = (req.headers.accept ?? "").includes("text/event-stream");
  const iterator = events[Symbol.asyncIterator]();
  // The first event decides the status: errors before it (unknown batch, no key) are plain errors.
  const first = await iterator.next();
  res.writeHead(200, {
    "content-type": sse ? "text/event-stream" : "application/x-ndjson",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  const write = (json: JsonValue, event?: string) =>
    res.write(
      sse
        ? `${event === undefined ? "" : `event: ${event}\n`}data: ${JSON.stringify(json)}\n\n`
        : `${JSON.stringify(json)}\n`,
    );
  try {
    for (let step = first; !step.done; step = await iterator.next())
      write(toJson(schema, step.value as never, JSON_WRITE_OPTIONS));
  } catch (error) {
    const connectError = toConnectError(error, log, { method });
    write(sse ? restErrorBody(connectError) : { error: restErrorBody(connectError) }, "error");
    res.end();
    return codeName(connectError.code);
  }
  res.end();
  return "ok";
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads and parses a JSON body, inflating gzip/deflate/br, never holding more than `limit` bytes. */
async function readJsonBody(req: IncomingMessage, limit: number): Promise<JsonValue | undefined> {
  // Bodies are JSON whatever the declared type (curl -d sends form-urlencoded); only multipart,
  // which is never JSON, is refused outright.
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type.startsWith("multipart/"))
    throw new InvalidInputError("content-type", `expected application/json, got ${type}`);
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw new PayloadTooLargeError(limit);
  const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
  const source =
    encoding === "gzip"
      ? req.pipe(createGunzip())
      : encoding === "deflate"
        ? req.pipe(createInflate())
        : encoding === "br"
          ? req.pipe(createBrotliDecompress())
          : encoding === "identity"
            ? req
            : undefined;
  if (source === undefined)
    throw new InvalidInputError("content-encoding", `unsupported encoding ${encoding}`);
  // Past the limit: stop inflating (a zip bomb costs nothing more) and drain the request.
  const stop = () => {
    if (source !== req) {
      req.unpipe();
      (source as Transform).destroy();
    }
    req.resume();
  };
  const body = await collect(source, limit, stop);
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString("utf8")) as JsonValue;
  } catch (error) {
    throw new InvalidInputError(
      "body",
      `malformed JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** Reads a stream into one buffer, failing once it passes `limit` bytes. */
function collect(source: NodeJS.ReadableStream, limit: number, stop: () => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    source.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        source.removeAllListeners("data");
        stop();
        reject(new PayloadTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    });
    source.once("error", (error: Error) =>
      reject(new InvalidInputError("body", `could not be read: ${error.message}`)),
    );
    source.once("end", () =>
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)),
    );
  });
}

function sendJson(res: ServerResponse, status: number, body: JsonValue | object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, error: ConnectError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [name, value] of error.metadata) res.setHeader(name, value);
  const status = error.metadata.has("x-limit-bytes") ? 413 : httpStatusOf(error.code);
  sendJson(res, status, restErrorBody(error));
}
