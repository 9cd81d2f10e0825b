/**
 * Request bodies on the API port, read once for every protocol: never more than the limit held
 * (a declared length over it is refused before reading), and inflated per their declared encoding
 * with the same limit on the inflated size.
 */
import type { IncomingMessage } from "node:http";
import type { JsonValue } from "@bufbuild/protobuf";
import { InvalidInputError } from "../engine/index.js";
import { inflated, inflaterOf } from "./compression.js";
import { LIMIT_SETTING, PayloadTooLargeError } from "./errors.js";

/**
 * Reads the whole body of `req`, inflated per `encoding` (a `content-encoding` value), holding at
 * most `limit` bytes either way. On refusal it stops reading without destroying the socket, so
 * the answer still goes out.
 */
export async function readBody(
  req: IncomingMessage,
  limit: number,
  encoding: string | undefined,
): Promise<Buffer> {
  const inflater = inflaterOf(encoding, "content-encoding");
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw new PayloadTooLargeError(limit, "request body", LIMIT_SETTING);
  const raw = await collect(req, limit);
  return inflater === undefined ? raw : inflated(inflater, raw, limit);
}

function collect(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        // Stop holding it and let the rest flow to nowhere; the answer closes the connection.
        req.resume();
        reject(new PayloadTooLargeError(limit, "request body", LIMIT_SETTING));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      done();
      reject(new InvalidInputError("body", `could not be read: ${error.message}`));
    };
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/** Parses a JSON body; an empty one is undefined. */
export function parseJsonBody(body: Buffer): JsonValue | undefined {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString("utf8")) as JsonValue;
  } catch (error) {
    throw new InvalidInputError(
      "body",
      `malformed JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
