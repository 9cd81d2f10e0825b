/** The JSON every protocol writes: proto field names (snake_case) and zero values present. */
export const JSON_WRITE_OPTIONS = Object.freeze({
  useProtoFieldName: true,
  alwaysEmitImplicit: true,
});

/** The JSON every protocol reads: unknown fields are an error that names them. */
export const JSON_READ_OPTIONS = Object.freeze({ ignoreUnknownFields: false });

/**
 * The JSON of one line of a job's results download: only the fields the line has, so that a
 * results file holds `{"line": 7, "error": {...}}` rather than empty outputs and labels.
 */
export const RESULT_LINE_JSON_OPTIONS = Object.freeze({
  useProtoFieldName: true,
  alwaysEmitImplicit: false,
});

/** The JSON options of messages of `typeName` on every JSON protocol. */
export function jsonWriteOptionsOf(typeName: string) {
  return typeName === "batchprocessor.v1.JobResult" ? RESULT_LINE_JSON_OPTIONS : JSON_WRITE_OPTIONS;
}
