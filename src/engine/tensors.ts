/**
 * Named tensors of any element type: the datatypes the server feeds and reads (in the Open
 * Inference Protocol's names), the typed array that holds each, and the conversions every
 * protocol's input goes through on its way to a model batch and back. Pure: no runtime imports.
 */
import { echo, InvalidInputError } from "./errors.js";
import { floatToHalf, halfToFloat } from "./float16.js";

/** Element types, in the Open Inference Protocol's names. */
export const DATATYPES = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;
/** An element type. */
export type Datatype = (typeof DATATYPES)[number];

/**
 * The elements of a tensor in the typed array of its datatype: FP16 as the IEEE half-precision
 * bits (a Uint16Array, as ONNX Runtime takes them), BOOL as 0/1 bytes, BYTES as strings.
 */
export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint32Array
  | BigUint64Array
  | readonly string[];

/**
 * One input or output tensor of one item (no batch axis). The model's primary input is named
 * {@link PRIMARY} in the engine, whatever the graph calls it, so that items sent as the `input`
 * shorthand and by name queue together, and stored inputs need no name.
 */
export interface ItemTensor {
  readonly name: string;
  readonly datatype: Datatype;
  /** Per-item dims. */
  readonly shape: readonly number[];
  /**
   * The elements, row-major. FP32 may also be plain numbers as a client sent them (checked
   * finite and in range), copied into the model batch's Float32Array at dispatch.
   */
  readonly data: TensorData | ArrayLike<number>;
}

/** An item's tensor with its elements in its datatype's typed array (as stored, and as outputs are). */
export interface TypedTensor extends ItemTensor {
  readonly data: TensorData;
}

/** A tensor of a whole model batch: dims start with the batch axis. */
export interface BatchTensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** The engine's name of a model's primary input (the one the `input` shorthand feeds). */
export const PRIMARY = "";

/** True for a known datatype name. */
export function isDatatype(value: unknown): value is Datatype {
  return typeof value === "string" && (DATATYPES as readonly string[]).includes(value);
}

/** Bytes per element; undefined for BYTES. */
export function bytesPerElement(datatype: Datatype): number | undefined {
  switch (datatype) {
    case "BOOL":
    case "UINT8":
    case "INT8":
      return 1;
    case "UINT16":
    case "INT16":
    case "FP16":
      return 2;
    case "UINT32":
    case "INT32":
    case "FP32":
      return 4;
    case "UINT64":
    case "INT64":
    case "FP64":
      return 8;
    case "BYTES":
      return undefined;
  }
}

/** Elements of a tensor of `shape`. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A zero-filled array of `length` elements of `datatype`. */
export function allocate(datatype: Datatype, length: number): TensorData {
  switch (datatype) {
    case "BOOL":
    case "UINT8":
      return new Uint8Array(length);
    case "INT8":
      return new Int8Array(length);
    case "UINT16":
    case "FP16":
      return new Uint16Array(length);
    case "INT16":
      return new Int16Array(length);
    case "UINT32":
      return new Uint32Array(length);
    case "INT32":
      return new Int32Array(length);
    case "UINT64":
      return new BigUint64Array(length);
    case "INT64":
      return new BigInt64Array(length);
    case "FP32":
      return new Float32Array(length);
    case "FP64":
      return new Float64Array(length);
    case "BYTES":
      return new Array<string>(length).fill("");
  }
}

/** Integer bounds of each integer datatype, as numbers. */
const INTEGER_RANGES: Partial<Record<Datatype, readonly [number, number]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

