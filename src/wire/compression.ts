/**
 * Compression on the wire: request bodies and messages are inflated in the thread pool with a
 * limit on the inflated size (a compression bomb costs nothing past it); answers are gzipped for
 * clients that accept it, once they are large enough for it to pay.
 */
import { promisify } from "node:util";
import { brotliDecompress, gunzip, gzip, inflate, type ZlibOptions } from "node:zlib";
import { echo, InvalidInputError } from "../engine/index.js";
import { LIMIT_SETTING, PayloadTooLargeError } from "./errors.js";

type Inflate = (data: Buffer, options: ZlibOptions) => Promise<Buffer>;

const INFLATERS: Readonly<Record<string, Inflate>> = {
  gzip: promisify(gunzip) as Inflate,
  deflate: promisify(inflate) as Inflate,
  br: promisify(brotliDecompress) as Inflate,
};

const gzipAsync = promisify(gzip) as (data: Uint8Array) => Promise<Buffer>;

/** Answers smaller than this go uncompressed: the frame would cost more than it saves. */
export const COMPRESS_MIN_BYTES = 1024;

/**
 * The inflater of an encoding named by a header (`content-encoding`, `grpc-encoding`, ...);
 * undefined for identity; `field` is that header, named when the encoding is not one this server
 * reads.
 */
export function inflaterOf(encoding: string | undefined, field: string): Inflate | undefined {
  const name = (encoding ?? "identity").trim().toLowerCase();
  if (name === "identity") return undefined;
  const inflater = inflaterNamed(name);
  if (inflater === undefined)
    throw new InvalidInputError(field, `unsupported encoding ${echo(name)}`);
  return inflater;
}

/** The inflater of `encoding`, or undefined when this server reads no such encoding. */
export function inflaterNamed(encoding: string | undefined): Inflate | undefined {
  const name = (encoding ?? "").trim().toLowerCase();
  return Object.hasOwn(INFLATERS, name) ? INFLATERS[name] : undefined;
}

/** `data` inflated by `inflater`, at most `limit` bytes of it. */
export async function inflated(inflater: Inflate, data: Buffer, limit: number): Promise<Buffer> {
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

/** Whether an accept-encoding list (`gzip, br;q=0.5`) takes gzip. */
export function acceptsGzip(accepted: string | undefined): boolean {
  if (accepted === undefined) return false;
  return accepted.split(",").some((entry) => {
    const [name = "", ...params] = entry.split(";").map((part) => part.trim().toLowerCase());
    return name === "gzip" && !params.some((p) => /^q=0(\.0*)?$/.test(p));
  });
}

/** `data` gzipped (in the thread pool). */
export function gzipped(data: Uint8Array): Promise<Buffer> {
  return gzipAsync(data);
}
