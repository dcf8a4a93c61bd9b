#!/usr/bin/env python3
"""PROXY protocol accepted on HTTP and HTTPS listeners (Listener.proxyProtocol.accept), as behind
an L4 balancer (AWS NLB, HAProxy, nginx stream): the carried source address becomes the client's
(X-Forwarded-For), for v1 and v2 headers, over plain HTTP and before a TLS handshake; a real
nginx stream proxy with `proxy_protocol on` in front; a missing or malformed header closes the
connection (counted) without disturbing others; listeners without accept are unchanged.
"""
import json
import os
import socket
import ssl
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DoormanTestCase, curl, free_port, metric_value, one_ingress_yaml, port_open,  # noqa: E402
                     read_response, start_nginx, wait_until)
from test_l7_tls import make_cert, secret  # noqa: E402

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src, sport, dst="127.0.0.1", dport=80):
    return (V2_SIG + b"\x21\x11\x00\x0c" + socket.inet_aton(src) + socket.inet_aton(dst) +
            sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))


class L7ProxyProtocol(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.backend = self.start_backend("b")
        self.crt, self.key = make_cert(self.tmp, "pp", "pp.test", ["pp.test"])
        self.http, self.https, self.plain = free_port(), free_port(), free_port()
        ep = "[{address: 127.0.0.1, port: %d}]" % self.backend
        self.write_manifest("secret.yaml", secret("pp-cert", self.crt, self.key))
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: pp, namespace: default}}
spec:
  listeners:
    - {{name: web, port: {self.http}, protocol: HTTP, proxyProtocol: {{accept: true}}}}
    - name: secure
      port: {self.https}
      protocol: HTTPS
      proxyProtocol: {{accept: true}}
      tls: {{certificates: [{{secretName: pp-cert}}]}}
    - {{name: plain, port: {self.plain}, protocol: HTTP}}
  routes:
    - {{name: web, listener: web, backends: [{{endpoints: {ep}}}]}}
    - {{name: secure, listener: secure, backends: [{{endpoints: {ep}}}]}}
    - {{name: plain, listener: plain, backends: [{{endpoints: {ep}}}]}}
