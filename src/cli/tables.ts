/** The CLI's tables: batches and models as padded columns, printed on a terminal. */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { BatchStatus, ModelInfo } from "../../gen/batchprocessor/v1/batch_processor_pb.js";

/** Whether to print a table: on a terminal, unless `--json`. */
export function asTable(json: boolean | undefined): boolean {
  return process.stdout.isTTY === true && json !== true;
}

/** Rows with a header row first, printed as columns padded to their widest cell. */
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, k) => {
      widths[k] = Math.max(widths[k] ?? 0, cell.length);
    });
  const lines = rows.map((row) =>
    row.map((cell, k) => (k === row.length - 1 ? cell : cell.padEnd(widths[k] ?? 0))).join("  "),
  );
  process.stdout.write(`${lines.join("\n")}\n`);
}

export function batchRows(batches: readonly BatchStatus[]): string[][] {
  return [
    ["BATCH", "STATUS", "PROGRESS", "ITEMS", "FAILED", "PRIORITY", "MODEL", "CREATED"],
    ...batches.map((b) => [
      b.batchId,
      b.status,
      `${Math.round(b.progress * 100)}%`,
      `${b.completedRequests}/${b.totalRequests}`,
      String(b.failedRequests),
      b.priority,
      b.modelId,
      b.createdAt === undefined ? "" : timestampDate(b.createdAt).toISOString(),
    ]),
  ];
}

export function modelRows(models: readonly ModelInfo[]): string[][] {
  const tensors = (list: ModelInfo["inputs"]) =>
    list.map((t) => `${t.name} ${t.datatype}[${t.shape.join(",")}]`).join(" ");
  return [
    ["MODEL", "VERSION", "STATE", "INPUTS", "OUTPUTS", "PROVIDER"],
    ...models.map((m) => [
      m.name,
      m.version || "-",
      m.available ? "ready" : `unavailable: ${m.reason ?? ""}`,
      tensors(m.inputs),
      tensors(m.outputs),
      m.executionProvider || "-",
    ]),
  ];
}
