/**
 * The Connect and gRPC-Web adapter. connect-es serves the protocols (content negotiation,
 * timeouts, response framing, compression, error encoding); this adapter stands in front of its
 * router so that every call goes the way the other protocols go: admitted from its headers before
 * its body is read, its request read and decoded by the same readers as REST and gRPC (errors
 * that name the field, malformed bytes as INVALID_ARGUMENT, bulk-read inputs), then handed to the
 * router with the decoded request in its context and a body that decodes to nothing. What the
 * call answers, or the error it ends with, goes out through connect-es in the protocol's format.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescMethod, JsonObject, Message } from "@bufbuild/protobuf";
import {
  type ConnectError,
  type ConnectRouter,
  createConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { BatchProcessorService } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { RouteNotFoundError } from "../engine/errors.js";
import { decodeBinaryRequest } from "./binary-request.js";
import { Call, type Protocol, type ServiceBinding } from "./call.js";
import { toConnectError } from "./error-mapping.js";
import { JSON_READ_OPTIONS, JSON_WRITE_OPTIONS } from "./json-options.js";
import { decodeJsonRequest } from "./json-request.js";
import { parseJsonBody, readBody, unenvelope } from "./request-body.js";
import { sendError } from "./rest-handler.js";

/** Options of {@link createConnectHandler}. */
export interface ConnectHandlerOptions {
  /** Largest request message accepted, after decompression, bytes. */
  readonly maxBodyBytes: number;
}

/** Serves a request on a Connect / gRPC-Web path, or answers 404 for any other path. */
export type ConnectHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** How a content type carries the request message. */
interface Wire {
  readonly protocol: Protocol;
  readonly json: boolean;
  /** In a gRPC-Web / Connect streaming envelope, or as the whole body (Connect unary). */
  readonly enveloped: boolean;
  /** The header naming the algorithm of a compressed message. */
  readonly encodingHeader: string;
}

const WIRES: readonly [RegExp, Wire][] = [
  [
    /^application\/(json(; ?charset=utf-?8)?)$/i,
    { protocol: "connect", json: true, enveloped: false, encodingHeader: "content-encoding" },
  ],
  [
    /^application\/proto$/i,
    { protocol: "connect", json: false, enveloped: false, encodingHeader: "content-encoding" },
  ],
  [
    /^application\/connect\+json(; ?charset=utf-?8)?$/i,
    {
      protocol: "connect",
      json: true,
      enveloped: true,
      encodingHeader: "connect-content-encoding",
    },
  ],
  [
    /^application\/connect\+proto$/i,
    {
      protocol: "connect",
      json: false,
      enveloped: true,
      encodingHeader: "connect-content-encoding",
    },
  ],
  [
    /^application\/grpc-web\+json(; ?charset=utf-?8)?$/i,
    { protocol: "grpc-web", json: true, enveloped: true, encodingHeader: "grpc-encoding" },
  ],
  [
    /^application\/grpc-web(\+proto)?$/i,
    { protocol: "grpc-web", json: false, enveloped: true, encodingHeader: "grpc-encoding" },
  ],
];

/** The decoded request and admitted call, handed to the router's handler in its context. */
interface Prepared {
  readonly call: Call;
  readonly request: unknown;
}

const PREPARED = createContextKey<Prepared | undefined>(undefined);

/** Builds the adapter. */
export function createConnectHandler(
  binding: ServiceBinding,
  options: ConnectHandlerOptions,
): ConnectHandler {
  const router = createConnectRouter({
    readMaxBytes: options.maxBodyBytes,
    acceptCompression: [compressionGzip],
    jsonOptions: { ...JSON_READ_OPTIONS, ...JSON_WRITE_OPTIONS },
  });
  registerRoutes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const path = (req.url ?? "").split("?", 2)[0] ?? "";
    const handler = paths.get(path);
    if (handler === undefined) {
      sendError(req, res, toConnectError(new RouteNotFoundError(path), binding.log));
      return;
    }
    const wire = wireOf(req.headers["content-type"]);
    if (wire === undefined || req.method !== "POST") {
      // Not a form this server reads: connect-es answers it (415, 405) without a call.
      serve(handler, universalRequestFromNodeRequest(req, res, undefined, undefined), res);
      return;
    }
    const call = new Call(binding, wire.protocol, handler.method);
    prepare(call, wire, req, options.maxBodyBytes).then(
      (request) => {
        const values = createContextValues().set(PREPARED, { call, request });
        const neutral = universalRequestFromNodeRequest(req, res, undefined, values);
        serve(handler, { ...neutral, ...neutralBody(wire, neutral.header) }, res);
      },
      (error: unknown) => {
        // Answered in the protocol's own format: connect-es reads this body and writes its error.
        const failed = call.fail(error);
        if (!req.complete) res.setHeader("connection", "close");
        const refused = universalRequestFromNodeRequest(req, res, undefined, undefined);
        serve(
          handler,
          { ...refused, header: bodyless(wire, refused.header), body: throwing(failed) },
          res,
        );
      },
    );
  };
}

