"""Submit several batches at once with asyncio and aiohttp, follow each as a stream (NDJSON),
then read their results.

BATCH_PROCESSOR_URL (default http://localhost:8000), API_KEY. Run with a Python that has
`aiohttp` (Debian: python3-aiohttp).
"""
import asyncio
import json
import os

import aiohttp

URL = os.environ.get("BATCH_PROCESSOR_URL", "http://localhost:8000")
HEADERS = {"X-API-Key": os.environ["API_KEY"]}


async def run_batch(session: aiohttp.ClientSession, n: int, priority: str) -> str:
    body = {"data": [{"input": [n, k, 1.0]} for k in range(5)], "priority": priority}
    async with session.post(f"{URL}/api/batch-processor/submit", json=body) as response:
        response.raise_for_status()
        batch_id = (await response.json())["batch_id"]
    # Each status change arrives as one JSON line; the stream ends with the batch.
    async with session.get(f"{URL}/api/batch-processor/watch/{batch_id}") as stream:
        async for line in stream.content:
            if line.strip():
                last = json.loads(line)
    async with session.get(f"{URL}/api/batch-processor/results/{batch_id}") as response:
        results = await response.json()
    return f"{batch_id} {priority} {last['status']} {len(results['results'])} items"


async def main() -> None:
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        lines = await asyncio.gather(
            *(run_batch(session, n, p) for n, p in enumerate(["critical", "high", "normal", "low"]))
        )
    for line in lines:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
