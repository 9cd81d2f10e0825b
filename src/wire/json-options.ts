/** The JSON every protocol writes: proto field names (snake_case) and zero values present. */
export const JSON_WRITE_OPTIONS = Object.freeze({
  useProtoFieldName: true,
  alwaysEmitImplicit: true,
});

/** The JSON every protocol reads: unknown fields are an error that names them. */
export const JSON_READ_OPTIONS = Object.freeze({ ignoreUnknownFields: false });
