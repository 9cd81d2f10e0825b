import { describe, expect, it } from "vitest";
import { lastEventId, ndjsonLine, sseEvent } from "../../../src/wire/event-stream.js";

describe("REST event streams", () => {
  it("writes NDJSON lines and SSE events whose last id ends in -end", () => {
    expect(ndjsonLine({ a: 1 })).toBe('{"a":1}\n');
    expect(sseEvent(3, false, "status", { a: 1 })).toBe('id: 3\nevent: status\ndata: {"a":1}\n\n');
    expect(sseEvent(4, true, "error", { b: 2 })).toBe('id: 4-end\nevent: error\ndata: {"b":2}\n\n');
  });

  it("reads back only the Last-Event-IDs it wrote", () => {
    expect(lastEventId("7")).toEqual({ seq: 7, ended: false });
    expect(lastEventId("8-end")).toEqual({ seq: 8, ended: true });
    expect(lastEventId(undefined)).toBeUndefined();
    expect(lastEventId("abc")).toBeUndefined();
    expect(lastEventId("1".repeat(16))).toBeUndefined();
  });
});
