"""Reads a capture's segment files the way the API describes it (SegmentHandoff): a Replay
with segment_handoff, the abstract socket, the token, SegmentFiles frames with their
descriptors; and checks that a wrong token and another user get nothing. Prints one line
per check; the Rust test asserts them.

Arguments: the daemon's socket, the alias of a stopped capture."""
import os
import socket
import struct
import subprocess
import sys

import grpc
from pcap.v1 import pcap_pb2 as pb
from pcap.v1 import pcap_pb2_grpc as rpc

sock, alias = sys.argv[1], sys.argv[2]
stub = rpc.PcapdStub(grpc.insecure_channel(f"unix://{sock}"))


def replay(**kw):
    """A Replay asking for the files; returns the stream and its second message."""
    stream = stub.Replay(
        pb.ReplayRequest(
            selector=pb.Selector(alias=alias), raw_records=True, segment_handoff=True, **kw
        )
    )
    assert next(stream).WhichOneof("kind") == "header"
    return stream, next(stream, None)


def connect(offer, token=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + offer.socket)
    s.sendall(offer.token if token is None else token)
    return s


def frames(s):
    """SegmentFiles messages with their descriptors, asking for each next one."""
    while True:
        msg, fds, _, _ = socket.recv_fds(s, 65536, 253)
        if not msg:
            raise EOFError("the daemon ended the handoff")
        (n,) = struct.unpack("<I", msg[:4])
        while len(msg) < 4 + n:
            msg += s.recv(4 + n - len(msg))
        files = pb.SegmentFiles.FromString(msg[4 : 4 + n])
        yield files, fds
        if files.last:
            return
        s.sendall(b"\x01")


def records(fd, first, upto):
    """Whole records of the savefile `fd` numbered up to `upto`, the first being `first`."""
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    assert struct.unpack("<I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D), "a savefile"
    pos, seq, n = 24, first, 0
    while pos + 16 <= len(data) and seq <= upto:
        (caplen,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if pos + 16 + caplen > len(data):
            break
        pos, seq, n = pos + 16 + caplen, seq + 1, n + 1
    return n


# The whole exchange.
stream, m = replay()
assert m.WhichOneof("kind") == "handoff", m
offer = m.handoff
s = connect(offer)
files = packets = 0
for batch, fds in frames(s):
    assert len(batch.first_sequence) == len(fds), "one descriptor per segment"
    for first, fd in zip(batch.first_sequence, fds):
        packets += records(fd, first, offer.upto_sequence)
        files += 1
s.close()
assert list(stream) == [], "nothing more on the stream"
print("handed", packets)
print("files", files)

# A wrong token.
stream, m = replay()
s = connect(m.handoff, token=bytes(len(m.handoff.token)))
try:
    list(stream)
    print("wrong token accepted")
except grpc.RpcError as e:
    print("wrong token", e.code().name)
s.close()

# Another user, with the right token.
stream, m = replay()
# pcapd may close the connection as soon as it sees who connected: before or while the
# token is sent, which is then refused too.
other = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("\\0" + sys.argv[1])
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    got = s.recv(16)
except (BrokenPipeError, ConnectionResetError):
    got = b""
print("nothing" if got == b"" else "got data")
"""
# The system's Python: this one may live where that user cannot reach it.
system_python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
child = subprocess.run(
    [system_python, "-c", other, m.handoff.socket, m.handoff.token.hex()],
    user=65534,
    group=65534,
    capture_output=True,
    text=True,
    timeout=30,
)
print("other user", child.stdout.strip() or child.stderr.strip())
try:
    list(stream)
    print("other user accepted")
except grpc.RpcError as e:
    print("other user", e.code().name)

# A filtered replay is streamed.
stream, m = replay(filter="udp")
kinds = {m.WhichOneof("kind")} | {x.WhichOneof("kind") for x in stream}
print("filtered", "handoff" if "handoff" in kinds else "streamed")
