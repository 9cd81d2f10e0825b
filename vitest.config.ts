import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Integration suites start worker threads and child processes; two cores run them best one file at a time.
    fileParallelism: false,
  },
});
