/** A job's recent pace: lines finished per second over a sliding window, and the ETA it gives. */

/** How far back the pace looks, ms. */
const WINDOW_MS = 30_000;

/** See the file comment. */
export class JobRate {
  /** (time, lines finished by then), oldest first. */
  #samples: [number, number][] = [];

  /** Notes that `finished` lines had an outcome at `now`. */
  note(now: number, finished: number): void {
    this.#samples.push([now, finished]);
    while (this.#samples.length > 2 && (this.#samples[1] as [number, number])[0] < now - WINDOW_MS)
      this.#samples.shift();
  }

  /** Lines per second over the window; 0 before two samples. */
  perSecond(now: number): number {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (first === undefined || last === undefined || last === first) return 0;
    // A pause since the last sample slows the pace as it goes on.
    const span = Math.max(now, last[0]) - first[0];
    return span <= 0 ? 0 : ((last[1] - first[1]) * 1000) / span;
  }

  /** When `remaining` more lines will be done at this pace; null when there is no pace. */
  eta(now: number, remaining: number): number | null {
    const rate = this.perSecond(now);
    return rate > 0 ? now + (remaining * 1000) / rate : null;
  }
}
