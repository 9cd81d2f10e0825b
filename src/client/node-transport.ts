/** The Node transport for a URL: `http(s)://` speaks Connect (binary), `grpc(s)://` gRPC. */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { type ClientOptions, headerInterceptors, parsedUrl } from "./client.js";

/** See the file comment. */
export function transportFor(
  options: Pick<ClientOptions, "url" | "apiKey" | "headers">,
): Transport {
  const url = parsedUrl(options.url, "http(s):// or grpc(s)://");
  const interceptors = headerInterceptors(options.apiKey, options.headers);
  const secure = url.protocol === "https:" || url.protocol === "grpcs:";
  const baseUrl = `${secure ? "https" : "http"}://${url.host}${url.pathname.replace(/\/$/, "")}`;
  switch (url.protocol) {
    case "http:":
    case "https:":
      return createConnectTransport({
        baseUrl,
        httpVersion: "1.1",
        useBinaryFormat: true,
        interceptors,
      });
    case "grpc:":
    case "grpcs:":
      return createGrpcTransport({ baseUrl, interceptors });
    default:
      throw new Error(
        `unsupported URL scheme ${JSON.stringify(url.protocol)}: use http(s):// (Connect) or grpc(s):// (gRPC)`,
      );
  }
}
