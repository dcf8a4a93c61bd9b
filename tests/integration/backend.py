#!/usr/bin/env python3
"""A small HTTP/1.1 keep-alive test backend (real process, real sockets).

Every response is JSON naming this backend and echoing what it received, so tests can tell
which backend served a request, what headers the proxy sent, and over which upstream connection
(`peer`) it arrived. GET /healthz answers 200 "ok". Exits on SIGTERM.

Request bodies are read by Content-Length or de-chunked (Transfer-Encoding: chunked, trailer
fields included); the JSON reports `body_len`, `body_sha256`, `body_framing` ("length",
"chunked" or "none") and `trailers`.

Special paths (GET and HEAD; the body bytes are payload(N), see below):
  /chunked/N[?trailer=1]  N bytes as a chunked body in chunks of varying size (one with a
                          chunk extension, upper-case hex sizes), optionally with a trailer field
  /close/N                no Content-Length, Connection: close, N bytes, then close
  /big/N                  Content-Length N, written in 64 KiB pieces
  /status/CODE            204 and 304 without a body (304 carries the Content-Length a GET would
                          have: RFC 9110 §8.6); any other code: a short text body
  /early                  (POST/PUT) answers 413 + Connection: close immediately and closes
                          WITHOUT reading the request body
  /slow/MS                the JSON echo, after MS milliseconds (POST: after reading the body)
  /slowbody/MS            200, Content-Length 10: the head and "hello" at once, "world" MS ms later
  /drop                   the JSON echo (keep-alive framing, no Connection: close), then the
                          connection is closed as an idle timeout would; counted in /__stats
  /truncated/N[?chunked=1]  announces N bytes (Content-Length, or chunked), sends half, closes
Every special response carries X-Body-Sha256 (the sha256 of the body a GET gets) and X-Backend.

usage: backend.py --port PORT --name NAME [--host 127.0.0.1] [--count]
  --count   count every request received; GET /__stats answers {"requests": N, "bodies": complete
            request bodies, "truncated_bodies": bodies cut short or malformed} (not counted)
  --status N  answer every request with status N (default 200)
"""
import argparse
import hashlib
import json
import random
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECE = 64 * 1024


def payload(n):
    """n deterministic pseudo-random bytes: the same for a given n in every process (tests import it)."""
    return random.Random(n).randbytes(n)


