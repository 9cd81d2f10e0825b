/**
 * The hot message's fast reader. A SubmitBatchRequest is almost all `Item.input`: packed float32
 * on the wire, which protobuf-es reads one number at a time into a JS array. This reader copies
 * all items' packed bytes into one Float32Array (each item gets a view of its part) and hands
 * everything else to `fromBinary`, so every other field, unknown fields and every error stay
 * exactly protobuf-es's. The result is its own type, {@link PackedSubmitBatchRequest}: the
 * message without its inputs, and the inputs beside it.
 */
import { fromBinary } from "@bufbuild/protobuf";
import {
  type SubmitBatchRequest,
  SubmitBatchRequestSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { InvalidInputError, METADATA_LIMITS } from "../engine/index.js";

/**
 * A SubmitBatchRequest read by {@link decodeSubmitBatchRequest}: `message.data[k].input` is empty
 * and `inputs[k]` holds its numbers (undefined when the item had none).
 */
export interface PackedSubmitBatchRequest {
  readonly message: SubmitBatchRequest;
  readonly inputs: readonly (Float32Array | undefined)[];
}

/** What the service takes as a submit or infer request: as any reader decoded it. */
export type SubmitBatchInput = SubmitBatchRequest | PackedSubmitBatchRequest;

/** Splits a submit or infer request into its message and, per item, the inputs to read. */
export function unpackSubmit(request: SubmitBatchInput): {
  message: SubmitBatchRequest;
  inputOf: (index: number) => ArrayLike<number>;
} {
  if ("message" in request) {
    const { message, inputs } = request;
    return { message, inputOf: (k) => inputs[k] ?? (message.data[k]?.input as number[]) };
  }
  return { message: request, inputOf: (k) => request.data[k]?.input as number[] };
}

/**
 * Wire bytes of `metadata` past which it cannot fit {@link METADATA_LIMITS} as JSON: its binary
 * form is never much more than twice its JSON. Refused before protobuf-es spends time on it.
 */
const METADATA_WIRE_MAX = 2 * METADATA_LIMITS.maxBytes + 1024;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Field numbers and wire types used below (batch_processor.proto). */
const DATA_FIELD = 1;
const INPUT_FIELD = 1;
const METADATA_FIELD = 5;
const LEN = 2;

/**
 * Decodes a SubmitBatchRequest; same message and errors as `fromBinary`, inputs read in bulk.
 * Metadata too large to be valid is refused first, naming the field.
 */
export function decodeSubmitBatchRequest(bytes: Uint8Array): PackedSubmitBatchRequest {
  const scan = LITTLE_ENDIAN ? scanRequest(bytes) : undefined;
  if (scan === undefined)
    return { message: fromBinary(SubmitBatchRequestSchema, bytes), inputs: [] };
  return { message: fromBinary(SubmitBatchRequestSchema, scan.rest), inputs: scan.inputs };
}

interface Scan {
  /** The message without the items' packed inputs. */
  readonly rest: Uint8Array;
  /** Per `data` element, in order: its inputs, or undefined when it had none. */
  readonly inputs: (Float32Array | undefined)[];
}

/**
 * Splits the packed inputs out of the message. Undefined (let `fromBinary` read it all) for
 * anything this reader does not handle itself: malformed bytes, groups, an input written as
 * unpacked floats or in more than one run.
 */
function scanRequest(bytes: Uint8Array): Scan | undefined {
  const reader = new WireReader(bytes);
  const pieces: Uint8Array[] = [];
  const packed: (Uint8Array | undefined)[] = [];
  let copiedFrom = 0;
  while (reader.pos < bytes.length) {
    const fieldStart = reader.pos;
    const tag = reader.varint();
    if (tag === undefined) return undefined;
    if (tag >>> 3 === METADATA_FIELD && (tag & 7) === LEN) {
      const at = reader.pos;
      const length = reader.varint();
      if (length !== undefined && length > METADATA_WIRE_MAX)
        throw new InvalidInputError(
          "metadata",
          `is larger than the ${METADATA_LIMITS.maxBytes} bytes allowed as JSON`,
        );
      reader.pos = at;
    }
    if (tag >>> 3 !== DATA_FIELD || (tag & 7) !== LEN) {
      if (!reader.skip(tag & 7)) return undefined;
      continue;
    }
    const length = reader.varint();
    if (length === undefined || reader.pos + length > bytes.length) return undefined;
    const item = scanItem(bytes.subarray(reader.pos, reader.pos + length));
    if (item === undefined) return undefined;
    reader.pos += length;
    packed.push(item.input);
    if (item.input === undefined) continue;
    // Keep what came before this item, then the item re-framed without its input.
    pieces.push(bytes.subarray(copiedFrom, fieldStart), frame(item.rest));
    copiedFrom = reader.pos;
  }
  const inputs = unpack(packed);
  if (pieces.length === 0) return { rest: bytes, inputs };
  pieces.push(bytes.subarray(copiedFrom));
  return { rest: concat(pieces), inputs };
}

/**
 * Copies every item's packed floats into one Float32Array, in item order, and returns a view of
 * it per item: one allocation per request, and a store can write the whole as one BLOB as is.
 */
function unpack(packed: readonly (Uint8Array | undefined)[]): (Float32Array | undefined)[] {
  let bytes = 0;
  for (const p of packed) bytes += p?.length ?? 0;
  const all = new Float32Array(bytes / 4);
  const target = new Uint8Array(all.buffer);
  let at = 0;
  return packed.map((p) => {
    if (p === undefined) return undefined;
    target.set(p, at);
    const view = all.subarray(at / 4, (at + p.length) / 4);
    at += p.length;
    return view;
  });
}

/** An item's packed input bytes (a view of `bytes`) and the item without them. */
function scanItem(bytes: Uint8Array): { input?: Uint8Array; rest: Uint8Array } | undefined {
  const reader = new WireReader(bytes);
  let input: Uint8Array | undefined;
  let inputStart = 0;
  let inputEnd = 0;
  while (reader.pos < bytes.length) {
    const fieldStart = reader.pos;
    const tag = reader.varint();
    if (tag === undefined) return undefined;
    if (tag >>> 3 !== INPUT_FIELD) {
      if (!reader.skip(tag & 7)) return undefined;
      continue;
    }
    if ((tag & 7) !== LEN || input !== undefined) return undefined;
    const length = reader.varint();
    if (length === undefined || length % 4 !== 0 || reader.pos + length > bytes.length)
      return undefined;
    input = bytes.subarray(reader.pos, reader.pos + length);
    reader.pos += length;
    inputStart = fieldStart;
    inputEnd = reader.pos;
  }
  if (input === undefined) return { rest: bytes };
  const rest = new Uint8Array(bytes.length - (inputEnd - inputStart));
  rest.set(bytes.subarray(0, inputStart));
  rest.set(bytes.subarray(inputEnd), inputStart);
  return { input, rest };
}

/** `data` field tag, length, body. */
function frame(body: Uint8Array): Uint8Array {
  const head: number[] = [(DATA_FIELD << 3) | LEN];
  let n = body.length;
  while (n > 0x7f) {
    head.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  head.push(n);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

function concat(pieces: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Just enough of the protobuf wire format to walk fields. */
class WireReader {
  pos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  /** A varint of at most 32 bits (tags and lengths); undefined when longer or truncated. */
  varint(): number | undefined {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.bytes[this.pos++];
      if (b === undefined) return undefined;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value <= 0xffffffff ? value : undefined;
    }
    return undefined;
  }

  /** Skips a field's value of `wireType`; false for groups and anything malformed. */
  skip(wireType: number): boolean {
    switch (wireType) {
      case 0:
        for (let i = 0; i < 10; i++) {
          const b = this.bytes[this.pos++];
          if (b === undefined) return false;
          if (b < 0x80) return true;
        }
        return false;
      case 1:
        this.pos += 8;
        return this.pos <= this.bytes.length;
      case 2: {
        const length = this.varint();
        if (length === undefined) return false;
        this.pos += length;
        return this.pos <= this.bytes.length;
      }
      case 5:
        this.pos += 4;
        return this.pos <= this.bytes.length;
      default:
        return false;
    }
  }
}
