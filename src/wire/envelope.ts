/**
 * The envelope of gRPC-Web and Connect streaming messages: a flags byte, a 4-byte big-endian
 * length, the message. A request carries exactly one; an answer is a run of them ending with a
 * flagged one (Connect's end-of-stream, gRPC-Web's trailers).
 */
import { echo, InvalidInputError } from "../engine/index.js";
import { inflated, inflaterNamed } from "./compression.js";

/** Flag of a compressed message. */
export const COMPRESSED_FLAG = 0x01;
/** Flag of Connect's end-of-stream message (JSON). */
export const END_STREAM_FLAG = 0x02;
/** Flag of gRPC-Web's trailers message (header lines). */
export const TRAILERS_FLAG = 0x80;

/**
 * The one message of an enveloped request body, inflated when flagged so with `encoding` (the
 * request's `grpc-encoding` or `connect-content-encoding`), at most `limit` bytes.
 */
export async function unenvelope(
  body: Buffer,
  encoding: string | undefined,
  limit: number,
): Promise<Buffer> {
  if (body.length < 5) throw new InvalidInputError("body", "expected one enveloped message");
  const flags = body[0] as number;
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length)
    throw new InvalidInputError("body", "expected exactly one enveloped message");
  const message = body.subarray(5);
  if ((flags & COMPRESSED_FLAG) === 0) return message;
  const inflater = inflaterNamed(encoding);
  if (inflater === undefined)
    throw new InvalidInputError("body", `message is compressed with unsupported ${echo(encoding)}`);
  return inflated(inflater, message, limit);
}

/** One enveloped message. */
export function envelope(flags: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.byteLength);
  out[0] = flags;
  out.writeUInt32BE(payload.byteLength, 1);
  out.set(payload, 5);
  return out;
}
