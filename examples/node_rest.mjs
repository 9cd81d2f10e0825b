// Submit a batch over REST with Node's fetch, follow it as Server-Sent Events, read its results.
// BATCH_PROCESSOR_URL (default http://localhost:8000), API_KEY. Node 20 or newer, no packages.
const url = process.env.BATCH_PROCESSOR_URL ?? "http://localhost:8000";
const headers = { "x-api-key": process.env.API_KEY, "content-type": "application/json" };

const submitted = await fetch(`${url}/api/batch-processor/submit`, {
  method: "POST",
  headers,
  body: JSON.stringify({ data: [{ input: [1, 2, 3] }, { input: [4, 5, 6] }], priority: "high" }),
});
if (!submitted.ok) throw new Error(`submit: ${submitted.status} ${await submitted.text()}`);
const { batch_id } = await submitted.json();
console.log(`submitted ${batch_id}`);

// Server-Sent Events: "event: status" frames, the last one's id ends in "-end".
const events = await fetch(`${url}/api/batch-processor/watch/${batch_id}`, {
  headers: { ...headers, accept: "text/event-stream" },
});
let last;
for (const frame of (await events.text()).split("\n\n")) {
  const data = frame.split("\n").find((line) => line.startsWith("data: "));
  if (data !== undefined) last = JSON.parse(data.slice(6));
}
console.log(`${last.status} ${last.completed_requests}/${last.total_requests}`);

const results = await (
  await fetch(`${url}/api/batch-processor/results/${batch_id}`, { headers })
).json();
for (const r of results.results) console.log(r.request_id, r.label, r.confidence.toFixed(4));
