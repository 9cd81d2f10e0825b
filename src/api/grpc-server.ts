/**
 * The native gRPC adapter (grpc-js). Its service definition is built from the generated
 * descriptors (serialize with toBinary, parse with fromBinary), so there is one set of message
 * types; gRPC health checking and server reflection run beside it.
 */

import type { EventEmitter } from "node:events";
import type { ServerHttp2Session } from "node:http2";
import {
  type DescFile,
  type DescMethod,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import {
  BatchProcessorService,
  file_batchprocessor_v1_batch_processor,
  SubmitBatchRequestSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import type { EngineLogger } from "../engine/logger.js";
import { decodeSubmitBatchRequest } from "../service/packed-inputs.js";
import { callContext, implMethod, type ServiceBinding } from "./call-context.js";
import { codeName, toConnectError } from "./error-mapping.js";
import { batchIdOf, finishRequest } from "./request-log.js";

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

/** Starts grpc-js with the service, health and reflection. */
export async function startGrpcServer(
  binding: ServiceBinding,
  log: EngineLogger,
  options: GrpcServerOptions,
): Promise<StartedGrpcServer> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": -1,
  });
  server.addService(grpcServiceDefinition(), handlers(binding, log));
  const serviceName = BatchProcessorService.typeName;
  const health = new HealthImplementation({ "": "SERVING", [serviceName]: "SERVING" });
  health.addToServer(server);
  new ReflectionService(reflectionPackageDefinition()).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${options.host}:${options.port}`,
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );
  if (!widenReceiveWindows(server)) {
    log.warn(
      { windowBytes: 65_535 },
      "could not raise the gRPC port's HTTP/2 receive windows; large requests stay throttled",
    );
  }
  return {
    port,
    setServing(serving) {
      const status = serving ? "SERVING" : "NOT_SERVING";
      health.setStatus("", status);
      health.setStatus(serviceName, status);
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
 * connection stalls, and requests wait in the client where no scheduler sees them (measured:
 * 16-item Infer at 1,900 requests/s waited 1.25 s p50 before reaching the server; with these
 * windows 0.19 s). The http2 servers are grpc-js internals, read once after binding; false when
 * they are not where grpc-js 1.14 keeps them (a test fails then).
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

/** The grpc-js service definition, built from the generated descriptors (servers and clients). */
export function grpcServiceDefinition(): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of BatchProcessorService.methods) {
    definition[method.localName] = {
      path: `/${BatchProcessorService.typeName}/${method.name}`,
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      requestSerialize: (message: Message) => Buffer.from(toBinary(method.input, message as never)),
      requestDeserialize:
        method.input.typeName === SubmitBatchRequestSchema.typeName
          ? decodeSubmitBatchRequest
          : (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (message: Message) =>
        Buffer.from(toBinary(method.output, message as never)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

function handlers(binding: ServiceBinding, log: EngineLogger): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const method of BatchProcessorService.methods) {
    const fn = implMethod(binding.impl, method.localName);
    out[method.localName] =
      method.methodKind === "server_streaming"
        ? streamingHandler(method, fn, binding, log)
        : unaryHandler(method, fn, binding, log);
  }
  return out;
}

type ImplFn = ReturnType<typeof implMethod>;

function unaryHandler(
  method: DescMethod,
  fn: ImplFn,
  binding: ServiceBinding,
  log: EngineLogger,
): grpc.handleUnaryCall<Message, Message> {
  return (call, callback) => {
    const { signal: abort, settle } = signalOf(call);
    const started = performance.now();
    const done = (code: string, response?: unknown) =>
      finishRequest(binding, log, {
        protocol: "grpc",
        method: method.name,
        code,
        durationMs: performance.now() - started,
        batchId: batchIdOf(call.request, response),
      });
    (async () =>
      fn(call.request as never, callContext(binding, headerGetter(call.metadata), abort)))().then(
      (response) => {
        settle();
        done("ok", response);
        callback(null, response as Message);
      },
      (error: unknown) => {
        settle();
        const status = grpcError(error, log, method);
        done(codeName(status.code as number as Code));
        callback(status);
      },
    );
  };
}

function streamingHandler(
  method: DescMethod,
  fn: ImplFn,
  binding: ServiceBinding,
  log: EngineLogger,
): grpc.handleServerStreamingCall<Message, Message> {
  return (call) => {
    const { signal: abort, settle } = signalOf(call);
    const started = performance.now();
    const done = (code: string) =>
      finishRequest(binding, log, {
        protocol: "grpc",
        method: method.name,
        code,
        durationMs: performance.now() - started,
        batchId: batchIdOf(call.request),
      });
    (async () => {
      const messages = fn(
        call.request as never,
        callContext(binding, headerGetter(call.metadata), abort),
      ) as AsyncIterable<Message>;
      for await (const message of messages) {
        if (call.cancelled) break;
        call.write(message);
      }
    })().then(
      () => {
        settle();
        done("ok");
        call.end();
      },
      (error: unknown) => {
        settle();
        const status = grpcError(error, log, method);
        done(codeName(status.code as number as Code));
        call.emit("error", status);
      },
    );
  };
}

/** A signal that aborts when the client cancels; `settle()` marks the call answered. */
function signalOf(
  call: grpc.ServerUnaryCall<Message, Message> | grpc.ServerWritableStream<Message, Message>,
): {
  signal: AbortSignal;
  settle: () => void;
} {
  const controller = new AbortController();
  let settled = false;
  // grpc-js also reports "cancelled" as the stream closes after an answer: only abort before one.
  call.on("cancelled", () => {
    if (!settled) controller.abort();
  });
  return {
    signal: controller.signal,
    settle: () => {
      settled = true;
    },
  };
}

function headerGetter(metadata: grpc.Metadata) {
  return (name: string) => {
    const value = metadata.get(name)[0];
    return value === undefined ? undefined : value.toString();
  };
}

function grpcError(
  error: unknown,
  log: EngineLogger,
  method: DescMethod,
): Partial<grpc.StatusObject> {
  const connectError = toConnectError(error, log, { method: method.name });
  const metadata = new grpc.Metadata();
  for (const [name, value] of connectError.metadata) metadata.set(name, value);
  return {
    code: connectError.code as number as grpc.status,
    details: connectError.rawMessage,
    metadata,
  };
}

/**
 * What @grpc/reflection reads from a package definition (`fileDescriptorProtos`), built from the
 * generated descriptors, which keep every file's imports (proto-loader's re-encoding drops them,
 * and reflection clients then cannot resolve the service).
 */
function reflectionPackageDefinition() {
  const files: DescFile[] = [];
  const visit = (file: DescFile) => {
    if (files.includes(file)) return;
    for (const dependency of file.dependencies) visit(dependency);
    files.push(file);
  };
  visit(file_batchprocessor_v1_batch_processor);
  const fileDescriptorProtos = files.map((f) =>
    Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)),
  );
  return {
    [BatchProcessorService.typeName]: { fileDescriptorProtos },
  } as unknown as ConstructorParameters<typeof ReflectionService>[0];
}
