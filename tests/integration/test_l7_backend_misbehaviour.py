#!/usr/bin/env python3
"""L7 against a raw-socket backend that misbehaves the ways a review found could leak across
clients or be mis-framed: bytes after a complete response on a pooled connection (a body sent to
a HEAD), a POST whose connection closes without an answer (never sent twice), retries on a listed
4xx status, ambiguous or non-chunked Transfer-Encoding in responses, a WebSocket client that
half-closes, and Expect from an HTTP/1.0 client. Also the upstream connection a client connection
keeps between its requests: a backend that closed it or wrote to it after a body-less answer.
"""
import collections
import json
import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DoormanTestCase, free_port, http_get, metric_value, port_open, read_response, wait_until  # noqa: E402

POISON = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poisoned: 1\r\n\r\npoisoned"


class RawBackend:
    """Answers by path, one thread per connection; counts (method, path) it received."""

    def __init__(self):
        self.hits = collections.Counter()
        self.lock = threading.Lock()
        self.poison_sent = threading.Event()
        self.closed_after_answer = threading.Event()
        self.sent_408 = threading.Event()
        self.extra_sent = threading.Event()
        self.release = threading.Event()  # ends the connections held open by /early413
        self.silent_ws_end = []  # how each /wssilent tunnel ended for the backend
        self.silent_ws_ended = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self.release.set()
        self.sock.close()

    def count(self, method, path):
        with self.lock:
            return self.hits[(method, path)]

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    @staticmethod
    def _drain_body(c, head, buf, slow=False):
        """Reads (and drops) the rest of a Content-Length body; returns its length as read."""
        length = int([l.split(b":", 1)[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")][0])
        got = len(buf)
        while got < length:
            d = c.recv(1 << 20)
            if not d:
                break
            got += len(d)
            if slow and got < length and got % 7 == 0:
                time.sleep(0.01)  # a slowish reader
        return got

    def _handle(self, c):
        c.settimeout(10)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                try:
                    method, path, _ = head.split(b"\r\n")[0].decode().split(" ")
                except ValueError:
                    return  # an unread request body after a /head answer: this connection is done
                with self.lock:
                    self.hits[(method, path)] += 1
                if path == "/headbody":  # a body (a whole fake response) after the HEAD answer
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(POISON))
                    time.sleep(0.05)
                    c.sendall(POISON)
                    self.poison_sent.set()
                elif path == "/thenextra":  # answers, then writes a whole unasked response 0.3 s later
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n/thenextra")
                    time.sleep(0.3)
                    c.sendall(POISON)
                    self.extra_sent.set()
                elif path == "/once":  # reads the request, then closes without an answer
                    return
                elif path == "/thenclose":  # answers (keep-alive by default), then closes
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n/thenclose")
                    c.close()
                    self.closed_after_answer.set()
                    return
                elif path == "/then408":  # answers, then times the idle connection out with a 408
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n/then408")
                    time.sleep(0.1)
                    c.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntimeout")
                    c.shutdown(socket.SHUT_WR)
                    self.sent_408.set()
                    return
                elif path == "/head":  # the request head as received, as the body
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head))
                elif path == "/h2c":  # a server that takes any Upgrade offered
                    if b"upgrade:" in head.lower():
                        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                        return
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nh1")
                elif path == "/hints":  # 103 Early Hints (with body framing it may not have), then the answer
                    c.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                elif path in ("/hints100", "/hints101"):  # n interim heads (the limit is 100), then the answer
                    c.sendall(b"HTTP/1.1 102 Processing\r\n\r\n" * int(path[-3:]) +
                              b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                elif path == "/nosp":  # no space after the status code (nginx and HAProxy accept it)
                    c.sendall(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")
                elif path == "/lf":  # bare LF line ends (RFC 9112 §2.2 MAY; nginx and HAProxy accept)
                    c.sendall(b"HTTP/1.1 200 OK\nContent-Length: 4\nX-Lf: 1\n\na\nb\n")
                elif path == "/lfsplit":  # the same, a line at a time, without a reason, then a 1xx first
                    for part in (b"HTTP/1.1 100 Continue\n\n", b"HTTP/1.1 200\n", b"X-Lf: 2\n", b"Content-Length: 2\n",
                                 b"\n", b"ok"):
                        c.sendall(part)
                        time.sleep(0.05)
                elif path == "/lfcr":  # a lone CR inside a value: still refused
                    c.sendall(b"HTTP/1.1 200 OK\nX-A: a\rb\nContent-Length: 2\n\nok")
                    return
                elif path == "/204cl":  # a 204 that (wrongly) declares a length
                    c.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
                elif path == "/204te":  # a 204 that (wrongly) declares a chunked body
                    c.sendall(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                    return
                elif path in ("/status600", "/status999"):
                    c.sendall(b"HTTP/1.1 %s Odd\r\nContent-Length: 2\r\n\r\nok" % path[-3:].encode())
                elif path == "/techunkedgzip":  # chunked is not the last coding: close-delimited
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                    return
                elif path == "/tesplitchunkedgzip":  # the same in two fields
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
                              b"5\r\nhello\r\n0\r\n\r\n")
                    return
                elif path == "/tesplit":  # codings in two fields: one list, chunked last
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, identity\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n0\r\n\r\n")
                elif path == "/teparam":  # a transfer parameter
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;q=1, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                    return
                elif path == "/headonly":  # a valid head, then the connection closes: no body
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                    return
                elif path == "/badchunk":  # a valid head, then a malformed first chunk
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
                    self.release.wait(30)
                    return
                elif path == "/nodate":  # the default answer has no Date; this one has its own
                    c.sendall(b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\nok")
                elif path == "/429":
                    c.sendall(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")
                elif path == "/tecl":
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello")
                elif path == "/cl22":  # a list of equal Content-Length values
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")
                elif path == "/teidentity":  # an obsolete coding, delimited by close
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nIDENT")
                    return
                elif path == "/tegzip":  # gzip-coded, delimited by close
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nGZIPDATA")
                    return
                elif path == "/wssilent":  # a tunnel that ignores half-closes: reads until it ends
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    end = "timeout"
                    try:
                        c.settimeout(30)
                        while c.recv(65536):
                            pass
                        end = "eof"
                        self.release.wait(30)  # and does not close on it
                    except ConnectionResetError:
                        end = "reset"
                    except OSError:
                        pass
                    with self.lock:
                        self.silent_ws_end.append(end)
                    self.silent_ws_ended.set()
                    return
                elif path == "/ws":  # echoes what it got once the client half-closed, a moment later
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    got = buf
                    while True:
                        d = c.recv(65536)
                        if not d:
                            break
                        got += d
                    time.sleep(0.2)
                    c.sendall(b"late:" + got)
                    return
                elif path in ("/early413", "/early413lf"):
                    # Answers before reading the body, then neither reads nor closes: the
                    # connection stays open until the test ends. /early413lf: a 100 first, and
                    # bare LF line ends.
                    if path == "/early413":
                        c.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
                    else:
                        c.sendall(b"HTTP/1.1 100 Continue\n\nHTTP/1.1 413 Payload Too Large\nContent-Length: 9\n\ntoo large")
                    self.release.wait(30)
                    return
                elif path == "/answer-while-reading":
                    # The answer's head at once, then the whole body read, then its length.
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")
                    got = self._drain_body(c, head, buf, slow=True)
                    buf = b""
                    c.sendall(b"%012d" % got)
                elif path == "/continue100":
                    # An unsolicited 100 Continue (Expect is not forwarded), then the whole body is
                    # read and its length answered.
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    got = self._drain_body(c, head, buf)
                    buf = b""
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(got)), got))
                elif path == "/post3":
                    while len(buf) < 3:
                        buf += c.recv(65536)
                    buf = buf[3:]
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path.encode()))
        except OSError:
            pass
        finally:
            c.close()


