/** Cheap unique ids for one process: a random prefix and a counter. */
import { randomUUID } from "node:crypto";

/** See the file comment. */
export class IdSequence {
  readonly #prefix = randomUUID().slice(0, 8);
  #next = 0;
  next(): string {
    return `${this.#prefix}${(this.#next++).toString(36)}`;
  }
}