def chunk_sizes(n):
    """Varying chunk sizes summing to n: tiny, odd, larger than the proxy's 16 KiB buffer."""
    pattern = [1, 7, 4096, 65536, 100003, 3, 16384, 250000]
    out, i = [], 0
    while n > 0:
        s = min(pattern[i % len(pattern)], n)
        out.append(s)
        n -= s
        i += 1
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "doorman-test-backend"

    def _count(self):
        if self.server.count_requests and self.path != "/__stats":
            with self.server.lock:
                self.server.requests += 1

    def _reply(self, body_in=b"", framing="none", trailers=None):
        if self.server.count_requests and self.path == "/__stats":
            with self.server.lock:
                n = self.server.requests
                ok, bad = self.server.bodies_ok, self.server.bodies_bad
                dropped = self.server.dropped
            payload_ = json.dumps({"requests": n, "bodies": ok, "truncated_bodies": bad, "dropped": dropped}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload_)))
            self.end_headers()
            self.wfile.write(payload_)
            return
        if self.path == "/healthz":
            body = b"ok\n"
            ctype = "text/plain"
        else:
            body = json.dumps({
                "backend": self.server.backend_name,
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host", ""),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "peer": "%s:%d" % self.client_address[:2],
                "body_len": len(body_in),
                "body_sha256": hashlib.sha256(body_in).hexdigest(),
                "body_framing": framing,
                "trailers": trailers or {},
            }).encode() + b"\n"
            ctype = "application/json"
        self.send_response(self.server.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", self.server.backend_name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _line(self):
        line = self.rfile.readline(65537)
        if not line.endswith(b"\r\n"):
            raise ValueError("bad line in chunked body: %r" % line[:100])
        return line[:-2]

    def _body(self):
        """(body bytes, framing, trailers), or None (connection to close, nothing answered) for a
        body cut short or malformed; counts both kinds."""
        try:
            out = self._read_body()
        except (ValueError, OSError):
            with self.server.lock:
                self.server.bodies_bad += 1
            self.close_connection = True
            return None
        if out[1] != "none":
            with self.server.lock:
                self.server.bodies_ok += 1
        return out

    def _read_body(self):
        """(body bytes, framing, trailers): by Content-Length, or de-chunked."""
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            parts, trailers = [], {}
            while True:
                size = int(self._line().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    break
                parts.append(self.rfile.read(size))
                if len(parts[-1]) != size:
                    raise ValueError("connection closed inside a chunk")
                if self._line() != b"":
                    raise ValueError("chunk data not followed by CRLF")
            while True:
                line = self._line()
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                trailers[k.strip().lower()] = v.strip()
            return b"".join(parts), "chunked", trailers
        n = int(self.headers.get("Content-Length") or 0)
        if n > 0:
            body = self.rfile.read(n)
            if len(body) != n:
                raise ValueError("connection closed inside the body (%d of %d bytes)" % (len(body), n))
            return body, "length", None
        return b"", "none", None

    def _special_head(self, status, fields, body_sha=None):
        self.send_response(status)
        for k, v in fields:
            self.send_header(k, v)
        self.send_header("X-Backend", self.server.backend_name)
        if body_sha is not None:
            self.send_header("X-Body-Sha256", body_sha)
        self.end_headers()

    def _special(self):
        """Serves the special paths; returns False when the path is not one."""
        path, _, query = self.path.partition("?")
        head = self.command == "HEAD"
        m = re.fullmatch(r"/(chunked|close|big|status|slow|slowbody|truncated)/(\d+)", path)
        if not m:
            return False
        kind, n = m.group(1), int(m.group(2))
        if kind == "slow":
            time.sleep(n / 1000.0)
            self._reply()
            return True
        if kind == "slowbody":
            self._special_head(200, [("Content-Type", "text/plain"), ("Content-Length", "10")])
            if not head:
                self.wfile.write(b"hello")
                time.sleep(n / 1000.0)
                self.wfile.write(b"world")
            return True
        if kind == "status":
            if n in (204, 304):
                fields = [("ETag", '"v1"')]
                if n == 304:
                    fields.append(("Content-Length", "1234"))
                self._special_head(n, fields)
                return True
            body = b"status %d\n" % n
            self._special_head(n, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                               hashlib.sha256(body).hexdigest())
            if not head:
                self.wfile.write(body)
            return True
        data = payload(n)
        sha = hashlib.sha256(data).hexdigest()
        if kind == "chunked":
            trailer = "trailer=1" in query
            fields = [("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")]
            if trailer:
                fields.append(("Trailer", "X-Trailer-Sha256"))
            self._special_head(200, fields, sha)
            if head:
                return True
            off = 0
            for i, s in enumerate(chunk_sizes(n)):
                ext = b";ext=%d" % i if i == 1 else b""
                self.wfile.write(b"%X%s\r\n" % (s, ext) + data[off:off + s] + b"\r\n")
                off += s
            self.wfile.write(b"0\r\n" + (b"X-Trailer-Sha256: " + sha.encode() + b"\r\n" if trailer else b"") + b"\r\n")
        elif kind == "truncated":
            half = data[:n // 2]
            if "chunked=1" in query:
                self._special_head(200, [("Transfer-Encoding", "chunked")], sha)
                if not head:
                    self.wfile.write(b"%x\r\n" % n + half)
            else:
                self._special_head(200, [("Content-Length", str(n))], sha)
                if not head:
                    self.wfile.write(half)
            self.close_connection = True
        elif kind == "close":
            self._special_head(200, [("Content-Type", "application/octet-stream"), ("Connection", "close")], sha)
            if not head:
                for off in range(0, n, PIECE):
                    self.wfile.write(data[off:off + PIECE])
            self.close_connection = True
        else:  # big
            self._special_head(200, [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))], sha)
            if not head:
                for off in range(0, n, PIECE):
                    self.wfile.write(data[off:off + PIECE])
        return True

    def _early(self):
        """413 at once, Connection: close, the request body left unread (the close may reset)."""
        if self.path.partition("?")[0] != "/early":
            return False
        body = b"backend: request body too large\n"
        self._special_head(413, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                                 ("Connection", "close")], hashlib.sha256(body).hexdigest())
        self.wfile.write(body)
        self.close_connection = True
        return True

    def _drop(self):
        """After the echo, closes the connection (FIN) without having announced it."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True
        with self.server.lock:
            self.server.dropped += 1

    def do_GET(self):
        self._count()
        if not self._special():
            self._reply()
            if self.path == "/drop":
                self._drop()

    def do_HEAD(self):
        self._count()
        if not self._special():
            self._reply()

    def do_POST(self):
        self._count()
        if not self._early():
            body = self._body()
            if body is not None:
                slow = re.fullmatch(r"/slow/(\d+)", self.path)
                if slow:
                    time.sleep(int(slow.group(1)) / 1000.0)
                self._reply(*body)

    def do_PUT(self):
        self._count()
        if not self._early():
            body = self._body()
            if body is not None:
                self._reply(*body)

    def do_CONNECT(self):  # counted and answered like a GET: a test sees whether one arrived
        self._count()
        self._reply()

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
    srv.bodies_ok = 0
    srv.bodies_bad = 0
    srv.dropped = 0
    srv.lock = threading.Lock()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("backend %s listening on %s:%d" % (args.name, args.host, args.port), flush=True)
    try:
        srv.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
