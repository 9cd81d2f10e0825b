/**
 * Background load for `lib/priority-load.ts`, in a process of its own so that decoding its large
 * answers never delays the probe's clock: keeps `requests` 1,000-item `low` Infer requests on the
 * model in flight until its stdin closes, then prints the items answered with an output and
 * the others as JSON.
 * Usage (by the harness): tsx bench/background-load.ts '{"grpc": …, "key": …, "model": …, "width": …, "outputWidth": …, "requests": 4}'
 */
import { grpcClient } from "./lib/grpc-client.js";
import { encodedHeavyInfer, type InferAnswer } from "./lib/heavy-infer.js";

const spec = JSON.parse(process.argv[2] ?? "{}") as {
  grpc: string;
  key: string;
  model: string;
  width: number;
  outputWidth: number;
  requests: number;
};
const ITEMS = 1000;
const client = grpcClient(spec.grpc, spec.key);
const body = encodedHeavyInfer(ITEMS, spec.width, "low", spec.model);
let outputs = 0;
let errors = 0;
let running = true;
process.stdin.resume();
process.stdin.on("end", () => {
  running = false;
});
await Promise.all(
  Array.from({ length: spec.requests }, async () => {
    while (running) {
      const answer = (await client.call("infer", body).catch(() => ({}))) as InferAnswer;
      const results = answer.results ?? [];
      for (const r of results)
        if (!r.error && r.output?.length === spec.outputWidth) outputs++;
        else errors++;
      errors += ITEMS - results.length;
    }
  }),
);
client.close();
process.stdout.write(`${JSON.stringify({ outputs, errors })}\n`);
