/**
 * Connect and gRPC-Web on the API port, served here from end to end: a call is admitted from its
 * headers before its body is read, its request read and decoded by the wire readers that every
 * protocol shares (errors that name the field, malformed bytes as INVALID_ARGUMENT, bulk-read
 * inputs), run as a {@link Call}, and its answer or error written in the protocol's framing
 * (`wire/rpc-protocols.ts`): a Connect unary body or JSON error with its HTTP status, a Connect
 * stream ending with its end-of-stream message, a gRPC-Web call ending with its trailers. Answers
 * are gzipped for clients that accept it.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescMethod, Message } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { BatchProcessorService } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { DeadlineExceededError } from "../engine/index.js";
import {
  acceptsGzip,
  COMPRESS_MIN_BYTES,
  COMPRESSED_FLAG,
  connectEndStream,
  connectErrorJson,
  connectHttpStatus,
  drainUpload,
  encodeMessage,
  envelope,
  grpcWebTrailers,
  gzipped,
  type RpcFormat,
  readRpcRequest,
  readRpcRequests,
  rpcContentTypes,
  rpcFormatOf,
  timeoutMsOf,
} from "../wire/index.js";
import { Call, type ServiceBinding } from "./call.js";
import { toConnectError } from "./error-mapping.js";
import {
  MethodNotAllowedError,
  RouteNotFoundError,
  UnsupportedMediaTypeError,
} from "./http-errors.js";
import { drained, sendError } from "./rest-handler.js";

/** Options of {@link createConnectHandler}. */
export interface ConnectHandlerOptions {
  /** Largest request message accepted, after decompression, bytes. */
  readonly maxBodyBytes: number;
}

/** Serves a request on a Connect / gRPC-Web path, or answers 404 for any other path. */
export type ConnectHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Builds the handler of every method of the contract's service. */
export function createConnectHandler(
  binding: ServiceBinding,
  options: ConnectHandlerOptions,
): ConnectHandler {
  const methods = new Map(
    BatchProcessorService.methods.map((m) => [`/${BatchProcessorService.typeName}/${m.name}`, m]),
  );
  return (req, res) => {
    const path = (req.url ?? "").split("?", 2)[0] ?? "";
    const method = methods.get(path);
    const streaming = method !== undefined && method.methodKind !== "unary";
    const contentType = req.headers["content-type"];
    const format = rpcFormatOf(contentType, streaming);
    const refusal =
      method === undefined
        ? new RouteNotFoundError(path)
        : req.method !== "POST"
          ? new MethodNotAllowedError(req.method ?? "", ["POST"])
          : format === undefined
            ? new UnsupportedMediaTypeError(contentType, rpcContentTypes(streaming))
            : undefined;
    if (refusal !== undefined || method === undefined || format === undefined) {
      sendError(req, res, toConnectError(refusal, binding.log));
      return;
    }
    void serve(new Call(binding, format.protocol, method), format, req, res, options.maxBodyBytes);
  };
}

/** Runs one admitted call and writes its answer in `format`. */
async function serve(
  call: Call,
  format: RpcFormat,
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
): Promise<void> {
  const header = (name: string) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const out = new AnswerWriter(format, req, res, acceptsGzip(header(format.acceptEncodingHeader)));
  const left = new AbortController();
  // "close" also follows a normal end; only a client that went away aborts the call.
  res.on("close", () => {
    if (!res.writableFinished) left.abort();
  });
  let deadline: AbortSignal | undefined;
  try {
    call.admit(header);
    const timeoutMs = timeoutMsOf(format, header(format.timeoutHeader));
    deadline = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    const signal = deadline === undefined ? left.signal : AbortSignal.any([left.signal, deadline]);
    if (call.method.methodKind === "client_streaming") {
      const requests = readRpcRequests(req, format, call.method.input, limit);
      const response = await call.clientStream(requests, signal);
      await out.message(call.method, response as Message);
      call.ok(response);
      out.end();
      return;
    }
    const read = () => readRpcRequest(req, format, call.method.input, limit);
    if (call.method.methodKind === "server_streaming") {
      for await (const message of call.stream(await read(), signal))
        await out.message(call.method, message as Message);
      call.ok();
    } else {
      const { answer } = await call.startUnary(read, signal);
      const response = await answer;
      await out.message(call.method, response as Message);
      call.ok(response);
    }
    out.end();
  } catch (error) {
    const passed = deadline?.aborted === true && !left.signal.aborted;
    const failure = passed
      ? new DeadlineExceededError(`the call's deadline (${format.timeoutHeader}) passed`)
      : error;
    const failed = call.fail(failure);
    if (call.method.methodKind === "client_streaming") await drainUpload(req);
    out.fail(failed);
  }
}

/** Writes one call's answer in its protocol's framing. */
class AnswerWriter {
  readonly #format: RpcFormat;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #gzip: boolean;

  constructor(format: RpcFormat, req: IncomingMessage, res: ServerResponse, gzip: boolean) {
    this.#format = format;
    this.#req = req;
    this.#res = res;
    this.#gzip = gzip;
  }

  /** Writes a message: a Connect unary answer whole, else one envelope of the stream. */
  async message(method: DescMethod, message: Message): Promise<void> {
    const bytes = encodeMessage(method.output, message, this.#format.json);
    const compress = this.#gzip && bytes.byteLength >= COMPRESS_MIN_BYTES;
    const payload = compress ? await gzipped(bytes) : bytes;
    if (!this.#format.enveloped) {
      this.#res.writeHead(200, {
        "content-type": this.#format.responseType,
        "content-length": payload.byteLength,
        ...(compress ? { "content-encoding": "gzip" } : {}),
      });
      this.#res.end(payload);
      return;
    }
    this.#head();
    const ok = this.#res.write(envelope(compress ? COMPRESSED_FLAG : 0, payload));
    if (!ok) await drained(this.#res);
  }

  /** Ends an answer that succeeded. */
  end(): void {
    if (!this.#format.enveloped) return;
    this.#head();
    this.#res.end(this.#format.protocol === "connect" ? connectEndStream() : grpcWebTrailers());
  }

  /** Ends an answer with `error`. */
  fail(error: ConnectError): void {
    const res = this.#res;
    if (res.writableEnded) return;
    // A request whose body was not read to its end closes its connection after the answer.
    if (!res.headersSent && !this.#req.complete) res.setHeader("connection", "close");
    if (this.#format.enveloped) {
      this.#head();
      res.end(
        this.#format.protocol === "connect" ? connectEndStream(error) : grpcWebTrailers(error),
      );
      return;
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    const body = JSON.stringify(connectErrorJson(error));
    error.metadata.forEach((value, key) => {
      res.setHeader(key, value);
    });
    res.writeHead(connectHttpStatus(error), {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  }

  /** The status line and headers of an enveloped answer, once. */
  #head(): void {
    if (this.#res.headersSent) return;
    this.#res.writeHead(200, {
      "content-type": this.#format.responseType,
      ...(this.#gzip ? { [this.#format.encodingHeader]: "gzip" } : {}),
    });
  }
}
