/**
 * How `submit --watch` and `watch` show a run's progress: one bar (cli-progress) with items/s
 * and ETA on a terminal, plain lines (at most one a second, and the last) otherwise, so a log
 * or a pipe gets readable text rather than control codes.
 */
import type { Writable } from "node:stream";
import cliProgress from "cli-progress";

/** Least time between two plain progress lines, ms. */
const LINE_INTERVAL_MS = 1000;

/** See the file comment. */
export class RunProgress {
  readonly #total: number;
  readonly #out: Writable & { isTTY?: boolean };
  readonly #bar: cliProgress.SingleBar | undefined;
  /** The first reading: the rate counts items finished since, not those done before watching. */
  #base: { done: number; at: number } | undefined;
  #lastLine = 0;
  #done = 0;
  #failed = 0;

  readonly #unit: string;

  constructor(total: number, out: Writable & { isTTY?: boolean }, label: string, unit = "items") {
    this.#total = total;
    this.#unit = unit;
    this.#out = out;
    if (out.isTTY === true) {
      this.#bar = new cliProgress.SingleBar(
        {
          stream: out,
          format:
            unit === "items"
              ? `${label} {bar} {percentage}% | {value}/{total} items | {failed} failed | {speed} items/s | ETA {eta_formatted}`
              : `${label} {bar} {percentage}% | {value}/{total} ${unit} | {speed} ${unit}/s | ETA {eta_formatted}`,
          hideCursor: true,
          etaBuffer: 50,
          fps: 10,
        },
        cliProgress.Presets.shades_classic,
      );
      this.#bar.start(total, 0, { speed: "0", failed: 0 });
    } else {
      out.write(`${label}: ${total} ${unit}\n`);
    }
  }

  /** Items finished so far (with an output or an error), and of those the failed ones. */
  update(done: number, failed: number): void {
    this.#base ??= { done, at: Date.now() };
    this.#done = done;
    this.#failed = failed;
    if (this.#bar !== undefined) {
      this.#bar.update(done, { speed: this.#speed().toFixed(0), failed });
      return;
    }
    const now = Date.now();
    if (now - this.#lastLine < LINE_INTERVAL_MS) return;
    this.#lastLine = now;
    this.#line();
  }

  /** Ends the display with a last line. */
  finish(summary: string): void {
    if (this.#bar !== undefined) {
      this.#bar.update(this.#done, { speed: this.#speed().toFixed(0), failed: this.#failed });
      this.#bar.stop();
    } else this.#line();
    this.#out.write(`${summary}\n`);
  }

  #speed(): number {
    if (this.#base === undefined) return 0;
    const seconds = (Date.now() - this.#base.at) / 1000;
    return seconds <= 0 ? 0 : (this.#done - this.#base.done) / seconds;
  }

  #line(): void {
    const speed = this.#speed();
    const left = this.#total - this.#done;
    const eta = speed > 0 ? `${Math.ceil(left / speed)} s` : "unknown";
    const percent = this.#total === 0 ? 100 : Math.floor((this.#done / this.#total) * 100);
    const unit = this.#unit;
    const failed = unit === "items" ? `, ${this.#failed} failed` : "";
    this.#out.write(
      `${this.#done}/${this.#total} ${unit} (${percent} %)${failed}, ${speed.toFixed(0)} ${unit}/s, ETA ${eta}\n`,
    );
  }
}
