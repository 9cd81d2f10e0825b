/**
 * Drives a server with h2load (nghttp2's load generator, written in C): it sends one pre-encoded
 * body over and over on many streams and costs far less CPU per request than a Node client, so on
 * a small machine the server, not the generator, sets the pace. h2load sees HTTP statuses only;
 * gRPC's outcome is in trailers, so callers count outcomes from the server's own counters.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CpuUse, measureCpu } from "./proc.js";

/** One h2load run. */
export interface H2loadSpec {
  readonly url: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  /** Connections. */
  readonly clients: number;
  /** Concurrent streams per connection (1 for HTTP/1.1). */
  readonly streams: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** HTTP/1.1 instead of HTTP/2 (cleartext, prior knowledge). */
  readonly h1?: boolean;
  /** Processes whose CPU is measured over the same window as the requests (after warm-up). */
  readonly watch?: readonly number[];
  /** Called as the measured window opens and closes (e.g. to read the server's counters). */
  readonly onWindow?: (edge: "start" | "end") => Promise<void>;
}

/** What one run measured. */
export interface H2loadResult {
  /** Requests completed over h2load's own run (the window and a second), those with a 2xx. */
  readonly requests: number;
  readonly succeeded: number;
  /** Requests per second over h2load's run: over the window, the rate times its seconds. */
  readonly requestsPerSecond: number;
  readonly meanMs: number;
  /** CPU over the measured window: h2load's own, then each watched process's. */
  readonly generatorCpu: CpuUse | undefined;
  readonly watchedCpu: readonly (CpuUse | undefined)[];
}

/** A gRPC message as sent on the wire: 1 byte "not compressed", 4 bytes length, the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** Runs h2load as `spec` says. */
export async function h2load(spec: H2loadSpec): Promise<H2loadResult> {
  const dir = mkdtempSync(join(tmpdir(), "bp-h2load-"));
  const bodyFile = join(dir, "body");
  writeFileSync(bodyFile, spec.body);
  // h2load runs a second past the measured window, so that it is still there to be measured.
  const args = [
    `--duration=${Math.round((spec.seconds + 1) * 1000)}ms`,
    `--warm-up-time=${Math.round(spec.warmupSeconds * 1000)}ms`,
    `--clients=${spec.clients}`,
    `--max-concurrent-streams=${spec.streams}`,
    `--data=${bodyFile}`,
    ...Object.entries(spec.headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]),
    ...(spec.h1 === true ? ["--h1"] : []),
    spec.url,
  ];
  try {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    // The measured window starts after h2load's warm-up, as its own counts do.
    await new Promise((resolve) => setTimeout(resolve, spec.warmupSeconds * 1000));
    await spec.onWindow?.("start");
    const ends = [child.pid, ...(spec.watch ?? [])].map((pid) =>
      pid === undefined ? () => undefined : measureCpu(pid),
    );
    await new Promise((resolve) => setTimeout(resolve, spec.seconds * 1000));
    const [generatorCpu, ...watchedCpu] = ends.map((end) => end());
    await spec.onWindow?.("end");
    const code = await exited;
    if (code !== 0) throw new Error(`h2load exited ${code}: ${out}`);
    return { ...parse(out), generatorCpu, watchedCpu };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parse(
  out: string,
): Pick<H2loadResult, "requests" | "succeeded" | "requestsPerSecond" | "meanMs"> {
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(out);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded/.exec(out);
  const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  if (finished === null || requests === null) throw new Error(`unexpected h2load output: ${out}`);
  const mean = time?.[3] ?? "NaN";
  const meanMs = mean.endsWith("us")
    ? Number.parseFloat(mean) / 1000
    : mean.endsWith("ms")
      ? Number.parseFloat(mean)
      : Number.parseFloat(mean) * 1000;
  return {
    requests: Number(requests[3]),
    succeeded: Number(requests[4]),
    requestsPerSecond: Number(finished[3]),
    meanMs,
  };
}
