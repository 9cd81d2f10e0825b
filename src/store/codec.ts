/**
 * What both stores read and write alike: float32 blobs, a batch's inputs as one blob, stored
 * failures, and the opaque cursor of a list page.
 */
import {
  type Failure,
  failure,
  OUTCOME_CODES,
  type OutcomeCode,
  type StoredInput,
} from "../engine/index.js";

/** True for the codes a failure may carry. */
function isOutcomeCode(code: unknown): code is OutcomeCode {
  return (OUTCOME_CODES as readonly unknown[]).includes(code);
}

/** A stored failure; a code this version does not know reads as INTERNAL. */
export function failureOf(code: string | null, message: string | null): Failure | null {
  if (message === null) return null;
  return failure(isOutcomeCode(code) ? code : "INTERNAL", message);
}

/** A stored failure code; one this version does not know reads as INTERNAL. */
export function outcomeCode(code: string | null | undefined): OutcomeCode {
  return isOutcomeCode(code) ? code : "INTERNAL";
}

/**
 * The items' inputs back to back, in index order, as one BLOB. When they already lie back to back
 * in one buffer (the gRPC reader puts a request's inputs there), that memory is written as is.
 */
export function joinedInputs(items: readonly StoredInput[]): Buffer {
  const ordered = items.every(
    (item, k) => k === 0 || (items[k - 1] as StoredInput).index < item.index,
  )
    ? items
    : [...items].sort((a, b) => a.index - b.index);
  const first = ordered[0]?.input;
  if (first !== undefined && contiguous(ordered)) {
    const last = (ordered[ordered.length - 1] as StoredInput).input;
    return Buffer.from(
      first.buffer,
      first.byteOffset,
      last.byteOffset + last.byteLength - first.byteOffset,
    );
  }
  let length = 0;
  for (const item of ordered) length += item.input.length;
  const all = new Float32Array(length);
  let offset = 0;
  for (const item of ordered) {
    all.set(item.input, offset);
    offset += item.input.length;
  }
  return bytes(all);
}

/** Whether each input starts in the same buffer right where the one before ends. */
function contiguous(ordered: readonly StoredInput[]): boolean {
  for (let k = 1; k < ordered.length; k++) {
    const before = (ordered[k - 1] as StoredInput).input;
    const input = (ordered[k] as StoredInput).input;
    if (
      input.buffer !== before.buffer ||
      input.byteOffset !== before.byteOffset + before.byteLength
    )
      return false;
  }
  return true;
}

export function bytes(data: Float32Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Copies a BLOB into its own aligned Float32Array (a Buffer's offset may not be 4-aligned). */
export function floats(blob: Buffer): Float32Array {
  const out = new Float32Array(blob.byteLength / 4);
  new Uint8Array(out.buffer).set(blob);
  return out;
}

export function encodeCursor(createdAt: number, pk: number): string {
  return Buffer.from(`${createdAt}:${pk}`).toString("base64url");
}

export function decodeCursor(cursor: string): [number, number] {
  const match = /^(\d+):(\d+)$/.exec(Buffer.from(cursor, "base64url").toString());
  if (match === null) throw new RangeError("cursor is not a token this store issued");
  return [Number(match[1]), Number(match[2])];
}
