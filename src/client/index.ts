/**
 * The client's Node entry (`@batch-processor/client`, and the server package's
 * `batch-processor/client`): the typed client over a transport built from a URL, and the
 * contract's message types it speaks. Browsers get `web.ts` instead.
 */
import { BatchProcessorClient as ClientCore, type ClientOptions } from "./client.js";
import { transportFor } from "./node-transport.js";

export { transportFor } from "./node-transport.js";
export * from "./shared.js";

/** The client, in Node: `url` picks Connect (`http(s)://`) or gRPC (`grpc(s)://`). */
export class BatchProcessorClient extends ClientCore {
  constructor(options: ClientOptions) {
    super({ ...options, transport: options.transport ?? transportFor(options) });
  }
}
