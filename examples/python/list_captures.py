#!/usr/bin/env python3
"""Lists pcapd's captures: id, aliases, interface, filter, state and packets spooled."""
from pcapd_client import connect, parser, pb, run


def main():
    args = parser(__doc__).parse_args()
    captures = connect(args.socket).List(pb.ListRequest(), timeout=10).captures
    rows = [("ID", "ALIASES", "IFACE", "FILTER", "STATE", "PACKETS")]
    for c in sorted(captures, key=lambda c: c.id):
        state = pb.State.Name(c.state).removeprefix("STATE_")
        if c.reason:
            state += f" ({c.reason})"
        rows.append((str(c.id), ",".join(c.aliases) or "-", ",".join(c.target.interfaces) or "any",
                     c.filter or "-", state, str(c.counters.spooled_packets)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


run(main)
