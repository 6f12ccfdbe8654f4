#!/usr/bin/env bash
# Installs what is missing, builds release binaries, and runs pcapd in the foreground on a
# socket and data directory inside the checkout (./run/). Capturing needs root. As root it
# also installs pcap's manual pages and bash completions under /usr/local.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

# man-db: `man pcap` for the manual pages installed below.
ensure_packages libpcap-dev pkg-config gcc libc6-dev man-db
ensure_rust

cargo build --locked --release -p pcapd -p pcap-cli
# `man pcap` and bash completions of pcap (as root; otherwise it says what it left out).
bash scripts/install-docs.sh ./target/release/pcap

mkdir -p run/data
socket="$PWD/run/pcapd.sock"
# The socket is given to the group of whoever runs this, so no `pcap` group is needed.
group="$(id -gn)"

cat <<MSG
pcapd socket: $socket
In another shell, from $PWD:
  export PCAP_SOCKET=$socket; ./target/release/pcap list
Stop pcapd with Ctrl-C.
MSG

exec ./target/release/pcapd --socket "$socket" --data-dir "$PWD/run/data" --socket-group "$group"
