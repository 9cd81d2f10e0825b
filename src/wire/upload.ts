/**
 * Uploads of any size, read as they arrive: a body stream inflated on the fly (with no limit on
 * the whole, only on each line or message), JSONL split into numbered lines (blank lines keep
 * counting), and the messages of a Connect client stream out of their envelopes.
 */
import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { echo, InvalidInputError, type RawLine } from "../engine/index.js";
import { inflated, inflaterNamed } from "./compression.js";
import { COMPRESSED_FLAG } from "./envelope.js";
import { LIMIT_SETTING, PayloadTooLargeError } from "./errors.js";

const INFLATING: Readonly<Record<string, () => NodeJS.ReadWriteStream>> = {
  gzip: createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/** The bytes of `req`'s body as they arrive, inflated per `encoding` (`content-encoding`). */
export function bodyStream(
  req: IncomingMessage,
  encoding: string | undefined,
): AsyncIterable<Buffer> {
  const name = (encoding ?? "identity").trim().toLowerCase();
  // A reader that stops early (a refused upload) leaves the request open, so that its answer
  // can still go out on the connection (see `drainUpload`).
  if (name === "identity") return readable(req, "body", false);
  const make = Object.hasOwn(INFLATING, name) ? INFLATING[name] : undefined;
  if (make === undefined)
    throw new InvalidInputError("content-encoding", `unsupported encoding ${echo(name)}`);
  const inflater = make() as unknown as Readable;
  req.on("error", (error) => inflater.destroy(error));
  req.pipe(inflater as unknown as NodeJS.WritableStream);
  return readable(inflater, "body", true);
}

/** A stream's chunks, its errors as INVALID_ARGUMENT naming `field`. */
async function* readable(
  stream: Readable,
  field: string,
  destroyOnReturn: boolean,
): AsyncIterable<Buffer> {
  try {
    for await (const chunk of stream.iterator({ destroyOnReturn })) yield chunk as Buffer;
  } catch (error) {
    throw new InvalidInputError(
      field,
      `could not be read: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** Most of a refused upload read (and dropped) before its answer, bytes and ms. */
const DRAIN_BYTES = 64 * 1024 * 1024;
const DRAIN_MS = 10_000;

/**
 * Reads what is left of a refused upload, up to a bound, and drops it: an HTTP/1.1 client that
 * is still sending reads an answer only if the connection stays open until it has sent its
 * body; past the bound the connection closes after the answer.
 */
export function drainUpload(req: IncomingMessage): Promise<void> {
  if (req.complete || req.destroyed) return Promise.resolve();
  req.unpipe();
  return new Promise((resolve) => {
    let read = 0;
    const done = () => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", done);
      req.off("close", done);
      req.pause();
      resolve();
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > DRAIN_BYTES) done();
    };
    const timer = setTimeout(done, DRAIN_MS);
    req.on("data", onData);
    req.once("end", done);
    req.once("close", done);
    req.resume();
  });
}

/**
 * Splits JSONL bytes, pushed in any pieces, into numbered lines of text. Blank lines are skipped
 * and counted; a line longer than `maxLineBytes` is reported, not held.
 */
export class LineSplitter {
  readonly #max: number;
  #carry: Buffer[] = [];
  #carryBytes = 0;
  #tooLong = false;
  #line = 0;

  constructor(maxLineBytes: number) {
    this.#max = maxLineBytes;
  }

  /** Lines numbered so far. */
  get lines(): number {
    return this.#line;
  }

  /** The lines `chunk` completes. */
  push(chunk: Buffer): RawLine[] {
    const out: RawLine[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(10, start);
      if (newline < 0) break;
      if (this.#carryBytes === 0 && !this.#tooLong && newline - start <= this.#max)
        // The whole line lies in this chunk: decoded from it directly, no copy held.
        this.#emitText(out, chunk.toString("utf8", start, newline));
      else {
        this.#hold(chunk.subarray(start, newline));
        this.#emit(out);
      }
      start = newline + 1;
    }
    if (start < chunk.length) this.#hold(chunk.subarray(start));
    return out;
  }

  /** The last line, when the upload does not end with a newline. */
  end(): RawLine[] {
    const out: RawLine[] = [];
    if (this.#carryBytes > 0 || this.#tooLong) this.#emit(out);
    return out;
  }

  /** The next line number, for a line that comes other than as bytes. */
  next(): number {
    return ++this.#line;
  }

  #hold(piece: Buffer): void {
    if (this.#tooLong) return;
    if (this.#carryBytes + piece.length > this.#max) {
      this.#tooLong = true;
      this.#carry = [];
      this.#carryBytes = 0;
      return;
    }
    if (piece.length === 0) return;
    // A piece of a larger chunk is copied: holding it would keep the whole chunk.
    this.#carry.push(Buffer.from(piece));
    this.#carryBytes += piece.length;
  }

  #emit(out: RawLine[]): void {
    if (this.#tooLong) {
      out.push({
        line: ++this.#line,
        malformed: `the line is longer than ${this.#max} bytes (${LIMIT_SETTING})`,
      });
    } else {
      const bytes =
        this.#carry.length === 1 ? (this.#carry[0] as Buffer) : Buffer.concat(this.#carry);
      this.#emitText(out, bytes.toString("utf8"));
    }
    this.#carry = [];
    this.#carryBytes = 0;
    this.#tooLong = false;
  }

  #emitText(out: RawLine[], text: string): void {
    const line = ++this.#line;
    // Parsed by the job's reader as it reads the line (see `RawLine`).
    if (text.trim() !== "") out.push({ line, text });
  }
}

/**
 * The messages of an enveloped request stream (a Connect client stream), each inflated when
 * flagged so with `encoding`, none over `limit` bytes.
 */
export async function* envelopedMessages(
  body: AsyncIterable<Buffer>,
  encoding: string | undefined,
  limit: number,
): AsyncIterable<Buffer> {
  let buffered: Buffer = Buffer.alloc(0);
  for await (const chunk of body) {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 5) {
      const flags = buffered[0] as number;
      const length = buffered.readUInt32BE(1);
      if (length > limit) throw new PayloadTooLargeError(limit, "request message", LIMIT_SETTING);
      if (buffered.length < 5 + length) break;
      const message = Buffer.from(buffered.subarray(5, 5 + length));
      buffered = buffered.subarray(5 + length);
      if ((flags & COMPRESSED_FLAG) === 0) yield message;
      else {
        const inflater = inflaterNamed(encoding);
        if (inflater === undefined)
          throw new InvalidInputError(
            "body",
            `message is compressed with unsupported ${echo(encoding)}`,
          );
        yield await inflated(inflater, message, limit);
      }
    }
  }
  if (buffered.length > 0) throw new InvalidInputError("body", "ends inside an enveloped message");
}
