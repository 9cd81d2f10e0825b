/**
 * A grpc-js client of the service for the benchmarks. `submitBatch` and `infer` take requests
 * already encoded (a benchmark encodes its request once and sends it many times); the other
 * methods take protobuf-es messages. Answers are decoded messages.
 */
import * as grpc from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../src/api/grpc-services.js";

/** A unary call; `headers` go in its metadata beside the key. */
export type UnaryCall = (
  method: string,
  request: unknown,
  headers?: Readonly<Record<string, string>>,
) => Promise<unknown>;

/** See the file comment; `key` goes in `x-api-key` with every call. */
export function grpcClient(address: string, key: string): { call: UnaryCall; close: () => void } {
  const definition = grpcServiceDefinition();
  const raw = (name: "submitBatch" | "infer") => {
    const method = definition[name] as grpc.MethodDefinition<Buffer, unknown>;
    return { ...method, requestSerialize: (b: Buffer) => b };
  };
  const Client = grpc.makeGenericClientConstructor(
    { ...definition, submitBatch: raw("submitBatch"), infer: raw("infer") },
    "BatchProcessorService",
  );
  const client = new Client(address, grpc.credentials.createInsecure(), {
    "grpc.max_send_message_length": -1,
    "grpc.max_receive_message_length": -1,
  }) as unknown as Record<
    string,
    (r: unknown, md: grpc.Metadata, cb: (e: Error | null, r: unknown) => void) => void
  > & { close: () => void };
  const metadata = new grpc.Metadata();
  metadata.set("x-api-key", key);
  return {
    call: (method, request, headers) => {
      let md = metadata;
      if (headers !== undefined) {
        md = metadata.clone();
        for (const [name, value] of Object.entries(headers)) md.set(name, value);
      }
      return new Promise((resolve, reject) =>
        client[method]?.(request, md, (e, r) => (e ? reject(e) : resolve(r))),
      );
    },
    close: () => client.close(),
  };
}
