/**
 * An upload read once, line by line: each line validated into a chunk, a full chunk handed on
 * (stored, or dropped when the upload is only being compared with a stored one), the line limit
 * and `on_invalid=reject` applied, and the digest of the whole kept.
 */
import { InvalidInputError } from "../errors.js";
import { CHUNK_LINES, ChunkBuilder, LineReader, type ValidJobSpec } from "./job-spec.js";
import type { JobLine, RawLine } from "./job-types.js";

/** Bad lines an `on_invalid=reject` upload reports before it gives up. */
const REJECT_REPORT_LINES = 10;

/** What an upload came to. */
export interface ReadUpload {
  readonly lines: number;
  readonly invalid: number;
  readonly chunks: number;
  readonly digest: string;
}

/**
 * Reads `lines` to their end, calling `onChunk` with each full chunk (and the last one) in order;
 * throws {@link InvalidInputError} past `maxLines`, for an empty upload, and for bad lines when
 * the spec rejects them (then no chunk is handed on after the first bad line).
 */
export async function readUpload(
  spec: ValidJobSpec,
  lines: AsyncIterable<readonly RawLine[]>,
  maxLines: number,
  signal: AbortSignal | undefined,
  onChunk: (chunk: number, lines: JobLine[]) => Promise<void>,
): Promise<ReadUpload> {
  const reader = new LineReader(spec);
  const errors: string[] = [];
  const builder = new ChunkBuilder();
  let chunks = 0;
  const flush = async () => {
    const full = builder.take();
    if (errors.length === 0) await onChunk(chunks, full);
    chunks++;
  };
  for await (const part of lines) {
    signal?.throwIfAborted();
    for (const raw of part) {
      if (reader.lines >= maxLines)
        throw new InvalidInputError(
          "lines",
          `a job holds at most ${maxLines} lines (MAX_JOB_ITEMS)`,
        );
      const bad = reader.read(raw, builder);
      if (bad !== undefined && spec.rejectInvalid) {
        errors.push(bad.error.message);
        if (errors.length >= REJECT_REPORT_LINES) throw rejected(errors);
      }
      if (builder.size === CHUNK_LINES) await flush();
    }
  }
  if (errors.length > 0) throw rejected(errors);
  if (builder.size > 0) await flush();
  if (reader.lines === 0) throw new InvalidInputError("lines", "the upload holds no lines");
  return { lines: reader.lines, invalid: reader.invalid, chunks, digest: reader.digest() };
}

function rejected(errors: readonly string[]): InvalidInputError {
  return new InvalidInputError(
    "lines",
    `the upload was refused (on_invalid=reject): ${errors.join("; ")}`,
  );
}
