#!/usr/bin/env bash
# Installs the manual pages of pcap (`man pcap`, `man pcap-replay`, ...) and its bash
# completions under PREFIX (default /usr/local), made by the pcap binary given (default
# ./target/release/pcap). Without root it says what it did not install and succeeds.
set -euo pipefail
cd "$(dirname "$0")/.."

pcap="${1:-./target/release/pcap}"
prefix="${PREFIX:-/usr/local}"
man_dir="$prefix/share/man/man1"
completions_dir="$prefix/share/bash-completion/completions"

if [ ! -w "$prefix" ] && [ "$(id -u)" -ne 0 ]; then
    echo "note: not root, so the manual pages were not installed in $man_dir and the bash" \
        "completions not in $completions_dir/pcap; make them with \`$pcap man --dir DIR\`" \
        "and \`$pcap completions bash\`" >&2
    exit 0
fi
mkdir -p "$man_dir" "$completions_dir"
"$pcap" man --dir "$man_dir"
"$pcap" completions bash >"$completions_dir/pcap"
echo "installed: $man_dir/pcap.1 (and a page per command), $completions_dir/pcap" >&2
