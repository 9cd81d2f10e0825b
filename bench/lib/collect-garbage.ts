/**
 * Runs a full garbage collection in another Node process through its inspector (the process
 * started with `--inspect=127.0.0.1:<port>`), so that a memory reading after it holds what is
 * live and what the allocator kept, not garbage waiting for a collection.
 */
import { execFileSync } from "node:child_process";

/** Node 20 has WebSocket behind a flag; the collection runs in a short child with it. */
const CLIENT = `
const socket = new WebSocket(process.argv[1]);
socket.onopen = () => socket.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" }));
socket.onmessage = (event) => {
  if (JSON.parse(event.data).id === 1) { socket.close(); process.exit(0); }
};
socket.onerror = () => process.exit(1);
setTimeout(() => process.exit(2), 30000);
`;

/** Collects garbage in the process whose inspector listens on `port`. */
export async function collectGarbage(port: number): Promise<void> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`no inspector target on port ${port}`);
  execFileSync(process.execPath, ["--experimental-websocket", "-e", CLIENT, url], {
    stdio: "inherit",
  });
}
