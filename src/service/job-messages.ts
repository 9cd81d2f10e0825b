/**
 * Jobs between the contract and the engine: an upload's messages into numbered lines, a job's
 * view and a line's outcome into their messages.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type CreateJobRequest,
  type Job,
  type JobItem,
  type JobResult,
  JobResultSchema,
  JobSchema,
  type JobSpec,
} from "../../gen/batchprocessor/v1/job_pb.js";
import {
  InvalidInputError,
  type JobRequest,
  type JobResultLine,
  type JobView,
  numbersOf,
  type RawLine,
} from "../engine/index.js";
import { LineSplitter } from "../wire/index.js";
import { tensorInputsOf, tensorOutputsOf } from "./model-messages.js";

/** The spec of an upload: its first message, which must be one. */
export async function uploadSpec(messages: AsyncIterator<CreateJobRequest>): Promise<JobRequest> {
  const first = await messages.next();
  if (first.done === true || first.value.part.case !== "spec")
    throw new InvalidInputError("spec", "the first message of an upload must be the job's spec");
  return jobRequestOf(first.value.part.value);
}

/** A spec message as the engine's request (empty strings mean "not given"). */
export function jobRequestOf(spec: JobSpec): JobRequest {
  return {
    modelId: spec.modelId,
    priority: spec.priority,
    completionWindow: spec.completionWindow,
    jobId: spec.jobId,
    onInvalid: spec.onInvalid,
    callbackUrl: spec.callbackUrl,
    callbackSecret: spec.callbackSecret,
    resultTtl: spec.resultTtl,
  };
}

/**
 * The lines of the rest of an upload: raw JSONL bytes split into numbered lines (a line may span
 * messages), and items already parsed numbered on from them.
 */
export async function* uploadLines(
  messages: AsyncIterator<CreateJobRequest>,
  maxLineBytes: number,
): AsyncIterable<readonly RawLine[]> {
  const splitter = new LineSplitter(maxLineBytes);
  for (let step = await messages.next(); step.done !== true; step = await messages.next()) {
    const part = step.value.part;
    switch (part.case) {
      case "lines":
        yield splitter.push(Buffer.from(part.value.data));
        break;
      case "items": {
        // Bytes before items end their last line.
        const lines: RawLine[] = splitter.end();
        for (const item of part.value.items)
          lines.push({
            line: splitter.next(),
            value: {
              input: named(item) && item.input.length === 0 ? undefined : item.input,
              inputs: named(item) ? tensorInputsOf(item.inputs) : undefined,
              id: item.id === "" ? undefined : item.id,
              shape: item.shape.length > 0 ? item.shape : undefined,
            },
          });
        yield lines;
        break;
      }
      case "spec":
        throw new InvalidInputError("spec", "only the first message of an upload may be a spec");
      default:
        break;
    }
  }
  yield splitter.end();
}

/** True for an item that gives its inputs by name. */
function named(item: JobItem): boolean {
  return Object.keys(item.inputs).length > 0;
}

function timestamp(ms: number | null) {
  return ms === null ? undefined : timestampFromMs(Math.round(ms));
}

/** Engine job view -> proto Job. */
export function jobOf(view: JobView): Job {
  return create(JobSchema, {
    jobId: view.jobId,
    status: view.status,
    modelId: view.modelId,
    priority: view.priority,
    createdAt: timestamp(view.createdAt),
    startedAt: timestamp(view.startedAt),
    completedAt: timestamp(view.completedAt),
    expiresAt: timestamp(view.expiresAt),
    counts: { ...view.counts },
    progress: view.progress,
    itemsPerSecond: view.itemsPerSecond,
    estimatedCompletionTime: timestamp(view.estimatedCompletionTime),
    error: view.error === null ? undefined : `${view.error.code}: ${view.error.message}`,
  });
}

/** A line's outcome -> proto JobResult: only the fields the line has. */
export function jobResultOf(line: JobResultLine): JobResult {
  return create(JobResultSchema, {
    line: line.line,
    id: line.id ?? undefined,
    output: line.output === null ? [] : numbersOf(line.output),
    label: line.label === "" ? undefined : line.label,
    confidence: line.output === null ? undefined : line.confidence,
    error: line.error === null ? undefined : { code: line.error.code, message: line.error.message },
    outputs: line.outputs === undefined ? {} : tensorOutputsOf(line.outputs),
  });
}
