/**
 * REST/JSON routes derived from the `google.api.http` annotations of a service, not written
 * route by route: path templates with `{field}` variables, query parameters (repeated fields as
 * repeated keys or comma lists), and `body: "*"`. Requests are decoded with the same protobuf
 * JSON reader as Connect, so every protocol accepts and rejects the same input.
 */
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromJson,
  getOption,
  hasOption,
  type JsonObject,
  type JsonValue,
  ScalarType,
} from "@bufbuild/protobuf";
import { http } from "../../gen/google/api/annotations_pb.js";
import { InvalidInputError } from "../engine/errors.js";

/** One REST route. */
export interface RestRoute {
  readonly httpMethod: string;
  readonly template: string;
  readonly method: DescMethod;
  /** Literal segments as strings; variables as `{ field }`. */
  readonly segments: readonly (string | { readonly field: string })[];
  /** `*` to read the whole body into the request, "" for none. */
  readonly body: string;
}

/** Reads every annotated method of `service` into routes. */
export function routesOf(service: DescService): RestRoute[] {
  const routes: RestRoute[] = [];
  for (const method of service.methods) {
    if (!hasOption(method, http)) continue;
    const rule = getOption(method, http);
    const pattern = rule.pattern;
    if (pattern.case === undefined) continue;
    const [httpMethod, template] =
      pattern.case === "custom"
        ? [pattern.value.kind.toUpperCase(), pattern.value.path]
        : [pattern.case.toUpperCase(), pattern.value];
    routes.push({
      httpMethod,
      template,
      method,
      segments: parseTemplate(template),
      body: rule.body,
    });
  }
  return routes;
}

function parseTemplate(template: string): RestRoute["segments"] {
  return template
    .split("/")
    .filter((s) => s.length > 0)
    .map((segment) => {
      const variable = /^\{([a-z_][a-z0-9_.]*)(=[^}]*)?\}$/i.exec(segment);
      return variable === null ? segment : { field: variable[1] as string };
    });
}

/** The route for a request, with its path variables; `allowed` lists methods when only the path matched. */
export function matchRoute(
  routes: readonly RestRoute[],
  httpMethod: string,
  pathname: string,
): { route: RestRoute; params: Record<string, string> } | { allowed: string[] } | undefined {
  const parts = pathname.split("/").filter((s) => s.length > 0);
  const allowed: string[] = [];
  for (const route of routes) {
    if (route.segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    const matches = route.segments.every((segment, i) => {
      const part = parts[i] as string;
      if (typeof segment === "string") return segment === part;
      params[segment.field] = safeDecode(part);
      return true;
    });
    if (!matches) continue;
    if (route.httpMethod === httpMethod) return { route, params };
    allowed.push(route.httpMethod);
  }
  return allowed.length > 0 ? { allowed } : undefined;
}

/**
 * Builds the request message from path variables, query parameters and the JSON body; throws
 * {@link InvalidInputError} naming the field for anything that does not fit the message.
 */
export function decodeRestRequest(
  route: RestRoute,
  params: Record<string, string>,
  query: URLSearchParams,
  body: JsonValue | undefined,
) {
  const input = route.method.input;
  let json: JsonObject = {};
  if (route.body === "*") {
    if (body === undefined) json = {};
    else if (typeof body !== "object" || body === null || Array.isArray(body))
      throw new InvalidInputError("body", "expected a JSON object");
    else json = { ...body };
  } else {
    for (const key of new Set(query.keys())) json[key] = queryValue(input, key, query.getAll(key));
  }
  for (const [name, value] of Object.entries(params)) json[name] = value;
  try {
    return decodeFast(input, json) ?? fromJson(input, json, { ignoreUnknownFields: false });
  } catch (error) {
    throw new InvalidInputError(
      route.body === "*" ? "body" : "query",
      error instanceof Error ? error.message : String(error),
    );
  }
}

function queryValue(message: DescMessage, key: string, values: string[]): JsonValue {
  const field = message.fields.find((f) => f.name === key || f.jsonName === key);
  if (field === undefined) {
    throw new InvalidInputError(
      key,
      `unknown query parameter; expected one of ${message.fields.map((f) => f.name).join(", ")}`,
    );
  }
  if (field.fieldKind === "list")
    return values
      .flatMap((v) => v.split(","))
      .filter((v) => v !== "")
      .map((v) => scalarJson(field.scalar, v));
  if (field.fieldKind === "scalar") return scalarJson(field.scalar, values.at(-1) as string);
  throw new InvalidInputError(key, "cannot be set from the query string");
}

function scalarJson(type: ScalarType | undefined, raw: string): JsonValue {
  switch (type) {
    case ScalarType.BOOL:
      return raw === ""
        ? true
        : raw === "true" || raw === "1"
          ? true
          : raw === "false" || raw === "0"
            ? false
            : raw;
    case ScalarType.STRING:
    case ScalarType.BYTES:
    case undefined:
      return raw;
    default: {
      const n = Number(raw);
      return raw.trim() !== "" && Number.isFinite(n) ? n : raw;
    }
  }
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/**
 * A fast path for the hot shape of the contract: a list of flat messages of numbers (a submit's
 * `data`), which protobuf-es's JSON reader checks element by element. Each such list is decoded
 * here when every value already has the right JSON type, and the rest of the message goes through
 * fromJson; anything unexpected returns undefined and the whole message takes the generic path,
 * so errors and edge cases stay exactly fromJson's.
 */
function decodeFast(schema: DescMessage, json: JsonObject) {
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
  return message as ReturnType<typeof fromJson>;
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
