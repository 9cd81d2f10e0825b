/**
 * The transport floor as a separate process: a bare @grpc/grpc-js server that answers the
 * service's Infer path with a fixed, pre-encoded BatchResults of one item and does nothing else
 * (no decoding, no engine, no threads). The load generator drives it exactly as it drives the
 * real server, so the difference between the two is what the server itself costs.
 * Usage: node --import tsx bench/echo-server.ts <output width>  (prints "listening <port>")
 */
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { BatchResultsSchema } from "../gen/batchprocessor/v1/batch_processor_pb.js";

const width = Number(process.argv[2] ?? "10");
const answer = Buffer.from(
  toBinary(
    BatchResultsSchema,
    create(BatchResultsSchema, {
      batchId: "echo",
      status: "completed",
      results: [
        {
          requestId: "0",
          output: Array.from({ length: width }, (_, i) => i / width),
          confidence: 0.5,
          processingTimeMs: 1,
        },
      ],
    }),
  ),
);
const passthrough = (b: Buffer) => b;
const server = new grpc.Server();
server.addService(
  {
    infer: {
      path: "/batchprocessor.v1.BatchProcessorService/Infer",
      requestStream: false,
      responseStream: false,
      requestSerialize: passthrough,
      requestDeserialize: passthrough,
      responseSerialize: passthrough,
      responseDeserialize: passthrough,
    },
  } as grpc.ServiceDefinition,
  {
    infer: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
      callback(null, answer),
  },
);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`listening ${port}\n`);
});