def recv_until_close(s, timeout=5):
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            return out
        if not d:
            return out
        out += d


class L7BackendMisbehaviour(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.backend = RawBackend()
        self.addCleanup(self.backend.close)
        self.port = free_port()
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: raw, namespace: default}}
spec:
  listeners: [{{name: web, port: {self.port}, protocol: HTTP}}]
  routes:
    - name: retry429
      listener: web
      match: {{path: {{type: Exact, value: /429}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.backend.port}}}]}}]
      policy: {{retries: {{attempts: 2, on: ["429"]}}}}
    - name: all
      listener: web
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.backend.port}}}]}}]
""")
        self.start_controller()
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="listener")

    def exchange(self, data, timeout=5):
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            return recv_until_close(s, timeout)

    def test_bytes_after_a_complete_response_never_reach_the_next_client(self):
        r1 = self.exchange(b"HEAD /headbody HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r1.startswith(b"HTTP/1.1 200"), r1)
        # Once the backend's send returned, the late bytes are in the pooled socket's receive queue
        # (loopback): a proxy that reuses the connection unchecked hands them to the next client.
        self.assertTrue(self.backend.poison_sent.wait(5))
        r2 = self.exchange(b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertNotIn(b"X-Poisoned", r2)
        self.assertTrue(r2.startswith(b"HTTP/1.1 200") and r2.endswith(b"/next"), r2)

    def test_a_clients_next_request_survives_the_backend_closing_its_kept_connection(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /thenclose HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/thenclose", (head, body))
            self.assertTrue(self.backend.closed_after_answer.wait(5))
            # A GET goes out on the kept connection unchecked: the close it meets is retried once.
            s.sendall(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/again", (head, body))
            # A POST is never resent, so the kept connection is checked first.
            self.backend.closed_after_answer.clear()
            s.sendall(b"GET /thenclose HTTP/1.1\r\nHost: a\r\n\r\n")
            read_response(s)
            self.assertTrue(self.backend.closed_after_answer.wait(5))
            s.sendall(b"POST /posted HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/posted", (head, body))
        self.assertEqual(self.backend.count("GET", "/again"), 1)
        self.assertEqual(self.backend.count("POST", "/posted"), 1)

    def test_a_408_the_backend_sent_before_closing_an_idle_connection_is_not_the_answer(self):
        """RFC 9110 §15.5.9: a server may send 408 on an idle keep-alive connection before closing
        it. The kept connection is peeked before reuse, so the stale 408 drops it; one that races
        the request out is resent once on a fresh connection (a GET; a POST is never resent)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            for method in ("GET", "POST"):
                self.backend.sent_408.clear()
                s.sendall(b"GET /then408 HTTP/1.1\r\nHost: a\r\n\r\n")
                head, body = read_response(s)
                self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/then408", (head, body))
                self.assertTrue(self.backend.sent_408.wait(5))
                length = b"Content-Length: 0\r\n" if method == "POST" else b""
                s.sendall(b"%s /after-%s HTTP/1.1\r\nHost: a\r\n%s\r\n" % (method.encode(), method.encode(), length))
                head, body = read_response(s)
                self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/after-" + method.encode(),
                                (method, head, body))
                self.assertEqual(self.backend.count(method, "/after-" + method), 1)

    def test_a_body_sent_after_a_head_answer_never_reaches_the_same_clients_next_request(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"HEAD /headbody HTTP/1.1\r\nHost: a\r\n\r\n")
            head, _ = read_response(s, head_only=True)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            self.assertTrue(self.backend.poison_sent.wait(5))
            s.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
        self.assertNotIn(b"X-Poisoned", head)
        self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/next", (head, body))

    def test_a_body_sent_late_to_a_head_is_nobodys_answer(self):
        # The next request went out at once, before the late body: it got that body as its answer,
        # and its own answer stayed in the connection for the next client (helper-90). A HEAD's
        # backend connection is no longer reused.
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"HEAD /headbody HTTP/1.1\r\nHost: a\r\n\r\n")
                head, _ = read_response(s, head_only=True)
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                s.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
                head, body = read_response(s)
                self.assertNotIn(b"X-Poisoned", head)
                self.assertEqual(body, b"/next", head)
            r = self.exchange(b"GET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            self.assertTrue(r.endswith(b"/other"), r)

    def test_bytes_a_backend_sends_late_on_the_kept_connection_are_not_the_next_answer(self):
        # The kept connection was reused unchecked within 2 s: the stray response answered the
        # next request and shifted every later answer by one (helper-90). It is peeked now.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /thenextra HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertEqual(body, b"/thenextra", head)
            self.assertTrue(self.backend.extra_sent.wait(5))
            for path in (b"/k1", b"/k2"):
                s.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path)
                head, body = read_response(s)
                self.assertNotIn(b"X-Poisoned", head)
                self.assertEqual(body, path, head)

    def test_dot_segments_are_resolved_before_routing(self):
        # "/head/../429" is "/429" to any backend that normalises: it must be routed (and
        # forwarded) as "/429", or a route's policy could be bypassed from a sibling path.
        # Repeated slashes are merged too: nginx merges them by default, so "//429" must not
        # escape the "/429" route.
        for target in (b"/head/../429", b"/head/%2e%2E/429", b"/./429", b"//429", b"/head/..//429"):
            before = self.backend.count("GET", "/429")
            r = self.exchange(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            self.assertTrue(r.startswith(b"HTTP/1.1 429"), (target, r))
            self.assertEqual(self.backend.count("GET", "/429") - before, 3, target)  # route retry429
        r = self.exchange(b"GET /x/../head?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.partition(b"\r\n\r\n")[2], b"/head?q=1", r)  # the backend echoes its target
        r = self.exchange(b"GET //head//x/?q=//1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.partition(b"\r\n\r\n")[2], b"/head/x/?q=//1", r)  # the query is left alone

    def test_path_parameters_do_not_escape_a_route(self):
        # Tomcat/Spring drop ";" parameters before mapping ("/429;x" is "/429"): routing ignores
        # them as well, so these take the /429 route (and its retries) instead of the catch-all;
        # the backend still receives the parameters.
        def routed_to_429():
            return metric_value(self.dataplane_metrics(), "doorman_l7_requests_total",
                                {"route": "default/raw/retry429"}) or 0
        for target in (b"/429;x", b"/429;jsessionid=A1"):
            before = routed_to_429()
            r = self.exchange(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            self.assertTrue(r.startswith(b"HTTP/1.1 "), (target, r))
            self.assertEqual(routed_to_429() - before, 1, target)
        # A dot-segment with parameters means one path to a servlet container ("/head/..;/429" is
        # "/429") and another to nginx or Go (a segment named "..;" under "/head"): refused.
        for target in (b"/head/..;/429", b"/429/..;/head", b"/x/%2e%2e;p/429"):
            before = self.backend.count("GET", target.decode())
            r = self.exchange(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            self.assertTrue(r.startswith(b"HTTP/1.1 400"), (target, r))
            self.assertEqual(self.backend.count("GET", target.decode()), before)
        r = self.exchange(b"GET /head;jsessionid=A1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.endswith(b"\r\n\r\n/head;jsessionid=A1"), r)  # the backend echoes the path it got

    def test_http10_requests_go_upstream_as_valid_http11(self):
        # No Host: the upstream HTTP/1.1 request gets the address the client connected to.
        r = self.exchange(b"GET /head HTTP/1.0\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r)  # the proxy's version (RFC 9110 §6.2)
        self.assertIn(b"\r\nHost: 127.0.0.1:%d\r\n" % self.port, r)
        # "close" wins over "keep-alive" (RFC 9112 §9.3): the connection ends after the answer
        # (exchange reads until the close; a kept connection would time it out).
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /head HTTP/1.0\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            self.assertNotIn(b"Connection: keep-alive", head)
            s.settimeout(5)
            self.assertEqual(s.recv(1), b"", "the connection is closed after the answer")
        # An absolute URI without a host is refused (RFC 9110 §4.2.1), not forwarded verbatim.
        before = self.backend.count("GET", "/x")
        r = self.exchange(b"GET http:///x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 400"), r)
        self.assertEqual(self.backend.count("GET", "/x"), before)

    def test_response_heads_outside_the_grammar_are_refused_or_repaired(self):
        # A 204 loses Transfer-Encoding too (RFC 9112 §6.1) and its stray body never shows up.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /204te HTTP/1.1\r\nHost: a\r\n\r\n")
            head, _ = read_response(s, head_only=True)
            self.assertTrue(head.startswith(b"HTTP/1.1 204"), head)
            self.assertNotIn(b"transfer-encoding", head.lower())
            s.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/next", (head, body))
        # Status codes outside 100..599 (RFC 9110 §15) and chunked applied before another coding.
        for path, why in ((b"/status600", b"status 600"), (b"/status999", b"status 999"),
                          (b"/techunkedgzip", b"chunked is not the last coding"),
                          (b"/tesplitchunkedgzip", b"bad Transfer-Encoding"),
                          (b"/teparam", b"invalid Transfer-Encoding")):
            r = self.exchange(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            self.assertTrue(r.startswith(b"HTTP/1.1 502"), (path, r))
            self.assertIn(why, r)
            self.assertEqual(r.count(b"HTTP/1.1"), 1, r)

    def test_transfer_encoding_in_several_fields_goes_out_as_one_list(self):
        # "gzip, identity" and "chunked" in two fields are the list "gzip, identity, chunked"
        # (RFC 9110 §5.3): the client gets one field ending in chunked, reads the body and the
        # next answer after it. (Rewriting the first field alone once dropped chunked: the client
        # read a chunked body as delimited by a close that never came.)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /tesplit HTTP/1.1\r\nHost: a\r\n\r\n")
            buf = b""
            while not buf.endswith(b"\r\n0\r\n\r\n"):  # the head and a chunked body (not pipelined)
                chunk = s.recv(65536)
                self.assertTrue(chunk, buf)
                buf += chunk
            head, _, body = buf.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            self.assertEqual(head.lower().count(b"transfer-encoding:"), 1, head)
            self.assertIn(b"\r\ntransfer-encoding: gzip, chunked\r\n", head.lower() + b"\r\n")
            self.assertEqual(body, b"5\r\nhello\r\n0\r\n\r\n")
            s.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/next", (head, body))

    def test_a_backend_failing_before_the_first_body_byte_gets_the_client_a_502(self):
        for path in (b"/headonly", b"/badchunk"):
            r = self.exchange(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertTrue(r.startswith(b"HTTP/1.1 502"), (path, r))
            self.assertIn(b"invalid or no response from backend", r)
        text = self.dataplane_metrics()
        self.assertIn('code="502"', text)
        self.assertNotIn('route="all",backend="127.0.0.1:%d",code="200"' % self.backend.port, text)

    def test_responses_carry_a_date(self):
        # Forwarded without one: added (RFC 9110 §6.6.1); the backend's own is kept; the proxy's
        # own answers (404 here is not possible: route "all" catches everything) carry one.
        r = self.exchange(b"GET /plain HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        head = r.partition(b"\r\n\r\n")[0]
        dates = [l for l in head.split(b"\r\n") if l.lower().startswith(b"date:")]
        self.assertEqual(len(dates), 1, head)
        self.assertRegex(dates[0].decode(), r"^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} "
                                             r"\d\d:\d\d:\d\d GMT$")
        r = self.exchange(b"GET /nodate HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        head = r.partition(b"\r\n\r\n")[0]
        self.assertEqual(head.lower().count(b"date:"), 1, head)
        self.assertIn(b"Date: Sun, 06 Nov 1994 08:49:37 GMT", head)
        r = self.exchange(b"GET /once HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")  # the proxy's 502
        self.assertTrue(r.startswith(b"HTTP/1.1 502"), r)
        self.assertIn(b"\r\nDate: ", r.partition(b"\r\n\r\n")[0])

    def test_a_chunked_request_goes_upstream_spelled_chunked(self):
        r = self.exchange(b"POST /head HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n"
                          b"3\r\nabc\r\n0\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r)
        upstream_head = r.partition(b"\r\n\r\n")[2]
        self.assertIn(b"\r\nTransfer-Encoding: chunked", upstream_head)
        self.assertNotIn(b"Chunked", upstream_head)

    def test_interim_answers_and_204_framing(self):
        r = self.exchange(b"GET /hints HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 103 Early Hints\r\n"), r)
        interim, _, rest = r.partition(b"\r\n\r\n")
        self.assertIn(b"Link: </s.css>; rel=preload", interim)
        self.assertNotIn(b"transfer-encoding", interim.lower())  # a 1xx has no body (RFC 9110 §15.2)
        self.assertNotIn(b"content-length", interim.lower())
        self.assertTrue(rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"ok"), r)
        # At most 100 interim heads: a backend sending more is answered 502 (each one forwarded
        # would cost the client a read, without end).
        r = self.exchange(b"GET /hints100 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.count(b"HTTP/1.1 102 Processing\r\n"), 100, r[:200])
        self.assertTrue(r.endswith(b"\r\n\r\nok") and b"HTTP/1.1 200 OK" in r, r[-200:])
        r = self.exchange(b"GET /hints101 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertIn(b"HTTP/1.1 502 ", r)
        self.assertIn(b"interim (1xx) responses", r)
        self.assertNotIn(b"HTTP/1.1 200", r)
        # A status line without the space before an empty reason is accepted, as nginx does.
        r = self.exchange(b"GET /nosp HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 200") and r.endswith(b"\r\n\r\nok"), r)
        # An HTTP/1.0 client never gets a 1xx (RFC 9110 §15.2).
        r = self.exchange(b"GET /hints HTTP/1.0\r\nHost: a\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 200") and r.endswith(b"ok"), r)
        r = self.exchange(b"GET /204cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 204"), r)
        self.assertNotIn(b"content-length", r.lower())

    def test_a_response_head_with_bare_lf_line_ends_is_accepted(self):
        # helper-112: such a head got the client a 502 ("bad reason"); nginx and HAProxy accept it.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /lf HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
            self.assertIn(b"\r\nX-Lf: 1", head)
            self.assertEqual(body, b"a\nb\n")  # the body is not touched
            # The same connection goes on: the head arriving a line at a time, a 1xx first.
            s.sendall(b"GET /lfsplit HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            self.assertIn(b"\r\nX-Lf: 2", head)
            self.assertEqual(body, b"ok")
        r = self.exchange(b"GET /lfcr HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502"), r)

    def test_only_websocket_upgrades_are_tunnelled(self):
        # h2c smuggling: a tunnel to a backend that speaks h2c would carry requests the proxy
        # never routed. The Upgrade offer is dropped and the request stays HTTP/1.1.
        h2c = (b"Host: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n")
        r = self.exchange(b"GET /h2c HTTP/1.1\r\n" + h2c)
        self.assertTrue(r.startswith(b"HTTP/1.1 200") and r.endswith(b"h1"), r)
        r = self.exchange(b"GET /head HTTP/1.1\r\n" + h2c)
        got = r.partition(b"\r\n\r\n")[2].lower()
        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r)
        for word in (b"upgrade", b"h2c", b"http2-settings"):
            self.assertNotIn(word, got)
        # WebSocket offered beside another protocol: only websocket goes upstream.
        r = self.exchange(b"GET /head HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", timeout=2)
        self.assertIn(b"upgrade: websocket", r.partition(b"\r\n\r\n")[2].lower())
        self.assertNotIn(b"h2c", r.partition(b"\r\n\r\n")[2].lower())

    def test_a_post_whose_connection_closes_is_not_sent_twice(self):
        self.assertIn(b"/warm", self.exchange(b"GET /warm HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
        r = self.exchange(b"POST /once HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502"), r)
        self.assertEqual(self.backend.count("POST", "/once"), 1)

    def test_a_listed_4xx_status_is_retried(self):
        r = self.exchange(b"GET /429 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 429"), r)
        self.assertEqual(self.backend.count("GET", "/429"), 3)  # the try and two retries

    def test_ambiguous_or_coded_transfer_encoding_in_responses(self):
        r = self.exchange(b"GET /tecl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502"), r)
        self.assertIn(b"Transfer-Encoding and Content-Length", r)
        r = self.exchange(b"GET /tegzip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        head, _, body = r.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: gzip, chunked", head)  # the coding is kept, chunked added
        self.assertEqual(body, b"8\r\nGZIPDATA\r\n0\r\n\r\n")
        # An HTTP/1.0 client cannot be told about the coding (RFC 9112 §6.1): 502, not gzip bytes.
        r = self.exchange(b"GET /tegzip HTTP/1.0\r\nHost: a\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502"), r)
        self.assertIn(b"an HTTP/1.0 client cannot receive", r)
        self.assertNotIn(b"GZIPDATA", r)

    def test_response_framing_goes_out_in_one_spelling(self):
        # "Content-Length: 2, 2" (equal values; RFC 9110 §8.6 lets the parser take it as 2) goes
        # out as one plain value, and the next response on the connection is framed right.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /cl22 HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertIn(b"Content-Length: 2", head.split(b"\r\n"))
            self.assertNotIn(b"2, 2", head)
            self.assertEqual(body, b"ok")
            s.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = read_response(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 200") and body == b"/next", (head, body))
        # "identity" is no transfer coding: re-chunked as plain "chunked", not "identity, chunked".
        r = self.exchange(b"GET /teidentity HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        head, _, body = r.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head.split(b"\r\n"))
        self.assertNotIn(b"identity", head.lower())
        self.assertEqual(body, b"5\r\nIDENT\r\n0\r\n\r\n")

    def test_a_101_to_another_protocol_than_the_one_asked_is_refused(self):
        # The client asks for websocket; the backend switches to h2c (RFC 9110 §7.8: only to a
        # protocol the client listed): nothing is tunnelled, the client gets 502.
        r = self.exchange(b"GET /h2c HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 502"), r)
        self.assertIn(b"switched protocols to \"h2c\"", r)

    def open_tunnel(self, path):
        """A WebSocket upgrade of `path` through the proxy: (socket, the bytes read, 101 head included)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" % path)
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            self.assertTrue(d, head)
            head += d
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        return s, head

    def test_tunnel_keeps_sending_to_a_client_that_half_closed(self):
        s, head = self.open_tunnel(b"/ws")
        with s:
            s.sendall(b"hello")
            s.shutdown(socket.SHUT_WR)
            rest = head.partition(b"\r\n\r\n")[2] + recv_until_close(s)
        self.assertEqual(rest, b"late:hello")

    def test_a_client_reset_inside_a_tunnel_resets_the_backend_leg(self):
        # A reset is not a half-close: a FIN left a backend that ignores half-closes (it waits for
        # WebSocket close frames) holding the tunnel until the idle timeout (60 s here;
        # helper-118). HAProxy passes the reset on; nginx closes both ways at once.
        s, _ = self.open_tunnel(b"/wssilent")
        s.sendall(b"frame")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        self.assertTrue(self.backend.silent_ws_ended.wait(10), "the backend leg outlived the client's reset")
        self.assertEqual(self.backend.silent_ws_end, ["reset"])

    def upload_and_read_answer(self, path, size=64 << 20):
        """POSTs `size` bytes from a sender thread; returns (head, body, seconds to the answer)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (path.encode(), size))
        stop = threading.Event()

        def upload():
            chunk = b"x" * 65536
            try:
                for _ in range(size // len(chunk)):
                    if stop.is_set():
                        return
                    s.sendall(chunk)
            except OSError:
                pass  # the proxy closed after its answer

        sender = threading.Thread(target=upload, daemon=True)
        t0 = time.monotonic()
        sender.start()
        self.addCleanup(sender.join, 10)
        self.addCleanup(stop.set)
        head, body = read_response(s)
        return head, body, time.monotonic() - t0

    def test_an_early_answer_reaches_a_client_that_is_still_uploading(self):
        # The backend answers 413 at once and then neither reads nor closes: once the socket
        # buffers fill, the upload stalls, and the answer must still reach the client promptly
        # (2 s after the stall, not at the 60 s request timeout), with the connection closed
        # after it. The same with a 100 first and bare LF line ends (helper-113).
        for path in ("/early413", "/early413lf"):
            head, body, took = self.upload_and_read_answer(path)
            self.assertTrue(head.startswith(b"HTTP/1.1 413"), (path, head))
            self.assertEqual(body, b"too large")
            self.assertIn(b"connection: close", head.lower())
            self.assertLess(took, 10, path)
        # Unrelated traffic on another connection is not disturbed.
        r = self.exchange(b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 200") and r.endswith(b"/after"), r)

    def test_an_unsolicited_100_during_an_upload_is_not_taken_for_an_early_answer(self):
        # Taken for the answer, it would stop the upload and the backend would wait forever.
        size = 16 << 20
        head, body, _ = self.upload_and_read_answer("/continue100", size)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)  # the 100 is not forwarded
        self.assertEqual(body, str(size).encode())

    def test_a_backend_answering_while_it_reads_gets_the_whole_upload(self):
        size = 32 << 20
        head, body, _ = self.upload_and_read_answer("/answer-while-reading", size)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertEqual(int(body), size)

    def test_no_100_continue_for_an_http10_client(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"POST /post3 HTTP/1.0\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
            s.settimeout(0.5)
            try:
                early = s.recv(4096)  # an HTTP/1.0 client must not get an interim answer
            except socket.timeout:
                early = b""
            self.assertEqual(early, b"")
            s.sendall(b"abc")
            r = recv_until_close(s)
        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r)



class RetryLimits(DoormanTestCase):
    """Retries against real backend.py processes: attempts, the budget, and the request timeout
    that spans every try."""

    def setUp(self):
        super().setUp()
        self.failing = self.start_backend("failing", ["--status", "503", "--count"])
        self.slow = self.start_backend("slow", ["--count"])
        self.port = free_port()

        def route(name, prefix, backend, policy):
            return f"""\
    - name: {name}
      listener: web
      match: {{path: {{type: Prefix, value: {prefix}}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {backend}}}]}}]
      filters: {{rewrite: {{pathPrefix: /}}}}
      policy: {policy}
"""
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: retries, namespace: default}}
spec:
  listeners: [{{name: web, port: {self.port}, protocol: HTTP}}]
  routes:
""" + route("five", "/five", self.failing, '{retries: {attempts: 5, "on": ["503"]}}')
            + route("onlyon", "/onlyon", self.failing, '{retries: {"on": ["503"]}}')
            + route("cap", "/cap", self.slow, '{retries: {attempts: 5, "on": [timeout], perTryTimeout: 1s}, timeouts: {request: 1500ms}}')
            + route("ptr", "/ptr", self.slow, '{retries: {attempts: 1, "on": ["503"], perTryTimeout: 5s}, timeouts: {request: 1s}}')
            + route("wide", "/wide", self.slow, '{retries: {attempts: 1, "on": [timeout], perTryTimeout: 1s}, timeouts: {request: 4s}}'))
        self.start_controller()
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="listener")

    def requests_to(self, backend):
        return json.loads(http_get("http://127.0.0.1:%d/__stats" % backend)[2])["requests"]

    def get(self, path):
        with socket.create_connection(("127.0.0.1", self.port), timeout=15) as s:
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            return recv_until_close(s, 15)

    def test_a_lone_request_makes_every_attempt_it_is_given(self):
        # attempts: 5 is 1 + 5 tries, whatever the budget: a request counts once in it, not once
        # per retry (it could make only 1 + 3 when each retry took a unit of the minimum of 3).
        r = self.get("/five/x")
        self.assertTrue(r.startswith(b"HTTP/1.1 503"), r)
        self.assertEqual(self.requests_to(self.failing), 6)
        # Conditions without attempts: one retry.
        r = self.get("/onlyon/x")
        self.assertTrue(r.startswith(b"HTTP/1.1 503"), r)
        self.assertEqual(self.requests_to(self.failing), 6 + 2)

    def test_the_request_timeout_spans_every_try(self):
        # perTryTimeout 1s within a 1.5 s request timeout: the first try times out and is
        # retried, the second has 0.5 s left, and then the request ends (504), 2 tries in all.
        r = self.get("/cap/slow/5000")
        self.assertTrue(r.startswith(b"HTTP/1.1 504"), r)
        self.assertIn(b"request timeout", r)
        # The backend counts a request when its handler runs, which on a loaded machine can be
        # after the 504: wait for the second, then check there was no third.
        wait_until(lambda: self.requests_to(self.slow) >= 2, timeout=5, what="the second try at the backend")
        self.assertEqual(self.requests_to(self.slow), 2)
        # A per-try timeout longer than the request timeout does not lengthen it: the 3 s answer
        # comes after the 1 s request timeout.
        r = self.get("/ptr/slow/3000")
        self.assertTrue(r.startswith(b"HTTP/1.1 504"), r)
        self.assertIn(b"request timeout", r)

    def test_a_request_no_timeout_could_retry_waits_for_the_request_timeout(self):
        # A POST on a route that retries only idempotent requests is never retried, so the
        # per-try timeout (1 s) does not cut it: the 1.5 s answer comes within the 4 s request
        # timeout. The same answer to a GET is cut at 1 s and retried once, and the retry (the
        # last try) is cut at 1 s too, as Envoy cuts every try: 504 after 2 tries.
        with socket.create_connection(("127.0.0.1", self.port), timeout=15) as s:
            s.sendall(b"POST /wide/slow/1500 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                      b"Connection: close\r\n\r\na=1")
            r = recv_until_close(s, 15)
        self.assertTrue(r.startswith(b"HTTP/1.1 200"), r)
        self.assertEqual(self.requests_to(self.slow), 1)
        r = self.get("/wide/slow/1500")
        self.assertTrue(r.startswith(b"HTTP/1.1 504"), r)
        self.assertIn(b"per-try timeout (retries: 1)", r)
        self.assertEqual(self.requests_to(self.slow), 1 + 2)


if __name__ == "__main__":
    unittest.main()
