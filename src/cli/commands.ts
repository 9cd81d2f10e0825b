/**
 * The CLI's client commands: each one call (or a few) of the typed client, its answer printed as
 * the REST API's JSON. A server error prints its code and message and exits 1; a usage error
 * exits 2; Ctrl-C while watching leaves the batches running, prints their ids and exits 130.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  type DescMessage,
  fromJson,
  type JsonObject,
  type MessageShape,
  toJson,
} from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import {
  BatchConfigSchema,
  BatchResultsSchema,
  BatchStatusSchema,
  ConfigureRequestSchema,
  ListBatchesResponseSchema,
  MetricsSchema,
  ModelInfoSchema,
  ReloadModelsResponseSchema,
  SubmitBatchResponseSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { BatchProcessorClient } from "../client/index.js";
import { isTerminal, MAX_ITEMS_PER_SUBMIT } from "../engine/index.js";
import { codeName, JSON_WRITE_OPTIONS } from "../wire/index.js";
import { chunks, type ItemInput, parseItems } from "./inputs.js";
import { jobs, submitJobItems } from "./jobs.js";
import { RunProgress } from "./progress.js";
import { writeResults } from "./results.js";
import { asTable, batchRows, modelRows, printTable } from "./tables.js";
import { UsageError } from "./usage.js";

/** Client commands and what each does, for the usage text. */
export const CLIENT_COMMANDS: Readonly<Record<string, string>> = {
  submit:
    "submit FILE|- [--watch] [-o OUT]: store a JSONL or JSON file's items as a batch (up to 1000) or as a job",
  jobs: "jobs submit FILE|- [--watch] [-o OUT] | status ID | watch ID [-o OUT] | results ID [-o OUT] [--from-line N] | cancel ID | list: data sets as jobs",
  status: "status ID...: a batch's status",
  watch: "watch ID...: a progress bar until the batches end",
  results: "results ID... [-o OUT]: results as JSON Lines, in input order",
  list: "list [--status S] [--limit N]: your batches, newest first",
  cancel: "cancel ID...: cancel batches",
  infer:
    "infer [ITEM...]: run items now (JSON items or arrays; stdin when none); exits 1 when an item failed",
  models: "models: the server's models",
  "reload-models":
    "reload-models: load new and changed model files (admin key); exit 1 when one failed",
  config: "config: the batching configuration",
  configure:
    "configure JSON: change the batching configuration (admin key), e.g. '{\"max_batch_size\": 64}'",
  metrics: "metrics: the server's live figures",
};

/**
 * The caller's trace, from OpenTelemetry's environment carriers (`TRACEPARENT`, `TRACESTATE`):
 * a script that runs the CLI inside a trace passes it on, and the server's spans join it.
 */
function traceHeaders(env: NodeJS.ProcessEnv): Record<string, string> {
  const headers: Record<string, string> = {};
  if (env.TRACEPARENT) headers.traceparent = env.TRACEPARENT;
  if (env.TRACEPARENT && env.TRACESTATE) headers.tracestate = env.TRACESTATE;
  return headers;
}

export const CLIENT_FLAGS = `client flags:
  --url <url>          server: http(s)://host:port (Connect) or grpc(s)://host:port (gRPC);
                       BATCH_PROCESSOR_URL, default http://127.0.0.1:8000
  --api-key <key>      BATCH_PROCESSOR_API_KEY
  (TRACEPARENT and TRACESTATE, when set, go with every call: the server's spans join that trace)
  --priority <p>       critical | high | normal | low (submit, infer)
  --model <name>       the model (submit, infer); the server's default when absent
  --model-version <v>  one of the model's served versions (submit, infer); the latest when absent
  --timeout-ms <n>     each item's deadline (submit, infer)
  --batch-id <id>      the batch id (submit; the job id when the file becomes a job)
  --watch              show progress until the batch or job ends (submit, jobs submit)
  -o, --output <file>  write results as JSON Lines (submit --watch, results, jobs submit --watch,
                       jobs watch: an existing file goes on after its last line, jobs results)
  --status <s>         active | all | a status (list, jobs list)
  --limit <n>          page size (list, jobs list)
  --job-id <id>        the job id, an idempotency key (jobs submit)
  --window <d>         completion window: 90s, 30m, 24h (default), 7d (jobs submit)
  --result-ttl <d>     how long the job is kept once ended: 1m..365d (jobs submit; RESULT_TTL)
  --on-invalid <m>     keep (default: bad lines get an error outcome) | reject (jobs submit)
  --from-line <n>      first line of the results (jobs results)
  --json               JSON lines even on a terminal (list, models: tables there otherwise)
`;

/** The contract's numbers are uint32. */
const UINT32_MAX = 4_294_967_295;

export { UsageError } from "./usage.js";

