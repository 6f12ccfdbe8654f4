#!/usr/bin/env python3
"""Defines a capture on IFACE with a BPF filter (or finds the one that exists) and starts it."""
from pcapd_client import connect, parser, pb, run


def main():
    p = parser(__doc__)
    p.add_argument("iface", metavar="IFACE", help='interface; "" or any for all interfaces')
    p.add_argument("filter", metavar="FILTER", nargs="?", default="", help="BPF filter")
    p.add_argument("--alias", action="append", default=[], metavar="NAME",
                   help="a name for the capture (repeatable)")
    args = p.parse_args()
    stub = connect(args.socket)
    iface = [] if args.iface in ("", "any") else [args.iface]
    made = stub.Init(pb.InitRequest(target=pb.Target(interfaces=iface), filter=args.filter,
                                    aliases=args.alias), timeout=10)
    c = made.capture
    started = stub.Start(pb.SelectRequest(selector=pb.Selector(id=c.id)), timeout=10).captures[0]
    what = "created" if made.created else "found"
    print(f"{what} capture {c.id} ({','.join(started.aliases) or '-'}) on "
          f"{args.iface or 'all interfaces'}: {pb.State.Name(started.state).removeprefix('STATE_')}")


run(main)
