#!/usr/bin/env bash
# Writes the Python stubs of the Open Inference Protocol (KServe v2) into examples/python_v2/gen/
# (git-ignored) from proto/inference/grpc_predict_v2.proto. Needs protoc and grpc_python_plugin
# (Debian: protobuf-compiler-grpc). Stubs from KServe's or Triton's own copy of the protocol work
# the same: the wire is the same.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=examples/python_v2/gen
mkdir -p "$out"
protoc -I proto --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  inference/grpc_predict_v2.proto
echo "stubs in $out"
