#!/usr/bin/env python3
"""Prints a line per new packet of a capture: time, length, and for IPv4/IPv6 UDP and TCP
the addresses and ports."""
import ipaddress
import struct
import sys
from datetime import datetime

from pcapd_client import connect, parser, pb, run, selector

# libpcap link types (DLT_*) and where their frames say which protocol follows.
NULL, EN10MB, LOOP, LINUX_SLL, LINUX_SLL2 = 0, 1, 108, 113, 276
RAW = (12, 14, 101)  # DLT_RAW differs between systems; 101 is its number in savefiles
IPV4, IPV6 = 0x0800, 0x86DD
PROTOCOLS = {6: "TCP", 17: "UDP"}


def network_layer(link_type, frame):
    """(ethertype, offset of the IP header) for the frame of a link type, or None."""
    if link_type == EN10MB and len(frame) >= 14:
        ethertype, at = struct.unpack_from("!H", frame, 12)[0], 14
        if ethertype == 0x8100 and len(frame) >= 18:  # one 802.1Q tag
            ethertype, at = struct.unpack_from("!H", frame, 16)[0], 18
        return ethertype, at
    if link_type == LINUX_SLL and len(frame) >= 16:
        return struct.unpack_from("!H", frame, 14)[0], 16
    if link_type == LINUX_SLL2 and len(frame) >= 20:
        return struct.unpack_from("!H", frame, 0)[0], 20
    if link_type in (NULL, LOOP) and len(frame) >= 4:
        # An address family, in host order for NULL and network order for LOOP: AF_INET is
        # 2 everywhere, AF_INET6 is 10 on Linux and 24, 28 or 30 on the BSDs and macOS.
        family = struct.unpack_from("<I", frame)[0]
        if family > 0xFFFF:
            family = struct.unpack_from(">I", frame)[0]
        return {2: IPV4, 10: IPV6, 24: IPV6, 28: IPV6, 30: IPV6}.get(family), 4
    if link_type in RAW and frame:
        return {4: IPV4, 6: IPV6}.get(frame[0] >> 4), 0
    return None


def addresses(link_type, frame):
    """'SRC:PORT > DST:PORT UDP' for UDP and TCP over IPv4 and IPv6, else a short note."""
    found = network_layer(link_type, frame)
    if found is None:
        return f"link type {link_type}"
    ethertype, at = found
    if ethertype == IPV4 and len(frame) >= at + 20:
        header_len = (frame[at] & 0x0F) * 4
        first_fragment = struct.unpack_from("!H", frame, at + 6)[0] & 0x1FFF == 0
        proto = frame[at + 9] if first_fragment else None
        src, dst = ipaddress.IPv4Address(frame[at + 12:at + 16]), ipaddress.IPv4Address(frame[at + 16:at + 20])
        fmt, at = "{}:{}", at + header_len
    elif ethertype == IPV6 and len(frame) >= at + 40:
        proto = frame[at + 6]  # extension headers are not followed
        src, dst = ipaddress.IPv6Address(frame[at + 8:at + 24]), ipaddress.IPv6Address(frame[at + 24:at + 40])
        fmt, at = "[{}]:{}", at + 40
    else:
        return f"ethertype 0x{ethertype:04x}" if ethertype is not None else "not IP"
    if proto in PROTOCOLS and len(frame) >= at + 4:
        sport, dport = struct.unpack_from("!HH", frame, at)
        return f"{fmt.format(src, sport)} > {fmt.format(dst, dport)} {PROTOCOLS[proto]}"
    return f"{src} > {dst} " + ("fragment" if proto is None else f"protocol {proto}")


def summary(link_type, p):
    time = datetime.fromtimestamp(p.timestamp_ns / 1e9).strftime("%H:%M:%S.%f")
    return f"{time} {p.original_length:5} bytes  {addresses(link_type, p.data)}"


def main():
    p = parser(__doc__)
    p.add_argument("capture", metavar="ID|ALIAS")
    p.add_argument("--count", type=int, default=0, metavar="N", help="stop after N packets")
    args = p.parse_args()
    request = pb.ListenRequest(selector=selector(args.capture), count=args.count)
    link_type, seen = None, 0
    for m in connect(args.socket).Listen(request):
        kind = m.WhichOneof("kind")
        if kind == "header":
            link_type = m.header.link_type
            print(f"listening to capture {m.header.capture_id} (link type {link_type})",
                  file=sys.stderr)
        elif kind == "packets":
            for packet in m.packets.packets:
                print(summary(link_type, packet))
                seen += 1
                if seen == args.count:
                    return
            sys.stdout.flush()
        elif kind == "notice" and m.notice.WhichOneof("kind") == "gap":
            print(f"{m.notice.gap.dropped} packets skipped: this reader fell behind",
                  file=sys.stderr)


run(main)
