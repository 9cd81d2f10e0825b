/** `results`: batches' results as JSON Lines, each line an item with its label and outputs. */
import { writeFileSync } from "node:fs";
import { toJson } from "@bufbuild/protobuf";
import type { BatchResults } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { TensorSchema } from "../../gen/batchprocessor/v1/tensor_pb.js";
import type { BatchProcessorClient } from "../client/index.js";
import { JSON_WRITE_OPTIONS } from "../wire/index.js";

/** Writes the batches' results as JSON Lines, batch after batch, each in input order. */
export async function writeResults(
  client: BatchProcessorClient,
  ids: readonly string[],
  output: string | undefined,
): Promise<void> {
  const lines: string[] = [];
  for (const id of ids) lines.push(...resultLines(await client.results(id)));
  const text = lines.length === 0 ? "" : `${lines.join("\n")}\n`;
  if (output === undefined) process.stdout.write(text);
  else {
    writeFileSync(output, text);
    process.stderr.write(`wrote ${lines.length} results to ${output}\n`);
  }
}

function resultLines(results: BatchResults): string[] {
  return results.results.map((r) =>
    JSON.stringify({
      batch_id: results.batchId,
      request_id: r.requestId,
      output: r.output,
      confidence: r.confidence,
      ...(r.label === "" ? {} : { label: r.label }),
      ...(Object.keys(r.outputs).length === 0
        ? {}
        : {
            outputs: Object.fromEntries(
              Object.entries(r.outputs).map(([name, t]) => [
                name,
                toJson(TensorSchema, t, JSON_WRITE_OPTIONS),
              ]),
            ),
          }),
      ...(r.error === undefined ? {} : { error: r.error }),
    }),
  );
}
