/**
 * The hot answer's fast writer. Every Infer and GetBatchResults answer is a BatchResults whose
 * bulk is `ItemResult.output`, packed float32 on the wire, which protobuf-es writes one number at
 * a time through its general writer. This writer sizes the message once and writes it into one
 * buffer, each output as one block copy; the bytes are exactly `toBinary`'s (a test compares them
 * on many messages), and a message with unknown fields or outputs by name goes to `toBinary` itself.
 */
import { toBinary } from "@bufbuild/protobuf";
import {
  type BatchResults,
  BatchResultsSchema,
  type ItemResult,
  type ResultsMetadata,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";

/** Wire types (batch_processor.proto's BatchResults, ItemResult, ResultsMetadata). */
const VARINT = 0;
const I64 = 1;
const LEN = 2;

const tag = (field: number, wireType: number) => (field << 3) | wireType;

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** An implicit-presence double is left out when +0 (protobuf-es writes -0: its bits differ). */
const isZero = (value: number) => Object.is(value, 0);

/** Size of a length-delimited field of `length` bytes (tags here are all one byte). */
const lenFieldSize = (length: number) => 1 + varintSize(length) + length;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** See the file comment. */
export function encodeBatchResults(message: BatchResults): Buffer {
  // Outputs are copied as the machine's float32 bytes, which are the wire's on little-endian ones.
  if (!LITTLE_ENDIAN || leftToProtobuf(message))
    return Buffer.from(toBinary(BatchResultsSchema, message));
  const writer = new Writer(sizeOfResults(message));
  writer.results(message);
  return writer.bytes;
}

function hasKeys(map: Record<string, unknown>): boolean {
  for (const _ in map) return true;
  return false;
}

/** Messages this writer leaves to `toBinary`: unknown fields, or outputs by name. */
function leftToProtobuf(message: BatchResults): boolean {
  return (
    message.$unknown !== undefined ||
    message.metadata?.$unknown !== undefined ||
    message.results.some((r) => r.$unknown !== undefined || hasKeys(r.outputs))
  );
}

function sizeOfResults(m: BatchResults): number {
  let size = 0;
  if (m.batchId !== "") size += lenFieldSize(Buffer.byteLength(m.batchId));
  if (m.status !== "") size += lenFieldSize(Buffer.byteLength(m.status));
  for (const item of m.results) size += lenFieldSize(sizeOfItem(item));
  if (m.metadata !== undefined) size += lenFieldSize(sizeOfMetadata(m.metadata));
  if (m.error !== undefined) size += lenFieldSize(Buffer.byteLength(m.error));
  return size;
}

function sizeOfItem(item: ItemResult): number {
  let size = 0;
  if (item.requestId !== "") size += lenFieldSize(Buffer.byteLength(item.requestId));
  if (item.output.length > 0) size += lenFieldSize(4 * item.output.length);
  if (!isZero(item.confidence)) size += 9;
  if (!isZero(item.processingTimeMs)) size += 9;
  if (item.error !== undefined) size += lenFieldSize(Buffer.byteLength(item.error));
  if (item.label !== "") size += lenFieldSize(Buffer.byteLength(item.label));
  return size;
}

function sizeOfMetadata(m: ResultsMetadata): number {
  let size = 0;
  if (!isZero(m.totalProcessingTimeMs)) size += 9;
  if (!isZero(m.averagePerRequestMs)) size += 9;
  if (m.batchSize !== 0) size += 1 + varintSize(m.batchSize);
  return size;
}

/** Where each output becomes float32 bytes on its way into the answer, reused. */
let scratch = new Float32Array(1024);
let scratchBytes = Buffer.from(scratch.buffer);

/** {@link scratch}, grown to hold at least `length` floats. */
function scratchFor(length: number): Float32Array {
  if (scratch.length < length) {
    scratch = new Float32Array(Math.max(length, 2 * scratch.length));
    scratchBytes = Buffer.from(scratch.buffer);
  }
  return scratch;
}

/** Writes into a buffer of the exact size. */
class Writer {
  readonly bytes: Buffer;
  #at = 0;

  constructor(size: number) {
    this.bytes = Buffer.allocUnsafe(size);
  }

  results(m: BatchResults): void {
    this.#string(1, m.batchId);
    this.#string(2, m.status);
    for (const item of m.results) {
      this.#header(3, sizeOfItem(item));
      this.#item(item);
    }
    if (m.metadata !== undefined) {
      this.#header(4, sizeOfMetadata(m.metadata));
      this.#double(1, m.metadata.totalProcessingTimeMs);
      this.#double(2, m.metadata.averagePerRequestMs);
      if (m.metadata.batchSize !== 0) {
        this.#varint(tag(3, VARINT));
        this.#varint(m.metadata.batchSize);
      }
    }
    if (m.error !== undefined) this.#string(5, m.error, true);
  }

  #item(item: ItemResult): void {
    this.#string(1, item.requestId);
    const output = item.output;
    if (output.length > 0) {
      this.#header(2, 4 * output.length);
      const floats = scratchFor(output.length);
      floats.set(output);
      this.#at += scratchBytes.copy(this.bytes, this.#at, 0, 4 * output.length);
    }
    this.#double(3, item.confidence);
    this.#double(4, item.processingTimeMs);
    if (item.error !== undefined) this.#string(5, item.error, true);
    this.#string(6, item.label);
  }

  /** A string field; an implicit-presence one is left out when empty. */
  #string(field: number, value: string, present = false): void {
    if (value === "" && !present) return;
    const length = Buffer.byteLength(value);
    this.#header(field, length);
    this.#at += this.bytes.write(value, this.#at, length, "utf8");
  }

  #double(field: number, value: number): void {
    if (isZero(value)) return;
    this.#varint(tag(field, I64));
    this.bytes.writeDoubleLE(value, this.#at);
    this.#at += 8;
  }

  #header(field: number, length: number): void {
    this.#varint(tag(field, LEN));
    this.#varint(length);
  }

  #varint(value: number): void {
    while (value >= 0x80) {
      this.bytes[this.#at++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    this.bytes[this.#at++] = value;
  }
}
