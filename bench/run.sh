#!/usr/bin/env bash
# Measures pcapd on this machine: installs what is missing (tcpreplay, tcpdump, libpcap),
# builds release binaries and runs pcapd-bench with the arguments given, for example
#   bash bench/run.sh                              # prints the table
#   bash bench/run.sh --out docs/BENCHMARKS.md     # and writes it down
#   bash bench/run.sh --packets 200000 --runs 1    # a shorter run
#   bash bench/run.sh decode                       # decoding beside tshark (no root)
#   bash bench/run.sh heavy                        # the heavy mix at top speed only
#   bash bench/run.sh cpu                          # CPU per packet at 200,000 packets/s only
#   bash bench/run.sh captures                     # 1, 10 and 100 ACTIVE captures only
#   bash bench/run.sh heavy --packets 100000 --runs 1
#   bash bench/run.sh --without heavy,cpu,captures,index # the default run without the load figures
#   bash bench/run.sh index                        # the segment index on a 2.2 GB spool
# Run it as root: it makes two network namespaces and captures in them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

ensure_packages libpcap-dev pkg-config gcc libc6-dev iproute2 tcpdump tcpreplay
ensure_rust

cargo build --release --locked -p pcapd -p pcap-cli -p pcapd-bench
exec ./target/release/pcapd-bench "$@"
