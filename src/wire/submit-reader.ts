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
 * Where one `data` element lies in the request, as offsets into it: the field (from its tag),
 * its body, its end, and its input field (from its tag; -1 when the item has none) and that
 * field's packed floats, which end where the field does.
 */
interface ItemSpan {
  readonly field: number;
  readonly body: number;
  readonly end: number;
  inputField: number;
  input: number;
  inputEnd: number;
}

/**
 * Splits the packed inputs out of the message. Undefined (let `fromBinary` read it all) for
 * anything this reader does not handle itself: malformed bytes, groups, an input written as
 * unpacked floats or in more than one run. It finds where every item and its input lie first,
 * then copies the rest once and the inputs once.
 */
function scanRequest(bytes: Uint8Array): Scan | undefined {
  const reader = new WireReader(bytes, 0, bytes.length);
  const spans: ItemSpan[] = [];
  let restLength = bytes.length;
  let inputBytes = 0;
  while (reader.pos < bytes.length) {
    const field = reader.pos;
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
    const span: ItemSpan = {
      field,
      body: reader.pos,
      end: reader.pos + length,
      inputField: -1,
      input: 0,
      inputEnd: 0,
    };
    if (!scanItem(bytes, span)) return undefined;
    spans.push(span);
    reader.pos = span.end;
    if (span.inputField < 0) continue;
    restLength -= span.end - span.field - framedLength(keptLength(span));
    inputBytes += span.inputEnd - span.input;
  }
  // Copies by offsets (`Buffer.copy`): a view per piece would cost more than the piece.
  const source = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    rest: restLength === bytes.length ? bytes : withoutInputs(source, spans, restLength),
    inputs: unpack(source, spans, inputBytes),
  };
}

/** Finds the item's input field, if any; false when the item is not one this reader handles. */
function scanItem(bytes: Uint8Array, span: ItemSpan): boolean {
  const reader = new WireReader(bytes, span.body, span.end);
  while (reader.pos < span.end) {
    const fieldStart = reader.pos;
    const tag = reader.varint();
    if (tag === undefined) return false;
    if (tag >>> 3 !== INPUT_FIELD) {
      if (!reader.skip(tag & 7)) return false;
      continue;
    }
    if ((tag & 7) !== LEN || span.inputField >= 0) return false;
    const length = reader.varint();
    if (length === undefined || length % 4 !== 0 || reader.pos + length > span.end) return false;
    span.inputField = fieldStart;
    span.input = reader.pos;
    reader.pos += length;
    span.inputEnd = reader.pos;
  }
  return true;
}

/** Length of an item's body without its input field. */
const keptLength = (span: ItemSpan) => span.end - span.body - (span.inputEnd - span.inputField);

/** Length of a `data` field (one-byte tag, length, body) whose body is `length` bytes. */
const framedLength = (length: number) => 1 + varintSize(length) + length;

function varintSize(value: number): number {
  let size = 1;
  for (let n = value; n > 0x7f; n >>>= 7) size++;
  return size;
}

/** The request with every item re-framed without its input field, `length` bytes. */
function withoutInputs(bytes: Buffer, spans: readonly ItemSpan[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  let copiedFrom = 0;
  const copy = (from: number, to: number) => {
    at += bytes.copy(out, at, from, to);
  };
  for (const span of spans) {
    if (span.inputField < 0) continue;
    copy(copiedFrom, span.field);
    out[at++] = (DATA_FIELD << 3) | LEN;
    for (let n = keptLength(span); ; n >>>= 7) {
      if (n <= 0x7f) {
        out[at++] = n;
        break;
      }
      out[at++] = (n & 0x7f) | 0x80;
    }
    copy(span.body, span.inputField);
    copy(span.inputEnd, span.end);
    copiedFrom = span.end;
  }
  copy(copiedFrom, bytes.length);
  return out;
}

/**
 * Copies every item's packed floats into one Float32Array, in item order, and returns a view of
 * it per item: one allocation per request, and a store can write the whole as one BLOB as is.
 */
function unpack(
  bytes: Buffer,
  spans: readonly ItemSpan[],
  inputBytes: number,
): (Float32Array | undefined)[] {
  const all = new Float32Array(inputBytes / 4);
  const target = new Uint8Array(all.buffer);
  let at = 0;
  return spans.map((span) => {
    if (span.inputField < 0) return undefined;
    const length = bytes.copy(target, at, span.input, span.inputEnd);
    const view = all.subarray(at / 4, (at + length) / 4);
    at += length;
    return view;
  });
}

/** Just enough of the protobuf wire format to walk fields, from `pos` up to `end`. */
class WireReader {
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
    private readonly end: number,
  ) {}

  /** A varint of at most 32 bits (tags and lengths); undefined when longer or truncated. */
  varint(): number | undefined {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) return undefined;
      const b = this.bytes[this.pos++] as number;
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
          if (this.pos >= this.end) return false;
          if ((this.bytes[this.pos++] as number) < 0x80) return true;
        }
        return false;
      case 1:
        this.pos += 8;
        return this.pos <= this.end;
      case 2: {
        const length = this.varint();
        if (length === undefined) return false;
        this.pos += length;
        return this.pos <= this.end;
      }
      case 5:
        this.pos += 4;
        return this.pos <= this.end;
      default:
        return false;
    }
  }
}
