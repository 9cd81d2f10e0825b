/**
 * The external data files an ONNX model names, read from its bytes (the protobuf wire format,
 * no schema needed): every tensor's `location` in the graph, its nodes' attributes and their
 * subgraphs. A model loads from bytes, so ONNX Runtime would resolve a file the server did not
 * hand it against the process's working directory: the server hands it every one, and refuses a
 * model that names a file outside its own folder.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

// Field numbers of onnx.proto.
const MODEL_GRAPH = 7;
const MODEL_FUNCTIONS = 25;
const FUNCTION_NODE = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_SPARSE_INITIALIZER = 15;
const NODE_ATTRIBUTE = 5;
const ATTRIBUTE_T = 5;
const ATTRIBUTE_G = 6;
const ATTRIBUTE_TENSORS = 10;
const ATTRIBUTE_GRAPHS = 11;
const ATTRIBUTE_SPARSE_TENSOR = 22;
const ATTRIBUTE_SPARSE_TENSORS = 23;
const SPARSE_VALUES = 1;
const SPARSE_INDICES = 2;
const TENSOR_EXTERNAL_DATA = 13;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;

/** Depth past which a model is not read further (a graph nested deeper is refused). */
const MAX_DEPTH = 64;

/**
 * Every external data location the model names, each once. Bytes that do not parse as protobuf
 * name none: ONNX Runtime's parser refuses them too, with its own words for why.
 */
export function externalDataLocations(model: Uint8Array): string[] {
  const found = new Set<string>();
  try {
    messages(model, (field, bytes) => {
      if (field === MODEL_GRAPH) graph(bytes, found, 0);
      else if (field === MODEL_FUNCTIONS)
        messages(bytes, (f, b) => {
          if (f === FUNCTION_NODE) node(b, found, 1);
        });
    });
  } catch (error) {
    // A model whose graphs nest deeper than this reads cannot be checked: it does not load.
    if (error instanceof TooDeepError) throw error;
    return [];
  }
  return [...found];
}

/** A model whose graphs nest deeper than {@link MAX_DEPTH}. */
export class TooDeepError extends Error {
  constructor() {
    super(`model.onnx nests graphs deeper than ${MAX_DEPTH} levels`);
    this.name = "TooDeepError";
  }
}

function graph(bytes: Uint8Array, found: Set<string>, depth: number): void {
  if (depth > MAX_DEPTH) throw new TooDeepError();
  messages(bytes, (field, b) => {
    if (field === GRAPH_INITIALIZER) tensor(b, found);
    else if (field === GRAPH_SPARSE_INITIALIZER) sparse(b, found);
    else if (field === GRAPH_NODE) node(b, found, depth + 1);
  });
}

function node(bytes: Uint8Array, found: Set<string>, depth: number): void {
  messages(bytes, (field, b) => {
    if (field !== NODE_ATTRIBUTE) return;
    messages(b, (f, a) => {
      if (f === ATTRIBUTE_T || f === ATTRIBUTE_TENSORS) tensor(a, found);
      else if (f === ATTRIBUTE_SPARSE_TENSOR || f === ATTRIBUTE_SPARSE_TENSORS) sparse(a, found);
      else if (f === ATTRIBUTE_G || f === ATTRIBUTE_GRAPHS) graph(a, found, depth + 1);
    });
  });
}

function sparse(bytes: Uint8Array, found: Set<string>): void {
  messages(bytes, (field, b) => {
    if (field === SPARSE_VALUES || field === SPARSE_INDICES) tensor(b, found);
  });
}

function tensor(bytes: Uint8Array, found: Set<string>): void {
  messages(bytes, (field, entry) => {
    if (field !== TENSOR_EXTERNAL_DATA) return;
    let key = "";
    let value = "";
    messages(entry, (f, b) => {
      if (f === ENTRY_KEY) key = new TextDecoder().decode(b);
      else if (f === ENTRY_VALUE) value = new TextDecoder().decode(b);
    });
    if (key === "location") found.add(value);
  });
}

/** Calls `visit` with each length-delimited field of a message; skips the others. */
function messages(bytes: Uint8Array, visit: (field: number, bytes: Uint8Array) => void): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited) visit(field, reader.bytes());
    else reader.skip(wireType);
  }
}
