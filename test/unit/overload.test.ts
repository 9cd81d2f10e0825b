import { describe, expect, it } from "vitest";
import { createOverloadGuard } from "../../src/api/overload.js";
import { OverloadedError } from "../../src/engine/index.js";

function guard(maxRequestsInFlight: number, maxEventLoopDelayMs: number) {
  let lag = 0;
  const g = createOverloadGuard({
    maxRequestsInFlight,
    maxEventLoopDelayMs,
    eventLoopDelay: { current: () => lag, stop() {} },
  });
  return {
    g,
    setLag: (ms: number) => {
      lag = ms;
    },
  };
}

describe("createOverloadGuard", () => {
  it("admits unary calls up to the cap, refuses the next with a retry hint, and frees a slot on release", () => {
    const { g } = guard(2, 0);
    const first = g.enter(false);
    g.enter(false);
    expect(g.inFlight).toBe(2);
    let refused: unknown;
    try {
      g.enter(false);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(OverloadedError);
    expect((refused as OverloadedError).code).toBe("RESOURCE_EXHAUSTED");
    expect((refused as OverloadedError).retryAfterMs).toBe(1000);
    expect((refused as Error).message).toMatch(/2 requests in flight \(MAX_REQUESTS_IN_FLIGHT\)/);
    first();
    first(); // releasing twice frees one slot only
    expect(g.inFlight).toBe(1);
    expect(() => g.enter(false)).not.toThrow();
  });

  it("does not count streams against the cap", () => {
    const { g } = guard(1, 0);
    g.enter(false);
    expect(() => g.enter(true)).not.toThrow();
    expect(() => g.enter(false)).toThrow(OverloadedError);
  });

  it("refuses every call, streams too, while the event loop runs late past the bound", () => {
    const { g, setLag } = guard(0, 100);
    setLag(99);
    g.enter(false)();
    setLag(150);
    expect(() => g.enter(false)).toThrow(
      /event loop runs 150 ms late \(MAX_EVENT_LOOP_DELAY_MS is 100\)/,
    );
    expect(() => g.enter(true)).toThrow(OverloadedError);
    setLag(10);
    expect(() => g.enter(true)).not.toThrow();
  });

  it("turns each check off with 0", () => {
    const { g, setLag } = guard(0, 0);
    setLag(10_000);
    for (let i = 0; i < 100; i++) g.enter(false);
    expect(g.inFlight).toBe(100);
  });
});
