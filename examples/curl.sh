#!/usr/bin/env bash
# Submit a batch over REST with curl, follow it to its end as a stream, and read its results.
# Needs curl and jq. BATCH_PROCESSOR_URL (default http://localhost:8000), API_KEY.
set -euo pipefail
URL=${BATCH_PROCESSOR_URL:-http://localhost:8000}
KEY=${API_KEY:?set API_KEY}

batch_id=$(curl -sf "$URL/api/batch-processor/submit" -H "X-API-Key: $KEY" \
  -H 'Content-Type: application/json' \
  -d '{"data": [{"input": [1, 2, 3]}, {"input": [4, 5, 6]}, {"input": [7, 8, 9]}], "priority": "high"}' |
  jq -r .batch_id)
echo "submitted $batch_id"

# One JSON line per status change, the last one when the batch has ended.
curl -sfN "$URL/api/batch-processor/watch/$batch_id" -H "X-API-Key: $KEY" |
  jq -r '"\(.status) \(.completed_requests)/\(.total_requests)"'

curl -sf "$URL/api/batch-processor/results/$batch_id" -H "X-API-Key: $KEY" |
  jq -r '.results[] | "\(.request_id) \(.label) \(.confidence)"'