/** Runs a client command; resolves to the exit code. */
export async function runClientCommand(command: string, argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      "api-key": { type: "string" },
      priority: { type: "string" },
      model: { type: "string" },
      "model-version": { type: "string" },
      "timeout-ms": { type: "string" },
      "batch-id": { type: "string" },
      "job-id": { type: "string" },
      window: { type: "string" },
      "result-ttl": { type: "string" },
      "on-invalid": { type: "string" },
      "from-line": { type: "string" },
      watch: { type: "boolean" },
      output: { type: "string", short: "o" },
      status: { type: "string" },
      limit: { type: "string" },
      json: { type: "boolean" },
    },
  });
  const client = new BatchProcessorClient({
    url: values.url ?? process.env.BATCH_PROCESSOR_URL ?? "http://127.0.0.1:8000",
    apiKey: values["api-key"] ?? process.env.BATCH_PROCESSOR_API_KEY,
    headers: traceHeaders(process.env),
  });
  const ids = positionals.slice(1);
  const needIds = () => {
    if (ids.length === 0) throw new UsageError(`${command} needs at least one batch id`);
    return ids;
  };
  const request = {
    priority: values.priority ?? "",
    timeoutMs: integer("--timeout-ms", values["timeout-ms"]) ?? 0,
    metadata:
      values.model === undefined && values["model-version"] === undefined
        ? undefined
        : {
            ...(values.model === undefined ? {} : { model_id: values.model }),
            ...(values["model-version"] === undefined
              ? {}
              : { model_version: values["model-version"] }),
          },
  };
  // Ctrl-C is caught before anything is printed: a user (or a script) that reacts to the first
  // line must not find the default handler still in place.
  const interrupt = new AbortController();
  if (command === "submit" || command === "watch" || command === "jobs")
    process.once("SIGINT", () => interrupt.abort());
  try {
    switch (command) {
      case "submit":
        return await submit(client, positionals[1], interrupt.signal, {
          ...request,
          model: values.model,
          batchId: values["batch-id"],
          watch: values.watch === true,
          output: values.output,
        });
      case "jobs":
        return await jobs(client, positionals.slice(1), interrupt.signal, {
          model: values.model ?? "",
          priority: values.priority ?? "",
          completionWindow: values.window ?? "",
          resultTtl: values["result-ttl"] ?? "",
          jobId: values["job-id"] ?? "",
          onInvalid: values["on-invalid"] ?? "",
          watch: values.watch === true,
          output: values.output,
          fromLine: integer("--from-line", values["from-line"]) ?? 1,
          status: values.status,
          limit: integer("--limit", values.limit),
        });
      case "status":
        for (const id of needIds()) print(BatchStatusSchema, await client.status(id));
        return 0;
      case "watch":
        return await watch(client, needIds(), undefined, interrupt.signal);
      case "results":
        await writeResults(client, needIds(), values.output);
        return 0;
      case "list": {
        const page = await client.list({
          status: values.status,
          limit: integer("--limit", values.limit),
        });
        if (asTable(values.json)) printTable(batchRows(page.batches));
        else print(ListBatchesResponseSchema, page);
        return 0;
      }
      case "cancel":
        for (const id of needIds()) print(BatchStatusSchema, await client.cancel(id));
        return 0;
      case "infer": {
        const text = ids.length > 0 ? `[${ids.join(",")}]` : readFileSync(0, "utf8");
        const data = parseItems(text, ids.length > 0 ? "arguments" : "stdin");
        const answer = await client.infer({ ...request, data });
        print(BatchResultsSchema, answer);
        // Every result is printed; a script still learns from the exit status that some failed.
        const failed = answer.results.filter((r) => r.error !== undefined && r.error !== "");
        if (failed.length === 0) return 0;
        process.stderr.write(
          `${failed.length} of ${answer.results.length} items failed; first: ${failed[0]?.error}\n`,
        );
        return 1;
      }
      case "models": {
        const models = await client.models();
        if (asTable(values.json)) printTable(modelRows(models));
        else for (const model of models) print(ModelInfoSchema, model);
        return 0;
      }
      case "configure": {
        if (ids.length !== 1)
          throw new UsageError("configure takes one JSON object, e.g. '{\"max_batch_size\": 64}'");
        let change: unknown;
        try {
          change = JSON.parse(ids[0] as string);
        } catch (error) {
          throw new UsageError(`configure: not JSON (${(error as Error).message})`);
        }
        if (typeof change !== "object" || change === null || Array.isArray(change))
          throw new UsageError("configure: expected a JSON object");
        print(
          BatchConfigSchema,
          await client.configure(fromJson(ConfigureRequestSchema, change as JsonObject)),
        );
        return 0;
      }
      case "reload-models": {
        const reloaded = await client.reloadModels();
        print(ReloadModelsResponseSchema, reloaded);
        return reloaded.changes.some((c) => c.outcome === "failed") ? 1 : 0;
      }
      case "config":
        print(BatchConfigSchema, await client.config());
        return 0;
      case "metrics":
        print(MetricsSchema, await client.metrics());
        return 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof UsageError) throw error;
    process.stderr.write(`error: ${describe(error)}\n`);
    return 1;
  }
}

