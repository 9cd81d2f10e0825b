/**
 * One chunk of a job through the batcher, the same on one node and in a cluster: its valid lines
 * as a synchronous request of the job's class, with the window's end as their deadline, and the
 * item results turned into one outcome per line.
 */
import type { Failure } from "../errors.js";
import type { ModelInfo } from "../inference-pool.js";
import { ITEM_FAILURES, type Job } from "../jobs/index.js";
import type { TensorData, TypedTensor } from "../tensors.js";
import type { ItemResult, Priority } from "../types.js";
import type { ValidSubmit } from "../validation.js";
import { JOB_FAILURES } from "./job-failures.js";
import { isValidLine, type JobLine, type LineOutcome, type ValidLine } from "./job-types.js";

/** What running a chunk needs of the job runner: a synchronous request through the batcher. */
export interface ChunkRunner {
  infer(owner: string, batchId: string, valid: ValidSubmit, signal?: AbortSignal): Promise<Job>;
}

/** The job a chunk belongs to, as running it needs it. */
export interface ChunkJob {
  readonly owner: string;
  readonly jobId: string;
  readonly priority: Priority;
  readonly expiresAt: number;
}

/**
 * Runs the valid lines of a chunk; their results in line order (none when aborted first). Lines
 * in the shorthand and lines by name go as one request each, at once, so that they meet in the
 * same model batches; those by name are answered with every output by name.
 */
export async function runChunk(
  runner: ChunkRunner,
  job: ChunkJob,
  chunk: number,
  lines: readonly JobLine[],
  model: ModelInfo,
  now: number,
  signal: AbortSignal,
): Promise<readonly (ItemResult | undefined)[]> {
  const valid = lines.filter(isValidLine);
  if (valid.length === 0 || signal.aborted) return [];
  const named = valid.filter((line) => line.named);
  const plain = named.length === 0 ? valid : valid.filter((line) => !line.named);
  const run = (group: readonly ValidLine[], suffix: string) =>
    group.length === 0
      ? Promise.resolve(undefined)
      : runner.infer(
          job.owner,
          `${job.jobId}#${chunk}${suffix}`,
          {
            items: group.map((line) => ({ requestId: `line_${line.line}`, inputs: line.inputs })),
            priority: job.priority,
            timeoutMs: Math.max(1, job.expiresAt - now),
            deadline: job.expiresAt,
            model,
            metadata: {},
            batchId: undefined,
            outputs: group === named ? (model.outputs ?? []).map((o) => o.name) : undefined,
          },
          signal,
        );
  const [plainRun, namedRun] = await Promise.all([run(plain, ""), run(named, "/named")]);
  const plainResults = plainRun?.results ?? [];
  const namedResults = namedRun?.results ?? [];
  if (named.length === 0) return plainResults;
  let p = 0;
  let n = 0;
  return valid.map((line) => (line.named ? namedResults[n++] : plainResults[p++]));
}

/** A chunk's line outcomes from its item results, with what they add to the job's counts. */
export function chunkOutcomes(
  lines: readonly JobLine[],
  results: readonly (ItemResult | undefined)[],
  notRun: Failure,
): { outcomes: LineOutcome[]; completed: number; failed: number } {
  const outcomes: LineOutcome[] = [];
  let completed = 0;
  let failed = 0;
  let k = 0;
  for (const line of lines) {
    if (!isValidLine(line)) {
      outcomes.push({
        line: line.line,
        id: line.id,
        output: null,
        confidence: 0,
        error: line.error,
      });
      continue;
    }
    const outcome = lineOutcome(line, results[k++], notRun);
    if (outcome.error === null) completed++;
    else failed++;
    outcomes.push(outcome);
  }
  return { outcomes, completed, failed };
}

/** True when an item of the chunk was failed because this process is shutting down. */
export function cutByShutdown(results: readonly (ItemResult | undefined)[]): boolean {
  return results.some((r) => r?.error === ITEM_FAILURES.shutdown);
}

/** A line's outcome from its item's result; a line that did not run ends with `notRun`. */
function lineOutcome(
  line: ValidLine,
  result: ItemResult | undefined,
  notRun: Failure,
): LineOutcome {
  if (result === undefined || (result.error !== null && result.error.code === "CANCELLED"))
    return { line: line.line, id: line.id, output: null, confidence: 0, error: notRun };
  if (result.error !== null) {
    const error =
      result.error.code === "DEADLINE_EXCEEDED" ? JOB_FAILURES.expiredLine : result.error;
    return { line: line.line, id: line.id, output: null, confidence: 0, error };
  }
  if (line.named)
    return {
      line: line.line,
      id: line.id,
      output: null,
      outputs: (result.outputs ?? []).map(
        (t): TypedTensor => ({ ...t, data: t.data as TensorData }),
      ),
      confidence: result.confidence,
      error: null,
    };
  return {
    line: line.line,
    id: line.id,
    output: Float32Array.from(result.output),
    confidence: result.confidence,
    error: null,
  };
}
