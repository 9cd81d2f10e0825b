/**
 * The alternative users would write: a minimal Node HTTP server that calls session.run once per
 * request on one session, with no batching and no queue. POST /infer {"data":[{"input":[...]}]}.
 * Usage: node bench/naive-server.ts <model.onnx> <port>  (prints "listening <port>")
 */
import { createServer } from "node:http";
import ort from "onnxruntime-node";

const [modelPath, portArg = "0"] = process.argv.slice(2);
// ORT's own thread defaults, as a user's server would have them.
const session = await ort.InferenceSession.create(modelPath as string, {
  executionProviders: ["cpu"],
});
const inputName = session.inputNames[0] as string;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", async () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { data: { input: number[] }[] };
      const input = body.data[0]?.input ?? [];
      const result = await session.run({
        [inputName]: new ort.Tensor("float32", Float32Array.from(input), [1, input.length]),
      });
      const output = Array.from((Object.values(result)[0] as ort.Tensor).data as Float32Array);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ results: [{ output }] }));
    } catch (error) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: String(error) }));
    }
  });
});
server.listen(Number(portArg), "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(
    `listening ${typeof address === "object" && address !== null ? address.port : portArg}\n`,
  );
});
