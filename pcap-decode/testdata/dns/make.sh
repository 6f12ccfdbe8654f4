#!/usr/bin/env bash
# Makes messages.txt: real DNS messages between dig and dnsmasq on 127.0.0.1, captured on
# lo with tcpdump, one payload per line ("udp|tcp FLOW q|r HEX": q from the client, r from
# the server; TCP payloads are segments, length prefixes included). Needs root, dnsmasq,
# dig, tcpdump and python3. Run from anywhere: bash pcap-decode/testdata/dns/make.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
port=${PORT:-53535}
cleanup() {
    [[ -n ${dnsmasq_pid:-} ]] && kill "$dnsmasq_pid" 2>/dev/null || true
    [[ -n ${tcpdump_pid:-} ]] && kill "$tcpdump_pid" 2>/dev/null || true
    [[ -n $keep ]] || rm -rf "$work"
}
trap cleanup EXIT
keep=${KEEP:-}

cat >"$work/hosts" <<'HOSTS'
192.0.2.10 www.your.test
2001:db8::10 www.your.test
192.0.2.20 mail.your.test
HOSTS

dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$work/hosts" --local=/your.test/ \
    --listen-address=127.0.0.1 --bind-interfaces -p "$port" --pid-file= \
    --cname=alias.your.test,www.your.test \
    --mx-host=your.test,mail.your.test,10 \
    --txt-record=txt.your.test,"v=spf1 -all","second \"string\"" \
    --srv-host=_sip._udp.your.test,sip.your.test,5060,1,2 \
    --ptr-record=10.2.0.192.in-addr.arpa,www.your.test \
    --dns-rr=odd.your.test,65280,0a0b0c \
    --dns-rr=ca.your.test,257,000569737375656361 \
    >"$work/dnsmasq.log" 2>&1 &
dnsmasq_pid=$!

tcpdump -Z root --immediate-mode -i lo -U -w "$work/dns.pcap" "port $port" 2>"$work/tcpdump.log" &
tcpdump_pid=$!
for _ in $(seq 50); do
    grep -q "listening on" "$work/tcpdump.log" && break
    sleep 0.1
done
for _ in $(seq 50); do
    dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short www.your.test >/dev/null && break
done

q() { dig @127.0.0.1 -p "$port" +time=2 +tries=1 "$@" >/dev/null || true; }
q www.your.test A
q www.your.test AAAA
q alias.your.test A
q your.test MX
q txt.your.test TXT
q _sip._udp.your.test SRV
q -x 192.0.2.10
q missing.your.test A
q odd.your.test TYPE65280
q ca.your.test CAA
q www.your.test A +tcp
q missing.your.test AAAA +tcp
q your.test MX +tcp

sleep 0.5
kill "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump_pid=
python3 "$here/extract.py" "$work/dns.pcap" "$port" >"$here/messages.txt"
wc -l "$here/messages.txt"
