/**
 * Request messages from protobuf bytes, for every binary protocol (gRPC, gRPC-Web, Connect):
 * submits and infers through the bulk input reader, everything else through protobuf-es. Bytes
 * that are not a valid message are the client's fault, INVALID_ARGUMENT, never INTERNAL.
 */
import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { SubmitBatchRequestSchema } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { DomainError, InvalidInputError } from "../engine/index.js";
import { decodeSubmitBatchRequest } from "./submit-reader.js";

/** Decodes `bytes` as a `schema` request, or throws a domain error naming what is wrong. */
export function decodeBinaryRequest(schema: DescMessage, bytes: Uint8Array): unknown {
  try {
    return schema.typeName === SubmitBatchRequestSchema.typeName
      ? decodeSubmitBatchRequest(bytes)
      : fromBinary(schema, bytes);
  } catch (error) {
    if (error instanceof DomainError) throw error;
    const detail = error instanceof Error ? error.message : String(error);
    throw new InvalidInputError("request", `is not a valid protobuf message (${detail})`);
  }
}

/**
 * A request as a gRPC deserializer hands it to its handler: decoding never throws there (grpc-js
 * would answer INTERNAL), the handler throws what it carries instead.
 */
export type DecodedRequest =
  | { readonly ok: true; readonly request: unknown }
  | { readonly ok: false; readonly error: unknown };

/** {@link decodeBinaryRequest} that returns its failure instead of throwing it. */
export function decodeBinaryRequestSafely(schema: DescMessage, bytes: Uint8Array): DecodedRequest {
  try {
    return { ok: true, request: decodeBinaryRequest(schema, bytes) };
  } catch (error) {
    return { ok: false, error };
  }
}
