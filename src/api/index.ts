/**
 * The transports: native gRPC on its own port; REST (transcoded from the contract's
 * `google.api.http` annotations), Connect, gRPC-Web, the v1 API's WebSocket endpoint, probes,
 * `/metrics`, `/openapi.json` and the dashboard on the API port. Every call goes through one
 * {@link Call}: load shedding and authentication from headers, the service method, the one error
 * mapping, one log line and metric.
 */
export { type AdminMode, type Authenticator, createAuthenticator } from "./auth.js";
export type { Protocol, ServiceBinding } from "./call.js";
export { restErrorBody, toConnectError } from "./error-mapping.js";
export { type StartedGrpcServer, startGrpcServer } from "./grpc-server.js";
export { grpcServiceDefinition } from "./grpc-services.js";
export { type StartedHttpServer, startHttpServer } from "./http-server.js";
export { JobCallbacks, SIGNATURE_HEADER, signCallback } from "./job-callbacks.js";
export { createOverloadGuard, type OverloadGuard } from "./overload.js";
