/** A span around a piece of work, synchronous or not. */
import { type Span, SpanStatusCode } from "@opentelemetry/api";

/** Runs `work` and ends `span` when it ends (a promise: once it settles), marking a failure. */
export function endWith<T>(span: Span, work: () => T): T {
  const fail = (error: unknown) => {
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
    span.end();
  };
  let result: T;
  try {
    result = work();
  } catch (error) {
    fail(error);
    throw error;
  }
  if (result instanceof Promise)
    return result.then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        fail(error);
        throw error;
      },
    ) as T;
  span.end();
  return result;
}
