"""Runs the package against a live server (BATCH_PROCESSOR_GRPC, BATCH_PROCESSOR_API_KEY): every
call family once with the blocking client and once with the asyncio one, printing one JSON line
of what came back for the caller to check."""
import asyncio
import json
import os
import sys
import tempfile

import grpc

from batch_processor_client import AsyncClient, BatchProcessorError, Client


def blocking() -> dict:
    out = {}
    with Client() as client:
        out["models"] = [m.name for m in client.models()]
        receipt = client.submit([[1, 2, 3], {"input": [4, 5, 6], "request_id": "x"}], priority="high")
        out["statuses"] = [s.status for s in client.watch(receipt.batch_id)]
        results = client.results(receipt.batch_id)
        out["results"] = [[r.request_id, len(r.output), r.label] for r in results.results]
        answer = client.infer([{"inputs": {"input": {"values": [1, 2, 3]}}}])
        out["named"] = {k: list(v.values) for k, v in answer.results[0].outputs.items()}
        try:
            client.status("no-such-batch")
        except BatchProcessorError as error:
            out["error"] = [error.code.name, error.message]
        try:
            client.infer([[1]], model="default", model_version="9")
        except BatchProcessorError as error:
            out["version_error"] = [error.code == grpc.StatusCode.NOT_FOUND, error.message]
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as file:
            for k in range(2500):
                file.write(json.dumps({"input": [k, 1, 2], "id": f"line-{k}"}) + "\n")
            path = file.name
        job = client.create_job(path, priority="low")
        os.unlink(path)
        out["job_ends"] = [j.status for j in client.watch_job(job.job_id)][-1]
        lines = list(client.job_results(job.job_id))
        out["job_lines"] = [len(lines), lines[0].line, lines[-1].line, lines[-1].id]
    return out


async def asynchronous() -> dict:
    out = {}
    async with AsyncClient() as client:
        receipt = await client.submit([[7, 8], [9, 10]], batch_id="py-async-1")
        out["statuses"] = [s.status async for s in client.watch(receipt.batch_id)]
        out["results"] = len((await client.results("py-async-1")).results)
        job = await client.create_job(({"input": [k, 0.5]} for k in range(300)))
        out["job_ends"] = [j.status async for j in client.watch_job(job.job_id)][-1]
        out["job_lines"] = len([r async for r in client.job_results(job.job_id)])
        try:
            await client.cancel("no-such-batch")
        except BatchProcessorError as error:
            out["error"] = error.code.name
    return out


if __name__ == "__main__":
    print(json.dumps({"blocking": blocking(), "asyncio": asyncio.run(asynchronous())}))
    sys.stdout.flush()
