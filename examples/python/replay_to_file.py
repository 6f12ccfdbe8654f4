#!/usr/bin/env python3
"""Saves what a capture spooled as a pcap savefile that tcpdump and Wireshark read."""
import struct
import sys

from pcapd_client import connect, parser, pb, run, selector


def file_header(h):
    """The 24-byte savefile header: magic a1b2c3d4 (microseconds), version 2.4."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, h.snaplen or 262144, h.link_type)


def record(p):
    """One packet as a savefile record: seconds, microseconds, lengths, bytes."""
    sec, ns = divmod(p.timestamp_ns, 1_000_000_000)
    return struct.pack("<IIII", sec, ns // 1000, len(p.data), p.original_length) + p.data


def micro_records(batch):
    """A RecordBatch's records with microsecond times, as the file header promises.

    pcapd keeps nanoseconds (batch.nanoseconds); segments spooled by older versions, and
    older daemons, hold microseconds already, which are copied as they are."""
    if not batch.nanoseconds:
        return batch.records
    out, at, raw = [], 0, batch.records
    while at + 16 <= len(raw):
        sec, ns, caplen, origlen = struct.unpack_from("<IIII", raw, at)
        out.append(struct.pack("<IIII", sec, ns // 1000, caplen, origlen))
        out.append(raw[at + 16:at + 16 + caplen])
        at += 16 + caplen
    return b"".join(out)


def notice(n):
    if n.WhichOneof("kind") == "gap":
        return f"{n.gap.dropped} packets skipped: this reader fell behind"
    return f"capture is now {pb.State.Name(n.state.state)} {n.state.reason}".strip()


def main():
    p = parser(__doc__)
    p.add_argument("capture", metavar="ID|ALIAS")
    p.add_argument("out", metavar="OUT.pcap")
    p.add_argument("--raw-records", action="store_true",
                   help="ask for RecordBatch (records as pcapd stores them) instead of packets")
    args = p.parse_args()
    request = pb.ReplayRequest(selector=selector(args.capture), raw_records=args.raw_records)
    packets, out = 0, None
    try:
        for m in connect(args.socket).Replay(request):
            kind = m.WhichOneof("kind")
            if kind == "header":  # always first: the file is made only once pcapd said yes
                out = open(args.out, "wb")
                out.write(file_header(m.header))
            elif kind == "packets":
                out.write(b"".join(record(p) for p in m.packets.packets))
                packets += len(m.packets.packets)
            elif kind == "records":  # already savefile records, back to back
                out.write(micro_records(m.records))
                packets += m.records.count
            elif kind == "notice":
                print(f"notice: {notice(m.notice)}", file=sys.stderr)
    finally:
        if out:
            out.close()
    print(f"wrote {packets} packets to {args.out}", file=sys.stderr)


run(main)
