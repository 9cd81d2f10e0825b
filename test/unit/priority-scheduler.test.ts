import { describe, expect, it } from "vitest";
import { PRIORITIES, type Priority } from "../../src/engine/index.js";
import {
  PriorityScheduler,
  type SchedulableItem,
} from "../../src/engine/scheduling/priority-scheduler.js";
import { RankTree } from "../../src/engine/scheduling/rank-tree.js";

interface Item extends SchedulableItem {
  readonly id: number;
}

let seq = 0;
function item(priority: Priority, deadline = 1e12, group: object = {}): Item {
  const id = seq++;
  return { id, priority, deadline, seq: id, arrival: id, group, queued: false };
}

function backlogged(weights: Record<Priority, number>, perClass: number) {
  const s = new PriorityScheduler<Item>(() => weights);
  for (let i = 0; i < perClass; i++) for (const p of PRIORITIES) s.push(item(p));
  return s;
}

describe("PriorityScheduler", () => {
  const weightSets: Record<Priority, number>[] = [
    { critical: 1.0, high: 0.8, normal: 0.5, low: 0.2 },
    { critical: 1, high: 1, normal: 1, low: 1 },
    { critical: 8, high: 4, normal: 2, low: 1 },
    { critical: 0.05, high: 0.1, normal: 0.3, low: 0.55 },
  ];

  for (const weights of weightSets) {
    it(`gives each backlogged class its weight share over 10,000 dispatches (${JSON.stringify(weights)})`, () => {
      const s = backlogged(weights, 20_000);
      const served: Record<Priority, number> = { critical: 0, high: 0, normal: 0, low: 0 };
      let dispatched = 0;
      while (dispatched < 10_000) {
        for (const it of s.take(7)) served[it.priority]++;
        dispatched += 7;
      }
      const total = PRIORITIES.reduce((a, p) => a + weights[p], 0);
      for (const p of PRIORITIES) {
        const share = served[p] / dispatched;
        expect(Math.abs(share - weights[p] / total), `${p}: ${share}`).toBeLessThan(0.05);
      }
    });
  }

  it("keeps the weight shares when online classes take batches of their own", () => {
    const weights = { critical: 1.0, high: 0.8, normal: 0.5, low: 0.2 };
    const online = (p: Priority) => p === "critical" || p === "high";
    const s = backlogged(weights, 20_000);
    const served: Record<Priority, number> = { critical: 0, high: 0, normal: 0, low: 0 };
    let dispatched = 0;
    let onlineBatches = 0;
    while (dispatched < 10_000) {
      const batch = s.take(16, false, online);
      if (online(batch[0]?.priority as Priority)) {
        onlineBatches++;
        // A batch an online class leads holds online items only.
        expect(batch.every((i) => online(i.priority))).toBe(true);
      }
      for (const i of batch) served[i.priority]++;
      dispatched += batch.length;
    }
    expect(onlineBatches).toBeGreaterThan(0);
    const total = PRIORITIES.reduce((a, p) => a + weights[p], 0);
    for (const p of PRIORITIES) {
      const share = served[p] / dispatched;
      expect(Math.abs(share - weights[p] / total), `${p}: ${share}`).toBeLessThan(0.05);
    }
  });

  it("never starves a class with a weight above 0, even at 1/1000 of the others", () => {
    const s = backlogged({ critical: 1000, high: 1000, normal: 1000, low: 1 }, 5000);
    const first = s.take(4000);
    expect(first.some((i) => i.priority === "low")).toBe(true);
  });

  it("serves a class with weight 0 only when every weighted class is empty", () => {
    const s = new PriorityScheduler<Item>(() => ({ critical: 1, high: 1, normal: 1, low: 0 }));
    s.push(item("low"));
    s.push(item("normal"));
    s.push(item("critical"));
    expect(s.take(3).map((i) => i.priority)).toEqual(["critical", "normal", "low"]);
  });

  it("orders a class by earliest deadline, then arrival", () => {
    const s = new PriorityScheduler<Item>(() => ({ critical: 1, high: 1, normal: 1, low: 1 }));
    const late = item("normal", 500);
    const early = item("normal", 100);
    const sameA = item("normal", 300);
    const sameB = item("normal", 300);
    for (const i of [late, sameA, early, sameB]) s.push(i);
    expect(s.take(4).map((i) => i.id)).toEqual([early.id, sameA.id, sameB.id, late.id]);
  });

  it("does not let a class bank credit while it was empty", () => {
    const s = new PriorityScheduler<Item>(() => ({ critical: 1, high: 1, normal: 1, low: 1 }));
    for (let i = 0; i < 100; i++) s.push(item("critical"));
    s.take(50);
    for (let i = 0; i < 100; i++) s.push(item("low"));
    const next = s.take(20);
    const lows = next.filter((i) => i.priority === "low").length;
    expect(lows).toBeGreaterThanOrEqual(9);
    expect(lows).toBeLessThanOrEqual(11);
  });

  it("skips removed items and keeps its counts right", () => {
    const s = new PriorityScheduler<Item>(() => ({ critical: 1, high: 1, normal: 1, low: 1 }));
    const a = item("high");
    const b = item("high");
    s.push(a);
    s.push(b);
    expect(s.remove(a)).toBe(true);
    expect(s.remove(a)).toBe(false);
    expect(s.size).toBe(1);
    expect(s.countOf("high")).toBe(1);
    expect(s.take(5)).toEqual([b]);
    expect(s.size).toBe(0);
  });

  it("takes only one request's items when asked not to merge", () => {
    const s = new PriorityScheduler<Item>(() => ({ critical: 1, high: 1, normal: 1, low: 1 }));
    const g1 = {};
    const g2 = {};
    for (let i = 0; i < 3; i++) s.push(item("normal", 1000, g1));
    for (let i = 0; i < 3; i++) s.push(item("normal", 1000, g2));
    expect(s.take(10, true).every((i) => i.group === g1)).toBe(true);
    expect(s.take(2, true).every((i) => i.group === g2)).toBe(true);
    expect(s.size).toBe(1);
  });

  it("holds no more than it must of a queue that never empties while items leave out of order", () => {
    const s = new PriorityScheduler<Item>(() => ({ critical: 1, high: 1, normal: 1, low: 1 }));
    // One early item stays at the head of the arrival order while 100,000 later ones, each with
    // an earlier deadline, come and go: the queue never empties.
    const straggler = item("low", 1e13);
    s.push(straggler);
    for (let round = 0; round < 1000; round++) {
      for (let k = 0; k < 100; k++) s.push(item("low", 1e12 - round));
      expect(s.take(100).includes(straggler)).toBe(false);
    }
    expect(s.size).toBe(1);
    expect(s.oldestArrival()).toBe(straggler.arrival);
    expect(s.arrivalEntries).toBeLessThanOrEqual(2 * s.size + 1024 + 100);
  });

  it("reports the oldest arrival and the earliest deadline among waiting items", () => {
    const s = new PriorityScheduler<Item>(() => ({ critical: 1, high: 1, normal: 1, low: 1 }));
    expect(s.oldestArrival()).toBe(Number.POSITIVE_INFINITY);
    const a = item("low", 900);
    const b = item("high", 400);
    s.push(a);
    s.push(b);
    expect(s.oldestArrival()).toBe(a.arrival);
    expect(s.earliestDeadline()).toBe(400);
    s.remove(a);
    expect(s.oldestArrival()).toBe(b.arrival);
  });

  it("predicts an item's position as the number of items dispatched before it", () => {
    const weights = { critical: 1.0, high: 0.8, normal: 0.5, low: 0.2 };
    const s = new PriorityScheduler<Item>(() => weights);
    const all: Item[] = [];
    for (let i = 0; i < 200; i++) for (const p of PRIORITIES) all.push(item(p));
    for (const i of all) s.push(i);
    const probes = [all[41], all[402], all[799], all[3]] as Item[];
    const predicted = probes.map((p) => s.positionOf(p));
    const order = s.take(all.length).map((i) => i.id);
    probes.forEach((p, k) => {
      const actual = order.indexOf(p.id);
      expect(
        Math.abs((predicted[k] as number) - actual),
        `${p.priority} #${p.id}`,
      ).toBeLessThanOrEqual(4);
    });
  });

  it("answers positions in O(log n) that equal the count over every waiting item, on random queues", () => {
    // A seeded generator: the same queues on every run.
    let state = 42;
    const random = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
    const weights = { critical: 1.0, high: 0.8, normal: 0.5, low: 0.2 };
    for (let round = 0; round < 20; round++) {
      const s = new PriorityScheduler<Item>(() => weights);
      const pushed: Item[] = [];
      for (let step = 0; step < 400; step++) {
        const roll = random();
        if (roll < 0.6) {
          const p = PRIORITIES[Math.floor(random() * 4)] as Priority;
          // Few deadlines, so that many items tie on one and order by arrival.
          const it = item(p, 1e12 + Math.floor(random() * 5));
          s.push(it);
          pushed.push(it);
        } else if (roll < 0.8) s.take(1 + Math.floor(random() * 6));
        else {
          const victim = pushed[Math.floor(random() * pushed.length)];
          if (victim !== undefined) s.remove(victim);
        }
      }
      // The oracle: the count positions were read with before, over every waiting item.
      const waiting = pushed.filter((i) => i.queued);
      for (const it of waiting) {
        const ahead = waiting.filter(
          (o) =>
            o.priority === it.priority &&
            (o.deadline < it.deadline || (o.deadline === it.deadline && o.seq < it.seq)),
        ).length;
        expect(s.aheadInClass(it), `round ${round}, item ${it.id}`).toBe(ahead);
      }
      // And the count positions are made of: the items of each class that take their turn.
      const first = waiting[0];
      if (first !== undefined) {
        const classes = new Set(waiting.map((i) => i.priority));
        expect(s.positionOf(first)).toBeGreaterThanOrEqual(s.aheadInClass(first));
        if (classes.size === 1) expect(s.positionOf(first)).toBe(s.aheadInClass(first));
      }
    }
  });

  it("keeps a rank tree's order and counts through inserts, deletes and shifts, against a sorted list", () => {
    let state = 7;
    const random = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
    const tree = new RankTree<number>((a, b) => a < b);
    const held: number[] = [];
    for (let step = 0; step < 5000; step++) {
      const value = Math.floor(random() * 100_000);
      const roll = random();
      if (roll < 0.6 && !held.includes(value)) {
        tree.insert(value);
        held.push(value);
      } else if (roll < 0.7 && held.length > 0) {
        const least = Math.min(...held);
        expect(tree.first()).toBe(least);
        expect(tree.shift()).toBe(least);
        held.splice(held.indexOf(least), 1);
      } else if (held.length > 0) {
        const k = Math.floor(random() * held.length);
        expect(tree.delete(held[k] as number)).toBe(true);
        held.splice(k, 1);
      }
      expect(tree.delete(-1)).toBe(false);
    }
    expect(tree.size).toBe(held.length);
    expect(tree.first()).toBe(Math.min(...held));
    for (const probe of [0, 50_000, 99_999, ...held.slice(0, 50)])
      expect(tree.rank(probe)).toBe(held.filter((v) => v < probe).length);
  });
});
