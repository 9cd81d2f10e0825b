/**
 * Request messages from JSON, with errors that name the field as the client wrote it
 * (`data[3].input[7]: expected a number, got "abc"`, `data[0].inputs: unknown field, did you
 * mean "input"?`) rather than protobuf's type names. The JSON is checked against the message's
 * descriptor first; what passes is decoded by protobuf-es's own reader (with a fast path for lists
 * of flat numeric messages), so every JSON protocol accepts exactly proto3 JSON.
 */
import {
  create,
  type DescField,
  type DescMessage,
  fromJson,
  type JsonObject,
  type JsonValue,
  type MessageShape,
  ScalarType,
} from "@bufbuild/protobuf";
import { echo, FLOAT32_MAX, InvalidInputError, validateMetadata } from "../engine/index.js";

/** Decodes `json` as a `schema` message, or throws {@link InvalidInputError} naming the field. */
export function decodeJsonRequest<Desc extends DescMessage>(
  schema: Desc,
  json: JsonValue | undefined,
): MessageShape<Desc> {
  const body = json ?? {};
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new InvalidInputError("body", `expected a JSON object, got ${echo(body)}`);
  checkMessage(schema, body, "");
  try {
    return decodeFast(schema, body) ?? fromJson(schema, body, { ignoreUnknownFields: false });
  } catch (error) {
    // The check above accepts only what the reader accepts; this is the reader's last word.
    throw new InvalidInputError("body", error instanceof Error ? error.message : String(error));
  }
}

const join = (path: string, name: string) => (path === "" ? name : `${path}.${name}`);

function checkMessage(schema: DescMessage, value: JsonValue, path: string): void {
  switch (schema.typeName) {
    case "google.protobuf.Struct":
      // Free-form JSON: bounded like metadata, before the reader spends time on each entry.
      if (typeof value !== "object" || value === null || Array.isArray(value))
        throw new InvalidInputError(path, `expected a JSON object, got ${echo(value)}`);
      validateMetadata(value, path);
      return;
    case "google.protobuf.Value":
    case "google.protobuf.ListValue":
    case "google.protobuf.Timestamp":
    case "google.protobuf.Duration":
      return; // their own JSON forms; the reader checks them
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new InvalidInputError(path, `expected an object, got ${echo(value)}`);
  for (const [key, inner] of Object.entries(value)) {
    const field = schema.fields.find((f) => f.name === key || f.jsonName === key);
    if (field === undefined) throw unknownField(schema, join(path, key), key);
    if (inner !== null) checkField(field, inner, join(path, field.name));
  }
}

function checkField(field: DescField, value: JsonValue, path: string): void {
  switch (field.fieldKind) {
    case "scalar":
      scalar(field.scalar, value, path);
      return;
    case "message":
      checkMessage(field.message, value, path);
      return;
    case "enum":
      return;
    case "list":
      if (!Array.isArray(value))
        throw new InvalidInputError(path, `expected an array, got ${echo(value)}`);
      if (field.listKind === "scalar") checkScalars(field.scalar, value, path);
      else if (field.listKind === "message")
        for (let i = 0; i < value.length; i++)
          checkMessage(field.message, value[i] as JsonValue, `${path}[${i}]`);
      return;
    case "map":
      if (typeof value !== "object" || value === null || Array.isArray(value))
        throw new InvalidInputError(path, `expected an object, got ${echo(value)}`);
      for (const [key, inner] of Object.entries(value)) {
        const at = `${path}.${key}`;
        if (field.mapKind === "scalar") scalar(field.scalar, inner, at);
        else if (field.mapKind === "message") checkMessage(field.message, inner, at);
      }
      return;
  }
}

/**
 * The hot loop of a submit (every input number): a plain number in range passes with one test,
 * and a path is built only for the element that is wrong.
 */
function checkScalars(type: ScalarType, values: readonly JsonValue[], path: string): void {
  const bound =
    type === ScalarType.FLOAT
      ? FLOAT32_MAX
      : type === ScalarType.DOUBLE
        ? Number.MAX_VALUE
        : Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === "number" && v <= bound && v >= -bound) continue;
    const rule = scalarRule(type, v as JsonValue);
    if (rule !== undefined) throw new InvalidInputError(`${path}[${i}]`, rule);
  }
}

function scalar(type: ScalarType, value: JsonValue, path: string): void {
  const rule = scalarRule(type, value);
  if (rule !== undefined) throw new InvalidInputError(path, rule);
}

const INT_RANGES: Partial<Record<ScalarType, readonly [number, number]>> = {
  [ScalarType.INT32]: [-0x80000000, 0x7fffffff],
  [ScalarType.SINT32]: [-0x80000000, 0x7fffffff],
  [ScalarType.SFIXED32]: [-0x80000000, 0x7fffffff],
  [ScalarType.UINT32]: [0, 0xffffffff],
  [ScalarType.FIXED32]: [0, 0xffffffff],
};

