/**
 * Request bodies on the API port, read once for every protocol: never more than the limit held
 * (a declared length over it is refused before reading), inflated in the thread pool with the
 * same limit on the inflated size (a compression bomb costs nothing past it), and the enveloped
 * message of gRPC-Web and Connect streaming requests taken out of its frame.
 */
import type { IncomingMessage } from "node:http";
import { promisify } from "node:util";
import { brotliDecompress, gunzip, inflate, type ZlibOptions } from "node:zlib";
import type { JsonValue } from "@bufbuild/protobuf";
import { echo, InvalidInputError, PayloadTooLargeError } from "../engine/errors.js";

/** The setting that bounds request bodies, named in errors. */
const LIMIT_SETTING = "MAX_REQUEST_BYTES";

type Inflate = (data: Buffer, options: ZlibOptions) => Promise<Buffer>;

const INFLATERS: Record<string, Inflate> = {
  gzip: promisify(gunzip) as Inflate,
  deflate: promisify(inflate) as Inflate,
  br: promisify(brotliDecompress) as Inflate,
};

/** Whether `encoding` (a `content-encoding` value) is one this server inflates. */
export function isSupportedEncoding(encoding: string | undefined): boolean {
  const name = (encoding ?? "identity").trim().toLowerCase();
  return name === "identity" || name in INFLATERS;
}

/**
 * Reads the whole body of `req`, inflated per `encoding`, holding at most `limit` bytes either
 * way. On refusal it stops reading without destroying the socket, so the answer still goes out.
 */
export async function readBody(
  req: IncomingMessage,
  limit: number,
  encoding: string | undefined,
): Promise<Buffer> {
  const name = (encoding ?? "identity").trim().toLowerCase();
  const inflater = name === "identity" ? undefined : INFLATERS[name];
  if (name !== "identity" && inflater === undefined)
    throw new InvalidInputError("content-encoding", `unsupported encoding ${echo(name)}`);
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw new PayloadTooLargeError(limit, "request body", LIMIT_SETTING);
  const raw = await collect(req, limit);
  return inflater === undefined ? raw : inflated(inflater, raw, limit);
}

async function inflated(inflater: Inflate, data: Buffer, limit: number): Promise<Buffer> {
  try {
    return await inflater(data, { maxOutputLength: limit });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
      throw new PayloadTooLargeError(limit, "inflated request body", LIMIT_SETTING);
    throw new InvalidInputError(
      "body",
      `could not be inflated: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
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

/** Envelope flag of a compressed message (gRPC-Web, Connect streaming). */
const COMPRESSED = 0x01;

/**
 * The one message of an enveloped request body (a flags byte, a 4-byte big-endian length, the
 * message), inflated when flagged so with `encoding`, at most `limit` bytes.
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
  if ((flags & COMPRESSED) === 0) return message;
  const inflater = INFLATERS[(encoding ?? "").trim().toLowerCase()];
  if (inflater === undefined)
    throw new InvalidInputError("body", `message is compressed with unsupported ${echo(encoding)}`);
  return inflated(inflater, message, limit);
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
