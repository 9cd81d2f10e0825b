/** Reads Prometheus's text format as the benchmarks scrape it from `/metrics`. */

/**
 * The sum of a series over the lines whose labels include every one of `labels`; `absent` when
 * no line does.
 */
export function seriesSum(
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
  absent = 0,
): number {
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z0-9_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => (match[2] ?? "").includes(`${k}="${v}"`)))
      continue;
    sum += Number(match[3]);
    found = true;
  }
  return found ? sum : absent;
}
