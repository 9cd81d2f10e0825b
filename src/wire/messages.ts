/**
 * Messages of the contract on the wire, whichever protocol carries them: a request read from its
 * body and decoded by the same readers everywhere (errors that name the field, malformed bytes as
 * INVALID_ARGUMENT, submits' inputs read in bulk), and an answer's bytes in JSON as every protocol
 * writes it or in protobuf (BatchResults by the fast writer).
 */
import type { IncomingMessage } from "node:http";
import { type DescMessage, type Message, toBinary, toJson } from "@bufbuild/protobuf";
import {
  type BatchResults,
  BatchResultsSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { decodeBinaryRequest } from "./binary-request.js";
import { parseJsonBody, readBody } from "./body.js";
import { unenvelope } from "./envelope.js";
import { jsonWriteOptionsOf } from "./json-options.js";
import { decodeJsonRequest } from "./json-request.js";
import { encodeBatchResults } from "./results-writer.js";
import type { RpcFormat } from "./rpc-protocols.js";
import { bodyStream, envelopedMessages } from "./upload.js";

/**
 * The request message of a call in `format`, read from `req` (at most `limit` bytes, inflated
 * included) and decoded as a `schema` message.
 */
export async function readRpcRequest(
  req: IncomingMessage,
  format: RpcFormat,
  schema: DescMessage,
  limit: number,
): Promise<unknown> {
  const header = req.headers[format.encodingHeader];
  const encoding = Array.isArray(header) ? header[0] : header;
  const body = format.enveloped
    ? await unenvelope(await readBody(req, limit, undefined), encoding, limit)
    : await readBody(req, limit, encoding);
  return format.json
    ? decodeJsonRequest(schema, parseJsonBody(body))
    : decodeBinaryRequest(schema, body);
}

/**
 * The request messages of a client-streaming call in `format`, read from `req` as they arrive
 * (each at most `limit` bytes, inflated included) and decoded as `schema` messages.
 */
export async function* readRpcRequests(
  req: IncomingMessage,
  format: RpcFormat,
  schema: DescMessage,
  limit: number,
): AsyncIterable<unknown> {
  const header = req.headers[format.encodingHeader];
  const encoding = Array.isArray(header) ? header[0] : header;
  for await (const body of envelopedMessages(bodyStream(req, undefined), encoding, limit))
    yield format.json
      ? decodeJsonRequest(schema, parseJsonBody(body))
      : decodeBinaryRequest(schema, body);
}

/** The protobuf bytes of an answer. */
export function encodeBinary(schema: DescMessage, message: Message): Uint8Array {
  return schema.typeName === BatchResultsSchema.typeName
    ? encodeBatchResults(message as BatchResults)
    : toBinary(schema, message);
}

/** The bytes of an answer: JSON with proto field names and zero values, or protobuf. */
export function encodeMessage(schema: DescMessage, message: Message, json: boolean): Uint8Array {
  return json
    ? Buffer.from(JSON.stringify(toJson(schema, message, jsonWriteOptionsOf(schema.typeName))))
    : encodeBinary(schema, message);
}
