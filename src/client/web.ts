/**
 * The client's browser entry (`@batch-processor/client/web`, and what bundlers pick for
 * browsers): the same client over fetch, speaking Connect (binary) to `http(s)://` URLs.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import {
  apiKeyInterceptors,
  BatchProcessorClient as ClientCore,
  type ClientOptions,
  parsedUrl,
} from "./client.js";

export type * from "../../gen/batchprocessor/v1/batch_processor_pb.js";
export type * from "../../gen/batchprocessor/v1/job_pb.js";
export type {
  ClientOptions,
  ConfigureInput,
  JobItemInput,
  JobPart,
  JobSpecInput,
  SubmitInput,
} from "./client.js";
export { isJobEnded, isTerminal } from "./states.js";

/** A fetch transport for an `http(s)://` URL. */
export function webTransportFor(options: Pick<ClientOptions, "url" | "apiKey">): Transport {
  const url = parsedUrl(options.url, "http(s)://");
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error(
      `unsupported URL scheme ${JSON.stringify(url.protocol)} in a browser: use http(s):// (Connect)`,
    );
  return createConnectTransport({
    baseUrl: `${url.origin}${url.pathname.replace(/\/$/, "")}`,
    useBinaryFormat: true,
    interceptors: apiKeyInterceptors(options.apiKey),
  });
}

/** The client, in a browser (or any runtime with fetch). */
export class BatchProcessorClient extends ClientCore {
  constructor(options: ClientOptions) {
    super({ ...options, transport: options.transport ?? webTransportFor(options) });
  }
}
