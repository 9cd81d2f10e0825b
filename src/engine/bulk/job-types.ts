/**
 * A job's shapes as the engine, its store and its readers share them: the record, the view every
 * read answers with, the lines of an upload and their outcomes.
 */
import type { Failure } from "../errors.js";
import { PRIMARY, type TypedTensor } from "../tensors.js";
import type { Priority } from "../types.js";

/** Job lifecycle states. */
export const JOB_STATUSES = [
  "validating",
  "queued",
  "running",
  "completed",
  "failed",
  "cancelled",
  "expired",
] as const;
/** A job lifecycle state. */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** The states a job never leaves. */
export const ENDED_JOB_STATUSES: readonly JobStatus[] = [
  "completed",
  "failed",
  "cancelled",
  "expired",
];

/** True for a state the job never leaves. */
export function isJobEnded(status: string): boolean {
  return (ENDED_JOB_STATUSES as readonly string[]).includes(status);
}

/** A job's line counts; once it has ended they add up to `total`. */
export interface JobCounts {
  /** Lines with an item (blank lines are not counted). */
  readonly total: number;
  /** Lines with an output. */
  readonly completed: number;
  /** Lines that ran, or were to run, and have an error. */
  readonly failed: number;
  /** Lines that were not a valid item. */
  readonly invalid: number;
}

/** Where a job's end is announced, signed with `secret` when there is one. */
export interface JobCallback {
  readonly url: string;
  readonly secret: string | null;
}

/** A stored job. */
export interface JobRecord {
  /** Store-assigned key. */
  readonly pk: number;
  readonly owner: string;
  readonly jobId: string;
  readonly modelId: string;
  readonly priority: Priority;
  readonly status: JobStatus;
  readonly error: Failure | null;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly completedAt: number | null;
  /** The end of the completion window, epoch ms. */
  readonly expiresAt: number;
  readonly counts: JobCounts;
  /** Chunks its lines are stored in. */
  readonly chunks: number;
  /** Digest of the upload, for idempotent re-creates; null until the upload is stored. */
  readonly payloadHash: string | null;
  readonly callback: JobCallback | null;
  /** How long the job is kept once it has ended, ms; null for the server's result TTL. */
  readonly keepMs: number | null;
}

/** A job as every read path reports it. */
export interface JobView {
  readonly jobId: string;
  readonly status: JobStatus;
  readonly modelId: string;
  readonly priority: Priority;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly completedAt: number | null;
  readonly expiresAt: number;
  readonly counts: JobCounts;
  /** Lines with an outcome / total, 0..1. */
  readonly progress: number;
  /** Lines finished per second over the recent past. */
  readonly itemsPerSecond: number;
  /** Epoch ms; null while unknown. */
  readonly estimatedCompletionTime: number | null;
  readonly error: Failure | null;
}

/**
 * One line of an upload as a transport read it: its JSON text (parsed as it is read, so that a
 * part of an upload holds text, not millions of parsed numbers), a JSON value already parsed, or
 * why it is not a line.
 */
export type RawLine =
  | { readonly line: number; readonly text: string }
  | { readonly line: number; readonly value: unknown }
  | { readonly line: number; readonly malformed: string };

/** A line that holds a valid item. */
export interface ValidLine {
  readonly line: number;
  readonly id: string | null;
  /**
   * Its tensors in the order of the model's inputs, the primary one named `PRIMARY`; a float
   * model's `input` shorthand is that one tensor, FP32.
   */
  readonly inputs: readonly TypedTensor[];
  /** True when the line gave its inputs by name: its outcome then holds every output by name. */
  readonly named: boolean;
}

/** A float model's `input` shorthand as a line's one tensor. */
export function floatInput(shape: readonly number[], data: Float32Array): TypedTensor {
  return { name: PRIMARY, datatype: "FP32", shape, data };
}

/** A line that does not, and why. */
export interface InvalidLine {
  readonly line: number;
  readonly id: string | null;
  readonly error: Failure;
}

/** One stored line of a job. */
export type JobLine = ValidLine | InvalidLine;

/** True for a line that holds a valid item. */
export function isValidLine(line: JobLine): line is ValidLine {
  return "inputs" in line;
}

/** One line's outcome. */
export interface LineOutcome {
  readonly line: number;
  readonly id: string | null;
  /** The primary output of a line in the shorthand; null when the line has none. */
  readonly output: Float32Array | null;
  /** Every output by name, for a line that gave its inputs by name and ran; else undefined. */
  readonly outputs?: readonly TypedTensor[] | undefined;
  readonly confidence: number;
  readonly error: Failure | null;
}

/** A job's create request, as the transports hand it over (empty strings mean "not given"). */
export interface JobRequest {
  readonly modelId?: string | undefined;
  readonly priority?: string | undefined;
  readonly completionWindow?: string | undefined;
  readonly jobId?: string | undefined;
  readonly onInvalid?: string | undefined;
  readonly callbackUrl?: string | undefined;
  readonly callbackSecret?: string | undefined;
  readonly resultTtl?: string | undefined;
}
