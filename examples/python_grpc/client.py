"""Native gRPC from Python with stubs generated from proto/: submit a batch, follow it with the
server stream, read its results.

Generate the stubs first (examples/python_grpc/generate.sh), then run with a Python that has
grpcio (Debian: python3-grpcio). BATCH_PROCESSOR_GRPC (default localhost:50051), API_KEY.
"""
import os
import sys

# The generated modules (batchprocessor.v1, google.api) live in gen/ beside this file.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from batchprocessor.v1 import batch_processor_pb2 as pb  # noqa: E402
from batchprocessor.v1 import batch_processor_pb2_grpc as rpc  # noqa: E402

ADDRESS = os.environ.get("BATCH_PROCESSOR_GRPC", "localhost:50051")
METADATA = (("x-api-key", os.environ["API_KEY"]),)


def main() -> None:
    with grpc.insecure_channel(ADDRESS) as channel:
        stub = rpc.BatchProcessorServiceStub(channel)
        request = pb.SubmitBatchRequest(
            data=[pb.Item(input=[float(i), 1.0, 2.0], request_id=f"item-{i}") for i in range(4)],
            priority="high",
        )
        receipt = stub.SubmitBatch(request, metadata=METADATA)
        print(f"submitted {receipt.batch_id}")
        for status in stub.WatchBatch(pb.WatchBatchRequest(batch_id=receipt.batch_id), metadata=METADATA):
            print(f"{status.status} {status.completed_requests}/{status.total_requests}")
        results = stub.GetBatchResults(
            pb.GetBatchResultsRequest(batch_id=receipt.batch_id), metadata=METADATA
        )
        for result in results.results:
            print(result.request_id, result.label, round(result.confidence, 4))
        try:
            stub.GetBatchStatus(pb.GetBatchStatusRequest(batch_id="no-such-batch"), metadata=METADATA)
        except grpc.RpcError as error:
            print(f"unknown batch: {error.code().name}")


if __name__ == "__main__":
    main()
