"""A gRPC server and client over cleartext HTTP/2 (h2c) on 127.0.0.1, for the decoding tests.

usage:
  grpc_peer.py server PORT            serves peer.v1.Echo until stdin closes; prints "ready"
  grpc_peer.py client PORT            makes the calls below, prints what it did as JSON

The client makes, on one channel: a unary call; a server stream of 5 messages; a client
stream of 4; a bidi stream of 3 each way; a unary call failing with NOT_FOUND and a message;
a unary call with a 1 MiB payload (many DATA frames); a unary call with a deadline.
The generated modules (echo_pb2, echo_pb2_grpc) must be on sys.path (made by grpc_tools).
"""

import json
import sys
import threading
from concurrent import futures

import grpc

import echo_pb2
import echo_pb2_grpc


class Echo(echo_pb2_grpc.EchoServicer):
    def Unary(self, request, context):
        if request.fail_code:
            context.abort(grpc.StatusCode(_code(request.fail_code)), request.fail_message)
        return echo_pb2.Msg(count=request.count, payload=request.payload)

    def ServerStream(self, request, context):
        for i in range(request.count):
            yield echo_pb2.Msg(count=i, payload=request.payload)

    def ClientStream(self, request_iterator, context):
        n = sum(1 for _ in request_iterator)
        return echo_pb2.Msg(count=n)

    def Bidi(self, request_iterator, context):
        for m in request_iterator:
            yield echo_pb2.Msg(count=m.count, payload=m.payload)


def _code(number):
    return next(c for c in grpc.StatusCode if c.value[0] == number).value


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.stop(grace=1).wait()


def client(port):
    calls = []
    # Compression off so that message sizes on the wire are the payload sizes.
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = echo_pb2_grpc.EchoStub(ch)
        stub.Unary(echo_pb2.Msg(count=1, payload=b"hello"))
        calls.append({"method": "Unary", "status": 0, "req": 1, "resp": 1})
        got = list(stub.ServerStream(echo_pb2.Msg(count=5, payload=b"x" * 10)))
        calls.append({"method": "ServerStream", "status": 0, "req": 1, "resp": len(got)})
        stub.ClientStream(iter([echo_pb2.Msg(count=i) for i in range(4)]))
        calls.append({"method": "ClientStream", "status": 0, "req": 4, "resp": 1})
        got = list(stub.Bidi(iter([echo_pb2.Msg(count=i, payload=b"y") for i in range(3)])))
        calls.append({"method": "Bidi", "status": 0, "req": 3, "resp": len(got)})
        try:
            stub.Unary(echo_pb2.Msg(fail_code=5, fail_message="no such thing"))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
        calls.append(
            {"method": "Unary", "status": 5, "message": "no such thing", "req": 1, "resp": 0}
        )
        big = stub.Unary(echo_pb2.Msg(count=2, payload=b"z" * (1 << 20)))
        assert len(big.payload) == 1 << 20
        calls.append({"method": "Unary", "status": 0, "req": 1, "resp": 1, "large": True})
        stub.Unary(echo_pb2.Msg(count=3), timeout=30)
        calls.append({"method": "Unary", "status": 0, "req": 1, "resp": 1, "deadline": True})
    print(json.dumps({"service": "peer.v1.Echo", "calls": calls}))


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "server":
        serve(port)
    else:
        client(port)
