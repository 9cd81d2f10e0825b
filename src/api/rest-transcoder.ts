/**
 * REST/JSON routes derived from the `google.api.http` annotations of a service, not written
 * route by route: path templates with `{field}` variables, query parameters (repeated fields as
 * repeated keys or comma lists), and `body: "*"`. Requests are decoded by the same JSON reader
 * as Connect's, so every JSON protocol accepts and rejects the same input, with the same words.
 */
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  getOption,
  hasOption,
  type JsonObject,
  type JsonValue,
  ScalarType,
} from "@bufbuild/protobuf";
import { http } from "../../gen/google/api/annotations_pb.js";
import { echo, InvalidInputError } from "../engine/index.js";
import { decodeJsonRequest } from "../wire/index.js";

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

/**
 * The route for a request, with its path variables; when only the path matched, `allowed` lists
 * the HTTP methods it serves and `route` is one of its routes.
 */
export function matchRoute(
  routes: readonly RestRoute[],
  httpMethod: string,
  pathname: string,
):
  | { route: RestRoute; params: Record<string, string> }
  | { route: RestRoute; allowed: string[] }
  | undefined {
  const parts = pathname.split("/").filter((s) => s.length > 0);
  const allowed: string[] = [];
  let pathMatch: RestRoute | undefined;
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
    pathMatch ??= route;
    allowed.push(route.httpMethod);
  }
  return pathMatch === undefined ? undefined : { route: pathMatch, allowed };
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
  return decodeJsonRequest(input, json);
}

function queryValue(message: DescMessage, key: string, values: string[]): JsonValue {
  const field = message.fields.find((f) => f.name === key || f.jsonName === key);
  if (field === undefined) {
    throw new InvalidInputError(
      key.length > 64 ? echo(key) : key,
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
 * The messages of a client-streaming route: first the request's header message (its first
 * field, a message) from the query string and path variables, then one message per piece of the
 * body, in the field the rule's `body` names (a message with one bytes field).
 */
export async function* decodeRestUpload(
  route: RestRoute,
  params: Record<string, string>,
  query: URLSearchParams,
  body: AsyncIterable<Uint8Array>,
): AsyncIterable<unknown> {
  const input = route.method.input;
  const head = input.fields[0];
  const part = input.fields.find((f) => f.name === route.body);
  const bytes = part?.message?.fields.find((f) => f.scalar === ScalarType.BYTES);
  if (head?.message === undefined || part?.message === undefined || bytes === undefined)
    throw new Error(`route ${route.template} is not an upload route`);
  const json: JsonObject = {};
  for (const key of new Set(query.keys()))
    json[key] = queryValue(head.message, key, query.getAll(key));
  for (const [name, value] of Object.entries(params)) json[name] = value;
  yield create(input, fieldInit(head, decodeJsonRequest(head.message, json)) as never);
  for await (const chunk of body)
    yield create(
      input,
      fieldInit(part, create(part.message, { [bytes.localName]: chunk } as never)) as never,
    );
}

/** The init object that sets `field` to `value`, a oneof member included. */
function fieldInit(field: DescField, value: unknown): Record<string, unknown> {
  return field.oneof === undefined
    ? { [field.localName]: value }
    : { [field.oneof.localName]: { case: field.localName, value } };
}
