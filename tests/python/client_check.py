"""Drives pcapd through its gRPC API from Python (grpcio), over the UNIX socket, the way a
user's script would: plain `unix://PATH`, no special channel options. Prints one line per
check; the Rust test asserts them."""
import socket
import sys
import threading
import time

import grpc
from pcap.v1 import pcap_pb2 as pb
from pcap.v1 import pcap_pb2_grpc as rpc

sock, port = sys.argv[1], int(sys.argv[2])
stub = rpc.PcapdStub(grpc.insecure_channel(f"unix://{sock}"))
print("version", stub.Version(pb.VersionRequest()).name)
r = stub.Init(pb.InitRequest(target=pb.Target(interfaces=["lo"]), filter=f"udp port {port}", aliases=["py"]))
print("init", r.capture.id, r.created)
started = stub.Start(pb.SelectRequest(selector=pb.Selector(alias="py"))).captures
print("start", pb.State.Name(started[0].state))

got = []
def listen():
    for m in stub.Listen(pb.ListenRequest(selector=pb.Selector(alias="py"), count=50), timeout=30):
        if m.WhichOneof("kind") == "packets":
            got.extend(m.packets.packets)
t = threading.Thread(target=listen)
t.start()
time.sleep(0.5)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(80):
    s.sendto(b"hello %d" % i, ("127.0.0.1", port))
t.join(30)
print("listened", len(got))

deadline = time.time() + 10
while time.time() < deadline:
    c = stub.List(pb.ListRequest()).captures[0]
    if c.counters.spooled_packets >= 80:
        break
    time.sleep(0.05)
n = sum(len(m.packets.packets) for m in stub.Replay(pb.ReplayRequest(selector=pb.Selector(alias="py")))
        if m.WhichOneof("kind") == "packets")
print("replayed", n)
try:
    stub.Init(pb.InitRequest(target=pb.Target(interfaces=["lo"]), filter="port foo"))
except grpc.RpcError as e:
    print("error", e.code().name)
