import { gunzipSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { acceptsGzip, gzipped, inflated, inflaterOf } from "../../../src/wire/compression.js";
import { PayloadTooLargeError } from "../../../src/wire/errors.js";

describe("compression", () => {
  it("reads whether a client takes gzip back from its accept-encoding list", () => {
    expect(acceptsGzip("gzip")).toBe(true);
    expect(acceptsGzip("br, gzip;q=0.5")).toBe(true);
    expect(acceptsGzip("GZIP")).toBe(true);
    expect(acceptsGzip("gzip;q=0")).toBe(false);
    expect(acceptsGzip("br, deflate")).toBe(false);
    expect(acceptsGzip(undefined)).toBe(false);
  });

  it("gzips an answer that gunzips to itself", async () => {
    const bytes = Buffer.from("x".repeat(5000));
    expect(gunzipSync(await gzipped(bytes))).toEqual(bytes);
  });

  it("inflates what it reads, up to the limit, and names the header of an unknown encoding", async () => {
    expect(inflaterOf(undefined, "content-encoding")).toBeUndefined();
    expect(inflaterOf("identity", "content-encoding")).toBeUndefined();
    expect(() => inflaterOf("zstd", "grpc-encoding")).toThrow(
      /^grpc-encoding: unsupported encoding "zstd"$/,
    );
    const gunzip = inflaterOf("gzip", "content-encoding") as NonNullable<
      ReturnType<typeof inflaterOf>
    >;
    expect((await inflated(gunzip, gzipSync("hi"), 10)).toString()).toBe("hi");
    await expect(inflated(gunzip, gzipSync(Buffer.alloc(100)), 10)).rejects.toThrow(
      PayloadTooLargeError,
    );
    await expect(inflated(gunzip, Buffer.from("plain"), 10)).rejects.toThrow(
      /^body: could not be inflated/,
    );
  });
});
