/**
 * Tensors as little-endian bytes, the Open Inference Protocol's raw contents and the engine's
 * `raw` inputs: each element in its datatype's width (FP16 as its bits), BYTES as a 4-byte length
 * and the UTF-8 bytes per element.
 */
import { InvalidInputError } from "./errors.js";
import { allocate, bytesPerElement, type Datatype, isStrings, type TensorData } from "./tensors.js";

/**
 * The elements of `bytes` (little-endian, as the Open Inference Protocol's raw contents are) as
 * `count` elements of `datatype`, copied into their own aligned array; BYTES is each element as a
 * 4-byte little-endian length and its UTF-8 bytes. Throws naming `field` when the size is wrong.
 */
export function fromRawBytes(
  field: string,
  datatype: Datatype,
  bytes: Uint8Array,
  count: number,
): TensorData {
  const width = bytesPerElement(datatype);
  if (width === undefined) {
    const out: string[] = [];
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    while (at < bytes.byteLength) {
      if (at + 4 > bytes.byteLength) break;
      const length = view.getUint32(at, true);
      at += 4;
      if (at + length > bytes.byteLength) {
        at = -1;
        break;
      }
      out.push(Buffer.from(bytes.buffer, bytes.byteOffset + at, length).toString("utf8"));
      at += length;
    }
    if (at !== bytes.byteLength || out.length !== count)
      throw new InvalidInputError(
        field,
        `expected ${count} BYTES elements, each a 4-byte little-endian length and its bytes`,
      );
    return out;
  }
  if (bytes.byteLength !== count * width)
    throw new InvalidInputError(
      field,
      `expected ${count * width} bytes (${count} ${datatype} elements), got ${bytes.byteLength}`,
    );
  const out = allocate(datatype, count) as Exclude<TensorData, readonly string[]>;
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
  return out;
}

/** The elements as little-endian bytes (BYTES: each as a 4-byte length and its UTF-8 bytes). */
export function toRawBytes(data: TensorData): Uint8Array {
  if (isStrings(data)) {
    const parts = data.map((s) => Buffer.from(s, "utf8"));
    const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.writeUInt32LE(part.length, at);
      part.copy(out, at + 4);
      at += 4 + part.length;
    }
    return out;
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
