"""An HTTP/1.1 server on 127.0.0.1 that upgrades to HTTP/2 on `Upgrade: h2c` (RFC 7540
section 3.2), as `curl --http2` asks; nghttpd does not speak it. Built on Debian's python3-h2.

usage: h2c_upgrade_server.py PORT     prints "ready", serves until stdin closes
Every request gets 200 with a body of 1000 bytes; /missing gets 404.
"""

import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

BODY = b"u" * 1000


def respond(conn, stream_id, path):
    status = b"404" if path == b"/missing" else b"200"
    body = b"" if status == b"404" else BODY
    conn.send_headers(
        stream_id,
        [(b":status", status), (b"content-length", str(len(body)).encode())],
        end_stream=not body,
    )
    if body:
        conn.send_data(stream_id, body, end_stream=True)


def serve_one(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    path = lines[0].split(b" ")[1]
    headers = {
        k.strip().lower(): v.strip()
        for k, v in (line.split(b":", 1) for line in lines[1:] if b":" in line)
    }
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    if headers.get(b"upgrade", b"").lower() != b"h2c":
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        return
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    )
    conn.initiate_upgrade_connection(headers[b"http2-settings"])
    respond(conn, 1, path)
    sock.sendall(conn.data_to_send())
    pending = rest
    while True:
        if pending:
            events = conn.receive_data(pending)
            pending = b""
        else:
            chunk = sock.recv(65536)
            if not chunk:
                return
            events = conn.receive_data(chunk)
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                path = dict(event.headers).get(b":path", b"/")
                respond(conn, event.stream_id, path)
            elif isinstance(event, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        sock.sendall(conn.data_to_send())


def main():
    port = int(sys.argv[1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()

    def accept():
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=lambda: (serve_one(sock), sock.close()), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
