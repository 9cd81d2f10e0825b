"""The one error type of the client: a call the server refused or could not answer."""
from __future__ import annotations

from typing import Optional

import grpc


class BatchProcessorError(Exception):
    """A failed call: its gRPC status code, the server's message (which names the field at fault,
    e.g. ``data[0].input[3]: expected a finite number``), and, for RESOURCE_EXHAUSTED and
    UNAVAILABLE answers that carry one, how long to wait before the same call may succeed."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after: Optional[float] = None):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "BatchProcessorError":
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        retry_after = None
        metadata = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
        for key, value in metadata or ():
            if key == "retry-after":
                try:
                    retry_after = float(value)
                except ValueError:
                    pass
        return cls(code, details or "", retry_after)
