#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test. Capture tests need root;
# without it they skip, unless PCAPD_REQUIRE_PRIVILEGED=1 (as .ci/run sets) makes them fail.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

# libpcap-dev: the pcap crate links libpcap; protobuf-compiler: the test that regenerates
# the API code; tcpdump: the tests cross-check savefiles with it; tcpreplay: the benchmark's
# quick run; iproute2, util-linux: network set-up, setpriv and script in the tests; gcc,
# libc6-dev: Rust's linker. man-db: the test that reads the manual pages with man.
# python3, python3-venv: the Python gRPC client tests (grpcio and friends come from PyPI into a
# venv, at the versions pinned in tests/python/requirements.txt).
# tshark (capinfos comes with it in wireshark-common): Wireshark's reading of what pcap writes.
# docker.io, containerd, podman, busybox-static: the container tests start the engines and run
# containers of an image made from the static busybox (nothing is pulled).
# dnsmasq-base, bind9-dnsutils (dig), curl, nghttp2-server, nghttp2-client, python3-h2: the
# real servers and clients whose traffic the decoding tests capture (an h2c Upgrade server
# is written on python3-h2, since nghttpd does not speak it).
# wireshark-qt, xvfb, x11-apps (xwd), x11-utils (xwininfo), netpbm (xwdtopnm, pnmtopng): the
# test that runs the Wireshark GUI on a pcapd interface under Xvfb and screenshots it.
# dpkg-dev, binutils, help2man, lintian: the package test builds the .deb with
# scripts/package.sh (dpkg-architecture, strip, pcapd's manual page) and checks it with lintian.
ensure_packages libpcap-dev protobuf-compiler tcpdump tcpreplay pkg-config iproute2 util-linux gcc \
    libc6-dev man-db python3 python3-venv tshark docker.io containerd podman busybox-static \
    dnsmasq-base bind9-dnsutils curl nghttp2-server nghttp2-client python3-h2 \
    wireshark-qt xvfb x11-apps x11-utils netpbm dpkg-dev binutils help2man lintian
ensure_rust

cargo build --locked --workspace --all-targets
cargo test --locked --workspace --no-fail-fast

# The fuzz targets' seed tests (fuzz/README.md): every target over its committed corpus and
# 20,000 fixed mutations of it. fuzz/ is a workspace of its own (its targets need nightly
# for libFuzzer), so it is run by its manifest; sharing the main target directory lets it
# reuse the workspace's build of every dependency with the same versions and features.
# Measured: after the build above, 13 crates are compiled again (libfuzzer-sys and what
# its `cc` features change: libc, ring, rustls, rcgen, pcap-core, pcapd), 2 min 12 s on 2
# busy cores instead of a second build of the whole stack; then the tests take about 8 s.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo test --locked --manifest-path fuzz/Cargo.toml
