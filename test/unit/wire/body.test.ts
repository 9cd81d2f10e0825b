import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { parseJsonBody, readBody } from "../../../src/wire/body.js";
import { PayloadTooLargeError } from "../../../src/wire/errors.js";

/** A request body as node:http hands it over: a stream with headers. */
function request(chunks: Buffer[], headers: Record<string, string> = {}): IncomingMessage {
  return Object.assign(Readable.from(chunks), { headers }) as unknown as IncomingMessage;
}

describe("readBody", () => {
  it("reads a body in chunks, inflating it per its encoding", async () => {
    const body = await readBody(request([Buffer.from("ab"), Buffer.from("cd")]), 10, undefined);
    expect(body.toString()).toBe("abcd");
    expect((await readBody(request([gzipSync("hello")]), 100, "gzip")).toString()).toBe("hello");
  });

  it("refuses a body over the limit, declared or sent, naming the setting", async () => {
    await expect(
      readBody(request([Buffer.from("x")], { "content-length": "100" }), 10, undefined),
    ).rejects.toThrow(/than the 10 bytes this server accepts \(MAX_REQUEST_BYTES\)$/);
    await expect(
      readBody(request([Buffer.alloc(6), Buffer.alloc(6)]), 10, undefined),
    ).rejects.toThrow(PayloadTooLargeError);
    await expect(readBody(request([gzipSync(Buffer.alloc(1000))]), 100, "gzip")).rejects.toThrow(
      /^inflated request body is larger/,
    );
  });

  it("refuses an encoding it does not read, naming content-encoding", async () => {
    await expect(readBody(request([Buffer.from("x")]), 10, "zstd")).rejects.toThrow(
      /^content-encoding: unsupported encoding "zstd"$/,
    );
  });
});

describe("parseJsonBody", () => {
  it("parses JSON, reads an empty body as nothing, and names malformed JSON", () => {
    expect(parseJsonBody(Buffer.from('{"a": 1}'))).toEqual({ a: 1 });
    expect(parseJsonBody(Buffer.alloc(0))).toBeUndefined();
    expect(() => parseJsonBody(Buffer.from("{"))).toThrow(/^body: malformed JSON/);
  });
});
