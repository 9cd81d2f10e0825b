/**
 * The client's browser entry (`@batch-processor/client/web`, and what bundlers pick for
 * browsers): the same client over fetch, speaking Connect (binary) or gRPC-Web to `http(s)://`
 * URLs.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  BatchProcessorClient as ClientCore,
  type ClientOptions,
  headerInterceptors,
  parsedUrl,
} from "./client.js";

export * from "./shared.js";

/** Options of the browser client: which protocol it speaks over fetch. */
export interface WebClientOptions extends ClientOptions {
  /** `connect` (binary) or `grpc-web`. @defaultValue "connect" */
  readonly protocol?: "connect" | "grpc-web";
}

/** A fetch transport for an `http(s)://` URL, speaking Connect or gRPC-Web. */
export function webTransportFor(
  options: Pick<WebClientOptions, "url" | "apiKey" | "headers" | "protocol">,
): Transport {
  const url = parsedUrl(options.url, "http(s)://");
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error(
      `unsupported URL scheme ${JSON.stringify(url.protocol)} in a browser: use http(s):// (Connect or gRPC-Web)`,
    );
  const settings = {
    baseUrl: `${url.origin}${url.pathname.replace(/\/$/, "")}`,
    interceptors: headerInterceptors(options.apiKey, options.headers),
  };
  return options.protocol === "grpc-web"
    ? createGrpcWebTransport(settings)
    : createConnectTransport({ ...settings, useBinaryFormat: true });
}

/** The client, in a browser (or any runtime with fetch). */
export class BatchProcessorClient extends ClientCore {
  constructor(options: WebClientOptions) {
    super({ ...options, transport: options.transport ?? webTransportFor(options) });
  }
}
