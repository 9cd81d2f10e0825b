/**
 * What another process uses, read from Linux's /proc: CPU time per thread (so the report can say
 * how busy the server's main thread was, apart from its inference threads) and resident memory.
 * Elsewhere these read as undefined and the report says "n/a".
 */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU seconds used so far by each thread of `pid` (thread id → seconds). */
function threadCpuSeconds(pid: number): Map<number, number> | undefined {
  try {
    const out = new Map<number, number>();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      // Fields after the command name (which may contain spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      out.set(Number(tid), ticks / TICKS_PER_SECOND);
    }
    return out;
  } catch {
    return undefined;
  }
}

/** CPU a process used over a window, percent of one core. */
export interface CpuUse {
  /** The main thread (the event loop). */
  readonly mainPercent: number;
  /** Every thread together: main, inference threads, GC and libuv helpers. */
  readonly totalPercent: number;
}

/** Starts measuring `pid`'s CPU; the returned function ends the window and reports it. */
export function measureCpu(pid: number): () => CpuUse | undefined {
  const before = threadCpuSeconds(pid);
  const started = performance.now();
  return () => {
    const after = threadCpuSeconds(pid);
    if (before === undefined || after === undefined) return undefined;
    const seconds = (performance.now() - started) / 1000;
    let total = 0;
    for (const [tid, used] of after) total += used - (before.get(tid) ?? 0);
    const main = (after.get(pid) ?? 0) - (before.get(pid) ?? 0);
    return { mainPercent: (main / seconds) * 100, totalPercent: (total / seconds) * 100 };
  };
}

/** Resident set size of `pid`, bytes. */
export function rssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}
