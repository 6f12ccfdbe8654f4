#!/usr/bin/env python3
"""A small HTTP/1.1 server for the decoding tests: keep-alive, and every way an HTTP/1.1
response can end. Standard library only. Listens on 127.0.0.1 (port 0: any free one) and
prints "listening PORT" once it accepts connections.

  GET/HEAD /len/N   200 with Content-Length N (HEAD: the same head, no body)
  GET /chunked      200, chunked (chunks of 5, 11 and 1000 bytes), with a trailer
  GET /empty        204 No Content
  GET /cached       304 Not Modified
  GET /big          200 with Content-Length 200000 (several TCP segments on lo)
  POST /upload      reads the body (answering Expect: 100-continue), 200 with
                    "got N bytes"

Usage: http1_server.py [PORT]
"""

import http.server
import sys

CHUNKS = [b"a" * 5, b"b" * 11, b"c" * 1000]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, body, head_only=False):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET(head_only=True)

    def do_GET(self, head_only=False):
        path = self.path
        if path.startswith("/len/"):
            self.send_body(200, b"x" * int(path[5:]), head_only)
        elif path == "/big":
            self.send_body(200, b"B" * 200000, head_only)
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            for chunk in CHUNKS:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\nX-Checksum: 1016\r\n\r\n")
        elif path == "/empty":
            self.send_response(204)
            self.end_headers()
        elif path == "/cached":
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
        else:
            self.send_body(404, b"not here\n", head_only)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.send_body(200, b"got %d bytes\n" % len(body))


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("listening", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
