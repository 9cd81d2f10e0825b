/**
 * The wire: how the contract's messages travel, for every protocol of the server. Request bodies
 * and their compression, the envelopes of gRPC-Web and Connect streams, the readers (JSON with
 * errors that name the field, protobuf with the submit's inputs read in bulk), the results
 * writer, the Connect and gRPC-Web framing of answers and errors, and the REST event streams.
 * Each module's spec is under `test/unit/wire/`.
 */
export { DecodedRequest } from "./binary-request.js";
export { parseJsonBody, readBody } from "./body.js";
export { acceptsGzip, COMPRESS_MIN_BYTES, gzipped } from "./compression.js";
export { COMPRESSED_FLAG, envelope } from "./envelope.js";
export { LIMIT_SETTING, PayloadTooLargeError } from "./errors.js";
export { lastEventId, ndjsonLine, sseEvent } from "./event-stream.js";
export {
  JSON_READ_OPTIONS,
  JSON_WRITE_OPTIONS,
  jsonWriteOptionsOf,
  RESULT_LINE_JSON_OPTIONS,
} from "./json-options.js";
export { decodeJsonRequest } from "./json-request.js";
export { encodeBinary, encodeMessage, readRpcRequest, readRpcRequests } from "./messages.js";
export { encodeBatchResults } from "./results-writer.js";
export {
  codeName,
  connectEndStream,
  connectErrorJson,
  connectHttpStatus,
  grpcWebTrailers,
  type RpcFormat,
  type RpcProtocol,
  rpcContentTypes,
  rpcFormatOf,
  timeoutMsOf,
} from "./rpc-protocols.js";
export {
  decodeSubmitBatchRequest,
  type PackedSubmitBatchRequest,
  type SubmitBatchInput,
  unpackSubmit,
} from "./submit-reader.js";
export { bodyStream, drainUpload, envelopedMessages, LineSplitter } from "./upload.js";
