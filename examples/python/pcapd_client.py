"""What the examples share: the --socket option, the channel to pcapd over its UNIX socket,
selectors, and turning a failed call into a message on stderr with exit status 1."""
import argparse
import os
import sys

# The client made by generate.sh, next to this file.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

try:
    import grpc
    from pcap.v1 import pcap_pb2 as pb  # noqa: F401 (re-exported for the examples)
    from pcap.v1 import pcap_pb2_grpc as rpc
except ImportError as e:
    sys.exit(f"error: {e}: install grpcio and grpcio-tools, then run ./generate.sh")

DEFAULT_SOCKET = "/run/pcapd/pcapd.sock"


def parser(description):
    """An argument parser with --socket (also from $PCAP_SOCKET, as for the pcap CLI)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--socket", default=os.environ.get("PCAP_SOCKET", DEFAULT_SOCKET),
                   help=f"pcapd's UNIX socket (default $PCAP_SOCKET or {DEFAULT_SOCKET})")
    return p


def connect(socket_path):
    """A stub of the Pcapd service over the UNIX socket."""
    return rpc.PcapdStub(grpc.insecure_channel(f"unix://{os.path.abspath(socket_path)}"))


def selector(text):
    """A capture by id (all digits) or by alias, as the CLI takes them."""
    return pb.Selector(id=int(text)) if text.isdigit() else pb.Selector(alias=text)


def run(main):
    """Runs main(); a failed call, Ctrl-C or a closed pipe end the script as users expect."""
    try:
        main()
    except grpc.RpcError as e:
        message = e.details() or e.code().name
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            message += " (is pcapd running? choose its socket with --socket PATH)"
        print(f"error: {message} [{e.code().name}]", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader of stdout went away (| head): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
