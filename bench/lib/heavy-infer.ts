/** An Infer request on one of the bench's heavy models, encoded once to be sent many times. */
import { create, toBinary } from "@bufbuild/protobuf";
import { SubmitBatchRequestSchema } from "../../gen/batchprocessor/v1/batch_processor_pb.js";

/** What the benchmarks read of an Infer answer. */
export interface InferAnswer {
  readonly results?: readonly { readonly output?: readonly number[]; readonly error?: string }[];
}

/** `items` items of `width` numbers for `model` at `priority`, with the longest timeout allowed. */
export function encodedHeavyInfer(
  items: number,
  width: number,
  priority: string,
  model = "heavy",
): Buffer {
  const data = Array.from({ length: items }, (_, k) => ({
    input: Array.from({ length: width }, (_, i) => Math.sin(k + i)),
  }));
  return Buffer.from(
    toBinary(
      SubmitBatchRequestSchema,
      create(SubmitBatchRequestSchema, {
        data,
        priority,
        timeoutMs: 300_000,
        metadata: { model_id: model },
      }),
    ),
  );
}
