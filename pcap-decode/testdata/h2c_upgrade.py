"""An HTTP/1.1 server on 127.0.0.1:PORT that upgrades to HTTP/2 (h2c) with the h2 library,
answering every stream with a small body; serves one connection, for testdata/h2c-upgrade.pcap.

    python3 h2c_upgrade.py PORT
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events


def serve(listener):
    sock, _ = listener.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    lines = head.split(b"\r\n\r\n")[0].split(b"\r\n")
    fields = dict(l.split(b": ", 1) for l in lines[1:])
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_upgrade_connection(fields[b"HTTP2-Settings"])
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        + conn.data_to_send()
    )
    # Stream 1 is the upgraded request.
    respond(conn, 1)
    sock.sendall(conn.data_to_send())
    while True:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                respond(conn, event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                sock.close()
                return
        sock.sendall(conn.data_to_send())
    sock.close()


def respond(conn, stream_id):
    body = b"upgraded %d\n" % stream_id
    conn.send_headers(stream_id, [(":status", "200"), ("content-length", str(len(body)))])
    conn.send_data(stream_id, body, end_stream=True)


if __name__ == "__main__":
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(1)
    print("listening", flush=True)
    serve(listener)
