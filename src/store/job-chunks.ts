/**
 * A job's chunk as one BLOB, for both stores: a JSON header of the lines (numbers, ids, shapes,
 * datatypes, errors) and their elements back to back after it, each line's (or tensor's) bytes
 * padded to 4. One chunk is written once as one value, and read back whole.
 */
import {
  type Datatype,
  type Failure,
  floatInput,
  fromRawBytes,
  isValidLine,
  type JobLine,
  type LineOutcome,
  type TypedTensor,
  toRawBytes,
} from "../engine/index.js";
import { failureOf } from "./codec.js";

/** [name, datatype, shape, byte length] of a tensor whose bytes follow in the data. */
type TensorHead = [string, Datatype, number[], number];
/**
 * [line, id, length, shape, error code, error message, tensors]: a float line in the shorthand
 * has `length` float32 numbers (-1: invalid; shape null: [length]); any other line has
 * `[named (0/1), its tensors]` and length 0.
 */
type LineHead = [
  number,
  string | null,
  number,
  number[] | null,
  string | null,
  string | null,
  [number, TensorHead[]]?,
];
/**
 * [line, id, output length (-1: none), confidence, error code, error message, outputs]: outputs
 * by name for a line by name that ran.
 */
type OutcomeHead = [
  number,
  string | null,
  number,
  number,
  string | null,
  string | null,
  TensorHead[]?,
];

/** A chunk's lines as one BLOB. */
export function encodeLines(lines: readonly JobLine[]): Buffer {
  const heads: LineHead[] = [];
  const parts: Uint8Array[] = [];
  for (const line of lines) {
    if (!isValidLine(line)) {
      heads.push([line.line, line.id, -1, null, line.error.code, line.error.message]);
      continue;
    }
    const only = line.inputs[0] as TypedTensor;
    if (!line.named && line.inputs.length === 1 && only.name === "" && only.datatype === "FP32") {
      const n = only.data.length;
      const flat = only.shape.length === 1 && only.shape[0] === n;
      heads.push([line.line, line.id, n, flat ? null : [...only.shape], null, null]);
      parts.push(toRawBytes(only.data));
      continue;
    }
    const tensors = line.inputs.map((t) => tensorHead(t, parts));
    heads.push([line.line, line.id, 0, null, null, null, [line.named ? 1 : 0, tensors]]);
  }
  return pack(heads, parts);
}

/** The lines of {@link encodeLines}' BLOB. */
export function decodeLines(blob: Buffer): JobLine[] {
  const { heads, data } = unpack<LineHead>(blob);
  let offset = 0;
  return heads.map(([line, id, length, shape, code, message, tensors]) => {
    if (length < 0) return { line, id, error: failureOf(code, message) as Failure };
    if (tensors !== undefined) {
      const [named, list] = tensors;
      const inputs = list.map((head) => {
        const t = tensorOf(head, data, offset);
        offset += align4(head[3]);
        return t;
      });
      return { line, id, inputs, named: named === 1 };
    }
    const input = new Float32Array(data.buffer, offset, length);
    offset += length * 4;
    return { line, id, inputs: [floatInput(shape ?? [length], input)], named: false };
  });
}

/** A chunk's outcomes as one BLOB. */
export function encodeOutcomes(outcomes: readonly LineOutcome[]): Buffer {
  const heads: OutcomeHead[] = [];
  const parts: Uint8Array[] = [];
  for (const o of outcomes) {
    const head: OutcomeHead = [
      o.line,
      o.id,
      o.output === null ? -1 : o.output.length,
      o.confidence,
      o.error?.code ?? null,
      o.error?.message ?? null,
    ];
    if (o.output !== null) parts.push(toRawBytes(o.output));
    if (o.outputs !== undefined) head.push(o.outputs.map((t) => tensorHead(t, parts)));
    heads.push(head);
  }
  return pack(heads, parts);
}

/** The outcomes of {@link encodeOutcomes}' BLOB. */
export function decodeOutcomes(blob: Buffer): LineOutcome[] {
  const { heads, data } = unpack<OutcomeHead>(blob);
  let offset = 0;
  return heads.map(([line, id, length, confidence, code, message, tensors]) => {
    const output = length < 0 ? null : new Float32Array(data.buffer, offset, length);
    if (length > 0) offset += length * 4;
    const error = failureOf(code, message);
    if (tensors === undefined) return { line, id, output, confidence, error };
    const outputs = tensors.map((head) => {
      const t = tensorOf(head, data, offset);
      offset += align4(head[3]);
      return t;
    });
    return { line, id, output, outputs, confidence, error };
  });
}

/** A tensor's head; its bytes join `parts`. */
function tensorHead(t: TypedTensor, parts: Uint8Array[]): TensorHead {
  const bytes = toRawBytes(t.data);
  parts.push(bytes);
  return [t.name, t.datatype, [...t.shape], bytes.byteLength];
}

function tensorOf(
  [name, datatype, shape, length]: TensorHead,
  data: Uint8Array,
  offset: number,
): TypedTensor {
  let count = 1;
  for (const d of shape) count *= d;
  const bytes = data.subarray(offset, offset + length);
  return { name, datatype, shape, data: fromRawBytes(name, datatype, bytes, count) };
}

/** uint32 header length, the header's JSON, padding to 4 bytes, then the parts, each padded. */
function pack(heads: readonly unknown[], parts: readonly Uint8Array[]): Buffer {
  const head = Buffer.from(JSON.stringify(heads));
  const start = align4(4 + head.byteLength);
  let length = 0;
  for (const p of parts) length += align4(p.byteLength);
  const out = Buffer.alloc(start + length);
  out.writeUInt32LE(head.byteLength, 0);
  head.copy(out, 4);
  let offset = start;
  for (const p of parts) {
    out.set(p, offset);
    offset += align4(p.byteLength);
  }
  return out;
}

function unpack<H>(blob: Buffer): { heads: H[]; data: Uint8Array } {
  const length = blob.readUInt32LE(0);
  const heads = JSON.parse(blob.toString("utf8", 4, 4 + length)) as H[];
  const start = align4(4 + length);
  // Copied into its own buffer: a BLOB's bytes may not be 4-aligned.
  const data = new Uint8Array(blob.byteLength - start);
  data.set(blob.subarray(start));
  return { heads, data };
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
