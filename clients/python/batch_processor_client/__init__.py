"""A client of the Batch Processor inference server over native gRPC: submit batches and follow
them, run synchronous inference, upload jobs of any size and read their results in input order,
list models. Blocking (:class:`Client`) and asyncio (:class:`AsyncClient`); every failed call
raises :class:`BatchProcessorError` with the gRPC status code and the server's message.

The generated messages are in :mod:`batch_processor_client.messages` (``pb``, ``job_pb``).
"""
from ._aio import AsyncClient
from ._client import Client
from ._errors import BatchProcessorError

__all__ = ["AsyncClient", "BatchProcessorError", "Client"]
__version__ = "0.1.0"
