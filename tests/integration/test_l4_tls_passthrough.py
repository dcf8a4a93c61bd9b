#!/usr/bin/env python3
"""TLS passthrough by SNI end to end: a TLS listener routes each connection by the ClientHello's
server_name (exact, "*." wildcard, and a default route without sni) to real `openssl s_server`
backends holding different certificates; Doorman never decrypts (the client verifies the
backend's own certificate). Clients: the real `openssl s_client` and curl, plus Python's ssl with
the ClientHello fragmented over several TLS records. Garbage instead of a ClientHello is closed
and counted.
"""
import os
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DoormanTestCase, free_port, metric_value, port_open, wait_until  # noqa: E402


def make_cert(tmp, cn):
    key, crt = os.path.join(tmp, cn + ".key"), os.path.join(tmp, cn + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn,
                    "-keyout", key, "-out", crt], check=True, capture_output=True, timeout=60)
    return key, crt


class TlsPassthrough(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.certs = {}
        self.ports = {}
        for cn in ("db.example.test", "any.wild.test", "default.test"):
            key, crt = make_cert(self.tmp, cn)
            port = free_port()
            self.spawn("s_server-" + cn, ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                                          "-cert", crt, "-key", key, "-www", "-quiet"])
            wait_until(lambda: port_open(port), what="s_server " + cn)
            self.certs[cn], self.ports[cn] = crt, port
        self.port = free_port()
        self.write_manifest("tls.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: tls, namespace: default}}
spec:
  listeners:
    - {{name: tls, port: {self.port}, protocol: TLS}}
  routes:
    - name: db
      listener: tls
      match: {{sni: [db.example.test]}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.ports["db.example.test"]}}}]}}]
    - name: wild
      listener: tls
      match: {{sni: ["*.wild.test"]}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.ports["any.wild.test"]}}}]}}]
    - name: default
      listener: tls
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.ports["default.test"]}}}]}}]
""")
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="tls listener")
        self.wait_l4_probes_ended()

    def peer_cn(self, sni):
        argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port, "-brief"]
        if sni:
            argv += ["-servername", sni]
        else:
            argv += ["-noservername"]
        out = subprocess.run(argv, input="", capture_output=True, text=True, timeout=20)
        for line in (out.stdout + out.stderr).splitlines():
            if "Peer certificate:" in line:
                return line.split("CN = ", 1)[1].strip()
        raise AssertionError("no peer certificate: " + out.stdout + out.stderr)

    def test_openssl_s_client_routed_by_sni(self):
        self.assertEqual(self.peer_cn("db.example.test"), "db.example.test")
        self.assertEqual(self.peer_cn("DB.Example.Test"), "db.example.test")  # case-insensitive
        self.assertEqual(self.peer_cn("x.wild.test"), "any.wild.test")
        self.assertEqual(self.peer_cn("a.b.wild.test"), "any.wild.test")
        self.assertEqual(self.peer_cn("wild.test"), "default.test")  # wildcard needs a label
        self.assertEqual(self.peer_cn("other.test"), "default.test")
        self.assertEqual(self.peer_cn(None), "default.test")

    def test_curl_verifies_the_backends_own_certificate(self):
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", self.certs["db.example.test"],
                              "--resolve", "db.example.test:%d:127.0.0.1" % self.port,
                              "https://db.example.test:%d/" % self.port], capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("s_server", out.stdout)

    def test_client_hello_fragmented_over_records(self):
        ctx = ssl.create_default_context(cafile=self.certs["any.wild.test"])
        ctx.check_hostname = False
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname="frag.wild.test")
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            with self.assertRaises(ssl.SSLWantReadError):
                obj.do_handshake()
            hello = outgoing.read()
            self.assertEqual(hello[0], 22)
            hs = hello[5:]  # re-frame the handshake into 3 records
            parts = [hs[:40], hs[40:90], hs[90:]]
            s.sendall(b"".join(b"\x16\x03\x01" + len(p).to_bytes(2, "big") + p for p in parts))
            while True:
                data = s.recv(65536)
                self.assertTrue(data, "closed during the handshake")
                incoming.write(data)
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                finally:
                    out = outgoing.read()
                    if out:
                        s.sendall(out)
            der = obj.getpeercert(binary_form=True)
            with open(self.certs["any.wild.test"]) as f:
                self.assertEqual(der, ssl.PEM_cert_to_DER_cert(f.read()))
        finally:
            s.close()

    def test_garbage_instead_of_client_hello_is_closed_and_counted(self):
        def drops():
            return metric_value(self.dataplane_metrics(), "doorman_l4_drops_total",
                                {"reason": "tls_clienthello"}) or 0
        def rx():  # bytes received from clients: what was read while peeking counts too
            return metric_value(self.dataplane_metrics(), "doorman_l4_bytes_total",
                                {"listener": "tls-%d" % self.port, "direction": "rx"}) or 0
        # setUp waited for the readiness probe (a drop too) to end: count from here.
        before = drops()
        rx_before = rx()
        bads = (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00")
        for bad in bads:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(bad)
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
            s.close()
        wait_until(lambda: drops() == before + 2, what="tls_clienthello drops")
        wait_until(lambda: rx() - rx_before == sum(len(b) for b in bads), what="the bytes received counted")
        self.assertEqual(self.peer_cn("db.example.test"), "db.example.test")  # others unaffected

    def test_client_hello_that_never_completes_is_reset_after_5s(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        try:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # a record header promising 512 bytes, then silence
            t0 = time.monotonic()
            with self.assertRaises(ConnectionResetError):  # a reset, not an orderly FIN
                s.recv(100)
            self.assertGreaterEqual(time.monotonic() - t0, 4.0)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
