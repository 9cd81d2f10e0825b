"""The contract's generated messages, for type annotations and building requests by hand."""
from ._gen.batchprocessor.v1 import batch_processor_pb2 as pb
from ._gen.batchprocessor.v1 import job_pb2 as job_pb

__all__ = ["job_pb", "pb"]
