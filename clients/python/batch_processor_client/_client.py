"""The blocking client: one method per call of the contract, over native gRPC."""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, TypeVar, Union

import grpc

from . import _requests as req
from ._errors import BatchProcessorError
from ._gen.batchprocessor.v1 import batch_processor_pb2 as pb
from ._gen.batchprocessor.v1 import batch_processor_pb2_grpc as rpc
from ._gen.batchprocessor.v1 import job_pb2 as job_pb

T = TypeVar("T")

#: Where the server listens for gRPC unless told otherwise.
DEFAULT_TARGET = "localhost:50051"


def _raising(call: Callable[..., T]) -> Callable[..., T]:
    """Turns a failed call's grpc.RpcError into a BatchProcessorError."""

    @functools.wraps(call)
    def wrapped(*args: Any, **kwargs: Any) -> T:
        try:
            return call(*args, **kwargs)
        except grpc.RpcError as error:
            raise BatchProcessorError.from_rpc_error(error) from None

    return wrapped


def _streaming(call: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    """As :func:`_raising`, for calls that answer a stream."""

    @functools.wraps(call)
    def wrapped(*args: Any, **kwargs: Any) -> Iterator[T]:
        try:
            yield from call(*args, **kwargs)
        except grpc.RpcError as error:
            raise BatchProcessorError.from_rpc_error(error) from None

    return wrapped


class Client:
    """A Batch Processor server over native gRPC.

    ``target`` is ``host:port`` (default ``BATCH_PROCESSOR_GRPC`` or ``localhost:50051``); the key
    comes from ``api_key`` or ``BATCH_PROCESSOR_API_KEY``. Pass ``credentials`` for TLS. Use it as a
    context manager, or call :meth:`close`. Every failed call raises :class:`BatchProcessorError`.
    """

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
            grpc.secure_channel(target, credentials, options)
            if credentials is not None
            else grpc.insecure_channel(target, options)
        )
        self._stub = rpc.BatchProcessorServiceStub(self._channel)
        self._metadata = (("x-api-key", key),) if key else ()
        self._timeout = timeout

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Any) -> Any:
        return getattr(self._stub, method)(request, metadata=self._metadata, timeout=self._timeout)

    # Batches

    @_raising
    def submit(
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
        """Stores 1..1000 items as one batch and answers at once (``batch_id``, ``status``, ...)."""
        request = req.submit_request(
            items,
            priority=priority,
            batch_id=batch_id,
            timeout_ms=timeout_ms,
            model=model,
            model_version=model_version,
            extra_metadata=metadata,
        )
        return self._call("SubmitBatch", request)

    @_raising
    def infer(
        self,
        items: Iterable[req.ItemLike],
        *,
        priority: str = "",
        timeout_ms: int = 0,
        model: Optional[str] = None,
        model_version: Optional[str] = None,
        output_names: Sequence[str] = (),
    ) -> pb.BatchResults:
        """Runs items through the batcher and answers with their results; nothing is stored."""
        request = req.submit_request(
            items,
            priority=priority,
            timeout_ms=timeout_ms,
            model=model,
            model_version=model_version,
            output_names=output_names,
        )
        return self._call("Infer", request)

    @_raising
    def status(self, batch_id: str) -> pb.BatchStatus:
        return self._call("GetBatchStatus", pb.GetBatchStatusRequest(batch_id=batch_id))

    @_streaming
    def watch(self, batch_id: str) -> Iterator[pb.BatchStatus]:
        """The batch's status now, then each change, until it has ended."""
        yield from self._stub.WatchBatch(
            pb.WatchBatchRequest(batch_id=batch_id), metadata=self._metadata
        )

    @_raising
    def results(self, batch_id: str, *, partial: bool = False) -> pb.BatchResults:
        """The batch's results (FAILED_PRECONDITION until it has ended, unless ``partial``)."""
        return self._call(
            "GetBatchResults", pb.GetBatchResultsRequest(batch_id=batch_id, partial=partial)
        )

    @_raising
    def cancel(self, batch_id: str) -> pb.BatchStatus:
        return self._call("CancelBatch", pb.CancelBatchRequest(batch_id=batch_id))

    @_raising
    def batches(self, *, status: str = "", limit: int = 0, page_token: str = "") -> pb.ListBatchesResponse:
        return self._call(
            "ListBatches", pb.ListBatchesRequest(status=status, limit=limit, page_token=page_token)
        )

    @_raising
    def models(self) -> List[pb.ModelInfo]:
        return list(self._call("ListModels", pb.ListModelsRequest()).models)

    # Jobs

    @_raising
    def create_job(
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
        """Creates a job from a JSON Lines file (a path), its bytes, or an iterable of items or
        lines; answers once every line is stored."""
        spec = req.job_spec(
            model=model,
            priority=priority,
            completion_window=completion_window,
            job_id=job_id,
            on_invalid=on_invalid,
            result_ttl=result_ttl,
        )
        return self._stub.CreateJob(req.upload(spec, source), metadata=self._metadata)

    @_raising
    def job(self, job_id: str) -> job_pb.Job:
        return self._call("GetJob", job_pb.GetJobRequest(job_id=job_id))

    @_raising
    def cancel_job(self, job_id: str) -> job_pb.Job:
        return self._call("CancelJob", job_pb.CancelJobRequest(job_id=job_id))

    @_streaming
    def watch_job(self, job_id: str) -> Iterator[job_pb.Job]:
        yield from self._stub.WatchJob(job_pb.WatchJobRequest(job_id=job_id), metadata=self._metadata)

    @_streaming
    def job_results(self, job_id: str, *, from_line: int = 0) -> Iterator[job_pb.JobResult]:
        """One outcome per input line, in input order (while the job runs: those finished so far)."""
        yield from self._stub.GetJobResults(
            job_pb.GetJobResultsRequest(job_id=job_id, from_line=from_line), metadata=self._metadata
        )
