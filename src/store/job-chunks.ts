/**
 * A job's chunk as one BLOB, for both stores: a JSON header of the lines (numbers, ids, shapes,
 * errors) and their float32 numbers back to back after it. One chunk is written once as one
 * value, and read back whole.
 */
import { type Failure, isValidLine, type JobLine, type LineOutcome } from "../engine/index.js";
import { failureOf } from "./codec.js";

/** [line, id, length (-1: invalid), shape (null: [length]), error code, error message]. */
type LineHead = [number, string | null, number, number[] | null, string | null, string | null];
/** [line, id, output length (-1: none), confidence, error code, error message]. */
type OutcomeHead = [number, string | null, number, number, string | null, string | null];

/** A chunk's lines as one BLOB. */
export function encodeLines(lines: readonly JobLine[]): Buffer {
  const heads: LineHead[] = [];
  const arrays: Float32Array[] = [];
  for (const line of lines) {
    if (!isValidLine(line)) {
      heads.push([line.line, line.id, -1, null, line.error.code, line.error.message]);
      continue;
    }
    const n = line.input.length;
    const flat = line.shape.length === 1 && line.shape[0] === n;
    heads.push([line.line, line.id, n, flat ? null : [...line.shape], null, null]);
    arrays.push(line.input);
  }
  return pack(heads, arrays);
}

/** The lines of {@link encodeLines}' BLOB. */
export function decodeLines(blob: Buffer): JobLine[] {
  const { heads, data } = unpack<LineHead>(blob);
  let offset = 0;
  return heads.map(([line, id, length, shape, code, message]) => {
    if (length < 0) return { line, id, error: failureOf(code, message) as Failure };
    const input = data.subarray(offset, offset + length);
    offset += length;
    return { line, id, input, shape: shape ?? [length] };
  });
}

/** A chunk's outcomes as one BLOB. */
export function encodeOutcomes(outcomes: readonly LineOutcome[]): Buffer {
  const heads: OutcomeHead[] = [];
  const arrays: Float32Array[] = [];
  for (const o of outcomes) {
    heads.push([
      o.line,
      o.id,
      o.output === null ? -1 : o.output.length,
      o.confidence,
      o.error?.code ?? null,
      o.error?.message ?? null,
    ]);
    if (o.output !== null) arrays.push(o.output);
  }
  return pack(heads, arrays);
}

/** The outcomes of {@link encodeOutcomes}' BLOB. */
export function decodeOutcomes(blob: Buffer): LineOutcome[] {
  const { heads, data } = unpack<OutcomeHead>(blob);
  let offset = 0;
  return heads.map(([line, id, length, confidence, code, message]) => {
    const output = length < 0 ? null : data.subarray(offset, offset + length);
    if (length > 0) offset += length;
    return { line, id, output, confidence, error: failureOf(code, message) };
  });
}

/** uint32 header length, the header's JSON, padding to 4 bytes, then the numbers. */
function pack(heads: readonly unknown[], arrays: readonly Float32Array[]): Buffer {
  const head = Buffer.from(JSON.stringify(heads));
  const start = align4(4 + head.byteLength);
  let floats = 0;
  for (const a of arrays) floats += a.length;
  const out = Buffer.alloc(start + floats * 4);
  out.writeUInt32LE(head.byteLength, 0);
  head.copy(out, 4);
  const view = new Float32Array(out.buffer, out.byteOffset + start, floats);
  let offset = 0;
  for (const a of arrays) {
    view.set(a, offset);
    offset += a.length;
  }
  return out;
}

function unpack<H>(blob: Buffer): { heads: H[]; data: Float32Array } {
  const length = blob.readUInt32LE(0);
  const heads = JSON.parse(blob.toString("utf8", 4, 4 + length)) as H[];
  const start = align4(4 + length);
  // Copied into its own buffer: a BLOB's bytes may not be 4-aligned.
  const data = new Float32Array((blob.byteLength - start) / 4);
  new Uint8Array(data.buffer).set(blob.subarray(start));
  return { heads, data };
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