/** What is wrong with `value` as a `type` in proto3 JSON, or undefined when it fits. */
function scalarRule(type: ScalarType, value: JsonValue): string | undefined {
  switch (type) {
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      if (typeof value === "number") {
        return type === ScalarType.FLOAT && (value > FLOAT32_MAX || value < -FLOAT32_MAX)
          ? `${value} is outside the float32 range`
          : undefined;
      }
      // proto3 JSON also writes floats as strings: numerals, "NaN", "Infinity", "-Infinity".
      if (value === "NaN" || value === "Infinity" || value === "-Infinity") return undefined;
      const n = numeric(value);
      if (n === undefined) return `expected a number, got ${echo(value)}`;
      return type === ScalarType.FLOAT && Math.abs(n) > FLOAT32_MAX
        ? `${n} is outside the float32 range`
        : undefined;
    }
    case ScalarType.BOOL:
      return typeof value === "boolean" ? undefined : `expected true or false, got ${echo(value)}`;
    case ScalarType.STRING:
      return typeof value === "string" ? undefined : `expected a string, got ${echo(value)}`;
    case ScalarType.BYTES:
      return typeof value === "string" ? undefined : `expected a base64 string, got ${echo(value)}`;
    default: {
      const n = numeric(value);
      const range = INT_RANGES[type];
      const rule =
        range === undefined
          ? "expected an integer"
          : `expected an integer in ${range[0]}..${range[1]}`;
      if (n === undefined || !Number.isInteger(n)) return `${rule}, got ${echo(value)}`;
      if (range !== undefined && (n < range[0] || n > range[1]))
        return `${rule}, got ${echo(value)}`;
      return undefined;
    }
  }
}

/** A JSON number, or a string holding one (proto3 JSON's form for numbers); else undefined. */
function numeric(value: JsonValue): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value !== "string" || value.trim() !== value || value === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

function unknownField(schema: DescMessage, path: string, key: string): InvalidInputError {
  const names = schema.fields.map((f) => f.name);
  const nearest = names
    .map((name) => ({ name, distance: editDistance(key.toLowerCase(), name) }))
    .sort((a, b) => a.distance - b.distance)[0];
  const close =
    nearest !== undefined && nearest.distance <= Math.max(1, Math.floor(key.length / 3));
  return new InvalidInputError(
    key.length > 64 ? `${path.slice(0, path.length - key.length)}${echo(key)}` : path,
    close
      ? `unknown field, did you mean "${nearest.name}"?`
      : `unknown field; expected one of ${names.join(", ")}`,
  );
}

/** Levenshtein distance, bounded work: keys longer than any field name are never close. */
function editDistance(a: string, b: string): number {
  if (a.length > b.length + 3) return a.length;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/**
 * A fast path for the hot shape of the contract: a list of flat messages of numbers (a submit's
 * `data`), which protobuf-es's JSON reader checks element by element. Each such list is built
 * here when every value already has its exact JSON type, and the rest of the message goes through
 * fromJson; anything else returns undefined and the whole message takes the generic path.
 */
function decodeFast<Desc extends DescMessage>(
  schema: Desc,
  json: JsonObject,
): MessageShape<Desc> | undefined {
  const lists: [DescField & { fieldKind: "list" }, unknown[]][] = [];
  for (const field of schema.fields) {
    if (field.fieldKind !== "list" || field.listKind !== "message") continue;
    const value = json[field.name] ?? json[field.jsonName];
    if (!Array.isArray(value)) continue;
    const items = value.map((item) => flatItem(field.message, item));
    if (items.some((item) => item === undefined)) return undefined;
    lists.push([field, items]);
  }
  if (lists.length === 0) return undefined;
  const rest = { ...json };
  for (const [field] of lists) {
    delete rest[field.name];
    delete rest[field.jsonName];
  }
  const message = fromJson(schema, rest, { ignoreUnknownFields: false }) as Record<string, unknown>;
  for (const [field, items] of lists)
    message[field.localName] = items.map((item) =>
      create(field.message as DescMessage, item as never),
    );
  return message as MessageShape<Desc>;
}

/** The init object of a flat message, or undefined unless every value has its exact JSON type. */
function flatItem(schema: DescMessage, item: unknown): Record<string, unknown> | undefined {
  if (typeof item !== "object" || item === null || Array.isArray(item)) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(item)) {
    const field = schema.fields.find((f) => f.name === key || f.jsonName === key);
    if (field === undefined || value === null) return undefined;
    if (
      field.fieldKind === "scalar" &&
      field.scalar === ScalarType.STRING &&
      typeof value === "string"
    )
      out[field.localName] = value;
    else if (
      field.fieldKind === "list" &&
      field.listKind === "scalar" &&
      Array.isArray(value) &&
      value.every((v) => fitsScalar(field.scalar, v))
    ) {
      out[field.localName] = value;
    } else return undefined;
  }
  return out;
}

function fitsScalar(type: ScalarType, value: unknown): boolean {
  if (typeof value !== "number") return false;
  switch (type) {
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return true;
    case ScalarType.UINT32:
      return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
    case ScalarType.INT32:
      return Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff;
    default:
      return false;
  }
}
