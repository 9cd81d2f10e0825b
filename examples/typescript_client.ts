// The typed client from another project: `npm install <path or tarball of batch-processor>`, then
// import it as below. BATCH_PROCESSOR_URL (http(s):// for Connect, grpc:// for gRPC), API_KEY.
import { BatchProcessorClient } from "batch-processor/client";

const client = new BatchProcessorClient({
  url: process.env.BATCH_PROCESSOR_URL ?? "http://localhost:8000",
  apiKey: process.env.API_KEY,
});

const results = await client.submitAndWait(
  { data: [{ input: [1, 2, 3] }, { input: [4, 5, 6] }, { input: [7, 8, 9] }], priority: "high" },
  {
    onStatus: (status) =>
      console.log(`${status.status} ${status.completedRequests}/${status.totalRequests}`),
  },
);
for (const r of results.results) console.log(r.requestId, r.label, r.confidence.toFixed(4));
const models = await client.models();
console.log(`models: ${models.map((m) => m.name).join(", ")}`);
