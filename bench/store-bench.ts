/**
 * The SQLite store with many batches: how long the event loop is held by one list page, one
 * lookup and one purge call, worst case over repeats, on a file database of `--batches` batches
 * of 3 owners, some with metadata at its size limit. Beside each list page it times the query
 * that lists read before (`SELECT *` with metadata, no index in page order) on the same data.
 * Usage: npm run bench:store [-- --batches 200000 --repeat 20]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { type BatchStatus, type ListQuery, METADATA_LIMITS } from "../src/engine/index.js";
import { SqliteJobStore } from "../src/store/sqlite-job-store.js";
import { listStatement } from "../src/store/sqlite-rows.js";

const { values } = parseArgs({
  options: {
    batches: { type: "string", default: "200000" },
    repeat: { type: "string", default: "20" },
    out: { type: "string" },
  },
});
const total = Number(values.batches);
const repeat = Number(values.repeat);
const dir = mkdtempSync(join(tmpdir(), "bp-store-bench-"));
const store = new SqliteJobStore({ dataDir: dir });
const STATUSES: BatchStatus[] = ["completed", "completed", "completed", "failed", "cancelled"];
const bigMetadata = { blob: "m".repeat(METADATA_LIMITS.maxStringChars - 16) };

const started = performance.now();
for (let i = 0; i < total; i++) {
  const { record } = await store.createBatch(
    {
      owner: `owner-${i % 3}`,
      batchId: `b${i}`,
      modelId: "default",
      priority: "normal",
      timeoutMs: 5000,
      createdAt: 1_700_000_000_000 + i,
      deadline: 1_700_000_005_000 + i,
      total: 1,
      // One batch in a thousand carries metadata at its limit.
      metadata: i % 1000 === 0 ? bigMetadata : { user: `u${i % 97}` },
      payloadHash: null,
    },
    [{ index: 0, requestId: "req_1", input: Float32Array.from([i]), shape: [1] }],
  );
  // All but the newest hundred have ended; those stay queued (the `active` filter's worst case
  // is a few live batches among very many ended ones).
  if (i < total - 100)
    await store.save(
      [],
      [
        {
          pk: record.pk,
          status: STATUSES[i % 5] as BatchStatus,
          error: null,
          startedAt: 1,
          completedAt: 1,
        },
      ],
    );
}
const buildSeconds = (performance.now() - started) / 1000;

function worst(fn: () => unknown): { p50: number; max: number } {
  const times: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length / 2)] as number, max: times.at(-1) as number };
}

const db = new Database(join(dir, "batch-processor.db"));
// Twenty batches stored before metadata had limits, with 5 MB each (what a database written by
// an earlier version may hold): lists must not pay for them.
const huge = JSON.stringify({ blob: "h".repeat(5 * 1024 * 1024) });
const spread = db.prepare("UPDATE batches SET metadata = ? WHERE pk = ?");
for (let k = 0; k < 20; k++) spread.run(huge, 1 + Math.floor((k * total) / 20));
// The same data under the former schema's indexes, for the former query.
await db.backup(join(dir, "former.db"));
const former = new Database(join(dir, "former.db"));
former.exec(`DROP INDEX batches_newest; DROP INDEX batches_owner_newest;
  DROP INDEX batches_status_newest; DROP INDEX batches_owner_status_newest;
  CREATE INDEX batches_status ON batches (status); ANALYZE;`);
/** The query lists ran before: every column, metadata too, `status IN`, no index in page order. */
function formerList(query: ListQuery): () => unknown {
  const where: string[] = [];
  const params: unknown[] = [];
  if (query.owner !== undefined) {
    where.push("owner = ?");
    params.push(query.owner);
  }
  if (query.statuses !== undefined) {
    where.push(`status IN (${query.statuses.map(() => "?").join(", ")})`);
    params.push(...query.statuses);
  }
  const sql = `SELECT * FROM batches ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC, pk DESC LIMIT ?`;
  const statement = former.prepare(sql);
  return () =>
    statement
      .all(...params, query.limit + 1)
      .map((r) => JSON.parse((r as { metadata: string }).metadata));
}

const cases: [string, ListQuery][] = [
  ["all batches, default page", { limit: 10 }],
  ["one owner, default page", { owner: "owner-1", limit: 10 }],
  ["one owner, active", { owner: "owner-1", statuses: ["queued", "processing"], limit: 10 }],
  ["admin, active", { statuses: ["queued", "processing"], limit: 10 }],
  ["one owner, failed, page of 1000", { owner: "owner-2", statuses: ["failed"], limit: 1000 }],
];
const rows: string[] = [];
for (const [name, query] of cases) {
  const now = worst(() => store.listBatches(query));
  const { sql, params } = listStatement(query);
  const plain = db.prepare(sql);
  const direct = worst(() => plain.all(...params));
  const before = worst(formerList(query));
  rows.push(
    `| ${name} | ${direct.p50.toFixed(2)} / ${Math.max(direct.max, now.max).toFixed(2)} | ${before.p50.toFixed(1)} / ${before.max.toFixed(1)} |`,
  );
}
const lookup = worst(() => store.findBatch("owner-1", `b${Math.floor(total / 2) + 1}`));
const purgeBefore = 2;
const purge = worst(() => store.purgeFinished(purgeBefore, 500));

const report = `# SQLite store with ${total.toLocaleString("en")} batches

Built in ${buildSeconds.toFixed(0)} s (twenty of them with 5 MB of metadata, as an earlier version
could store); ${repeat} repeats per figure; times are how long one call holds the event loop, ms
(p50 / max).

| list page | now: an index in page order, no metadata | before: \`SELECT *\`, \`status IN\`, sort (former indexes) |
| --- | ---: | ---: |
${rows.join("\n")}

- find one batch by id: ${lookup.p50.toFixed(3)} / ${lookup.max.toFixed(3)} ms
- purge one chunk of 500 ended batches (with their items, inputs and outcomes): ${purge.p50.toFixed(1)} / ${purge.max.toFixed(1)} ms
`;
process.stdout.write(report);
if (values.out !== undefined) writeFileSync(values.out, report);
db.close();
former.close();
await store.close();
rmSync(dir, { recursive: true, force: true });
