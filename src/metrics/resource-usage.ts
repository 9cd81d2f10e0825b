/**
 * Resource usage of this process: CPU (percent of one core, between two readings), resident
 * memory, and GPU utilisation from `nvidia-smi` when the machine has it (never made up: absent
 * otherwise).
 */
import { execFile } from "node:child_process";

/** One reading. */
export interface ResourceReading {
  readonly cpuUsagePercent: number;
  readonly memoryUsageMb: number;
  /** Mean utilisation over the GPUs, percent; undefined without nvidia-smi. */
  readonly gpuUsagePercent: number | undefined;
}

/** Reads resource usage; `close()` stops the GPU poller. */
export interface ResourceMonitor {
  read(): ResourceReading;
  close(): void;
}

/** Options of {@link createResourceMonitor}. */
export interface ResourceMonitorOptions {
  /** How often nvidia-smi is asked, ms. @defaultValue 5000 */
  readonly gpuPollMs?: number;
  /** The nvidia-smi command. @defaultValue "nvidia-smi" */
  readonly nvidiaSmi?: string;
}

/** Starts the monitor; the GPU poller runs only if the first nvidia-smi call succeeds. */
export function createResourceMonitor(options: ResourceMonitorOptions = {}): ResourceMonitor {
  let lastCpu = process.cpuUsage();
  let lastAt = performance.now();
  let cpuPercent = 0;
  let gpu: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const command = options.nvidiaSmi ?? "nvidia-smi";
  const poll = (first: boolean) =>
    execFile(
      command,
      ["--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
      { timeout: 2000 },
      (error, stdout) => {
        const values = error
          ? []
          : stdout
              .split("\n")
              .map(Number)
              .filter((v) => Number.isFinite(v) && stdout.trim() !== "");
        gpu = values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length;
        if (first && values.length > 0) {
          timer = setInterval(() => poll(false), options.gpuPollMs ?? 5000);
          timer.unref();
        }
      },
    );
  poll(true);
  return {
    read() {
      const now = performance.now();
      // Readings closer than a second apart reuse the last CPU figure (too short to be meaningful).
      if (now - lastAt >= 1000) {
        const used = process.cpuUsage(lastCpu);
        cpuPercent = ((used.user + used.system) / 1000 / (now - lastAt)) * 100;
        lastCpu = process.cpuUsage();
        lastAt = now;
      }
      return {
        cpuUsagePercent: cpuPercent,
        memoryUsageMb: process.memoryUsage.rss() / (1024 * 1024),
        gpuUsagePercent: gpu,
      };
    },
    close() {
      clearInterval(timer);
    },
  };
}
