/**
 * The REST surface as an OpenAPI 3 document, built from the same descriptors and
 * `google.api.http` annotations the routes are transcoded from, so it cannot drift from them:
 * every route with its path and query parameters, request body and answer, the JSON the server
 * reads and writes (proto field names; 64-bit integers as strings; Timestamp as RFC 3339),
 * the error body, and the key. Served at `/openapi.json`.
 */
import {
  type DescEnum,
  type DescField,
  type DescMessage,
  type DescService,
  ScalarType,
} from "@bufbuild/protobuf";
import { routesOf } from "./rest-transcoder.js";

type Schema = Record<string, unknown>;

/** The document for `service` at `version`. */
export function openApiDocument(service: DescService, version: string): Schema {
  const schemas: Record<string, Schema> = {};
  const paths: Record<string, Record<string, Schema>> = {};
  const ref = (message: DescMessage) => refTo(message, schemas);
  for (const route of routesOf(service)) {
    const input = route.method.input;
    const pathFields = route.segments.flatMap((s) => (typeof s === "string" ? [] : [s.field]));
    const parameters: Schema[] = pathFields.map((name) => ({
      name,
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    const upload = route.method.methodKind === "client_streaming";
    // An upload's query string is its header message (see `decodeRestUpload`).
    const queryFields = upload
      ? (input.fields[0]?.message?.fields ?? [])
      : route.body === ""
        ? input.fields
        : [];
    for (const field of queryFields)
      if (!pathFields.includes(field.name))
        parameters.push({
          name: field.name,
          in: "query",
          required: false,
          schema: fieldSchema(field, schemas),
          ...(field.fieldKind === "list" ? { style: "form", explode: true } : {}),
        });
    const streaming = route.method.methodKind === "server_streaming";
    const output = ref(route.method.output);
    const operation: Schema = {
      operationId: route.method.localName,
      summary: `${service.name}.${route.method.name}`,
      tags: [service.name],
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body === "*"
        ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: ref(input) } },
            },
          }
        : upload
          ? {
              requestBody: {
                required: true,
                description: "JSON Lines, streamed; gzip, deflate or br with Content-Encoding",
                content: { "application/x-ndjson": { schema: { type: "string" } } },
              },
            }
          : {}),
      responses: {
        [upload ? "201" : "200"]: {
          description: streaming
            ? "A stream to its end: JSON Lines, or Server-Sent Events with Accept: text/event-stream"
            : upload
              ? "Created: every line is stored"
              : "OK",
          content: streaming
            ? {
                "application/x-ndjson": { schema: output },
                "text/event-stream": { schema: { type: "string" } },
              }
            : { "application/json": { schema: output } },
        },
        default: {
          description: "An error: the code, the message, and an error id for internal errors",
          content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
        },
      },
    };
    const path = route.template.replace(/\{([^}=]+)(=[^}]*)?\}/g, "{$1}");
    paths[path] = { ...paths[path], [route.httpMethod.toLowerCase()]: operation };
  }
  schemas.Error = {
    type: "object",
    required: ["error", "message"],
    properties: {
      error: { type: "string", description: "the code, e.g. invalid_argument, not_found" },
      message: { type: "string" },
      error_id: { type: "string", description: "present for internal errors; quote it" },
    },
  };
  return {
    openapi: "3.0.3",
    info: { title: "Batch Processor API", version },
    servers: [{ url: "/" }],
    security: [{ apiKey: [] }, { bearer: [] }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        apiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
        bearer: { type: "http", scheme: "bearer" },
      },
    },
  };
}

/** A reference to `message`'s schema, writing it (and what it refers to) into `schemas`. */
function refTo(message: DescMessage, schemas: Record<string, Schema>): Schema {
  const wellKnown = WELL_KNOWN[message.typeName];
  if (wellKnown !== undefined) return wellKnown;
  const name = message.typeName.split(".").at(-1) as string;
  if (schemas[name] === undefined) {
    schemas[name] = {}; // placeholder first: messages may refer to themselves
    const properties: Record<string, Schema> = {};
    for (const field of message.fields) properties[field.name] = fieldSchema(field, schemas);
    schemas[name] = { type: "object", properties };
  }
  return { $ref: `#/components/schemas/${name}` };
}

function fieldSchema(field: DescField, schemas: Record<string, Schema>): Schema {
  switch (field.fieldKind) {
    case "scalar":
      return scalarSchema(field.scalar);
    case "enum":
      return enumSchema(field.enum);
    case "message":
      return refTo(field.message, schemas);
    case "list":
      return {
        type: "array",
        items:
          field.listKind === "scalar"
            ? scalarSchema(field.scalar)
            : field.listKind === "enum"
              ? enumSchema(field.enum)
              : refTo(field.message, schemas),
      };
    case "map":
      return {
        type: "object",
        additionalProperties:
          field.mapKind === "scalar"
            ? scalarSchema(field.scalar)
            : field.mapKind === "enum"
              ? enumSchema(field.enum)
              : refTo(field.message, schemas),
      };
  }
}

function enumSchema(descEnum: DescEnum): Schema {
  return { type: "string", enum: descEnum.values.map((v) => v.name) };
}

/** JSON types of protobuf scalars (proto3 JSON mapping). */
function scalarSchema(type: ScalarType): Schema {
  switch (type) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "int64", minimum: 0, maximum: 4_294_967_295 };
    default:
      return { type: "integer", format: "int32" };
  }
}

/** Well-known types as their JSON mapping. */
const WELL_KNOWN: Readonly<Record<string, Schema>> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", example: "1.5s" },
  "google.protobuf.Struct": { type: "object", additionalProperties: true },
  "google.protobuf.Value": {},
  "google.protobuf.ListValue": { type: "array", items: {} },
};
