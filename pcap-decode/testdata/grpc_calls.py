"""A gRPC server and client on 127.0.0.1:PORT (grpcio, raw bytes, no protobuf): one call of
each kind on one channel, for testdata/grpc.pcap.

    python3 grpc_calls.py PORT
"""
import sys
from concurrent import futures

import grpc

SERVICE = "demo.Echo"


def unary(request, context):
    return request + b"!"


def server_stream(request, context):
    for n in range(3):
        yield bytes([n]) * (10 + n)


def client_stream(requests, context):
    return b"%d" % sum(len(r) for r in requests)


def bidi(requests, context):
    for r in requests:
        yield r[::-1]


def fail(request, context):
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input: \u2713 100%")


def large(request, context):
    return b"%d" % len(request)


def serve(port):
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Large": grpc.unary_unary_rpc_method_handler(large),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


def call(port):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        m = lambda name: f"/{SERVICE}/{name}"
        assert channel.unary_unary(m("Unary"))(b"hello", timeout=5) == b"hello!"
        assert len(list(channel.unary_stream(m("ServerStream"))(b"go", timeout=5))) == 3
        assert channel.stream_unary(m("ClientStream"))(iter([b"a", b"bb", b"ccc"])) == b"6"
        assert list(channel.stream_stream(m("Bidi"))(iter([b"ab", b"cd"]))) == [b"ba", b"dc"]
        try:
            channel.unary_unary(m("Fail"))(b"x")
            raise SystemExit("Fail did not fail")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert channel.unary_unary(m("Large"))(b"L" * 40_000) == b"40000"
        out = channel.unary_unary(m("Unary"))(b"z" * 300, compression=grpc.Compression.Gzip)
        assert out == b"z" * 300 + b"!"


if __name__ == "__main__":
    port = int(sys.argv[1])
    server = serve(port)
    try:
        call(port)
    finally:
        server.stop(None)
