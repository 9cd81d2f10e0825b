/**
 * The Connect and gRPC-Web protocols as this server speaks them (connectrpc.com/docs/protocol,
 * github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md): which content types carry a call and
 * how, the header that sets its deadline, and how an answer ends: a Connect unary error as JSON
 * with the HTTP status of its code, a Connect stream with an end-of-stream message, a gRPC-Web
 * call with a trailers message.
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { echo, InvalidInputError } from "../engine/index.js";
import { END_STREAM_FLAG, envelope, TRAILERS_FLAG } from "./envelope.js";

/** The two RPC protocols of the API port. */
export type RpcProtocol = "connect" | "grpc-web";

/** How a request's content type carries its call. */
export interface RpcFormat {
  readonly protocol: RpcProtocol;
  /** JSON messages, or protobuf. */
  readonly json: boolean;
  /** Messages in envelopes (gRPC-Web, Connect streaming), or the bare body (Connect unary). */
  readonly enveloped: boolean;
  /** The answer's content type. */
  readonly responseType: string;
  /** The header naming how the request's message is compressed. */
  readonly encodingHeader: string;
  /** The header listing the compressions the client takes back. */
  readonly acceptEncodingHeader: string;
  /** The header of the call's deadline. */
  readonly timeoutHeader: "connect-timeout-ms" | "grpc-timeout";
}

const connectUnary = (json: boolean): RpcFormat => ({
  protocol: "connect",
  json,
  enveloped: false,
  responseType: json ? "application/json" : "application/proto",
  encodingHeader: "content-encoding",
  acceptEncodingHeader: "accept-encoding",
  timeoutHeader: "connect-timeout-ms",
});

const connectStream = (json: boolean): RpcFormat => ({
  protocol: "connect",
  json,
  enveloped: true,
  responseType: json ? "application/connect+json" : "application/connect+proto",
  encodingHeader: "connect-content-encoding",
  acceptEncodingHeader: "connect-accept-encoding",
  timeoutHeader: "connect-timeout-ms",
});

const grpcWeb = (json: boolean): RpcFormat => ({
  protocol: "grpc-web",
  json,
  enveloped: true,
  responseType: json ? "application/grpc-web+json" : "application/grpc-web+proto",
  encodingHeader: "grpc-encoding",
  acceptEncodingHeader: "grpc-accept-encoding",
  timeoutHeader: "grpc-timeout",
});

const UNARY: readonly [RegExp, RpcFormat][] = [
  [/^application\/json(;\s*charset=utf-?8)?$/i, connectUnary(true)],
  [/^application\/proto$/i, connectUnary(false)],
];
const STREAMING: readonly [RegExp, RpcFormat][] = [
  [/^application\/connect\+json(;\s*charset=utf-?8)?$/i, connectStream(true)],
  [/^application\/connect\+proto$/i, connectStream(false)],
];
const GRPC_WEB: readonly [RegExp, RpcFormat][] = [
  [/^application\/grpc-web\+json(;\s*charset=utf-?8)?$/i, grpcWeb(true)],
  [/^application\/grpc-web(\+proto)?$/i, grpcWeb(false)],
];

/** The content types a method's calls may come in, for the 415 answer. */
export function rpcContentTypes(streaming: boolean): string[] {
  return streaming
    ? ["application/connect+proto", "application/connect+json", "application/grpc-web+proto"]
    : ["application/proto", "application/json", "application/grpc-web+proto"];
}

/**
 * How a call with `contentType` is carried, for a method that answers with a stream or not;
 * undefined when the protocols have no such form for it.
 */
export function rpcFormatOf(
  contentType: string | undefined,
  streaming: boolean,
): RpcFormat | undefined {
  const type = (contentType ?? "").trim();
  const forms = [...(streaming ? STREAMING : UNARY), ...GRPC_WEB];
  return forms.find(([pattern]) => pattern.test(type))?.[1];
}

/** gRPC's timeout units, in ms. */
const GRPC_TIMEOUT_UNITS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/** The call's deadline from now, ms, from its timeout header; undefined without one. */
export function timeoutMsOf(format: RpcFormat, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (format.timeoutHeader === "connect-timeout-ms") {
    if (/^\d{1,10}$/.test(value)) return Number(value);
    throw new InvalidInputError(
      format.timeoutHeader,
      `expected a positive integer of at most 10 digits (ms), got ${echo(value)}`,
    );
  }
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match !== null) return Number(match[1]) * (GRPC_TIMEOUT_UNITS[match[2] as string] as number);
  throw new InvalidInputError(
    format.timeoutHeader,
    `expected at most 8 digits and a unit (H, M, S, m, u, n), got ${echo(value)}`,
  );
}

/** Lower-case snake name of a code, as the protocols write it (`invalid_argument`). */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** The HTTP status of a Connect unary error, by its code (the Connect protocol's table). */
const CONNECT_HTTP_STATUS: Readonly<Record<Code, number>> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** The HTTP status of a Connect unary call that failed with `error`. */
export function connectHttpStatus(error: ConnectError): number {
  return CONNECT_HTTP_STATUS[error.code] ?? 500;
}

/** A Connect error as JSON: `{"code": "not_found", "message": "..."}`. */
export function connectErrorJson(error: ConnectError): { code: string; message?: string } {
  return error.rawMessage === ""
    ? { code: codeName(error.code) }
    : { code: codeName(error.code), message: error.rawMessage };
}

/**
 * The end of a Connect stream: an enveloped JSON `{"error"?, "metadata"?}`, where metadata is
 * what the failure carries for the client (`retry-after`, `x-error-id`).
 */
export function connectEndStream(error?: ConnectError): Buffer {
  const end: { error?: object; metadata?: Record<string, string[]> } = {};
  if (error !== undefined) {
    end.error = connectErrorJson(error);
    const metadata: Record<string, string[]> = {};
    error.metadata.forEach((value, key) => {
      metadata[key] = [...(metadata[key] ?? []), value];
    });
    if (Object.keys(metadata).length > 0) end.metadata = metadata;
  }
  return envelope(END_STREAM_FLAG, Buffer.from(JSON.stringify(end)));
}

/**
 * The end of a gRPC-Web call: an enveloped block of header lines with `grpc-status` (0 when it
 * succeeded), and for a failure its message (percent-encoded) and its metadata.
 */
export function grpcWebTrailers(error?: ConnectError): Buffer {
  const lines: string[] = [];
  if (error === undefined) lines.push("grpc-status: 0");
  else {
    error.metadata.forEach((value, key) => {
      lines.push(`${key}: ${value}`);
    });
    lines.push(
      `grpc-status: ${error.code}`,
      `grpc-message: ${encodeURIComponent(error.rawMessage)}`,
    );
  }
  return envelope(TRAILERS_FLAG, Buffer.from(lines.map((line) => `${line}\r\n`).join("")));
}
