"""The Open Inference Protocol (KServe v2) over gRPC from Python, as a Triton or KServe client
would speak it: server and model metadata, then ModelInfer with a tensor of 3 items, in
`contents` and as raw bytes.

Generate the stubs first (examples/python_v2/generate.sh), then run with a Python that has grpcio
(Debian: python3-grpcio). BATCH_PROCESSOR_GRPC (default localhost:50051), API_KEY, MODEL
(default "default").
"""
import os
import struct
import sys

# The generated module (inference/grpc_predict_v2_pb2*.py) lives in gen/ beside this file.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from inference import grpc_predict_v2_pb2 as pb  # noqa: E402
from inference import grpc_predict_v2_pb2_grpc as rpc  # noqa: E402

ADDRESS = os.environ.get("BATCH_PROCESSOR_GRPC", "localhost:50051")
METADATA = (("x-api-key", os.environ["API_KEY"]),)
MODEL = os.environ.get("MODEL", "default")


def main() -> None:
    with grpc.insecure_channel(ADDRESS) as channel:
        stub = rpc.GRPCInferenceServiceStub(channel)
        server = stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=METADATA)
        print(f"server {server.name} {server.version}")
        ready = stub.ModelReady(pb.ModelReadyRequest(name=MODEL), metadata=METADATA)
        print(f"model {MODEL} ready: {ready.ready}")
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), metadata=METADATA)
        for tensor in meta.inputs:
            print(f"input {tensor.name} {tensor.datatype} {list(tensor.shape)}")
        rows = [[float(i), 1.0, 2.0, 3.0] for i in range(3)]
        flat = [v for row in rows for v in row]
        tensor = pb.ModelInferRequest.InferInputTensor(
            name=meta.inputs[0].name, datatype="FP32", shape=[len(rows), len(rows[0])]
        )
        tensor.contents.fp32_contents.extend(flat)
        answer = stub.ModelInfer(
            pb.ModelInferRequest(model_name=MODEL, id="py-1", inputs=[tensor]), metadata=METADATA
        )
        output = answer.outputs[0]
        width = output.shape[1]
        values = list(output.contents.fp32_contents)
        for i in range(output.shape[0]):
            print(f"item-{i} {[round(v, 4) for v in values[i * width:(i + 1) * width]]}")
        raw = pb.ModelInferRequest.InferInputTensor(
            name=meta.inputs[0].name, datatype="FP32", shape=[len(rows), len(rows[0])]
        )
        raw_answer = stub.ModelInfer(
            pb.ModelInferRequest(
                model_name=MODEL,
                inputs=[raw],
                raw_input_contents=[struct.pack(f"<{len(flat)}f", *flat)],
            ),
            metadata=METADATA,
        )
        raw_values = struct.unpack(
            f"<{len(raw_answer.raw_output_contents[0]) // 4}f", raw_answer.raw_output_contents[0]
        )
        same = all(abs(a - b) < 1e-6 for a, b in zip(values, raw_values))
        print(f"raw bytes give the same outputs: {same}")
        try:
            stub.ModelMetadata(pb.ModelMetadataRequest(name="no-such-model"), metadata=METADATA)
        except grpc.RpcError as error:
            print(f"unknown model: {error.code().name}")


if __name__ == "__main__":
    main()