const BIGINT_RANGES: Partial<Record<Datatype, readonly [bigint, bigint]>> = {
  UINT64: [0n, 0xffffffffffffffffn],
  INT64: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

/** The typed array class of each integer datatype. */
const INTEGER_ARRAYS = {
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
} as const;

/** Largest magnitude of each float datatype. */
const FLOAT_MAX: Partial<Record<Datatype, number>> = {
  FP16: 65504,
  FP32: 3.4028234663852886e38,
  FP64: Number.MAX_VALUE,
};

/**
 * `values` as the typed array of `datatype`, each element checked: integers in the type's range
 * for integer types (bigints too), finite numbers in range for float types, true/false or 0/1 for
 * BOOL, strings for BYTES. A typed array of the datatype's own class (Float32Array for FP32,
 * BigInt64Array for INT64, …; never for FP16, whose Uint16Array is ambiguous) is taken as it is,
 * once checked. Throws naming `field[j]` for the first element that does not fit.
 */
export function toTensorData(
  field: string,
  datatype: Datatype,
  values: ArrayLike<unknown>,
): TensorData {
  const n = values.length;
  if (datatype === "BYTES") {
    const out: string[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const v = values[j];
      if (typeof v !== "string")
        throw new InvalidInputError(`${field}[${j}]`, `expected a string, got ${echo(v)}`);
      out[j] = v;
    }
    return out;
  }
  if (datatype === "BOOL") {
    const out = new Uint8Array(n);
    for (let j = 0; j < n; j++) {
      const v = values[j];
      if (v === true || v === 1 || v === 1n) out[j] = 1;
      else if (!(v === false || v === 0 || v === 0n))
        throw new InvalidInputError(
          `${field}[${j}]`,
          `expected true, false, 0 or 1, got ${echo(v)}`,
        );
    }
    return out;
  }
  const max = FLOAT_MAX[datatype];
  if (max !== undefined) {
    if (datatype === "FP32" && values instanceof Float32Array) return checkFinite(field, values);
    if (datatype === "FP64" && values instanceof Float64Array) return checkFinite(field, values);
    const out = allocate(datatype, n) as Float32Array | Float64Array | Uint16Array;
    for (let j = 0; j < n; j++) {
      const v = values[j];
      if (typeof v !== "number" || !Number.isFinite(v))
        throw new InvalidInputError(`${field}[${j}]`, `expected a finite number, got ${echo(v)}`);
      if (v > max || v < -max)
        throw new InvalidInputError(`${field}[${j}]`, `${v} is outside the ${datatype} range`);
      out[j] = datatype === "FP16" ? floatToHalf(v) : v;
    }
    return out;
  }
  // An array of the integer type's own class holds only values of that type.
  if (values instanceof INTEGER_ARRAYS[datatype as keyof typeof INTEGER_ARRAYS])
    return values as unknown as TensorData;
  const out = allocate(datatype, n);
  const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
  const range = INTEGER_RANGES[datatype] as readonly [number, number];
  const bigRange = BIGINT_RANGES[datatype];
  for (let j = 0; j < n; j++) {
    const v = values[j];
    let fits: boolean;
    if (typeof v === "bigint")
      fits =
        bigRange !== undefined
          ? v >= bigRange[0] && v <= bigRange[1]
          : v >= BigInt(range[0]) && v <= BigInt(range[1]);
    else fits = typeof v === "number" && Number.isInteger(v) && v >= range[0] && v <= range[1];
    if (!fits)
      throw new InvalidInputError(
        `${field}[${j}]`,
        `expected an integer in ${bigRange?.[0] ?? range[0]}..${bigRange?.[1] ?? range[1]} (${datatype}), got ${echo(typeof v === "bigint" ? v.toString() : v)}`,
      );
    if (big) (out as BigInt64Array)[j] = BigInt(v as number | bigint);
    else (out as Int32Array)[j] = Number(v);
  }
  return out;
}

function checkFinite<T extends Float32Array | Float64Array>(field: string, values: T): T {
  for (let j = 0; j < values.length; j++)
    if (!Number.isFinite(values[j]))
      throw new InvalidInputError(
        `${field}[${j}]`,
        `expected a finite number, got ${echo(values[j])}`,
      );
  return values;
}

/** True when `data` holds strings (BYTES); an empty array counts as such (it holds no numbers). */
export function isStrings(data: TensorData | ArrayLike<number>): data is readonly string[] {
  return Array.isArray(data) && (data.length === 0 || typeof data[0] === "string");
}

/**
 * The elements of `data` as plain values for JSON: numbers (FP16 decoded; 64-bit integers as
 * numbers, exact up to 2^53), booleans for BOOL, strings for BYTES.
 */
export function toPlainValues(
  datatype: Datatype,
  data: TensorData | ArrayLike<number>,
): (number | boolean | string)[] {
  if (isStrings(data)) return [...data];
  const out: (number | boolean)[] = new Array(data.length);
  for (let j = 0; j < data.length; j++) {
    const v = (data as ArrayLike<number | bigint>)[j] as number | bigint;
    out[j] =
      datatype === "BOOL" ? v !== 0 : datatype === "FP16" ? halfToFloat(v as number) : Number(v);
  }
  return out;
}

/** The elements of `data` as float32 (for the `output` shorthand and confidences). */
export function toFloat32(datatype: Datatype, data: TensorData | ArrayLike<number>): Float32Array {
  if (data instanceof Float32Array) return data;
  if (isStrings(data)) return new Float32Array(0);
  const out = new Float32Array(data.length);
  for (let j = 0; j < data.length; j++) {
    const v = (data as ArrayLike<number | bigint>)[j] as number | bigint;
    out[j] = datatype === "FP16" ? halfToFloat(v as number) : Number(v);
  }
  return out;
}

/**
 * The items' tensors (each of the same datatype and per-item shape) back to back in one array of
 * the datatype: a model batch's input.
 */
export function concatRows(
  datatype: Datatype,
  rows: readonly (TensorData | ArrayLike<number>)[],
  width: number,
): TensorData {
  const out = allocate(datatype, rows.length * width);
  if (isStrings(out)) {
    const strings = out as string[];
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as readonly string[];
      for (let j = 0; j < width; j++) strings[i * width + j] = row[j] as string;
    }
    return strings;
  }
  const typed = out as Float32Array;
  for (let i = 0; i < rows.length; i++) typed.set(rows[i] as ArrayLike<number>, i * width);
  return out;
}

