#!/usr/bin/env python3
"""L7 body framing end to end: what the proxy de-chunks and re-frames arrives byte-exact.

Requests: chunked uploads (curl and raw sockets: odd chunk sizes, extensions, trailers) and
Content-Length uploads reach the backend intact (sha256). Responses: chunked, close-delimited
(re-chunked for HTTP/1.1 clients, raw until close for HTTP/1.0), big Content-Length, HEAD,
204/304 — each checked on the wire with a strict client that refuses sloppy framing, and the
client connection is reused afterwards (a stray or missing byte breaks the next response), and
so is the upstream one. Also: uploads cut short are never completed upstream, truncated backend
bodies are never completed downstream, a pooled connection the backend closed is not used, no
Transfer-Encoding reaches an HTTP/1.0 client, a backend answering before it read the body gets
its answer through (413, not 502), and graceful drain on SIGTERM.
"""
import hashlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend import payload  # noqa: E402
from harness import DoormanTestCase, curl, free_port, http_get, port_open, read_to_eof, wait_until  # noqa: E402

HOST = "frame.local"
MiB = 1 << 20
DRAIN_GRACE = 5.0  # the dataplane's default --drain-timeout


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Response:
    def __init__(self, version, status, headers, body, framing):
        self.version, self.status, self.headers, self.body, self.framing = version, status, headers, body, framing

    def get(self, name):
        """The single value of a field (None when absent; fails on duplicates)."""
        vals = self.headers.get(name.lower(), [])
        assert len(vals) <= 1, "%s repeated: %r" % (name, vals)
        return vals[0] if vals else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s %r body=%d bytes (%s)>" % (self.status, self.version, self.headers, len(self.body), self.framing)


class Conn:
    """A strict HTTP/1.x client on one raw socket: responses are read exactly by their framing
    (RFC 9112 §6.3), so a missing or extra byte shows up as a broken next response."""

    def __init__(self, port, timeout=15.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, version="1.1", headers=(), body=b""):
        h = "%s %s HTTP/%s\r\nHost: %s\r\n" % (method, path, version, HOST)
        h += "".join("%s: %s\r\n" % kv for kv in headers)
        self.send(h.encode() + b"\r\n" + body)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed by the proxy (%d unread bytes: %r)" % (len(self.buf), bytes(self.buf[:200])))
        self.buf += chunk

    def _until(self, delim, limit=1 << 16):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes: %r" % (delim, limit, bytes(self.buf[:200])))
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _to_eof(self):
        while True:
            try:
                self._fill()
            except EOFError:
                out = bytes(self.buf)
                self.buf.clear()
                return out

    def read_response(self, method="GET"):
        head = self._until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        assert version in ("HTTP/1.1", "HTTP/1.0"), lines[0]
        status = int(status)
        headers = {}
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            assert sep and k == k.strip(), "bad header line %r" % line
            headers.setdefault(k.lower(), []).append(v.strip())
        te, cl = headers.get("transfer-encoding"), headers.get("content-length")
        assert not (te and cl), "both Transfer-Encoding and Content-Length: %r" % headers
        if method == "HEAD" or status in (204, 304) or status // 100 == 1:
            return Response(version, status, headers, b"", "none")
        if te:
            assert te == ["chunked"], te
            return Response(version, status, headers, self._dechunk(), "chunked")
        if cl:
            assert len(cl) == 1 and cl[0].isdigit(), cl
            return Response(version, status, headers, self._exact(int(cl[0])), "length")
        return Response(version, status, headers, self._to_eof(), "close")

    def _dechunk(self):
        parts = []
        while True:
            line = self._until(b"\r\n").decode("latin-1")
            size_s = line.split(";", 1)[0]
            assert size_s and all(c in "0123456789abcdefABCDEF" for c in size_s), "bad chunk size line %r" % line
            size = int(size_s, 16)
            if size == 0:
                break
            parts.append(self._exact(size))
            assert self._exact(2) == b"\r\n", "chunk data not followed by CRLF"
        while self._until(b"\r\n"):  # trailer fields (the proxy may drop them), then the blank line
            pass
        return b"".join(parts)

    def at_eof(self, timeout=5.0):
        """True when the peer closed (after any unread bytes: those fail the assertion)."""
        self.sock.settimeout(timeout)
        try:
            extra = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        assert not extra and not self.buf, "unexpected bytes after the last response: %r" % (bytes(self.buf) + extra)[:200]
        return True


