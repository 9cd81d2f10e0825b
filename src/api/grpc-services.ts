/**
 * What the gRPC port serves, built from the generated descriptors: the services (this server's
 * own, and the Open Inference Protocol's where it is bound), their grpc-js definitions, their
 * method paths, and what server reflection reads. One set of message types for every protocol.
 */
import {
  type DescFile,
  type DescMethod,
  type DescService,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import type { ReflectionService } from "@grpc/reflection";
import {
  BatchProcessorService,
  file_batchprocessor_v1_batch_processor,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import {
  file_inference_grpc_predict_v2,
  GRPCInferenceService,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import { DecodedRequest, encodeBinary } from "../wire/index.js";
import type { ServiceBinding } from "./call.js";

/** The services this server answers on its gRPC port: its own, and the v2 protocol's if bound. */
export function servicesOf(binding: ServiceBinding): DescService[] {
  return binding.inference === undefined
    ? [BatchProcessorService]
    : [BatchProcessorService, GRPCInferenceService];
}

/**
 * The grpc-js service definition of `service` (this server's own by default), built from the
 * generated descriptors. Servers get requests as {@link DecodedRequest}s; clients (tests,
 * benchmarks) use it as it is.
 */
export function grpcServiceDefinition(
  service: DescService = BatchProcessorService,
): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: pathOf(method),
      requestStream: method.methodKind === "client_streaming",
      responseStream: method.methodKind === "server_streaming",
      requestSerialize: (message: Message) => Buffer.from(toBinary(method.input, message as never)),
      requestDeserialize: (bytes: Buffer) =>
        DecodedRequest.of(method.input, bytes) as unknown as Message,
      responseSerialize: (message: Message) => toBuffer(encodeBinary(method.output, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

/** The bytes as a Buffer (grpc-js writes Buffers), without a copy. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function pathOf(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/**
 * What @grpc/reflection reads from a package definition (`fileDescriptorProtos`), built from the
 * generated descriptors, which keep every file's imports (proto-loader's re-encoding drops them,
 * and reflection clients then cannot resolve the service).
 */
export function reflectionPackageDefinition(services: readonly DescService[]) {
  const files: DescFile[] = [];
  const visit = (file: DescFile) => {
    if (files.includes(file)) return;
    for (const dependency of file.dependencies) visit(dependency);
    files.push(file);
  };
  visit(file_batchprocessor_v1_batch_processor);
  if (services.includes(GRPCInferenceService)) visit(file_inference_grpc_predict_v2);
  const fileDescriptorProtos = files.map((f) =>
    Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)),
  );
  return Object.fromEntries(
    services.map((service) => [service.typeName, { fileDescriptorProtos }]),
  ) as unknown as ConstructorParameters<typeof ReflectionService>[0];
}
