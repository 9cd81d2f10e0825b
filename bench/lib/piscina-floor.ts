/**
 * The pool floor: the round trip of a trivial task through a bare Piscina pool, sequential, p50
 * in ms. (The gRPC floor is `bench/echo-server.ts`, driven by the load generator like the server.)
 */
import { Piscina } from "piscina";

function p50(samples: number[]): number {
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

/** Sequential round trips of a trivial task through a one-thread Piscina pool. */
export async function piscinaFloor(calls = 5000): Promise<number> {
  const pool = new Piscina({
    filename: new URL("../piscina-echo-worker.mjs", import.meta.url).href,
    minThreads: 1,
    maxThreads: 1,
    atomics: "sync",
  });
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await pool.run(i);
    if (i >= calls / 10) samples.push(performance.now() - started);
  }
  await pool.destroy();
  return p50(samples);
}