type UniversalHandler = ConnectRouter["handlers"][number];
type UniversalRequest = ReturnType<typeof universalRequestFromNodeRequest>;

function serve(handler: UniversalHandler, request: UniversalRequest, res: ServerResponse): void {
  handler(request)
    .then((response) => universalResponseToNodeResponse(response, res))
    .catch(() => {
      // The client went away while the answer was written: nothing is left to tell it.
      res.destroy();
    });
}

function wireOf(contentType: string | undefined): Wire | undefined {
  const type = (contentType ?? "").trim();
  return WIRES.find(([pattern]) => pattern.test(type))?.[1];
}

/** Admits the call, then reads and decodes its request. */
async function prepare(
  call: Call,
  wire: Wire,
  req: IncomingMessage,
  limit: number,
): Promise<unknown> {
  call.admit((name) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
  });
  const encoding = req.headers[wire.encodingHeader];
  const compression = Array.isArray(encoding) ? encoding[0] : encoding;
  const body = wire.enveloped
    ? await unenvelope(await readBody(req, limit, undefined), compression, limit)
    : await readBody(req, limit, compression);
  const schema = call.method.input;
  return wire.json
    ? decodeJsonRequest(schema, parseJsonBody(body))
    : decodeBinaryRequest(schema, body);
}

/**
 * The body connect-es reads instead of the real one (already read and decoded): the empty
 * message in the request's own form, uncompressed.
 */
function neutralBody(wire: Wire, header: Headers): Pick<UniversalRequest, "body" | "header"> {
  const headers = bodyless(wire, header);
  if (!wire.enveloped) {
    return {
      header: headers,
      body: wire.json ? ({} as JsonObject) : iterableOf(new Uint8Array(0)),
    };
  }
  const message = wire.json ? new TextEncoder().encode("{}") : new Uint8Array(0);
  const envelope = new Uint8Array(5 + message.length);
  new DataView(envelope.buffer).setUint32(1, message.length);
  envelope.set(message, 5);
  return { header: headers, body: iterableOf(envelope) };
}

/**
 * The request's headers without those that describe the body it sent (length, compression), so
 * that connect-es reads the body it is handed instead, whatever the client declared.
 */
function bodyless(wire: Wire, header: Headers): Headers {
  const headers = new Headers(header);
  headers.delete("content-length");
  headers.delete(wire.encodingHeader);
  return headers;
}

async function* iterableOf(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** A body that fails with `error` as soon as it is read. */
function throwing(error: ConnectError): AsyncIterable<Uint8Array> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(error) }) };
}

/** Registers every method on `router`, as handlers that run the call prepared for them. */
function registerRoutes(router: ConnectRouter): void {
  const handlers: Record<string, unknown> = {};
  for (const method of BatchProcessorService.methods)
    handlers[method.localName] =
      method.methodKind === "server_streaming" ? streamHandler(method) : unaryHandler(method);
  router.service(BatchProcessorService, handlers);
}

function preparedOf(ctx: HandlerContext, method: DescMethod): Prepared {
  const prepared = ctx.values.get(PREPARED);
  if (prepared === undefined) throw new Error(`${method.name} reached its handler unprepared`);
  return prepared;
}

function unaryHandler(method: DescMethod) {
  return async (_empty: Message, ctx: HandlerContext) => {
    const { call, request } = preparedOf(ctx, method);
    try {
      const response = await call.unary(request, ctx.signal);
      call.ok(response);
      return response;
    } catch (error) {
      throw call.fail(error);
    }
  };
}

function streamHandler(method: DescMethod) {
  return async function* (_empty: Message, ctx: HandlerContext) {
    const { call, request } = preparedOf(ctx, method);
    try {
      yield* call.stream(request, ctx.signal);
    } catch (error) {
      throw call.fail(error);
    } finally {
      call.ok(); // a no-op once the call failed; a client that left ends it here too
    }
  };
}
