import { describe, expect, it } from "vitest";
import { MAX_PASSES, RunOrder } from "../../src/inference/run-order.js";

describe("RunOrder", () => {
  it("runs urgent batches before waiting background ones, each kind in arrival order", () => {
    const order = new RunOrder<string>();
    order.push("b1", false);
    order.push("u1", true);
    order.push("b2", false);
    order.push("u2", true);
    expect([order.shift(), order.shift(), order.shift(), order.shift()]).toEqual([
      "u1",
      "u2",
      "b1",
      "b2",
    ]);
    expect(order.shift()).toBeUndefined();
    expect(order.size).toBe(0);
  });

  it("lets a background batch go once urgent ones passed it MAX_PASSES times", () => {
    const order = new RunOrder<string>();
    order.push("b1", false);
    const ran: string[] = [];
    // A steady stream: one urgent batch arrives before each pick.
    for (let k = 0; k <= MAX_PASSES; k++) {
      order.push(`u${k}`, true);
      ran.push(order.shift() as string);
    }
    expect(ran.slice(0, MAX_PASSES)).toEqual(Array.from({ length: MAX_PASSES }, (_, k) => `u${k}`));
    expect(ran[MAX_PASSES]).toBe("b1");
    expect(order.shift()).toBe(`u${MAX_PASSES}`);
  });
});
