#!/usr/bin/env bash
# Writes the Python stubs of the contract into examples/python_grpc/gen/ (git-ignored): the
# service's batch_processor_pb2(_grpc).py, job_pb2.py, tensor_pb2.py and the google.api annotations
# they import.
# Needs protoc and grpc_python_plugin (Debian: protobuf-compiler-grpc). The google/api protos are the
# ones `npm run generate` copies into proto-deps/; protoc finds google/protobuf's itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f proto-deps/google/api/annotations.proto ] || npm run --silent generate >/dev/null
out=examples/python_grpc/gen
mkdir -p "$out"
protoc -I proto -I proto-deps \
  --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  batchprocessor/v1/batch_processor.proto batchprocessor/v1/job.proto batchprocessor/v1/tensor.proto \
  google/api/annotations.proto google/api/http.proto
echo "stubs in $out"
