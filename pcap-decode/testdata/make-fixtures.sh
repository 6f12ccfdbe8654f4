#!/usr/bin/env bash
# Captures the real traffic pcap-decode's HTTP/2 and TLS tests read, on loopback only:
#   h2c-nghttp.pcap  nghttpd --no-tls serving files, fetched by nghttp (PRIORITY frames on
#                    idle streams, several streams on one connection) and by
#                    curl --http2-prior-knowledge (a 33 KB body over many DATA frames,
#                    on a second connection)
#   grpc.pcap        grpc_calls.py (grpcio 1.85.1 from PyPI in a throwaway venv): unary, server
#                    stream, client stream, bidi, an error with a message, a 40 KB request,
#                    a gzip-compressed request
#   h2c-upgrade.pcap curl --http2 (Upgrade: h2c) against h2c_upgrade.py (h2 4.3.0 from PyPI),
#                    two URLs: the upgraded request is stream 1, the second stream 3
#   tls-hello.pcap   curl -k --http2 against openssl s_server: ClientHello (SNI example.test,
#                    ALPN h2,http/1.1) and ServerHello (choosing http/1.1)
# Needs root (tcpdump), nghttp2-server, nghttp2-client, curl and openssl. Run from anywhere:
#   bash pcap-decode/testdata/make-fixtures.sh
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (at most 10 s) until a file contains a string.
wait_for() {
    for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1" >&2; return 1
}

capture() { # FILE PORT: starts tcpdump on lo for that port
    tcpdump -i lo --immediate-mode -U -s 0 -w "$1" "tcp port $2" 2>"$work/tcpdump-$2.log" &
    pids+=($!)
    wait_for "$work/tcpdump-$2.log" "listening on"
}

stop_capture() { # PORT: waits for the last packets to be written, then stops tcpdump
    local pid=${pids[-1]}
    sleep 0.5
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    unset 'pids[-1]'
    grep captured "$work/tcpdump-$1.log"
}

# --- h2c with nghttpd ---
mkdir -p "$work/www"
printf 'hello from a\n' >"$work/www/a.txt"
printf 'and from b\n' >"$work/www/b.txt"
head -c 33000 /dev/zero | tr '\0' 'z' >"$work/www/big.txt"
port=$(free_port)
nghttpd --no-tls -a 127.0.0.1 -d "$work/www" "$port" >"$work/nghttpd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
capture "$out/h2c-nghttp.pcap" "$port"
nghttp -n "http://127.0.0.1:$port/a.txt" "http://127.0.0.1:$port/b.txt" "http://127.0.0.1:$port/missing"
curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$port/big.txt"
stop_capture "$port"

# --- gRPC with grpcio ---
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q grpcio==1.85.1 h2==4.3.0
port=$(free_port)
capture "$out/grpc.pcap" "$port"
"$work/venv/bin/python" "$out/grpc_calls.py" "$port"
stop_capture "$port"

# --- h2c upgrade with the h2 library ---
port=$(free_port)
"$work/venv/bin/python" "$out/h2c_upgrade.py" "$port" >"$work/upgrade.log" 2>&1 &
pids+=($!)
wait_for "$work/upgrade.log" listening
capture "$out/h2c-upgrade.pcap" "$port"
curl -s -o /dev/null -o /dev/null --max-time 10 --http2 "http://127.0.0.1:$port/first" \
    "http://127.0.0.1:$port/second" || true
stop_capture "$port"

# --- TLS hellos with openssl s_server ---
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
    -subj /CN=example.test -days 1 2>/dev/null
port=$(free_port)
openssl s_server -accept "127.0.0.1:$port" -cert "$work/cert.pem" -key "$work/key.pem" \
    -alpn http/1.1 -www >"$work/s_server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
capture "$out/tls-hello.pcap" "$port"
curl -s -k -o /dev/null --max-time 10 --http2 --resolve "example.test:$port:127.0.0.1" "https://example.test:$port/"
stop_capture "$port"
ls -l "$out"/*.pcap
