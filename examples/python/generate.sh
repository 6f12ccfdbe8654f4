#!/usr/bin/env bash
# Generates the Python client of pcapd from proto/ with grpcio-tools:
# OUT/pcap/v1/pcap_pb2.py and OUT/pcap/v1/pcap_pb2_grpc.py (OUT defaults to ./gen here,
# which is where the examples look). PYTHON picks the interpreter (default python3), which
# needs grpcio-tools: pip install grpcio grpcio-tools
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto="$here/../../proto"
out="${1:-$here/gen}"
python="${PYTHON:-python3}"

mkdir -p "$out"
"$python" -m grpc_tools.protoc -I"$proto" --python_out="$out" --grpc_python_out="$out" \
    "$proto/pcap/v1/pcap.proto"
echo "generated $out/pcap/v1/pcap_pb2.py and pcap_pb2_grpc.py" >&2
