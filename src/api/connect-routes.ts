/**
 * The Connect and gRPC-Web adapter (connect-node): registers the service on a ConnectRouter,
 * with authentication and the one error mapping around every call.
 */
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { BatchProcessorService } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import type { EngineLogger } from "../engine/logger.js";
import { callContext, implMethod, type ServiceBinding } from "./call-context.js";
import { codeName, toConnectError } from "./error-mapping.js";
import { batchIdOf, finishRequest } from "./request-log.js";

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
        const started = performance.now();
        let code = "ok";
        try {
          yield* fn(request, call(ctx)) as AsyncIterable<unknown>;
        } catch (error) {
          const connectError = toConnectError(error, log, { method: method.name });
          code = codeName(connectError.code);
          throw connectError;
        } finally {
          finishRequest(binding, log, {
            protocol: ctx.protocolName,
            method: method.name,
            code,
            durationMs: performance.now() - started,
            batchId: batchIdOf(request),
          });
        }
      };
    } else {
      handlers[method.localName] = async (request: never, ctx: HandlerContext) => {
        const started = performance.now();
        try {
          const response = await fn(request, call(ctx));
          finishRequest(binding, log, {
            protocol: ctx.protocolName,
            method: method.name,
            code: "ok",
            durationMs: performance.now() - started,
            batchId: batchIdOf(request, response),
          });
          return response;
        } catch (error) {
          const connectError = toConnectError(error, log, { method: method.name });
          finishRequest(binding, log, {
            protocol: ctx.protocolName,
            method: method.name,
            code: codeName(connectError.code),
            durationMs: performance.now() - started,
            batchId: batchIdOf(request),
          });
          throw connectError;
        }
      };
    }
  }
  router.service(BatchProcessorService, handlers);
}
