/**
 * Transport floors: the round trip of a bare grpc-js echo server and of a bare Piscina task,
 * sequential, p50 in ms. What the server adds on top of these is its own cost.
 */
import * as grpc from "@grpc/grpc-js";
import { Piscina } from "piscina";

function p50(samples: number[]): number {
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

/** Sequential unary round trips to a bare grpc-js echo server (same process, loopback). */
export async function grpcEchoFloor(calls = 2000): Promise<number> {
  const passthrough = (b: Buffer) => b;
  const definition = {
    echo: {
      path: "/bench.Echo/Echo",
      requestStream: false,
      responseStream: false,
      requestSerialize: passthrough,
      requestDeserialize: passthrough,
      responseSerialize: passthrough,
      responseDeserialize: passthrough,
    },
  } as grpc.ServiceDefinition;
  const server = new grpc.Server();
  server.addService(definition, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb(null, call.request),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  const Client = grpc.makeGenericClientConstructor(definition, "Echo");
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as {
    echo: (b: Buffer, cb: (e: Error | null) => void) => void;
    close: () => void;
  };
  const payload = Buffer.alloc(64, 1);
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) =>
      client.echo(payload, (e) => (e ? reject(e) : resolve())),
    );
    if (i >= calls / 10) samples.push(performance.now() - started);
  }
  client.close();
  server.forceShutdown();
  return p50(samples);
}

/** Sequential round trips of a trivial task through a one-thread Piscina pool. */
export async function piscinaFloor(calls = 5000): Promise<number> {
  const pool = new Piscina({
    filename: new URL("../piscina-echo-worker.mjs", import.meta.url).href,
    minThreads: 1,
    maxThreads: 1,
    atomics: "sync",
  });
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await pool.run(i);
    if (i >= calls / 10) samples.push(performance.now() - started);
  }
  await pool.destroy();
  return p50(samples);
}
