/**
 * The load generator: a separate process that drives one scenario against a server and prints
 * one JSON line with what it measured, including its own CPU use (so a report can show it was
 * not the bottleneck).
 * Usage: node --import tsx bench/load-generator.ts '<json LoadSpec>'
 */

import { Agent, request } from "node:http";
import { create, type Message, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { SubmitBatchRequestSchema } from "../gen/batchprocessor/v1/batch_processor_pb.js";
import { grpcServiceDefinition } from "../src/api/grpc-services.js";

/** What to run. */
export interface LoadSpec {
  /** `grpc`: Infer over grpc-js; `rest`: POST …/infer; `naive`: POST /infer on the naive server. */
  readonly target: "grpc" | "rest" | "naive";
  readonly address: string;
  readonly key: string;
  /** Closed-loop clients, each sending its next request when the last one answered. */
  readonly concurrency: number;
  readonly seconds: number;
  /** Warm-up before measuring, seconds. */
  readonly warmupSeconds: number;
  readonly model: string;
  readonly width: number;
  /** Priorities to cycle through per client (client i uses priorities[i % n]). */
  readonly priorities?: readonly string[];
  readonly timeoutMs?: number;
  /** Items in each request. @defaultValue 1 */
  readonly itemsPerRequest?: number;
  /** gRPC: HTTP/2 connections the clients spread over (client i uses connection i mod n). @defaultValue 1 */
  readonly connections?: number;
  /** Open loop: send this many requests per second whatever the answers (closed loop when absent). */
  readonly ratePerSecond?: number;
}

/** What it measured. */
export interface LoadResult {
  readonly requests: number;
  /** Requests answered with an error status (no items at all). */
  readonly errors: number;
  readonly errorCodes: Record<string, number>;
  readonly seconds: number;
  /** Items answered with an output, per second: only these count as served. */
  readonly itemsPerSecond: number;
  /** Items of OK answers, by outcome: with an output, or with an error (failed, expired). */
  readonly items: { readonly ok: number; readonly failed: number };
  /** Items answered with an output within `timeoutMs`, per second (open loop with a timeout). */
  readonly inTimePerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Latency percentiles per priority (when priorities were given). */
  readonly byPriority: Record<string, { requests: number; p50Ms: number; p99Ms: number }>;
  /** This process's CPU time / wall time, percent of one core. */
  readonly generatorCpuPercent: number;
  /** Of the OK answers to requests sent in the window, those that took longer than `timeoutMs`. */
  readonly lateSuccesses: number;
  /** OK answers to requests sent in the window, whenever they came (open loop). */
  readonly answeredOfSent: number;
}

/** A request's answer: an error status, or the count of its items with and without an output. */
type Answer = { readonly code: string } | { readonly code: undefined; ok: number; failed: number };
type Send = (index: number, priority: string) => Promise<Answer>;

/** Counts the items of a decoded answer (gRPC's message or REST's JSON) by outcome. */
function countItems(results: readonly { output?: readonly number[]; error?: unknown }[]): Answer {
  let ok = 0;
  for (const r of results)
    if ((r.output?.length ?? 0) > 0 && (r.error === undefined || r.error === null)) ok++;
  return { code: undefined, ok, failed: results.length - ok };
}

/** `count` items starting at input `first` (wrapping around). */
function itemsOf(inputs: readonly number[][], first: number, count: number): { input: number[] }[] {
  return Array.from({ length: count }, (_, j) => ({
    input: inputs[(first + j) % inputs.length] as number[],
  }));
}

/** Requests are encoded once up front, so the generator spends its time sending, not encoding. */
function grpcSender(spec: LoadSpec, inputs: readonly number[][]): Send {
  const definition = grpcServiceDefinition();
  const infer = definition.infer as grpc.MethodDefinition<Buffer, Message>;
  const passthrough = { ...definition, infer: { ...infer, requestSerialize: (b: Buffer) => b } };
  const Client = grpc.makeGenericClientConstructor(passthrough, "BatchProcessorService");
  type Results = { results: { output: number[]; error?: string }[] };
  type InferClient = {
    infer: (
      req: Buffer,
      md: grpc.Metadata,
      cb: (e: grpc.ServiceError | null, r?: Results) => void,
    ) => void;
  };
  // Each channel gets its own subchannel pool, so `connections` channels are that many HTTP/2
  // connections, as that many separate client processes would open.
  const channels = Array.from(
    { length: Math.max(1, spec.connections ?? 1) },
    () =>
      new Client(spec.address, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
      }) as unknown as InferClient,
  );
  const metadata = new grpc.Metadata();
  metadata.set("x-api-key", spec.key);
  const encoded = new Map<string, Buffer[]>();
  const encode = (priority: string) =>
    inputs.map((_, k) =>
      Buffer.from(
        toBinary(
          SubmitBatchRequestSchema,
          create(SubmitBatchRequestSchema, {
            data: itemsOf(inputs, k, spec.itemsPerRequest ?? 1),
            priority,
            timeoutMs: spec.timeoutMs ?? 0,
            metadata: { model_id: spec.model },
          }),
        ),
      ),
    );
  return (index, priority) => {
    let bodies = encoded.get(priority);
    if (bodies === undefined) {
      bodies = encode(priority);
      encoded.set(priority, bodies);
    }
    const body = bodies[index % bodies.length] as Buffer;
    const client = channels[index % channels.length] as InferClient;
    return new Promise((resolve) =>
      client.infer(body, metadata, (error, response) =>
        resolve(
          error
            ? { code: grpc.status[error.code] ?? String(error.code) }
            : countItems(response?.results ?? []),
        ),
      ),
    );
  };
}

