#!/usr/bin/env bash
# Builds the Debian package of pcapd with cargo-deb and prints its path: both binaries, the
# systemd units, the sysusers and tmpfiles snippets, an example /etc/pcapd/pcapd.toml,
# manual pages, shell completions, README.md and the extcap link in Wireshark's global
# extcap folder ([package.metadata.deb] in pcapd/Cargo.toml lists them). Then lintian
# checks it and any error fails the build. Meant for Debian 12, as root (or with sudo for
# the packages it installs when missing).
#
#   bash scripts/package.sh                  # -> target/debian/pcapd_0.1.0-1_amd64.deb
#   sudo apt install ./target/debian/pcapd_*.deb
#
# PCAPD_DEB_MAINTAINER="Name <mail>" sets the Maintainer field and the changelog's signer.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

# The cargo-deb release this script is written against (builds with Rust 1.85 and newer).
CARGO_DEB_VERSION=3.8.0

# libpcap-dev, pkg-config, gcc, libc6-dev: building pcapd; dpkg-dev: dpkg-architecture
# (the multiarch triplet of Wireshark's folder) and dpkg-shlibdeps (the package's
# dependencies); binutils: strip; help2man: pcapd's manual page from its --help; lintian:
# the check at the end.
ensure_packages libpcap-dev pkg-config gcc libc6-dev dpkg-dev binutils help2man lintian
ensure_rust

if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
    echo "installing cargo-deb $CARGO_DEB_VERSION (cargo install, from crates.io)" >&2
    cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

cargo build --release --locked -p pcapd -p pcap-cli

# cargo-deb reads `target/release/...` in the assets as the real target directory, which
# CARGO_TARGET_DIR or a cargo config may have moved: ask cargo where it is.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ ! -d "$target_dir" ]; then
    echo "error: cannot tell cargo's target directory (cargo metadata said \"$target_dir\")" >&2
    exit 1
fi
release="$target_dir/release"
stage="$release/deb-assets"
pcap="$release/pcap"
pcapd="$release/pcapd"

# Reproducible dates (help2man's page, the changelog, cargo-deb's file times): the last
# commit's, unless given.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

version=$("$pcap" --version | awk '{print $2}')
maintainer=${PCAPD_DEB_MAINTAINER:-$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' pcapd/Cargo.toml)}
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

rm -rf "$stage"
mkdir -p "$stage/man1" "$stage/man8" "$stage/completions" \
    "$stage/lib/$triplet/wireshark/extcap"

# Manual pages: pcap's from its command line, pcapd's from its --help.
"$pcap" man --dir "$stage/man1"
help2man --no-info --section=8 --source="pcapd $version" \
    --name="packet capture daemon with a spool and a gRPC API" \
    --output="$stage/man8/pcapd.8" "$pcapd"
gzip -9n "$stage"/man1/*.1 "$stage"/man8/*.8

"$pcap" completions bash >"$stage/completions/pcap"
"$pcap" completions zsh >"$stage/completions/_pcap"
"$pcap" completions fish >"$stage/completions/pcap.fish"

# The unit in systemd/ runs /usr/local/bin/pcapd (installed by hand, as systemd/README.md
# says); the package's pcapd is /usr/bin/pcapd.
sed 's|^ExecStart=/usr/local/bin/pcapd$|ExecStart=/usr/bin/pcapd|' systemd/pcapd.service \
    >"$stage/pcapd.service"
if ! grep -qx 'ExecStart=/usr/bin/pcapd' "$stage/pcapd.service"; then
    echo "error: systemd/pcapd.service has no line ExecStart=/usr/local/bin/pcapd to point at" \
        "the packaged /usr/bin/pcapd: update the sed in $0 to the unit's ExecStart" >&2
    exit 1
fi

# Wireshark runs every file of its extcap folder with --extcap-interfaces and the like;
# pcap, run under another name with those arguments, is `pcap extcap`.
ln -s /usr/bin/pcap "$stage/lib/$triplet/wireshark/extcap/pcapd"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "pcapd ($version-1) unstable; urgency=medium"
    echo
    echo "  * Package of pcapd $version, commit $commit."
    echo
    echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$stage/changelog.Debian.gz"

# --strip: the release profile keeps line tables for backtraces, which the package does
# not ship (lintian: unstripped-binary-or-object).
deb=$(cargo deb -p pcapd --no-build --locked --strip \
    ${PCAPD_DEB_MAINTAINER:+--maintainer "$PCAPD_DEB_MAINTAINER"})

echo "lintian $deb" >&2
lintian_out=$(lintian "$deb" || true)
if [ -n "$lintian_out" ]; then
    echo "$lintian_out" >&2
fi
if grep -q '^E: ' <<<"$lintian_out"; then
    echo "error: lintian found errors in $deb (above)" >&2
    exit 1
fi
echo "$deb"
