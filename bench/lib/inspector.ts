/**
 * The profiles of another Node process, taken through its inspector (the process started with
 * `--inspect=127.0.0.1:<port>`): a CPU profile of its main thread, and a sampling heap profile
 * that counts what was allocated, collected or not, so that the garbage a request leaves shows.
 */
import WebSocket from "ws";

/** A call frame as the inspector writes it. */
export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

/** `Profiler.stop`'s profile. */
export interface CpuProfile {
  readonly nodes: readonly { id: number; callFrame: CallFrame; children?: number[] }[];
  readonly samples: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

/** `HeapProfiler.stopSampling`'s profile. */
export interface HeapNode {
  readonly callFrame: CallFrame;
  readonly selfSize: number;
  readonly children: readonly HeapNode[];
}

/** A connection to one process's inspector. */
export interface Inspector {
  send(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): void;
}

/** Connects to the inspector listening on `port`. */
export async function connectInspector(port: number): Promise<Inspector> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`no inspector target on port ${port}`);
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  const pending = new Map<number, (reply: { result?: Record<string, unknown> }) => void>();
  socket.on("message", (data: Buffer) => {
    const reply = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown> };
    if (reply.id === undefined) return;
    pending.get(reply.id)?.(reply);
    pending.delete(reply.id);
  });
  let next = 0;
  return {
    send(method, params = {}) {
      const id = ++next;
      return new Promise((resolve) => {
        pending.set(id, (reply) => resolve(reply.result ?? {}));
        socket.send(JSON.stringify({ id, method, params }));
      });
    },
    close: () => socket.close(),
  };
}

/** Starts a CPU profile sampled every `intervalUs`; the returned function stops it. */
export async function startCpuProfile(
  inspector: Inspector,
  intervalUs = 500,
): Promise<() => Promise<CpuProfile>> {
  await inspector.send("Profiler.enable");
  await inspector.send("Profiler.setSamplingInterval", { interval: intervalUs });
  await inspector.send("Profiler.start");
  return async () => (await inspector.send("Profiler.stop")).profile as CpuProfile;
}

/**
 * Starts sampling allocations (one sample per `intervalBytes` on average), those the collector
 * has freed since included; the returned function stops it.
 */
export async function startHeapSampling(
  inspector: Inspector,
  intervalBytes = 4096,
): Promise<() => Promise<HeapNode>> {
  await inspector.send("HeapProfiler.enable");
  await inspector.send("HeapProfiler.startSampling", {
    samplingInterval: intervalBytes,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return async () =>
    ((await inspector.send("HeapProfiler.stopSampling")).profile as { head: HeapNode }).head;
}

/**
 * Where code comes from, for grouping: this server's own modules by directory (`ours: engine`),
 * a package (`@grpc/grpc-js`), Node's internals (`node`), or what V8 names (`(garbage collector)`).
 */
export function originOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (module !== null) return module[1] as string;
  if (url.startsWith("node:")) return "node";
  const own = /\/dist\/src\/(?:([^/]+)\/)?/.exec(url);
  return own === null ? url : `ours: ${own[1] ?? "."}`;
}

/** `functionName file:line`, the file relative to the project or the package. */
export function placeOf(frame: CallFrame): string {
  const file = frame.url.includes("node_modules/")
    ? frame.url.replace(/.*node_modules\//, "")
    : frame.url.replace(/.*\/dist\//, "");
  return `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
}
