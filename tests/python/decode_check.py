"""Reads a capture's roundtrips through pcapd's Decode call from Python (grpcio), the way a
user's script would. Prints one line per message kind and roundtrip; the Rust test
(tests/tests/decode_metrics.rs) asserts them.

usage: decode_check.py SOCKET ALIAS HTTP_PORT
"""
import http.client
import sys

import grpc
from pcap.v1 import pcap_pb2 as pb
from pcap.v1 import pcap_pb2_grpc as rpc

sock, alias, http_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
stub = rpc.PcapdStub(grpc.insecure_channel(f"unix://{sock}"))
selector = pb.Selector(alias=alias)

first = None
for m in stub.Decode(pb.DecodeRequest(selector=selector), timeout=60):
    kind = m.WhichOneof("kind")
    if first is None:
        first = kind
        print("first", kind, m.header.capture_id if kind == "header" else "")
    if kind != "roundtrips":
        continue
    for rt in m.roundtrips.roundtrips:
        if rt.HasField("http"):
            h = rt.http
            status = h.status if h.HasField("status") else "none"
            print("http", h.method, h.target, status, rt.complete)
        elif rt.HasField("dns"):
            d = rt.dns
            print("dns", d.name, d.type, d.rcode or "none", d.transport)

dns_only = pb.DecodeRequest(selector=selector, protocols=[pb.DecodeRule(proto="dns")])
n = sum(
    len(m.roundtrips.roundtrips)
    for m in stub.Decode(dns_only, timeout=60)
    if m.WhichOneof("kind") == "roundtrips"
)
print("dns only", n)

try:
    bad = pb.DecodeRequest(selector=selector, protocols=[pb.DecodeRule(proto="smtp")])
    for _ in stub.Decode(bad, timeout=60):
        pass
    print("no error")
except grpc.RpcError as e:
    print("error", e.code().name)

# Live: the spool's roundtrips, then one made now, then the client goes away.
call = stub.Decode(pb.DecodeRequest(selector=selector, live=True), timeout=60)
for m in call:
    kind = m.WhichOneof("kind")
    if kind == "header":
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        conn.request("GET", "/a.txt?live")
        conn.getresponse().read()
        conn.close()
    if kind != "roundtrips":
        continue
    live = [rt.http for rt in m.roundtrips.roundtrips if rt.http.target == "/a.txt?live"]
    if live:
        print("live http", live[0].method, live[0].target, live[0].status)
        break
call.cancel()
print("cancelled")