class L7Framing(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.backend = self.start_backend("b", extra=["--count"])
        self.port = free_port()
        self.write_single_route_lb("framing", self.port, self.backend)
        self.start_controller()
        self.start_dataplane(["--workers", "2"])
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="L7 listener")

    def conn(self, timeout=15.0):
        c = Conn(self.port, timeout)
        self.addCleanup(c.close)
        return c

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def backend_stats(self):
        return json.loads(http_get("http://127.0.0.1:%d/__stats" % self.backend)[2])

    def backend_count(self):
        return self.backend_stats()["requests"]

    def assert_echo_ok(self, c, path="/after"):
        """The next request on the same client connection is answered normally."""
        c.request("GET", path)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], path)
        return r

    def assert_upstream_kept(self, c, path, method="GET"):
        """After `path`, the next request reuses the same upstream connection: the proxy knew
        exactly where that response ended (a pooled connection with unread bytes is dropped)."""
        before = self.assert_echo_ok(c, "/before").json()["peer"]
        c.request(method, path)
        r = c.read_response(method)
        self.assertLess(r.status, 400, r)
        after = self.assert_echo_ok(c, "/after").json()["peer"]
        self.assertEqual(before, after, "upstream connection not reused after %s %s" % (method, path))

    # 1 ------------------------------------------------------------------------------------
    def test_chunked_request_upload_arrives_intact(self):
        data = payload(6 * MiB + 12345)
        path = os.path.join(self.tmp, "up.bin")
        with open(path, "wb") as f:
            f.write(data)
        r = curl(["-H", "Host: " + HOST, "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                  self.url("/upload")], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.assertEqual(got["body_framing"], "chunked", "a chunked request body is forwarded chunked")
        self.assertEqual(got["body_len"], len(data))
        self.assertEqual(got["body_sha256"], sha(data))

        # The same body with Content-Length: forwarded raw, byte-exact.
        r = curl(["-H", "Host: " + HOST, "--data-binary", "@" + path, self.url("/upload-cl")], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.assertEqual((got["body_framing"], got["body_len"], got["body_sha256"]), ("length", len(data), sha(data)))
        self.assertNotIn("transfer-encoding", got["headers"])

        # Raw socket: 1-byte, odd and large chunks, upper-case hex, a chunk extension and a
        # trailer, then a second request on the same connection.
        body = payload(300001)
        pieces, off = [], 0
        for i, n in enumerate([1, 2, 0xABC, 70000, 5, 200000]):
            pieces.append(b"%X%s\r\n" % (n, b";name=val" if i == 2 else b"") + body[off:off + n] + b"\r\n")
            off += n
        pieces.append(b"%x\r\n" % (len(body) - off) + body[off:] + b"\r\n0\r\nX-Sum: 1\r\n\r\n")
        # Pipelined in one write with an empty chunked body and a GET behind it: the proxy must
        # stop reading the first body exactly at its last chunk.
        c = self.conn()
        c.send(b"POST /raw-chunked HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % HOST.encode()
               + b"".join(pieces)
               + b"PUT /empty HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % HOST.encode()
               + b"GET /then HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
        resp = c.read_response()
        self.assertEqual(resp.status, 200, resp)
        got = resp.json()
        self.assertEqual((got["path"], got["body_framing"], got["body_len"], got["body_sha256"]),
                         ("/raw-chunked", "chunked", len(body), sha(body)))
        got = c.read_response().json()
        self.assertEqual((got["path"], got["method"], got["body_len"]), ("/empty", "PUT", 0))
        self.assertEqual(c.read_response().json()["path"], "/then")
        self.assert_echo_ok(c)

    def test_pipelined_content_length_upload(self):
        body = payload(300001)
        c = self.conn()
        c.send(b"POST /cl HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (HOST.encode(), len(body)) + body
               + b"GET /then HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
        got = c.read_response().json()
        self.assertEqual((got["path"], got["body_framing"], got["body_len"], got["body_sha256"]),
                         ("/cl", "length", len(body), sha(body)))
        self.assertEqual(c.read_response().json()["path"], "/then")

    def test_upload_cut_short_by_the_client_is_not_completed_upstream(self):
        # The client goes away mid-body: the backend must see a truncated body (never a last
        # chunk or a padded body that would make it a complete request).
        stats = self.backend_stats
        head = "POST /cut HTTP/1.1\r\nHost: %s\r\n" % HOST
        for name, raw in (("chunked", (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
                           + b"1000\r\n" + b"a" * 0x1000 + b"\r\n20\r\nabc"),
                          ("length", (head + "Content-Length: 100000\r\n\r\n").encode() + b"a" * 5000)):
            with self.subTest(framing=name):
                before = stats()
                c = self.conn(timeout=10)
                c.send(raw)
                wait_until(lambda: stats()["requests"] > before["requests"], timeout=5,
                           what="the streamed request head at the backend")
                c.sock.shutdown(socket.SHUT_WR)
                wait_until(lambda: stats()["truncated_bodies"] > before["truncated_bodies"], timeout=5,
                           what="the backend to see the body cut short")
                self.assertEqual(stats()["bodies"], before["bodies"], "a truncated upload reached the backend whole")
                try:
                    rest = c._to_eof()
                except ConnectionResetError:
                    rest = b""
                self.assertFalse(rest.startswith(b"HTTP/1.1 200"), rest[:200])

    def test_pooled_connection_closed_by_the_backend(self):
        # The backend closes an idle pooled connection (as its keep-alive timeout would). The next
        # request — without a body (retried on a fresh connection) and with one (cannot be
        # retried: the proxy must notice before sending it) — still gets a 200, body intact.
        stats = self.backend_stats
        c = self.conn()
        body = payload(200000)
        for method, extra in (("GET", b""), ("POST", b"Content-Length: %d\r\n" % len(body)),
                              ("POST", b"Transfer-Encoding: chunked\r\n")):
            with self.subTest(method=method, extra=extra):
                before = stats()["dropped"]
                self.assert_echo_ok(c, "/drop")
                wait_until(lambda: stats()["dropped"] > before, timeout=5, what="the backend to close the connection")
                if method == "GET":
                    c.request("GET", "/next")
                else:
                    wire = body if b"Content-Length" in extra else b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                    c.send(b"POST /next HTTP/1.1\r\nHost: %s\r\n%s\r\n%s" % (HOST.encode(), extra, wire))
                r = c.read_response()
                self.assertEqual(r.status, 200, "%r %r" % (r, r.body[:200]))
                got = r.json()
                self.assertEqual(got["path"], "/next")
                if method == "POST":
                    self.assertEqual((got["body_len"], got["body_sha256"]), (len(body), sha(body)))

    # 2 ------------------------------------------------------------------------------------
    def test_chunked_response_arrives_intact_and_connection_is_reused(self):
        n = 3 * MiB + 17
        c = self.conn()
        for path in ("/chunked/%d?trailer=1" % n, "/chunked/%d" % n):
            c.request("GET", path)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.get("transfer-encoding"), "chunked", r)
            self.assertIsNone(r.get("content-length"))
            self.assertEqual(len(r.body), n)
            self.assertEqual(sha(r.body), sha(payload(n)))
            self.assertEqual(r.get("x-body-sha256"), sha(payload(n)))
        # An empty chunked body, then a normal request, still on the same connection.
        c.request("GET", "/chunked/0")
        r = c.read_response()
        self.assertEqual((r.status, r.framing, r.body), (200, "chunked", b""))
        self.assert_echo_ok(c)
        self.assert_upstream_kept(c, "/chunked/100000?trailer=1")
        # curl decodes it too (independent client).
        out = os.path.join(self.tmp, "chunked.out")
        r = curl(["-H", "Host: " + HOST, "-o", out, "-w", "%{http_code}", self.url("/chunked/%d?trailer=1" % n)], timeout=20)
        self.assertEqual((r.returncode, r.stdout), (0, "200"), r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(sha(f.read()), sha(payload(n)))

    def test_chunked_response_to_http10_client_is_raw_until_close(self):
        n = 1 * MiB + 3
        # A keep-alive HTTP/1.0 client: a Content-Length body keeps the connection, a chunked
        # one cannot be framed for it and ends at close.
        c = self.conn()
        c.request("GET", "/big/5000", version="1.0", headers=[("Connection", "keep-alive")])
        r = c.read_response()
        self.assertEqual((r.status, r.framing, sha(r.body)), (200, "length", sha(payload(5000))), r)
        self.assertEqual((r.get("connection") or "").lower(), "keep-alive", r)
        c.request("GET", "/chunked/%d?trailer=1" % n, version="1.0", headers=[("Connection", "keep-alive")])
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.framing, "close", "an HTTP/1.0 client cannot get chunked: %r" % r)
        self.assertEqual(r.get("connection"), "close", r)
        self.assertEqual((len(r.body), sha(r.body)), (n, sha(payload(n))))
        self.assertIsNone(r.get("trailer"), r)

    def test_http10_client_never_sees_transfer_encoding(self):
        # RFC 9112 §6.1: no Transfer-Encoding in a response to an HTTP/1.0 request — HEAD included
        # (the GET case is checked above; a HEAD response is header-only, so it takes another path).
        c = self.conn()
        c.request("HEAD", "/chunked/50000", version="1.0", headers=[("Connection", "keep-alive")])
        r = c.read_response("HEAD")
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.get("transfer-encoding"), "Transfer-Encoding sent to an HTTP/1.0 client: %r" % r)

    # 3 ------------------------------------------------------------------------------------
    def test_close_delimited_response_is_rechunked_for_http11(self):
        n = 2 * MiB + 99
        c = self.conn()
        c.request("GET", "/close/%d" % n)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("transfer-encoding"), "chunked", r)
        self.assertNotEqual((r.get("connection") or "").lower(), "close", "the client connection should stay open: %r" % r)
        self.assertEqual((len(r.body), sha(r.body)), (n, sha(payload(n))))
        # The client connection stays usable: a second close-delimited body, then a normal one.
        c.request("GET", "/close/%d" % 1000)
        r = c.read_response()
        self.assertEqual((r.status, r.framing, sha(r.body)), (200, "chunked", sha(payload(1000))))
        c.request("GET", "/close/0")
        r = c.read_response()
        self.assertEqual((r.status, r.framing, r.body), (200, "chunked", b""))
        self.assert_echo_ok(c)
        # Pipelined behind a close-delimited body: answered in order, each body exact.
        c.send(b"GET /close/70000 HTTP/1.1\r\nHost: %s\r\n\r\nGET /close/5 HTTP/1.1\r\nHost: %s\r\n\r\n"
               b"GET /p HTTP/1.1\r\nHost: %s\r\n\r\n" % ((HOST.encode(),) * 3))
        self.assertEqual(sha(c.read_response().body), sha(payload(70000)))
        self.assertEqual(c.read_response().body, payload(5))
        self.assertEqual(c.read_response().json()["path"], "/p")

    def test_close_delimited_response_to_http10_client_is_raw_until_close(self):
        n = 2 * MiB + 99
        c = self.conn()
        c.request("GET", "/close/%d" % n, version="1.0")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.framing, "close", r)
        self.assertEqual(r.get("connection"), "close", r)
        self.assertEqual((len(r.body), sha(r.body)), (n, sha(payload(n))))
        # And with the real curl --http1.0.
        out = os.path.join(self.tmp, "close.out")
        r = curl(["--http1.0", "-H", "Host: " + HOST, "-o", out, "-w", "%{http_code}", self.url("/close/%d" % n)],
                 timeout=20)
        self.assertEqual((r.returncode, r.stdout), (0, "200"), r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(sha(f.read()), sha(payload(n)))

    # 4 ------------------------------------------------------------------------------------
    def test_big_content_length_download_is_intact(self):
        n = 64 * MiB
        c = self.conn(timeout=20)
        c.request("GET", "/big/%d" % n)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.get("content-length"), str(n))
        self.assertIsNone(r.get("transfer-encoding"))
        self.assertEqual(sha(r.body), sha(payload(n)))
        self.assert_echo_ok(c)

    def test_truncated_backend_response_is_not_completed(self):
        # The backend announces N bytes and closes after N/2: the client must see the connection
        # end before the body does (never a terminating chunk or a padded body), and a new
        # connection works.
        n = 400000
        for q, want_framing in (("", "content-length"), ("?chunked=1", "transfer-encoding")):
            with self.subTest(q=q):
                c = self.conn(timeout=10)
                c.request("GET", "/truncated/%d%s" % (n, q))
                with self.assertRaises((EOFError, ConnectionResetError), msg="a truncated body was completed"):
                    r = c.read_response()
                    self.fail("read a whole response from a truncated backend body: %r" % r)
                self.assert_echo_ok(self.conn())

    # 5 ------------------------------------------------------------------------------------
    def test_head_keeps_content_length_and_sends_no_body(self):
        c = self.conn()
        # HEAD then GET pipelined in one write, then HEAD on chunked and close-delimited
        # resources, then a GET: any body byte after a HEAD head breaks the next response.
        c.send(b"HEAD /big/100000 HTTP/1.1\r\nHost: %s\r\n\r\n"
               b"GET /big/100000 HTTP/1.1\r\nHost: %s\r\n\r\n" % (HOST.encode(), HOST.encode()))
        h = c.read_response("HEAD")
        self.assertEqual((h.status, h.get("content-length")), (200, "100000"), h)
        self.assertEqual(h.get("x-body-sha256"), sha(payload(100000)))
        g = c.read_response()
        self.assertEqual((g.status, g.get("content-length"), sha(g.body)), (200, "100000", sha(payload(100000))), g)
        c.send(b"HEAD /chunked/50000 HTTP/1.1\r\nHost: %s\r\n\r\n"
               b"HEAD /close/50000 HTTP/1.1\r\nHost: %s\r\n\r\n"
               b"HEAD /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % ((HOST.encode(),) * 3))
        for path in ("/chunked/50000", "/close/50000", "/echo"):
            h = c.read_response("HEAD")
            self.assertEqual(h.status, 200, (path, h))
        self.assertIsNotNone(h.get("content-length"), "HEAD keeps the Content-Length a GET would get: %r" % h)
        self.assertNotEqual(h.get("content-length"), "0")
        self.assert_echo_ok(c)
        # A HEAD's backend connection is not reused (a body written late to a HEAD would become
        # the next answer, helper-90); the client's connection is kept.
        for path in ("/big/100000", "/chunked/100000"):
            before = self.assert_echo_ok(c, "/before").json()["peer"]
            c.request("HEAD", path)
            self.assertLess(c.read_response("HEAD").status, 400)
            self.assertNotEqual(self.assert_echo_ok(c, "/after").json()["peer"], before)
            self.assert_upstream_kept(c, "/big/10")
        c.request("GET", "/last", headers=[("Connection", "close")])
        self.assertEqual(c.read_response().json()["path"], "/last")
        self.assertTrue(c.at_eof(), "Connection: close honoured")

    # 6 ------------------------------------------------------------------------------------
    def test_204_and_304_have_no_body_and_keep_the_connection(self):
        c = self.conn()
        for code in (204, 304):
            c.request("GET", "/status/%d" % code)
            r = c.read_response()
            self.assertEqual(r.status, code, r)
            self.assertEqual(r.get("etag"), '"v1"', r)
            self.assertIsNone(r.get("transfer-encoding"), "no body framing on a %d: %r" % (code, r))
            self.assertNotEqual((r.get("connection") or "").lower(), "close", r)
            self.assert_echo_ok(c, "/after-%d" % code)
        # Pipelined: any byte of a phantom body would be taken for the next status line.
        c.send(b"".join(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (p, HOST.encode())
                        for p in (b"/status/304", b"/status/204", b"/status/304", b"/p")))
        self.assertEqual([c.read_response().status for _ in range(3)], [304, 204, 304])
        self.assertEqual(c.read_response().json()["path"], "/p")
        # The 304's Content-Length (the representation's, RFC 9110 §8.6) is passed on unchanged.
        c.request("GET", "/status/304")
        self.assertEqual(c.read_response().get("content-length"), "1234")
        self.assert_echo_ok(c)
        for path in ("/status/204", "/status/304"):
            self.assert_upstream_kept(c, path)

    # 7 ------------------------------------------------------------------------------------
    def test_early_backend_response_is_forwarded_not_502(self):
        # The backend answers 413 + Connection: close without reading the body and closes (which
        # resets the upstream connection). The client must get the backend's 413: for a 16 MiB
        # body the proxy is still writing it when the backend closes; 1000 bytes fit in buffers.
        for framing, n in (("length", 16 * MiB), ("chunked", 16 * MiB), ("length", 1000), ("chunked", 1000)):
            body = b"x" * n
            with self.subTest(framing=framing, size=n):
                c = self.conn(timeout=10)
                if framing == "length":
                    c.request("POST", "/early", headers=[("Content-Length", str(n))])
                    wire = body
                else:
                    c.request("POST", "/early", headers=[("Transfer-Encoding", "chunked")])
                    wire = b"".join(b"%x\r\n" % len(body[i:i + 0x10000]) + body[i:i + 0x10000] + b"\r\n"
                                    for i in range(0, n, 0x10000)) + b"0\r\n\r\n"
                send_error = []

                def sender(sock, data, errors):
                    try:
                        sock.sendall(data)
                    except OSError as e:  # the proxy may close once it answered: expected
                        errors.append(e)
                t = threading.Thread(target=sender, args=(c.sock, wire, send_error), daemon=True)
                t.start()
                try:
                    try:
                        r = c.read_response()
                    except (EOFError, ConnectionResetError) as e:
                        self.fail("no response to an upload the backend refused early: %r" % e)
                    self.assertEqual(r.status, 413, "want the backend's 413, got %r %r" % (r, r.body[:200]))
                    self.assertEqual(r.get("x-backend"), "b", r)
                    self.assertEqual(r.body, b"backend: request body too large\n")
                    if (r.get("connection") or "").lower() == "close":
                        self.assertTrue(c.at_eof(timeout=5), "Connection: close, but the connection stayed open")
                    else:  # the proxy read the rest of the body itself: the connection must still work
                        t.join(10)
                        self.assertEqual(send_error, [])
                        self.assert_echo_ok(c)
                finally:
                    c.close()  # ends a sender still blocked on a failed subtest's connection
                    t.join(10)
        # The proxy is still fine afterwards.
        self.assert_echo_ok(self.conn())

    # 8 ------------------------------------------------------------------------------------
    def test_sigterm_drains_in_flight_request(self):
        idle = self.conn(timeout=10)  # a keep-alive connection with no request in flight
        self.assert_echo_ok(idle, "/idle")
        before = self.backend_count()
        c = self.conn(timeout=10)
        sent = time.monotonic()
        c.request("GET", "/slow/3000")
        wait_until(lambda: self.backend_count() > before, timeout=5, what="the slow request at the backend")
        term = time.monotonic()
        self.dataplane.p.send_signal(signal.SIGTERM)
        # New connections are refused while the in-flight request is still running.
        wait_until(lambda: not port_open(self.port), timeout=2.0, what="the listener to close after SIGTERM")
        self.assertEqual(select.select([c.sock], [], [], 0)[0], [],
                         "the in-flight response came before the listener closed (or the machine is very slow)")
        # Draining is not ready: whatever sends traffic here should stop (the admin port still answers).
        status, _, _ = http_get("http://127.0.0.1:%d/readyz" % self.dp_metrics_port)
        self.assertEqual(status, 503)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/slow/3000")
        self.assertGreaterEqual(time.monotonic() - sent, 3.0)
        self.assertEqual((r.get("connection") or "").lower(), "close", "a draining proxy closes after the response")
        self.assertTrue(c.at_eof(), "connection closed after the drained response")
        rc = self.dataplane.p.wait(timeout=DRAIN_GRACE + 3)
        self.assertEqual(rc, 0, self.dataplane.log()[-2000:])
        self.assertLess(time.monotonic() - term, DRAIN_GRACE, "the dataplane waited out its whole grace period")
        self.assertNotIn("grace period over", self.dataplane.log())
        self.assertTrue(idle.at_eof(timeout=2), "idle keep-alive connection closed at exit")

    def test_sigterm_answers_a_request_racing_it_on_an_idle_keep_alive_connection(self):
        # A keep-alive connection idle when SIGTERM arrives stays open briefly: a request its
        # client sends then (or had sent) is answered, with Connection: close, instead of
        # meeting a closed socket (audit5 F4: up to 40 % of busy keep-alive clients were reset).
        idle = self.conn(timeout=10)
        self.assert_echo_ok(idle, "/idle")
        term = time.monotonic()
        self.dataplane.p.send_signal(signal.SIGTERM)
        # Draining (readyz turns 503 with the same flag), well within the 1 s the idle one is kept.
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % self.dp_metrics_port)[0] == 503,
                   timeout=1.0, interval=0.005, what="the drain to start")
        idle.request("GET", "/after-term")
        r = idle.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/after-term")
        self.assertEqual((r.get("connection") or "").lower(), "close", "a draining proxy closes after the response")
        self.assertTrue(idle.at_eof(timeout=2), "closed after the drained response")
        self.assertEqual(self.dataplane.p.wait(timeout=DRAIN_GRACE + 3), 0)
        self.assertLess(time.monotonic() - term, DRAIN_GRACE - 1, "idle connections are kept about 1 s, not the whole grace")

    def test_sigterm_mid_response_keeps_the_connection_for_the_next_request(self):
        # A response whose head went out as keep-alive before SIGTERM ends as keep-alive: its
        # client may send the next request on that connection at once. That request is answered
        # (Connection: close), not met by a close right after the body (helper-136: 5-7 of 8 busy
        # keep-alive clients got no response when the drain closed them after the exchange).
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET /slowbody/500 HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while b"\r\n\r\nhello" not in got:
            chunk = s.recv(4096)
            self.assertTrue(chunk, "closed before the first part of the body: %r" % got)
            got += chunk
        self.assertNotIn(b"connection: close", got.lower(), "the head went out before the drain")
        self.dataplane.p.send_signal(signal.SIGTERM)
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % self.dp_metrics_port)[0] == 503,
                   timeout=1.0, interval=0.005, what="the drain to start")
        while not got.endswith(b"helloworld"):
            chunk = s.recv(4096)
            self.assertTrue(chunk, "closed before the end of the body: %r" % got)
            got += chunk
        s.sendall(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        rest = read_to_eof(s)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200"), "the next request got %r" % rest[:300])
        self.assertIn(b"\r\nconnection: close\r\n", rest.lower())
        self.assertIn(b'"/next"', rest)
        self.assertEqual(self.dataplane.p.wait(timeout=DRAIN_GRACE + 3), 0)


class ShutdownDelayAndDrainTimeout(DoormanTestCase):
    """--shutdown-delay: after SIGTERM the dataplane keeps serving, new connections too, with
    /readyz at 503, so what health-checks it in front stops sending first; then --drain-timeout
    bounds the drain: what finishes in it is answered, the rest is closed."""

    def test_serves_through_the_delay_then_drains_for_the_timeout(self):
        backend = self.start_backend("b", extra=["--count"])
        port = free_port()
        self.write_single_route_lb("shutdown", port, backend)
        self.start_controller()
        self.start_dataplane(["--workers", "2", "--shutdown-delay", "3s", "--drain-timeout", "3s"])
        self.wait_converged()
        wait_until(lambda: port_open(port), what="L7 listener")
        ready = "http://127.0.0.1:%d/readyz" % self.dp_metrics_port
        self.assertEqual(http_get(ready)[0], 200)
        quick, cut = Conn(port, 15), Conn(port, 15)
        self.addCleanup(quick.close)
        self.addCleanup(cut.close)
        quick.request("GET", "/slow/4500")  # ends 1.5 s into the drain
        cut.request("GET", "/slow/12000")   # outlives delay + drain
        term = time.monotonic()
        self.dataplane.p.send_signal(signal.SIGTERM)
        wait_until(lambda: http_get(ready)[0] == 503, timeout=1.0, interval=0.01, what="not ready after SIGTERM")
        # Within the delay a new connection is accepted and served.
        fresh = Conn(port, 5)
        self.addCleanup(fresh.close)
        fresh.request("GET", "/during-delay")
        r = fresh.read_response()
        self.assertEqual((r.status, r.json()["path"]), (200, "/during-delay"))
        self.assertLess(time.monotonic() - term, 3.0, "served after the delay (the machine is very slow)")
        # Then the listener closes.
        wait_until(lambda: not port_open(port), timeout=4.5, interval=0.02, what="the listener to close after the delay")
        self.assertGreaterEqual(time.monotonic() - term, 2.9, "the listener closed before the shutdown delay ended")
        r = quick.read_response()
        self.assertEqual((r.status, r.json()["path"]), (200, "/slow/4500"))
        rc = self.dataplane.p.wait(timeout=15)
        took = time.monotonic() - term
        self.assertEqual(rc, 0, self.dataplane.log()[-2000:])
        self.assertGreaterEqual(took, 5.8, "exited before delay + drain timeout with a request still in flight")
        self.assertLess(took, 10.0, "the drain timeout did not bound the drain")
        self.assertIn("grace period over", self.dataplane.log())
        self.assertTrue(cut.at_eof(timeout=2), "the request outliving the drain timeout was closed")


if __name__ == "__main__":
    unittest.main()
