/**
 * The batching configuration between the contract's messages and the engine: a Configure
 * request as the engine's change, the configuration as BatchConfig, and an invalid option's
 * error in the contract's field names.
 */
import { create } from "@bufbuild/protobuf";
import {
  type BatchConfig,
  BatchConfigSchema,
  type ConfigureRequest,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import {
  type BatchingOptions,
  InvalidInputError,
  type ResolvedBatchingOptions,
} from "../engine/index.js";

/** The change a Configure asks for: absent fields and empty maps leave their option as it is. */
export function batchingChangeOf(request: ConfigureRequest): BatchingOptions {
  const byClass = (map: Record<string, number>) => (Object.keys(map).length > 0 ? map : undefined);
  return {
    maxBatchSize: request.maxBatchSize,
    maxWaitTimeMs: request.maxWaitTimeMs,
    enableDynamicBatching: request.enableDynamicBatching,
    priorityWeights: byClass(request.priorityWeights),
    priorityLatencyMs: byClass(request.priorityLatencyMs),
  };
}

/** The configuration as GetConfig and Configure answer it. */
export function configOf(config: ResolvedBatchingOptions): BatchConfig {
  return create(BatchConfigSchema, {
    maxBatchSize: config.maxBatchSize,
    maxWaitTimeMs: config.maxWaitTimeMs,
    enableDynamicBatching: config.enableDynamicBatching,
    priorityWeights: { ...config.priorityWeights },
    priorityLatencyMs: { ...config.priorityLatencyMs },
  });
}

/** The contract's name of each batching option the engine names. */
const CONFIG_FIELDS: Readonly<Record<keyof BatchingOptions, string>> = {
  maxBatchSize: "max_batch_size",
  maxWaitTimeMs: "max_wait_time_ms",
  enableDynamicBatching: "enable_dynamic_batching",
  priorityWeights: "priority_weights",
  priorityLatencyMs: "priority_latency_ms",
};

/** An invalid option as the client wrote it: the field renamed to the contract's name. */
export function inWireNames(error: unknown): unknown {
  if (!(error instanceof InvalidInputError)) return error;
  const [head = "", ...rest] = error.field.split(".");
  const name = (CONFIG_FIELDS as Readonly<Record<string, string>>)[head];
  return name === undefined ? error : new InvalidInputError([name, ...rest].join("."), error.rule);
}
