import { describe, expect, it } from "vitest";
import { BATCH_STATUSES, IllegalTransitionError } from "../../src/engine/index.js";
import { assertTransition, isTerminal, TRANSITIONS } from "../../src/engine/jobs/job-state.js";

describe("batch state machine", () => {
  const legal = new Set(
    Object.entries(TRANSITIONS).flatMap(([from, tos]) => tos.map((to) => `${from}->${to}`)),
  );

  it("allows exactly queued->processing|failed|cancelled and processing->completed|failed|cancelled", () => {
    expect([...legal].sort()).toEqual(
      [
        "queued->processing",
        "queued->failed",
        "queued->cancelled",
        "processing->completed",
        "processing->failed",
        "processing->cancelled",
      ].sort(),
    );
  });

  for (const from of BATCH_STATUSES) {
    for (const to of BATCH_STATUSES) {
      const key = `${from}->${to}`;
      if (legal.has(key)) {
        it(`accepts ${key}`, () => expect(() => assertTransition(from, to)).not.toThrow());
      } else {
        it(`rejects ${key}`, () =>
          expect(() => assertTransition(from, to)).toThrow(IllegalTransitionError));
      }
    }
  }

  it("marks only completed, failed and cancelled as terminal", () => {
    expect(BATCH_STATUSES.filter(isTerminal)).toEqual(["completed", "failed", "cancelled"]);
  });
});