""")
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()
        for p in (self.http, self.https, self.plain):
            wait_until(lambda: port_open(p), what="listener %d" % p)

    def exchange(self, port, preamble, tls=False, requests=1):
        """Sends `preamble`, then `requests` GETs on one connection; returns the backend's
        view (the JSON echo) of each."""
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(preamble)
            if tls:
                ctx = ssl.create_default_context(cafile=self.crt)
                s = ctx.wrap_socket(s, server_hostname="pp.test")
            seen = []
            for _ in range(requests):
                s.sendall(b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n")
                head, body = read_response(s)
                self.assertIn(b" 200 ", head.split(b"\r\n")[0], head)
                seen.append(json.loads(body))
            return seen
        finally:
            s.close()

    def drops(self):
        return metric_value(self.dataplane_metrics(), "doorman_l4_drops_total", {"reason": "proxy_protocol"}) or 0

    def test_v1_and_v2_source_becomes_the_client_address(self):
        seen = self.exchange(self.http, b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 80\r\n", requests=2)
        for s in seen:  # every request of the connection
            self.assertEqual(s["headers"]["x-forwarded-for"], "203.0.113.7")
        seen = self.exchange(self.http, v2_header("198.51.100.9", 5555))
        self.assertEqual(seen[0]["headers"]["x-forwarded-for"], "198.51.100.9")
        # The header and the request in one segment: the request bytes after it are not lost.
        seen = self.exchange(self.http, b"PROXY TCP6 2001:db8::5 ::1 4242 80\r\n")
        self.assertEqual(seen[0]["headers"]["x-forwarded-for"], "2001:db8::5")
        # v2 LOCAL (the front balancer's own health check): the TCP peer stays the client.
        seen = self.exchange(self.http, V2_SIG + b"\x20\x00\x00\x00")
        self.assertEqual(seen[0]["headers"]["x-forwarded-for"], "127.0.0.1")

    def test_header_before_the_tls_handshake(self):
        seen = self.exchange(self.https, v2_header("192.0.2.44", 6000, dport=443), tls=True, requests=2)
        for s in seen:
            self.assertEqual(s["headers"]["x-forwarded-for"], "192.0.2.44")
            self.assertEqual(s["headers"]["x-forwarded-proto"], "https")

    def test_real_nginx_stream_proxy_in_front(self):
        front = free_port()
        start_nginx(self, stream_servers="""
  server {
    listen 127.0.0.1:%d;
    proxy_pass 127.0.0.1:%d;
    proxy_protocol on;
  }""" % (front, self.http))
        wait_until(lambda: port_open(front), what="nginx stream")
        r = curl(["--interface", "127.0.0.9", "http://127.0.0.1:%d/" % front])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["headers"]["x-forwarded-for"], "127.0.0.9")

    def test_missing_or_malformed_header_closes_and_counts(self):
        before = self.drops()
        bad = [b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n",       # no header at all
               b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n",       # port out of range
               b"PROXY " + b"A" * 200,                            # over the v1 bound
               V2_SIG + b"\x21\x11\xff\xff"]                      # v2 length beyond the bound
        for data in bad:
            s = socket.create_connection(("127.0.0.1", self.http), timeout=5)
            try:
                s.sendall(data)
                try:
                    got = s.recv(4096)
                except ConnectionResetError:
                    got = b""
                self.assertEqual(got, b"", data)  # closed, nothing answered
            finally:
                s.close()
        # The readiness probes (connect, close) were drops too: at least the four above.
        wait_until(lambda: self.drops() >= before + 4, what="proxy_protocol drops counted")
        # Unrelated traffic is undisturbed; a listener without accept takes plain requests.
        self.assertEqual(self.exchange(self.plain, b"")[0]["headers"]["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(self.exchange(self.http, b"PROXY TCP4 10.1.2.3 127.0.0.1 1 80\r\n")[0]
                         ["headers"]["x-forwarded-for"], "10.1.2.3")


class IngressBehindABalancer(DoormanTestCase):
    """--ingress-proxy-protocol and --ingress-trusted-proxies: the Ingress listeners take the
    client from a PROXY header and keep the X-Forwarded-For of a trusted proxy (ingress-nginx's
    use-proxy-protocol, use-forwarded-headers and proxy-real-ip-cidr)."""

    def test_proxy_header_and_trusted_forwarded_for(self):
        backend = self.start_backend("b")
        port = free_port()
        self.write_manifest("ing.yaml", one_ingress_yaml(backend, "app.test"))
        self.start_controller(["--ingress-http-port", str(port), "--ingress-https-port", str(free_port()),
                               "--ingress-proxy-protocol", "--ingress-trusted-proxies", "10.0.0.0/8, 192.0.2.1/32"])
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(port), what="Ingress listener")

        def via(src, xff=None):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            try:
                s.sendall(b"PROXY TCP4 %s 127.0.0.1 4242 80\r\n" % src.encode())
                extra = b"X-Forwarded-For: %s\r\n" % xff.encode() if xff else b""
                s.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n" + extra + b"\r\n")
                head, body = read_response(s)
                self.assertIn(b" 200 ", head.split(b"\r\n")[0], head)
                return json.loads(body)["headers"]
            finally:
                s.close()
        # A trusted proxy (the balancer's source per the PROXY header) keeps its client's address.
        h = via("10.1.2.3", "203.0.113.7")
        self.assertEqual(h["x-forwarded-for"], "203.0.113.7, 10.1.2.3")
        self.assertEqual(h["x-real-ip"], "203.0.113.7")
        # An untrusted one cannot spoof it.
        h = via("198.51.100.9", "203.0.113.7")
        self.assertEqual(h["x-forwarded-for"], "198.51.100.9")
        # No PROXY header: closed without an answer (the listener expects one on every connection).
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        try:
            self.assertEqual(s.recv(100), b"")
        except ConnectionResetError:
            pass
        s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
