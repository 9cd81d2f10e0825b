/** An error as one line a log or a catalog entry can hold. */
import { stripVTControlCharacters } from "node:util";

/** The first line of `error`'s message, without terminal control characters, at most 300 characters. */
export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return stripVTControlCharacters(text.split("\n")[0] ?? text).slice(0, 300);
}
