/**
 * The live stored jobs of a process: a job let go and a newer job of the same batch (taken again)
 * never shadow each other.
 */
import { describe, expect, it } from "vitest";
import { Job } from "../../src/engine/jobs/job.js";
import { LiveJobs } from "../../src/engine/jobs/live-jobs.js";

const job = () =>
  new Job({
    pk: 1,
    batchId: "b1",
    owner: "alice",
    priority: "normal",
    modelId: "default",
    createdAt: 0,
    deadline: 1000,
    timeoutMs: 1000,
    total: 2,
  });

describe("LiveJobs", () => {
  it("keeps a newer job of a batch when an older one of it is let go", () => {
    const live = new LiveJobs();
    const older = job();
    const newer = job();
    live.add(older);
    live.add(newer);
    live.delete(older);
    expect(live.of({ owner: "alice", batchId: "b1" })).toBe(newer);
    expect(live.size).toBe(1);
    live.delete(newer);
    expect(live.of({ owner: "alice", batchId: "b1" })).toBeUndefined();
  });
});
