/**
 * The Connect and gRPC-Web adapter (connect-node): registers the service on a ConnectRouter,
 * with authentication and the one error mapping around every call.
 */
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { BatchProcessorService } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import type { EngineLogger } from "../engine/logger.js";
import { callContext, implMethod, type ServiceBinding } from "./call-context.js";
import { toConnectError } from "./error-mapping.js";

/** Registers every method of the contract on `router`. */
export function registerConnectRoutes(
  router: ConnectRouter,
  binding: ServiceBinding,
  log: EngineLogger,
): void {
  const handlers: Record<string, unknown> = {};
  for (const method of BatchProcessorService.methods) {
    const fn = implMethod(binding.impl, method.localName);
    const call = (ctx: HandlerContext) =>
      callContext(binding, (name) => ctx.requestHeader.get(name), ctx.signal);
    if (method.methodKind === "server_streaming") {
      handlers[method.localName] = async function* (request: never, ctx: HandlerContext) {
        try {
          yield* fn(request, call(ctx)) as AsyncIterable<unknown>;
        } catch (error) {
          throw toConnectError(error, log, { method: method.name });
        }
      };
    } else {
      handlers[method.localName] = async (request: never, ctx: HandlerContext) => {
        try {
          return await fn(request, call(ctx));
        } catch (error) {
          throw toConnectError(error, log, { method: method.name });
        }
      };
    }
  }
  router.service(BatchProcessorService, handlers);
}
