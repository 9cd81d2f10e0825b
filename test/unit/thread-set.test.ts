import { describe, expect, it } from "vitest";
import type { RunTask, WorkerTask } from "../../src/inference/messages.js";
import { ThreadSet, type Threads } from "../../src/inference/threads.js";

/** Threads whose tasks end when the test says so. */
class HeldThreads implements Threads {
  readonly got: string[] = [];
  readonly #pending: (() => void)[] = [];
  ended: "closed" | "destroyed" | undefined;
  constructor(readonly name: string) {}
  run(task: WorkerTask): Promise<unknown> {
    this.got.push(task.kind === "run" ? task.model : task.kind);
    return new Promise((resolve) => this.#pending.push(() => resolve(this.name)));
  }
  /** Ends the oldest task held. */
  finishOne(): void {
    this.#pending.shift()?.();
  }
  async close() {
    this.ended = "closed";
  }
  async destroy() {
    this.ended = "destroyed";
  }
}

const task = (model: string, urgent: boolean): RunTask => ({
  kind: "run",
  model,
  inputs: [],
  named: false,
  urgent,
});

describe("ThreadSet", () => {
  it("runs an urgent batch on a free online thread, and on the regular ones while every online thread is busy", async () => {
    const regular = new HeldThreads("regular");
    const online = new HeldThreads("online");
    const set = new ThreadSet(regular, online, 1);
    const first = set.run(task("u1", true));
    // The one online thread holds u1: the next urgent batch goes to the regular threads.
    const second = set.run(task("u2", true));
    const background = set.run(task("b1", false));
    expect(online.got).toEqual(["u1"]);
    expect(regular.got).toEqual(["u2", "b1"]);
    online.finishOne();
    expect(await first).toBe("online");
    // Free again: the next urgent batch takes it.
    const third = set.run(task("u3", true));
    expect(online.got).toEqual(["u1", "u3"]);
    online.finishOne();
    regular.finishOne();
    regular.finishOne();
    expect(await Promise.all([second, background, third])).toEqual([
      "regular",
      "regular",
      "online",
    ]);
  });

  it("never gives an online thread a background batch or a describe, even when it is free", () => {
    const regular = new HeldThreads("regular");
    const online = new HeldThreads("online");
    const set = new ThreadSet(regular, online, 2);
    void set.run(task("b1", false));
    void set.run({ kind: "describe" });
    expect(online.got).toEqual([]);
    expect(regular.got).toEqual(["b1", "describe"]);
  });

  it("frees an online thread whose batch failed", async () => {
    const regular = new HeldThreads("regular");
    let fail = true;
    const online: Threads = {
      run: () => (fail ? Promise.reject(new Error("the thread ended")) : Promise.resolve("ok")),
      close: async () => undefined,
      destroy: async () => undefined,
    };
    const set = new ThreadSet(regular, online, 1);
    await expect(set.run(task("u1", true))).rejects.toThrow("the thread ended");
    fail = false;
    expect(await set.run(task("u2", true))).toBe("ok");
    expect(regular.got).toEqual([]);
  });

  it("keeps every batch on the regular threads when it has no online ones", () => {
    const regular = new HeldThreads("regular");
    const set = new ThreadSet(regular, undefined, 0);
    void set.run(task("u1", true));
    expect(regular.got).toEqual(["u1"]);
  });

  it("closes and destroys both kinds of threads", async () => {
    const regular = new HeldThreads("regular");
    const online = new HeldThreads("online");
    await new ThreadSet(regular, online, 1).close();
    expect([regular.ended, online.ended]).toEqual(["closed", "closed"]);
    await new ThreadSet(regular, online, 1).destroy();
    expect([regular.ended, online.ended]).toEqual(["destroyed", "destroyed"]);
  });
});
