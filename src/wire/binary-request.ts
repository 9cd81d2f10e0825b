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
 * would answer INTERNAL), {@link DecodedRequest.take} throws what it carries instead. grpc-js
 * keeps what its deserializer returned until the call ends; the handler takes the message out, so
 * that a large request's parsed items can be collected while its call still runs.
 */
export class DecodedRequest {
  #request: unknown;
  readonly #error: unknown;
  readonly #failed: boolean;

  private constructor(request: unknown, error: unknown, failed: boolean) {
    this.#request = request;
    this.#error = error;
    this.#failed = failed;
  }

  /** {@link decodeBinaryRequest}, its failure kept for {@link take}. */
  static of(schema: DescMessage, bytes: Uint8Array): DecodedRequest {
    try {
      return new DecodedRequest(decodeBinaryRequest(schema, bytes), undefined, false);
    } catch (error) {
      return new DecodedRequest(undefined, error, true);
    }
  }

  /** The decoded request, once (this holder lets go of it), or the decoding's error, thrown. */
  take(): unknown {
    if (this.#failed) throw this.#error;
    const request = this.#request;
    this.#request = undefined;
    return request;
  }
}
