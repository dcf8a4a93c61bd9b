#!/usr/bin/env python3
"""A small HTTP/1.1 keep-alive test backend (real process, real sockets).

Every response is JSON naming this backend and echoing what it received, so tests can tell
which backend served a request, what headers the proxy sent, and over which upstream connection
(`peer`) it arrived. GET /healthz answers 200 "ok". Exits on SIGTERM.

usage: backend.py --port PORT --name NAME [--host 127.0.0.1] [--count]
  --count   count every request received; GET /__stats answers {"requests": N} (not counted)
  --status N  answer every request with status N (default 200)
"""
import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "doorman-test-backend"

    def _reply(self, body_in=b""):
        if self.server.count_requests and self.path == "/__stats":
            with self.server.lock:
                n = self.server.requests
            payload = json.dumps({"requests": n}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if self.server.count_requests:
            with self.server.lock:
                self.server.requests += 1
        if self.path == "/healthz":
            payload = b"ok\n"
            ctype = "text/plain"
        else:
            payload = json.dumps({
                "backend": self.server.backend_name,
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host", ""),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "peer": "%s:%d" % self.client_address[:2],
                "body_len": len(body_in),
            }).encode() + b"\n"
            ctype = "application/json"
        self.send_response(self.server.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Backend", self.server.backend_name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        self._reply()

    def do_HEAD(self):
        self._reply()

    def do_POST(self):
        self._reply(self._body())

    def do_PUT(self):
        self._reply(self._body())

    def log_message(self, fmt, *args):  # keep test output quiet
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--count", action="store_true")
    ap.add_argument("--status", type=int, default=200)
    args = ap.parse_args()
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.backend_name = args.name
    srv.count_requests = args.count
    srv.status = args.status
    srv.requests = 0
    srv.lock = threading.Lock()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("backend %s listening on %s:%d" % (args.name, args.host, args.port), flush=True)
    try:
        srv.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
