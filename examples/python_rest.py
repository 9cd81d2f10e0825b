"""Submit a batch over REST with requests, poll its status, print its results.

BATCH_PROCESSOR_URL (default http://localhost:8000), API_KEY. Run with a Python that has
`requests` (Debian: python3-requests).
"""
import os
import time

import requests

URL = os.environ.get("BATCH_PROCESSOR_URL", "http://localhost:8000")
HEADERS = {"X-API-Key": os.environ["API_KEY"]}


def main() -> None:
    items = [{"input": [float(i), 2.0, 3.0], "request_id": f"item-{i}"} for i in range(10)]
    response = requests.post(
        f"{URL}/api/batch-processor/submit",
        json={"data": items, "priority": "normal", "timeout_ms": 30000},
        headers=HEADERS,
        timeout=10,
    )
    response.raise_for_status()
    batch_id = response.json()["batch_id"]
    print(f"submitted {batch_id}")
    while True:
        status = requests.get(
            f"{URL}/api/batch-processor/status/{batch_id}", headers=HEADERS, timeout=10
        ).json()
        if status["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.1)
    results = requests.get(
        f"{URL}/api/batch-processor/results/{batch_id}", headers=HEADERS, timeout=10
    ).json()
    for result in results["results"]:
        print(result["request_id"], result["label"], round(result["confidence"], 4))
    print(f"{status['status']} {len(results['results'])} items")


if __name__ == "__main__":
    main()
