import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import type { RawLine } from "../../../src/engine/index.js";
import { envelopedMessages, LineSplitter } from "../../../src/wire/index.js";

const texts = (lines: RawLine[]) =>
  lines.map((l) => ("text" in l ? [l.line, l.text] : "malformed" in l ? [l.line, "!"] : [l.line]));

describe("LineSplitter", () => {
  it("numbers lines across pieces split anywhere, skipping blank ones but counting them", () => {
    const s = new LineSplitter(1000);
    const out = [
      ...s.push(Buffer.from('[1,2]\n{"input":')),
      ...s.push(Buffer.from("[3]}\r\n\n   \n[4")),
      ...s.push(Buffer.from("]")),
      ...s.end(),
    ];
    expect(texts(out)).toEqual([
      [1, "[1,2]"],
      [2, '{"input":[3]}\r'],
      [5, "[4]"],
    ]);
    expect(s.lines).toBe(5);
    expect(s.next()).toBe(6);
  });

  it("reports a line longer than the limit without holding it, and goes on", () => {
    const s = new LineSplitter(10);
    const out = [
      ...s.push(Buffer.from("[1]\n[1,2,3,4,5,")),
      ...s.push(Buffer.from("6,7]\n[2]\n")),
      ...s.push(Buffer.from("[1,2,3,4,5,6,7]\n")),
    ];
    expect(texts(out)).toEqual([
      [1, "[1]"],
      [2, "!"],
      [3, "[2]"],
      [4, "!"],
    ]);
  });
});

describe("envelopedMessages", () => {
  it("reads messages split anywhere, inflating compressed ones, and refuses a torn one", async () => {
    const envelope = (flags: number, payload: Buffer) => {
      const head = Buffer.alloc(5);
      head[0] = flags;
      head.writeUInt32BE(payload.length, 1);
      return Buffer.concat([head, payload]);
    };
    const body = Buffer.concat([
      envelope(0, Buffer.from("one")),
      envelope(1, gzipSync(Buffer.from("two"))),
    ]);
    async function* pieces(bytes: Buffer) {
      for (let at = 0; at < bytes.length; at += 3) yield bytes.subarray(at, at + 3);
    }
    const read: string[] = [];
    for await (const m of envelopedMessages(pieces(body), "gzip", 100)) read.push(m.toString());
    expect(read).toEqual(["one", "two"]);
    const torn = envelopedMessages(pieces(body.subarray(0, body.length - 1)), "gzip", 100);
    await expect(
      (async () => {
        for await (const _ of torn);
      })(),
    ).rejects.toThrow(/ends inside an enveloped message/);
  });
});