interface SubmitOptions {
  readonly priority: string;
  readonly timeoutMs: number;
  readonly metadata: Readonly<Record<string, string>> | undefined;
  readonly model: string | undefined;
  readonly batchId: string | undefined;
  readonly watch: boolean;
  readonly output: string | undefined;
}

/**
 * Stores the file's items as one batch, or, past one batch's worth, as one job (its lines are
 * the items in file order); with `watch`, follows it to the end.
 */
async function submit(
  client: BatchProcessorClient,
  file: string | undefined,
  interrupted: AbortSignal,
  o: SubmitOptions,
): Promise<number> {
  if (file === undefined) throw new UsageError("submit needs a file (or - for stdin)");
  if (o.output !== undefined && !o.watch)
    throw new UsageError("-o with submit needs --watch (or use results ID... -o FILE)");
  const items = parseItems(
    readFileSync(file === "-" ? 0 : file, "utf8"),
    file === "-" ? "stdin" : file,
  );
  if (items.length > MAX_ITEMS_PER_SUBMIT) {
    process.stderr.write(
      `${items.length} items are more than one batch (${MAX_ITEMS_PER_SUBMIT}): submitting them as one job\n`,
    );
    const parts = chunks<ItemInput>(items, MAX_ITEMS_PER_SUBMIT).map((part) => ({
      items: part.map((item) => ({ input: item.input, id: item.requestId, shape: item.shape })),
    }));
    return submitJobItems(
      client,
      parts,
      { modelId: o.model ?? "", priority: o.priority, jobId: o.batchId ?? "" },
      { watch: o.watch, output: o.output },
      interrupted,
    );
  }
  const receipt = await client.submit({
    data: items,
    priority: o.priority,
    timeoutMs: o.timeoutMs,
    metadata: o.metadata,
    batchId: o.batchId,
  });
  if (!o.watch) {
    print(SubmitBatchResponseSchema, receipt);
    return 0;
  }
  const ids = [receipt.batchId];
  process.stdout.write(`submitted ${items.length} items as batch ${receipt.batchId}\n`);
  const code = await watch(client, ids, items.length, interrupted);
  if (code === 0 && o.output !== undefined) await writeResults(client, ids, o.output);
  return code;
}

/**
 * Follows batches to their end with one progress display for all of them; 0 when every batch
 * completed, 1 when one failed or was cancelled, 130 on Ctrl-C (the batches keep running).
 */
async function watch(
  client: BatchProcessorClient,
  ids: readonly string[],
  knownTotal: number | undefined,
  interruptedBy: AbortSignal,
): Promise<number> {
  const abort = new AbortController();
  const first = await Promise.all(ids.map((id) => client.status(id)));
  const total = knownTotal ?? first.reduce((n, s) => n + s.totalRequests, 0);
  const progress = new RunProgress(
    total,
    process.stdout,
    ids.length === 1 ? (ids[0] as string) : `${ids.length} batches`,
  );
  const latest = new Map(first.map((s) => [s.batchId, s]));
  const show = () => {
    let done = 0;
    let failed = 0;
    for (const s of latest.values()) {
      done += s.completedRequests;
      failed += s.failedRequests;
    }
    progress.update(done, failed);
  };
  show();
  const interrupted = new Promise<"interrupted">((resolve) => {
    const stop = () => {
      abort.abort();
      resolve("interrupted");
    };
    if (interruptedBy.aborted) stop();
    else interruptedBy.addEventListener("abort", stop, { once: true });
  });
  const followed = Promise.all(
    ids.map(async (id) => {
      if (isTerminal(latest.get(id)?.status ?? "")) return;
      for await (const status of client.watch(id, { signal: abort.signal })) {
        latest.set(id, status);
        show();
      }
    }),
  );
  const outcome = await Promise.race([followed.then(() => "ended" as const), interrupted]);
  if (outcome === "interrupted") {
    progress.finish(`interrupted: the batches keep running on the server: ${ids.join(" ")}`);
    return 130;
  }
  const statuses = [...latest.values()];
  const unfinished = statuses.filter((s) => s.status !== "completed");
  const failed = statuses.reduce((n, s) => n + s.failedRequests, 0);
  progress.finish(
    unfinished.length === 0
      ? `completed: ${total} items, ${failed} failed`
      : `ended: ${unfinished.map((s) => `${s.batchId} ${s.status}${s.error === undefined ? "" : ` (${s.error})`}`).join(", ")}`,
  );
  return unfinished.length === 0 ? 0 : 1;
}

function print<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): void {
  process.stdout.write(`${JSON.stringify(toJson(schema, message, JSON_WRITE_OPTIONS))}\n`);
}

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > UINT32_MAX)
    throw new UsageError(`${flag} must be a whole number up to ${UINT32_MAX}`);
  return n;
}

function describe(error: unknown): string {
  if (error instanceof ConnectError) return `${codeName(error.code)}: ${error.rawMessage}`;
  return error instanceof Error ? error.message : String(error);
}
