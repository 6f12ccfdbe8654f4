"""Sends pcapd requests whose fields are out of range, straight through the API (grpcio),
skipping every check the CLI makes. Prints one JSON line per case: its name, the gRPC code
and the message; the Rust test (tests/tests/bounds.rs) holds what each must say.

Usage: bounds_check.py SOCKET ALIAS, where ALIAS names an ACTIVE capture that must stay so.
"""
import json
import sys

import grpc
from pcap.v1 import pcap_pb2 as pb
from pcap.v1 import pcap_pb2_grpc as rpc

sock, alias = sys.argv[1], sys.argv[2]
stub = rpc.PcapdStub(grpc.insecure_channel(f"unix://{sock}"))

HUGE = 10_000_000_000_000_000_000  # the --duration that once panicked the capture thread
YEARS_300 = 300 * 31_557_600  # a --max-age whose nanoseconds overflowed an i64
COUNT = 10**12 + 1
PORT = iter(range(41000, 42000))


def init(**fields):
    """An Init on lo with a filter of its own, so that none could match an existing one."""
    fields.setdefault("target", pb.Target(interfaces=["lo"]))
    fields.setdefault("filter", f"udp port {next(PORT)}")
    return lambda: stub.Init(pb.InitRequest(**fields))


def select(call, stop=None, **selector):
    request = pb.SelectRequest(selector=pb.Selector(**selector))
    if stop is not None:
        request.stop.CopyFrom(stop)
    return lambda: call(request)


def stream(call, request):
    """A streaming call, read to its end (or its first error)."""
    return lambda: list(call(request, timeout=10))


def replay(**fields):
    return stream(stub.Replay, pb.ReplayRequest(selector=pb.Selector(alias=alias), **fields))


CASES = {
    "init duration 1e19": init(stop=pb.StopConditions(duration_secs=HUGE)),
    "init count 1e12+1": init(stop=pb.StopConditions(packet_count=COUNT)),
    "init max_bytes 1 PiB+1": init(retention=pb.Retention(max_bytes=2**50 + 1)),
    "init max_age 300 years": init(retention=pb.Retention(max_age_secs=YEARS_300)),
    "init snaplen 15": init(snaplen=15),
    "init snaplen 262145": init(snaplen=262_145),
    "init interface of 16 bytes": init(target=pb.Target(interfaces=["a234567890123456"])),
    "init interface ../../etc": init(target=pb.Target(interfaces=["../../etc"])),
    "init interface with a space": init(target=pb.Target(interfaces=["eth 0"])),
    "init alias of 65 chars": init(aliases=["a" * 65]),
    "init 33 aliases": init(aliases=[f"a{i}" for i in range(33)]),
    "init filter of 65537 bytes": init(filter="x" * 65_537),
    "init of 1.1 MB": init(aliases=["b" * 63] * 17_000),
    "start id 0": select(stub.Start, id=0),
    "stop id 0": select(stub.Stop, id=0),
    "delete id 0": select(stub.Delete, id=0),
    "start duration 1e19": select(stub.Start, pb.StopConditions(duration_secs=HUGE), alias=alias),
    "start count 1e12+1": select(stub.Start, pb.StopConditions(packet_count=COUNT), alias=alias),
    "replay id 0": stream(stub.Replay, pb.ReplayRequest(selector=pb.Selector(id=0))),
    "replay since -1": replay(since_unix_ns=-1),
    "replay until before 1970": replay(until_unix_ns=-(2**63)),
    "replay since after until": replay(since_unix_ns=10, until_unix_ns=5),
    "replay filter of 65537 bytes": replay(filter="x" * 65_537),
    "listen count 1e12+1": stream(
        stub.Listen, pb.ListenRequest(selector=pb.Selector(alias=alias), count=COUNT)
    ),
}

for name, call in CASES.items():
    try:
        call()
        code, message = "OK", ""
    except grpc.RpcError as e:
        code, message = e.code().name, e.details()
    print(json.dumps({"case": name, "code": code, "message": message}), flush=True)
