"""The asyncio client: the blocking client's methods as coroutines and async iterators."""
from __future__ import annotations

import os
from typing import Any, AsyncIterator, Iterable, List, Mapping, Optional, Sequence, Union

import grpc
import grpc.aio

from . import _requests as req
from ._client import DEFAULT_TARGET
from ._errors import BatchProcessorError
from ._gen.batchprocessor.v1 import batch_processor_pb2 as pb
from ._gen.batchprocessor.v1 import batch_processor_pb2_grpc as rpc
from ._gen.batchprocessor.v1 import job_pb2 as job_pb


class AsyncClient:
    """:class:`Client` for asyncio: ``async with AsyncClient(...) as client``."""

    def __init__(
        self,
        target: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        timeout: Optional[float] = None,
    ) -> None:
        target = target or os.environ.get("BATCH_PROCESSOR_GRPC", DEFAULT_TARGET)
        key = api_key if api_key is not None else os.environ.get("BATCH_PROCESSOR_API_KEY")
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options)
        )
        self._stub = rpc.BatchProcessorServiceStub(self._channel)
        self._metadata = (("x-api-key", key),) if key else ()
        self._timeout = timeout

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.RpcError as error:
            raise BatchProcessorError.from_rpc_error(error) from None

    async def _stream(self, method: str, request: Any) -> AsyncIterator[Any]:
        try:
            async for message in getattr(self._stub, method)(request, metadata=self._metadata):
                yield message
        except grpc.RpcError as error:
            raise BatchProcessorError.from_rpc_error(error) from None

    async def submit(
        self,
        items: Iterable[req.ItemLike],
        *,
        priority: str = "",
        batch_id: str = "",
        timeout_ms: int = 0,
        model: Optional[str] = None,
        model_version: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> pb.SubmitBatchResponse:
        request = req.submit_request(
            items,
            priority=priority,
            batch_id=batch_id,
            timeout_ms=timeout_ms,
            model=model,
            model_version=model_version,
            extra_metadata=metadata,
        )
        return await self._call("SubmitBatch", request)

    async def infer(
        self,
        items: Iterable[req.ItemLike],
        *,
        priority: str = "",
        timeout_ms: int = 0,
        model: Optional[str] = None,
        model_version: Optional[str] = None,
        output_names: Sequence[str] = (),
    ) -> pb.BatchResults:
        request = req.submit_request(
            items,
            priority=priority,
            timeout_ms=timeout_ms,
            model=model,
            model_version=model_version,
            output_names=output_names,
        )
        return await self._call("Infer", request)

    async def status(self, batch_id: str) -> pb.BatchStatus:
        return await self._call("GetBatchStatus", pb.GetBatchStatusRequest(batch_id=batch_id))

    def watch(self, batch_id: str) -> AsyncIterator[pb.BatchStatus]:
        return self._stream("WatchBatch", pb.WatchBatchRequest(batch_id=batch_id))

    async def results(self, batch_id: str, *, partial: bool = False) -> pb.BatchResults:
        return await self._call(
            "GetBatchResults", pb.GetBatchResultsRequest(batch_id=batch_id, partial=partial)
        )

    async def cancel(self, batch_id: str) -> pb.BatchStatus:
        return await self._call("CancelBatch", pb.CancelBatchRequest(batch_id=batch_id))

    async def models(self) -> List[pb.ModelInfo]:
        return list((await self._call("ListModels", pb.ListModelsRequest())).models)

    async def create_job(
        self,
        source: Union[str, os.PathLike, bytes, Iterable[Any]],
        *,
        model: str = "",
        priority: str = "",
        completion_window: str = "",
        job_id: str = "",
        on_invalid: str = "",
        result_ttl: str = "",
    ) -> job_pb.Job:
        spec = req.job_spec(
            model=model,
            priority=priority,
            completion_window=completion_window,
            job_id=job_id,
            on_invalid=on_invalid,
            result_ttl=result_ttl,
        )
        try:
            return await self._stub.CreateJob(req.upload(spec, source), metadata=self._metadata)
        except grpc.RpcError as error:
            raise BatchProcessorError.from_rpc_error(error) from None

    async def job(self, job_id: str) -> job_pb.Job:
        return await self._call("GetJob", job_pb.GetJobRequest(job_id=job_id))

    async def cancel_job(self, job_id: str) -> job_pb.Job:
        return await self._call("CancelJob", job_pb.CancelJobRequest(job_id=job_id))

    def watch_job(self, job_id: str) -> AsyncIterator[job_pb.Job]:
        return self._stream("WatchJob", job_pb.WatchJobRequest(job_id=job_id))

    def job_results(self, job_id: str, *, from_line: int = 0) -> AsyncIterator[job_pb.JobResult]:
        return self._stream(
            "GetJobResults", job_pb.GetJobResultsRequest(job_id=job_id, from_line=from_line)
        )