/** HTTP/1.1 with keep-alive sockets (node:http: lighter than fetch), bodies encoded once. */
function httpSender(spec: LoadSpec, inputs: readonly number[][]): Send {
  const path = spec.target === "naive" ? "/infer" : "/api/batch-processor/infer";
  const [host, port] = spec.address.split(":") as [string, string];
  const agent = new Agent({ keepAlive: true, maxSockets: spec.concurrency });
  const encoded = new Map<string, Buffer[]>();
  return (index, priority) => {
    let bodies = encoded.get(priority);
    if (bodies === undefined) {
      bodies = inputs.map((_, k) =>
        Buffer.from(
          JSON.stringify({
            data: itemsOf(inputs, k, spec.itemsPerRequest ?? 1),
            priority,
            timeout_ms: spec.timeoutMs ?? 0,
            metadata: { model_id: spec.model },
          }),
        ),
      );
      encoded.set(priority, bodies);
    }
    const body = bodies[index % bodies.length] as Buffer;
    return new Promise((resolve) => {
      const req = request(
        {
          host,
          port: Number(port),
          path,
          method: "POST",
          agent,
          headers: {
            "content-type": "application/json",
            "content-length": body.length,
            "x-api-key": spec.key,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            if (res.statusCode !== 200) return resolve({ code: String(res.statusCode) });
            try {
              const body = JSON.parse(Buffer.concat(chunks).toString()) as {
                results?: { output?: number[]; error?: string }[];
              };
              resolve(countItems(body.results ?? []));
            } catch {
              resolve({ code: "undecodable answer" });
            }
          });
        },
      );
      req.on("error", (error) => resolve({ code: error.message }));
      req.end(body);
    });
  };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);
}

