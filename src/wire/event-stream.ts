/**
 * The REST routes' server streams: NDJSON (one JSON document a line) or, for `Accept:
 * text/event-stream`, Server-Sent Events whose ids go on from the client's `Last-Event-ID` and end
 * in `-end` on the last event, so that a browser's EventSource resumes where it was and stops
 * once the stream has ended.
 */

/** Where an SSE client stands: the last id it saw, and whether that was the last event. */
export interface EventPosition {
  readonly seq: number;
  readonly ended: boolean;
}

/** A Last-Event-ID this server wrote (`<n>` or `<n>-end`); undefined for none or another's. */
export function lastEventId(value: string | undefined): EventPosition | undefined {
  const match = /^(\d{1,15})(-end)?$/.exec(value ?? "");
  return match === null ? undefined : { seq: Number(match[1]), ended: match[2] !== undefined };
}

/** One NDJSON line. */
export function ndjsonLine(json: unknown): string {
  return `${JSON.stringify(json)}\n`;
}

/** One SSE event: `id: <seq>` (`-end` on the last one), its event name, its JSON. */
export function sseEvent(seq: number, ended: boolean, event: string, json: unknown): string {
  return `id: ${seq}${ended ? "-end" : ""}\nevent: ${event}\ndata: ${JSON.stringify(json)}\n\n`;
}
