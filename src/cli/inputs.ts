/**
 * Reads the items a CLI submit sends: a JSON array of items, or JSON Lines with one item per
 * line. An item is `{"input": [...], "request_id"?: "...", "shape"?: [...]}` or `{"inputs":
 * {"<name>": {"values": [...]}, ...}}` (the API's item) or a bare array of numbers (its input).
 * Errors name the line (or the array element).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ItemSchema } from "../../gen/batchprocessor/v1/batch_processor_pb.js";

/** One item as the client sends it. */
export type ItemInput = MessageInitShape<typeof ItemSchema>;

/** Parses `text` as a JSON array of items or as JSON Lines; `source` names it in errors. */
export function parseItems(text: string, source: string): ItemInput[] {
  const trimmed = text.trim();
  if (trimmed === "") throw new Error(`${source}: no items`);
  if (trimmed.startsWith("[")) {
    let whole: unknown;
    try {
      whole = JSON.parse(trimmed);
    } catch {
      whole = undefined; // Not one JSON value: JSON Lines whose first line is a bare array.
    }
    if (Array.isArray(whole)) {
      // One bare array of numbers is a single item, not a list of items.
      if (whole.every((v) => typeof v === "number")) return [itemOf(whole, `${source}`)];
      return whole.map((value, i) => itemOf(value, `${source}: element ${i}`));
    }
  }
  const items: ItemInput[] = [];
  const lines = text.split("\n");
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new Error(`${source}: line ${i + 1}: not JSON (${(error as Error).message})`);
    }
    items.push(itemOf(value, `${source}: line ${i + 1}`));
  }
  return items;
}

function itemOf(value: unknown, where: string): ItemInput {
  if (Array.isArray(value)) return { input: numbers(value, `${where}`) };
  if (typeof value !== "object" || value === null)
    throw new Error(`${where}: expected an item object or an array of numbers`);
  const item = value as Record<string, unknown>;
  const requestId = item.request_id ?? item.requestId;
  if (requestId !== undefined && typeof requestId !== "string")
    throw new Error(`${where}: "request_id" must be a string`);
  if (item.inputs !== undefined)
    return { inputs: tensorsOf(item.inputs, where), requestId: requestId ?? "" };
  if (!Array.isArray(item.input)) throw new Error(`${where}: "input" must be an array of numbers`);
  return {
    input: numbers(item.input, `${where}: input`),
    requestId: requestId ?? "",
    shape: item.shape === undefined ? [] : numbers(item.shape as unknown[], `${where}: shape`),
  };
}

/**
 * An item's named inputs, `{"input_ids": {"values": [...], "shape"?: [...], "datatype"?: "INT64"}}`
 * (`strings` for BYTES); the server checks them against the model.
 */
function tensorsOf(value: unknown, where: string): NonNullable<ItemInput["inputs"]> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new Error(`${where}: "inputs" must be an object of tensors by input name`);
  const out: NonNullable<ItemInput["inputs"]> = {};
  for (const [name, tensor] of Object.entries(value)) {
    const at = `${where}: inputs.${name}`;
    if (typeof tensor !== "object" || tensor === null || Array.isArray(tensor))
      throw new Error(`${at}: expected {"values": [...]}`);
    const t = tensor as Record<string, unknown>;
    if (t.datatype !== undefined && typeof t.datatype !== "string")
      throw new Error(`${at}.datatype: expected a string`);
    const strings = t.strings;
    if (
      strings !== undefined &&
      (!Array.isArray(strings) || !strings.every((v) => typeof v === "string"))
    )
      throw new Error(`${at}.strings: expected an array of strings`);
    out[name] = {
      datatype: (t.datatype as string | undefined) ?? "",
      shape: t.shape === undefined ? [] : numbers(t.shape as unknown[], `${at}.shape`),
      values:
        t.values === undefined
          ? []
          : numbers(
              (t.values as unknown[]).map((v) => (typeof v === "boolean" ? Number(v) : v)),
              `${at}.values`,
            ),
      strings: (strings as string[] | undefined) ?? [],
    };
  }
  return out;
}

function numbers(values: unknown[], where: string): number[] {
  for (const [i, v] of values.entries())
    if (typeof v !== "number") throw new Error(`${where}[${i}]: expected a number`);
  return values as number[];
}

/** Splits `items` into runs of at most `size`, in order. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
