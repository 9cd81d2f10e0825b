import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../../src/engine/index.js";
import { END_STREAM_FLAG, TRAILERS_FLAG } from "../../../src/wire/envelope.js";
import {
  codeName,
  connectEndStream,
  connectErrorJson,
  connectHttpStatus,
  grpcWebTrailers,
  rpcFormatOf,
  timeoutMsOf,
} from "../../../src/wire/rpc-protocols.js";

const failure = () => {
  const error = new ConnectError("queue full: 10 items wait", Code.ResourceExhausted);
  error.metadata.set("retry-after", "2");
  return error;
};

describe("rpcFormatOf", () => {
  it("reads Connect unary types for unary methods and Connect streaming types for streaming ones", () => {
    expect(rpcFormatOf("application/json", false)).toMatchObject({
      protocol: "connect",
      json: true,
      enveloped: false,
    });
    expect(rpcFormatOf("application/json; charset=utf-8", false)?.json).toBe(true);
    expect(rpcFormatOf("application/proto", false)).toMatchObject({
      json: false,
      enveloped: false,
    });
    expect(rpcFormatOf("application/connect+proto", true)).toMatchObject({
      protocol: "connect",
      enveloped: true,
      encodingHeader: "connect-content-encoding",
    });
    expect(rpcFormatOf("application/connect+proto", false)).toBeUndefined();
    expect(rpcFormatOf("application/json", true)).toBeUndefined();
  });

  it("reads gRPC-Web for every method, proto by default, and nothing else", () => {
    for (const streaming of [false, true]) {
      expect(rpcFormatOf("application/grpc-web", streaming)).toMatchObject({
        protocol: "grpc-web",
        json: false,
        responseType: "application/grpc-web+proto",
        timeoutHeader: "grpc-timeout",
      });
      expect(rpcFormatOf("application/grpc-web+json", streaming)?.json).toBe(true);
    }
    expect(rpcFormatOf("application/grpc-web-text", false)).toBeUndefined();
    expect(rpcFormatOf("text/plain", false)).toBeUndefined();
    expect(rpcFormatOf(undefined, false)).toBeUndefined();
  });
});

describe("timeoutMsOf", () => {
  const connect = rpcFormatOf("application/json", false) as NonNullable<
    ReturnType<typeof rpcFormatOf>
  >;
  const web = rpcFormatOf("application/grpc-web", false) as typeof connect;

  it("reads Connect's milliseconds and gRPC's units", () => {
    expect(timeoutMsOf(connect, undefined)).toBeUndefined();
    expect(timeoutMsOf(connect, "1500")).toBe(1500);
    expect(timeoutMsOf(web, "2S")).toBe(2000);
    expect(timeoutMsOf(web, "3M")).toBe(180_000);
    expect(timeoutMsOf(web, "500u")).toBe(0.5);
  });

  it("refuses a malformed value naming the header", () => {
    expect(() => timeoutMsOf(connect, "soon")).toThrow(InvalidInputError);
    expect(() => timeoutMsOf(connect, "12345678901")).toThrow(/^connect-timeout-ms: /);
    expect(() => timeoutMsOf(web, "5")).toThrow(/^grpc-timeout: expected at most 8 digits/);
  });
});

describe("answers' ends", () => {
  it("writes a Connect error as JSON with the HTTP status of its code", () => {
    expect(connectErrorJson(failure())).toEqual({
      code: "resource_exhausted",
      message: "queue full: 10 items wait",
    });
    expect(connectHttpStatus(failure())).toBe(429);
    expect(connectHttpStatus(new ConnectError("x", Code.FailedPrecondition))).toBe(400);
    expect(connectHttpStatus(new ConnectError("x", Code.Unauthenticated))).toBe(401);
    expect(codeName(Code.DeadlineExceeded)).toBe("deadline_exceeded");
  });

  it("ends a Connect stream with its end-of-stream message, the failure's metadata in it", () => {
    const ok = connectEndStream();
    expect(ok[0]).toBe(END_STREAM_FLAG);
    expect(JSON.parse(ok.subarray(5).toString())).toEqual({});
    const failed = connectEndStream(failure());
    expect(failed.readUInt32BE(1)).toBe(failed.length - 5);
    expect(JSON.parse(failed.subarray(5).toString())).toEqual({
      error: { code: "resource_exhausted", message: "queue full: 10 items wait" },
      metadata: { "retry-after": ["2"] },
    });
  });

  it("ends a gRPC-Web call with trailers: the status, the message percent-encoded, the metadata", () => {
    const ok = grpcWebTrailers();
    expect(ok[0]).toBe(TRAILERS_FLAG);
    expect(ok.subarray(5).toString()).toBe("grpc-status: 0\r\n");
    const failed = grpcWebTrailers(failure());
    expect(failed.subarray(5).toString()).toBe(
      "retry-after: 2\r\ngrpc-status: 8\r\ngrpc-message: queue%20full%3A%2010%20items%20wait\r\n",
    );
  });
});
