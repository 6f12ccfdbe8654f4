"""Prints the DNS payloads of a pcap captured on lo (EN10MB), one per line:
"udp|tcp FLOW q|r HEX", FLOW numbering UDP 5-tuples and TCP connections from 1."""
import struct
import sys

path, port = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
magic = struct.unpack("<I", data[:4])[0]
assert magic in (0xA1B2C3D4, 0xA1B23C4D), "a little-endian pcap file"
link = struct.unpack("<I", data[20:24])[0]
assert link == 1, f"link type {link}, expected EN10MB"
flows = {}
off = 24
while off + 16 <= len(data):
    _, _, incl, _ = struct.unpack("<IIII", data[off : off + 16])
    pkt = data[off + 16 : off + 16 + incl]
    off += 16 + incl
    if struct.unpack("!H", pkt[12:14])[0] != 0x0800:
        continue
    ip = pkt[14:]
    ihl = (ip[0] & 0xF) * 4
    proto = ip[9]
    seg = ip[ihl : struct.unpack("!H", ip[2:4])[0]]
    sport, dport = struct.unpack("!HH", seg[:4])
    if proto == 17:
        payload, transport = seg[8:], "udp"
    elif proto == 6:
        payload, transport = seg[(seg[12] >> 4) * 4 :], "tcp"
    else:
        continue
    if not payload:
        continue
    client = sport if dport == port else dport
    key = (transport, client)
    flow = flows.setdefault(key, len(flows) + 1)
    direction = "q" if dport == port else "r"
    print(transport, flow, direction, payload.hex())