async function main(spec: LoadSpec): Promise<LoadResult> {
  const inputs = Array.from({ length: 64 }, (_, k) =>
    Array.from({ length: spec.width }, (_, i) => Math.sin(k * spec.width + i)),
  );
  const send = spec.target === "grpc" ? grpcSender(spec, inputs) : httpSender(spec, inputs);
  const priorities = spec.priorities ?? ["normal"];
  const latencies: Record<string, number[]> = {};
  const errorCodes: Record<string, number> = {};
  let measuring = false;
  let stop = false;
  let requests = 0;
  let errors = 0;
  const items = { ok: 0, failed: 0 };
  let inTime = 0;
  /** Counts an answer that arrived in the window; true when it is an OK answer. */
  const count = (answer: Answer): boolean => {
    requests++;
    if (answer.code !== undefined) {
      errors++;
      errorCodes[answer.code] = (errorCodes[answer.code] ?? 0) + 1;
      return false;
    }
    items.ok += answer.ok;
    items.failed += answer.failed;
    return true;
  };
  const client = async (id: number) => {
    const priority = priorities[id % priorities.length] as string;
    let k = id;
    while (!stop) {
      const started = performance.now();
      const answer = await send(k++, priority);
      if (!measuring || !count(answer)) continue;
      const list = latencies[priority] ?? [];
      list.push(performance.now() - started);
      latencies[priority] = list;
    }
  };
  let late = 0;
  let answeredOfSent = 0;
  const openLoop = async () => {
    const interval = 1000 / (spec.ratePerSecond as number);
    const outstanding = new Set<Promise<void>>();
    let next = performance.now();
    let k = 0;
    while (!stop) {
      const now = performance.now();
      if (now < next) {
        await new Promise((r) => setTimeout(r, Math.max(0, next - now)));
        continue;
      }
      next += interval;
      if (outstanding.size >= 20_000) continue;
      const index = k++;
      const priority = priorities[index % priorities.length] as string;
      const started = performance.now();
      const sentInWindow = measuring;
      // Throughput is answers per second: an answer counts when it arrives inside the window (in
      // overload that is what the server serves, not what was offered). Latency is taken from the
      // requests sent inside the window, whenever they are answered.
      const p = send(index, priority).then((answer) => {
        const ms = performance.now() - started;
        if (measuring && count(answer) && (spec.timeoutMs === undefined || ms <= spec.timeoutMs))
          inTime += answer.code === undefined ? answer.ok : 0;
        if (answer.code !== undefined || !sentInWindow) return;
        answeredOfSent++;
        if (spec.timeoutMs !== undefined && ms > spec.timeoutMs) late++;
        const list = latencies[priority] ?? [];
        list.push(ms);
        latencies[priority] = list;
      });
      outstanding.add(p);
      void p.finally(() => outstanding.delete(p));
    }
    // Requests sent in the window still owe their latency; none waits past its timeout for long.
    const grace = (spec.timeoutMs ?? 5000) + 2000;
    await Promise.race([Promise.all(outstanding), new Promise((r) => setTimeout(r, grace))]);
  };
  const clients =
    spec.ratePerSecond === undefined
      ? Array.from({ length: spec.concurrency }, (_, i) => client(i))
      : [openLoop()];
  await new Promise((r) => setTimeout(r, spec.warmupSeconds * 1000));
  const cpu = process.cpuUsage();
  const started = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, spec.seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  stop = true;
  await Promise.all(clients);
  const all = Object.values(latencies)
    .flat()
    .sort((a, b) => a - b);
  const byPriority: LoadResult["byPriority"] = {};
  for (const [p, values] of Object.entries(latencies)) {
    const sorted = [...values].sort((a, b) => a - b);
    byPriority[p] = {
      requests: sorted.length,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
    };
  }
  return {
    requests,
    errors,
    errorCodes,
    seconds: elapsed,
    itemsPerSecond: items.ok / elapsed,
    items,
    inTimePerSecond: inTime / elapsed,
    p50Ms: percentile(all, 50),
    p99Ms: percentile(all, 99),
    byPriority,
    generatorCpuPercent: ((used.user + used.system) / 1000 / (elapsed * 1000)) * 100,
    lateSuccesses: late,
    answeredOfSent,
  };
}

const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;
main(spec).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  },
);
