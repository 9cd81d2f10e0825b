// One thread of the "limit" measurement: a bare ONNX Runtime session running one batch size in a
// tight loop, no pool, no queue, no main-thread round trip.
import { parentPort, workerData } from "node:worker_threads";
import ort from "onnxruntime-node";

const { modelPath, batch, width, durationMs } = workerData;
const session = await ort.InferenceSession.create(modelPath, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  executionProviders: ["cpu"],
});
const data = new Float32Array(batch * width);
for (let i = 0; i < data.length; i++) data[i] = Math.sin(i);
const input = new ort.Tensor("float32", data, [batch, width]);
for (let i = 0; i < 3; i++) await session.run({ input });
parentPort.once("message", async () => {
  const started = performance.now();
  let runs = 0;
  while (performance.now() - started < durationMs) {
    await session.run({ input });
    runs++;
  }
  parentPort.postMessage({ items: runs * batch, ms: performance.now() - started });
});
parentPort.postMessage("ready");
