import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../../src/engine/index.js";
import { COMPRESSED_FLAG, envelope, unenvelope } from "../../../src/wire/envelope.js";
import { PayloadTooLargeError } from "../../../src/wire/errors.js";

describe("envelopes", () => {
  it("frames a message with its flags and length, and reads it back", async () => {
    const framed = envelope(0, Buffer.from("hello"));
    expect([...framed.subarray(0, 5)]).toEqual([0, 0, 0, 0, 5]);
    expect((await unenvelope(framed, undefined, 1024)).toString()).toBe("hello");
  });

  it("inflates a message flagged compressed with the encoding the request names", async () => {
    const framed = envelope(COMPRESSED_FLAG, gzipSync("hello"));
    expect((await unenvelope(framed, "gzip", 1024)).toString()).toBe("hello");
    await expect(unenvelope(framed, "zstd", 1024)).rejects.toThrow(
      /^body: message is compressed with unsupported "zstd"$/,
    );
    const bomb = envelope(COMPRESSED_FLAG, gzipSync(Buffer.alloc(100_000)));
    await expect(unenvelope(bomb, "gzip", 1024)).rejects.toThrow(PayloadTooLargeError);
  });

  it("refuses anything but exactly one whole message", async () => {
    await expect(unenvelope(Buffer.from([0, 0]), undefined, 1024)).rejects.toThrow(
      InvalidInputError,
    );
    const two = Buffer.concat([envelope(0, Buffer.from("a")), envelope(0, Buffer.from("b"))]);
    await expect(unenvelope(two, undefined, 1024)).rejects.toThrow(/exactly one enveloped message/);
    const short = envelope(0, Buffer.from("abc")).subarray(0, 6);
    await expect(unenvelope(short, undefined, 1024)).rejects.toThrow(/exactly one/);
  });
});
