/**
 * Jobs for the benchmarks, over REST: JSONL lines generated as they are sent, the upload, its
 * view until it ends, a cancel, and its results downloaded and counted by outcome.
 */
/** What the benchmarks read of a job's view. */
export interface JobView {
  readonly job_id: string;
  readonly status: string;
  readonly started_at?: string;
  readonly completed_at?: string;
  readonly counts: {
    readonly total: number;
    readonly completed: number;
    readonly failed: number;
    readonly invalid: number;
  };
}

/** The server a job goes to: its REST base and an API key. */
export interface JobServer {
  readonly base: string;
  readonly key: string;
}

const ENDED = new Set(["completed", "failed", "cancelled", "expired"]);

/**
 * Lines of `width` numbers (by name when `named`), generated as they are sent, in pieces of
 * about 256 KiB.
 */
export function jsonl(lines: number, width: number, named = false): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let line = 0;
  return new ReadableStream({
    pull(controller) {
      if (line >= lines) {
        controller.close();
        return;
      }
      let text = "";
      while (line < lines && text.length < 256 * 1024) {
        const input = Array.from({ length: width }, (_, k) => Math.sin(line * 31 + k).toFixed(5));
        text += named
          ? `{"inputs":{"input":{"values":[${input.join(",")}]}},"id":"l${line + 1}"}\n`
          : `{"input":[${input.join(",")}],"id":"l${line + 1}"}\n`;
        line++;
      }
      controller.enqueue(encoder.encode(text));
    },
  });
}

/** Uploads a job of `lines` lines of `width` numbers on `model` (at the server's default priority, `low`). */
export async function uploadJob(
  server: JobServer,
  model: string,
  lines: number,
  width: number,
  named = false,
): Promise<JobView> {
  const response = await fetch(`${server.base}/api/batch-processor/jobs?model_id=${model}`, {
    method: "POST",
    headers: { "x-api-key": server.key, "content-type": "application/x-ndjson" },
    body: jsonl(lines, width, named),
    duplex: "half",
  } as RequestInit);
  if (response.status !== 201)
    throw new Error(`upload: ${response.status} ${await response.text()}`);
  return (await response.json()) as JobView;
}

export async function jobView(server: JobServer, jobId: string): Promise<JobView> {
  const response = await fetch(`${server.base}/api/batch-processor/jobs/${jobId}`, {
    headers: { "x-api-key": server.key },
  });
  if (!response.ok) throw new Error(`job ${jobId}: ${response.status}`);
  return (await response.json()) as JobView;
}

/** The job's view once it has ended. */
export async function jobEnded(server: JobServer, jobId: string): Promise<JobView> {
  for (;;) {
    const view = await jobView(server, jobId);
    if (ENDED.has(view.status)) return view;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function cancelJob(server: JobServer, jobId: string): Promise<JobView> {
  const response = await fetch(`${server.base}/api/batch-processor/jobs/${jobId}/cancel`, {
    method: "POST",
    headers: { "x-api-key": server.key },
  });
  if (!response.ok) throw new Error(`cancel ${jobId}: ${response.status}`);
  return jobEnded(server, jobId);
}

/** A job's lines by outcome. */
export interface JobOutcomes {
  /** Lines with an output of the expected width. */
  readonly output: number;
  /** Lines ended `CANCELLED` by a cancel. */
  readonly cancelled: number;
  /** Every other line: an error, or an output of the wrong width. */
  readonly error: number;
}

/** Downloads the job's results and counts its lines by outcome; see {@link JobOutcomes}. */
export async function jobOutcomes(
  server: JobServer,
  jobId: string,
  outputWidth: number,
): Promise<JobOutcomes> {
  const response = await fetch(`${server.base}/api/batch-processor/jobs/${jobId}/results`, {
    headers: { "x-api-key": server.key },
  });
  if (!response.ok || response.body === null) throw new Error(`results: ${response.status}`);
  let output = 0;
  let cancelled = 0;
  let error = 0;
  let carry = "";
  const decoder = new TextDecoder();
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    const text = carry + decoder.decode(chunk, { stream: true });
    const parts = text.split("\n");
    carry = parts.pop() ?? "";
    for (const part of parts) {
      if (part === "") continue;
      const result = JSON.parse(part) as {
        output?: number[];
        outputs?: Record<string, { values?: number[] }>;
        error?: { code?: string };
      };
      const values =
        result.output ?? Object.values(result.outputs ?? {}).find((t) => t.values)?.values;
      if (result.error === undefined && values?.length === outputWidth) output++;
      else if (result.error?.code === "CANCELLED") cancelled++;
      else error++;
    }
  }
  return { output, cancelled, error };
}
