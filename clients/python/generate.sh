#!/usr/bin/env bash
# Writes the package's gRPC stubs (batch_processor_client/_gen/) from proto/batchprocessor/v1.
# The google.api.http annotations are left out of the copy protoc reads (a client needs none), so
# the package needs nothing from googleapis, and the stubs import each other inside the package.
# Needs protoc and grpc_python_plugin (Debian: protobuf-compiler-grpc). Usage: generate.sh [out]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/batch_processor_client/_gen}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/batchprocessor/v1"
for name in batch_processor job tensor; do
  /usr/bin/python3 - "$root/proto/batchprocessor/v1/$name.proto" "$tmp/batchprocessor/v1/$name.proto" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = text.replace('import "google/api/annotations.proto";\n', "")
text = re.sub(r"\s*option \(google\.api\.http\) = \{.*?\};", "", text, flags=re.S)
open(sys.argv[2], "w").write(text)
PY
done
rm -rf "$out"
mkdir -p "$out/batchprocessor/v1"
protoc -I "$tmp" --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  batchprocessor/v1/batch_processor.proto batchprocessor/v1/job.proto batchprocessor/v1/tensor.proto
sed -i 's/^from batchprocessor\.v1 import/from batch_processor_client._gen.batchprocessor.v1 import/' \
  "$out"/batchprocessor/v1/*.py
touch "$out/__init__.py" "$out/batchprocessor/__init__.py" "$out/batchprocessor/v1/__init__.py"
