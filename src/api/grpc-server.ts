/**
 * The native gRPC adapter (grpc-js). Its services are defined from the generated descriptors
 * (`grpc-services.ts`), so there is one set of message types; gRPC health checking and server
 * reflection run beside them. Every call of the service is admitted (load shedding, key, header size) by a
 * server interceptor as soon as its headers arrive, before its message is read; requests decode
 * without throwing, so a malformed message is INVALID_ARGUMENT rather than grpc-js's INTERNAL.
 */

import type { EventEmitter } from "node:events";
import type { ServerHttp2Session } from "node:http2";
import type { DescService, Message } from "@bufbuild/protobuf";
import type { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { type DecodedRequest, PayloadTooLargeError } from "../wire/index.js";
import { Call, type ServiceBinding } from "./call.js";
import {
  grpcServiceDefinition,
  pathOf,
  reflectionPackageDefinition,
  servicesOf,
} from "./grpc-services.js";

/** Options of {@link startGrpcServer}. */
export interface GrpcServerOptions {
  readonly host: string;
  readonly port: number;
  /** Largest message accepted, bytes (checked after decompression). */
  readonly maxMessageBytes: number;
}

/** A listening gRPC server. */
export interface StartedGrpcServer {
  readonly port: number;
  /** Marks the service NOT_SERVING for health checks (shutdown started). */
  setServing(serving: boolean): void;
  /** Stops accepting calls and waits for running ones (up to `timeoutMs`, then forces). */
  close(timeoutMs: number): Promise<void>;
}

/** Largest total size of a call's request headers (names and values), bytes. */
export const MAX_HEADER_BYTES = 16 * 1024;

/** Starts grpc-js with the service, health and reflection. */
export async function startGrpcServer(
  binding: ServiceBinding,
  options: GrpcServerOptions,
): Promise<StartedGrpcServer> {
  const calls = new WeakMap<grpc.Metadata, Call>();
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": -1,
    // Channelz (per-call counters and traces for grpc-js's admin service, which this server does
    // not serve) costs every call; nothing reads it here.
    "grpc.enable_channelz": 0,
    interceptors: [admission(binding, calls)],
  });
  const services = servicesOf(binding);
  for (const service of services)
    server.addService(grpcServiceDefinition(service), handlers(calls, service));
  const names = services.map((service) => service.typeName);
  const health = new HealthImplementation(
    Object.fromEntries(["", ...names].map((name) => [name, "SERVING"])),
  );
  health.addToServer(server);
  new ReflectionService(reflectionPackageDefinition(services)).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${options.host}:${options.port}`,
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );
  if (!widenReceiveWindows(server)) {
    binding.log.warn(
      { windowBytes: 65_535 },
      "could not raise the gRPC port's HTTP/2 receive windows; large requests stay throttled",
    );
  }
  return {
    port,
    setServing(serving) {
      const status = serving ? "SERVING" : "NOT_SERVING";
      for (const name of ["", ...names]) health.setStatus(name, status);
    },
    async close(timeoutMs) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** HTTP/2 receive window of each gRPC connection, bytes. */
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/** HTTP/2 receive window of each gRPC stream (one call), bytes. */
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * Raises the receive windows of every connection the server accepts. grpc-js leaves them at
 * Node's 64 KiB and has no option for it yet (grpc/grpc-node#3058): a client may then send only
 * 64 KiB per WINDOW_UPDATE round trip, so when the event loop is busy every upload on the
 * connection stalls, and requests wait in the client where no scheduler sees them. The http2
 * servers are grpc-js internals, read once after binding; false when they are not where grpc-js
 * 1.14 keeps them (a test fails then).
 */
function widenReceiveWindows(server: grpc.Server): boolean {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  for (const http2Server of servers.keys() as Iterable<EventEmitter>) {
    http2Server.on("session", (session: ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
        session.settings({ initialWindowSize: STREAM_WINDOW_BYTES });
      } catch {
        // The session closed before its settings could change: nothing to widen.
      }
    });
  }
  return true;
}

/**
 * The interceptor that starts and admits each call of the service from its headers alone: the
 * call's message is read only once it is let in. Health and reflection pass untouched.
 */
function admission(binding: ServiceBinding, calls: WeakMap<grpc.Metadata, Call>) {
  const methods = new Map(servicesOf(binding).flatMap((s) => s.methods.map((m) => [pathOf(m), m])));
  return (
    descriptor: grpc.ServerMethodDefinition<unknown, unknown>,
    next: grpc.ServerInterceptingCallInterface,
  ) => {
    const method = methods.get(descriptor.path);
    if (method === undefined) return new grpc.ServerInterceptingCall(next);
    let admitted: Call | undefined;
    return new grpc.ServerInterceptingCall(next, {
      start(startNext) {
        startNext({
          // A call the client drops before its handler ran (its message never came) ends here,
          // or it would hold its place among the calls in flight for good; one that ran ends as
          // its handler says (ending twice is a no-op).
          onCancel() {
            admitted?.cancelled();
          },
          onReceiveMetadata(metadata, metadataNext) {
            const call = new Call(binding, "grpc", method);
            try {
              const headerBytes = sizeOf(metadata);
              if (headerBytes > MAX_HEADER_BYTES)
                throw new PayloadTooLargeError(
                  MAX_HEADER_BYTES,
                  `request headers (${headerBytes} bytes)`,
                );
              call.admit((name) => {
                const value = metadata.get(name)[0];
                return value === undefined ? undefined : value.toString();
              });
            } catch (error) {
              next.sendStatus(grpcStatus(call.fail(error)));
              return;
            }
            calls.set(metadata, call);
            admitted = call;
            metadataNext(metadata);
          },
        });
      },
    });
  };
}

function sizeOf(metadata: grpc.Metadata): number {
  let bytes = 0;
  for (const [name, values] of Object.entries(metadata.toHttp2Headers()))
    for (const value of Array.isArray(values) ? values : [values])
      bytes += name.length + String(value).length;
  return bytes;
}

function handlers(
  calls: WeakMap<grpc.Metadata, Call>,
  service: DescService,
): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    out[method.localName] =
      method.methodKind === "server_streaming"
        ? streamingHandler(calls)
        : method.methodKind === "client_streaming"
          ? clientStreamingHandler(calls)
          : unaryHandler(calls);
  }
  return out;
}

/** The admitted call of a grpc-js call; the interceptor made it from the same metadata. */
function callOf(calls: WeakMap<grpc.Metadata, Call>, metadata: grpc.Metadata): Call {
  const call = calls.get(metadata);
  if (call === undefined) throw new Error("a gRPC call reached its handler without admission");
  return call;
}

function unaryHandler(calls: WeakMap<grpc.Metadata, Call>): grpc.handleUnaryCall<Message, Message> {
  return (grpcCall, callback) => {
    const call = callOf(calls, grpcCall.metadata);
    const { signal, settle } = signalOf(grpcCall);
    const decoded = grpcCall.request as unknown as DecodedRequest;
    (async () => call.unary(decoded.take(), signal))().then(
      (response) => {
        settle();
        call.ok(response);
        callback(null, response as Message);
      },
      (error: unknown) => {
        settle();
        callback(grpcStatus(call.fail(error)));
      },
    );
  };
}

function clientStreamingHandler(
  calls: WeakMap<grpc.Metadata, Call>,
): grpc.handleClientStreamingCall<Message, Message> {
  return (grpcCall, callback) => {
    const call = callOf(calls, grpcCall.metadata);
    const { signal, settle } = signalOf(grpcCall);
    call.clientStream(decodedMessages(grpcCall), signal).then(
      (response) => {
        settle();
        call.ok(response);
        callback(null, response as Message);
      },
      (error: unknown) => {
        settle();
        callback(grpcStatus(call.fail(error)));
      },
    );
  };
}

/** The messages of a client stream; one that did not decode ends it with its error. */
async function* decodedMessages(stream: AsyncIterable<unknown>): AsyncIterable<Message> {
  for await (const decoded of stream as AsyncIterable<DecodedRequest>)
    yield decoded.take() as Message;
}

function streamingHandler(
  calls: WeakMap<grpc.Metadata, Call>,
): grpc.handleServerStreamingCall<Message, Message> {
  return (grpcCall) => {
    const call = callOf(calls, grpcCall.metadata);
    const { signal, settle } = signalOf(grpcCall);
    const decoded = grpcCall.request as unknown as DecodedRequest;
    (async () => {
      for await (const message of call.stream(decoded.take(), signal)) {
        if (grpcCall.cancelled) break;
        // A slow reader holds the stream back rather than the server's memory growing.
        if (!grpcCall.write(message as Message)) await drained(grpcCall);
      }
    })().then(
      () => {
        settle();
        call.ok();
        grpcCall.end();
      },
      (error: unknown) => {
        settle();
        grpcCall.emit("error", grpcStatus(call.fail(error)));
      },
    );
  };
}

/** Resolves once the stream takes more, or the call has ended. */
function drained(stream: grpc.ServerWritableStream<Message, Message>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("cancelled", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("cancelled", done);
    stream.on("close", done);
  });
}

/** A signal that aborts when the client cancels; `settle()` marks the call answered. */
function signalOf(
  call:
    | grpc.ServerUnaryCall<Message, Message>
    | grpc.ServerWritableStream<Message, Message>
    | grpc.ServerReadableStream<Message, Message>,
): {
  signal: AbortSignal;
  settle: () => void;
} {
  const controller = new AbortController();
  let settled = false;
  // grpc-js also reports "cancelled" as the stream closes after an answer: only abort before one.
  (call as EventEmitter).on("cancelled", () => {
    if (!settled) controller.abort();
  });
  return {
    signal: controller.signal,
    settle: () => {
      settled = true;
    },
  };
}

/** A ConnectError as a gRPC status, its metadata (retry-after, error id) as trailers. */
function grpcStatus(error: ConnectError): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  for (const [name, value] of error.metadata) metadata.set(name, value);
  return {
    code: error.code as number as Code as number as grpc.status,
    details: error.rawMessage,
    metadata,
  };
}
