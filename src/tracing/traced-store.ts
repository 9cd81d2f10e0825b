/**
 * A store whose calls made while a traced request is served are spans of that request
 * (`store.createBatch`, `store.save`, …), so a trace shows what the request cost the store. Calls
 * outside any traced request go straight through.
 */
import { trace } from "@opentelemetry/api";
import { endWith } from "./spans.js";
import { tracer } from "./tracing.js";

/** `store`, its method calls traced as spans named `<name>.<method>`. */
export function tracedStore<T extends object>(store: T, name = "store"): T {
  return new Proxy(store, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key);
      if (typeof value !== "function" || typeof key !== "string") return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const parent = trace.getActiveSpan();
        if (parent === undefined || !parent.isRecording()) return method.apply(target, args);
        return tracer().startActiveSpan(`${name}.${key}`, (span) =>
          endWith(span, () => method.apply(target, args)),
        );
      };
    },
  });
}
