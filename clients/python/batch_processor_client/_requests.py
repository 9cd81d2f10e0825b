"""Requests as the contract takes them, built from plain Python values; shared by the blocking and
the asyncio client so both send exactly the same messages."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Sequence, Union

from google.protobuf import struct_pb2

from ._gen.batchprocessor.v1 import batch_processor_pb2 as pb
from ._gen.batchprocessor.v1 import job_pb2 as job_pb
from ._gen.batchprocessor.v1 import tensor_pb2 as tensor_pb

#: An item: its numbers (the model's one input), or a mapping with ``input`` (and optional
#: ``request_id``, ``shape``) or ``inputs`` (tensors by input name, each ``{"values": [...]}``,
#: ``{"strings": [...]}`` or ``{"raw": bytes, "shape": [...]}``, optional ``datatype``).
ItemLike = Union[Sequence[float], Mapping[str, Any]]

#: Bytes per upload message of a job (the server takes lines in any split).
UPLOAD_CHUNK_BYTES = 1 << 20


def item(value: ItemLike) -> pb.Item:
    """One item of a submit or infer request."""
    if isinstance(value, Mapping):
        out = pb.Item(request_id=str(value.get("request_id", "")))
        if "inputs" in value:
            for name, tensor in value["inputs"].items():
                out.inputs[name].CopyFrom(_tensor(tensor))
        else:
            out.input.extend(float(v) for v in value.get("input", ()))
            out.shape.extend(int(d) for d in value.get("shape", ()))
        return out
    return pb.Item(input=[float(v) for v in value])


def _tensor(value: Mapping[str, Any]) -> tensor_pb.Tensor:
    out = tensor_pb.Tensor(datatype=str(value.get("datatype", "")))
    out.shape.extend(int(d) for d in value.get("shape", ()))
    out.values.extend(float(v) for v in value.get("values", ()))
    out.strings.extend(str(s) for s in value.get("strings", ()))
    if "raw" in value:
        out.raw = bytes(value["raw"])
    return out


def metadata(
    model: Optional[str], model_version: Optional[str], extra: Optional[Mapping[str, Any]]
) -> Optional[struct_pb2.Struct]:
    fields: Dict[str, Any] = dict(extra or {})
    if model is not None:
        fields["model_id"] = model
    if model_version is not None:
        fields["model_version"] = model_version
    if not fields:
        return None
    out = struct_pb2.Struct()
    out.update(fields)
    return out


def submit_request(
    items: Iterable[ItemLike],
    *,
    priority: str = "",
    batch_id: str = "",
    timeout_ms: int = 0,
    model: Optional[str] = None,
    model_version: Optional[str] = None,
    output_names: Sequence[str] = (),
    extra_metadata: Optional[Mapping[str, Any]] = None,
) -> pb.SubmitBatchRequest:
    """The request of a submit or an infer."""
    request = pb.SubmitBatchRequest(
        data=[item(v) for v in items],
        priority=priority,
        batch_id=batch_id,
        timeout_ms=timeout_ms,
        output_names=list(output_names),
    )
    meta = metadata(model, model_version, extra_metadata)
    if meta is not None:
        request.metadata.CopyFrom(meta)
    return request


def job_spec(
    *,
    model: str = "",
    priority: str = "",
    completion_window: str = "",
    job_id: str = "",
    on_invalid: str = "",
    result_ttl: str = "",
) -> job_pb.JobSpec:
    return job_pb.JobSpec(
        model_id=model,
        priority=priority,
        completion_window=completion_window,
        job_id=job_id,
        on_invalid=on_invalid,
        result_ttl=result_ttl,
    )


def upload(
    spec: job_pb.JobSpec, source: Union[str, os.PathLike, bytes, Iterable[Any]]
) -> Iterator[job_pb.CreateJobRequest]:
    """A job's upload: its spec, then its lines, from a JSON Lines file (a path), bytes of one,
    or an iterable of items (each written as one line) or of ready lines (str or bytes)."""
    yield job_pb.CreateJobRequest(spec=spec)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:
            while True:
                chunk = file.read(UPLOAD_CHUNK_BYTES)
                if not chunk:
                    return
                yield job_pb.CreateJobRequest(lines=job_pb.JobLines(data=chunk))
    if isinstance(source, bytes):
        for start in range(0, len(source), UPLOAD_CHUNK_BYTES):
            chunk = source[start : start + UPLOAD_CHUNK_BYTES]
            yield job_pb.CreateJobRequest(lines=job_pb.JobLines(data=chunk))
        return
    buffer = bytearray()
    for value in source:
        if isinstance(value, bytes):
            line = value.rstrip(b"\n")
        elif isinstance(value, str):
            line = value.rstrip("\n").encode()
        else:
            line = json.dumps(value if isinstance(value, Mapping) else {"input": list(value)}).encode()
        buffer += line + b"\n"
        if len(buffer) >= UPLOAD_CHUNK_BYTES:
            yield job_pb.CreateJobRequest(lines=job_pb.JobLines(data=bytes(buffer)))
            buffer.clear()
    if buffer:
        yield job_pb.CreateJobRequest(lines=job_pb.JobLines(data=bytes(buffer)))
