#!/usr/bin/env bash
# What the test suite needs besides node_modules, installed or started when missing, so that
# `npm test` passes on a fresh machine (npm runs this as `pretest`; CI runs `npm ci && npm test`):
# - redis-server: the store contract suite and the cluster tests use a Redis on 127.0.0.1:6379
#   (started here when none answers; it keeps nothing on disk), and the tests that stop Redis
#   start their own on a free port, so the binary is needed even when one answers;
# - `script` (bsdutils), which gives the CLI's progress bar a terminal;
# - `ip` (iproute2), with which the network partition test puts a node in a namespace of its own
#   (it needs root or passwordless sudo, as CI has);
# - Chromium for the dashboard's browser test (CHROMIUM_PATH, default /usr/bin/chromium);
# - what the examples run with: curl, jq, Python's requests, aiohttp, grpcio and protobuf for
#   /usr/bin/python3, and protoc with the gRPC Python plugin.
# Debian packages come from apt-get (as root, or through sudo).
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v grpc_python_plugin >/dev/null 2>&1 || missing+=(protobuf-compiler-grpc)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
for module in requests:python3-requests aiohttp:python3-aiohttp grpc:python3-grpcio \
  google.protobuf:python3-protobuf; do
  /usr/bin/python3 -c "import ${module%%:*}" 2>/dev/null || missing+=("${module##*:}")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "test-setup: installing ${missing[*]}" >&2
  as_root=()
  if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "test-setup: the tests need ${missing[*]}; install them (Debian packages) or run as root" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "test-setup: starting redis-server on 127.0.0.1:6379" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && exit 0
    sleep 0.1
  done
  echo "test-setup: redis-server did not answer on 127.0.0.1:6379" >&2
  exit 1
fi