/**
 * The elements of a typed array as a plain array. A loop: `Array.from` and spreading walk the
 * iterator protocol, an object per element, and outputs are copied this way once per item.
 */
export function numbersOf<T extends number | bigint>(data: ArrayLike<T>): T[] {
  // Pushed, not preallocated: `new Array(n)` starts with holes, and a holey array stays one.
  const out: T[] = [];
  for (let i = 0; i < data.length; i++) out.push(data[i] as T);
  return out;
}

/** Row `i` of a batch tensor whose rows hold `width` elements: a view for typed arrays. */
export function rowOf(data: TensorData, i: number, width: number): TensorData {
  if (isStrings(data)) return data.slice(i * width, (i + 1) * width);
  return data.subarray(i * width, (i + 1) * width);
}

/** Index of the first float element that is NaN or infinite; -1 when none is (or not floats). */
export function firstNonFinite(datatype: Datatype, data: TensorData | ArrayLike<number>): number {
  if (datatype === "FP16") {
    const bits = data as Uint16Array;
    for (let j = 0; j < bits.length; j++) if (((bits[j] as number) & 0x7c00) === 0x7c00) return j;
  } else if (datatype === "FP32" || datatype === "FP64") {
    const values = data as ArrayLike<number>;
    for (let j = 0; j < values.length; j++) if (!Number.isFinite(values[j])) return j;
  }
  return -1;
}

/** True when every element of `tensor` is finite. */
export function tensorFinite(tensor: {
  datatype: Datatype;
  data: TensorData | ArrayLike<number>;
}): boolean {
  return firstNonFinite(tensor.datatype, tensor.data) < 0;
}
