#!/usr/bin/env python3
"""mTLS on the routing-state stream: doorman-controller's gRPC server requires and verifies a
client certificate signed by --tls-ca; doorman-dataplane presents its certificate and verifies the
controller's chain and name. Real processes on 127.0.0.1, a throwaway PKI made with the openssl
CLI, the Python ssl module as a raw TLS peer. Files are swapped the way the kubelet updates a
Secret volume (a ..data symlink replaced atomically), and rotation needs no restart.
"""
import os
import shutil
import socket
import ssl
import sys
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DATAPLANE, DoormanTestCase, Pki, backend_of, free_port, http_get,  # noqa: E402
                     metric_value, port_open, tls_flags, wait_until)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
ROTATION_TIMEOUT = 30.0  # files are re-read every 5 s; the dataplane's reconnect backoff is at most 5 s


def manifest(http_port, backend):
    return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: web, namespace: default}}
spec:
  listeners:
    - {{name: web, port: {http_port}, protocol: HTTP}}
  routes:
    - name: all
      listener: web
      backends:
        - endpoints: [{{address: 127.0.0.1, port: {backend}}}]
"""


class SecretDir:
    """A directory laid out like a Kubernetes Secret volume: tls.crt, tls.key, ca.crt are symlinks
    into ..data, itself a symlink to a timestamped directory that update() replaces atomically."""

    NAMES = ("tls.crt", "tls.key", "ca.crt")

    def __init__(self, path, cert, key, ca):
        self.path = path
        os.makedirs(path)
        self.generation = 0
        self.update(cert, key, ca)
        for n in self.NAMES:
            os.symlink(os.path.join("..data", n), os.path.join(path, n))

    def update(self, cert, key, ca):
        self.generation += 1
        gen = os.path.join(self.path, "..gen%d" % self.generation)
        os.makedirs(gen)
        for src, n in zip((cert, key, ca), self.NAMES):
            shutil.copyfile(src, os.path.join(gen, n))
        tmp = os.path.join(self.path, "..data_tmp")
        os.symlink(os.path.basename(gen), tmp)
        os.replace(tmp, os.path.join(self.path, "..data"))

    def flags(self):
        return tls_flags(*(os.path.join(self.path, n) for n in self.NAMES))


def der(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def h2_probe(port, ca, cert=None, key=None, version=None, server_hostname="localhost"):
    """Opens TLS to the gRPC port as a raw peer and sends the HTTP/2 preface.

    Returns (controller certificate DER, first 9 bytes the server sent back): a SETTINGS frame
    header (type 4) when the server accepted us, else b"". Raises ssl.SSLError on refusal."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    if version:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old versions: the server must refuse
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: offered on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=server_hostname) as t:
            peer = t.getpeercert(binary_form=True)
            t.sendall(H2_PREFACE)
            data = b""
            while len(data) < 9:
                chunk = t.recv(9 - len(data))
                if not chunk:
                    break
                data += chunk
            return peer, data


def accepted(data):
    return len(data) == 9 and data[3] == 4


class Mtls(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.pki = Pki(os.path.join(self.tmp, "pki"))
        self.ca = self.pki.ca("doorman-ca")
        self.other_ca = self.pki.ca("other-ca")
        self.server = self.pki.issue("controller", self.ca, ["IP:127.0.0.1", "DNS:localhost"], "serverAuth")
        self.client = self.pki.issue("dataplane", self.ca, ["DNS:dataplane"], "clientAuth")
        self.stranger = self.pki.issue("stranger", self.other_ca, ["DNS:dataplane"], "clientAuth")
        self.a = self.start_backend("a")
        self.b = self.start_backend("b")
        self.http_port = free_port()
        self.write_manifest("web.yaml", manifest(self.http_port, self.a))

    # --- helpers ----------------------------------------------------------------------------
    def server_flags(self, cert=None):
        cert = cert or self.server
        return tls_flags(cert[0], cert[1], self.ca[0])

    def client_flags(self, cert=None, ca=None):
        cert = cert or self.client
        return tls_flags(cert[0], cert[1], (ca or self.ca)[0])

    def connected(self):
        return metric_value(self.controller_metrics(), "doorman_controller_dataplanes_connected")

    def get(self):
        st, _, body = http_get("http://127.0.0.1:%d/" % self.http_port)
        return st, backend_of(body) if st == 200 else body

    def spawn_refused_dataplane(self, name, extra, controller=None):
        """A dataplane that is expected not to get through: returns (proc, metrics port) once it
        serves /healthz. Debug logging shows every retry."""
        port = free_port()
        p = self.spawn(name, [DATAPLANE, "--controller", controller or "127.0.0.1:%d" % self.grpc_port,
                              "--bind-address", "127.0.0.1", "--node-name", name, "--log-level", "debug",
                              "--metrics-listen", "127.0.0.1:%d" % port] + list(extra))
        wait_until(lambda: http_get("http://127.0.0.1:%d/healthz" % port)[0] == 200, what=name + " /healthz")
        return p, port

    def assert_refused_and_retrying(self, proc, port, hint):
        """The dataplane warns once with a reason and a hint, keeps retrying, never becomes ready."""
        def warn_line():
            return next((l for l in proc.log().splitlines()
                         if "WARN subscriber: cannot reach controller" in l), None)
        line = wait_until(warn_line, what=proc.name + " to warn that it cannot reach the controller")
        self.assertIn("error=", line)
        self.assertIn(hint, line)
        wait_until(lambda: proc.log().count("cannot reach controller") >= 3, what=proc.name + " to keep retrying")
        self.assertTrue(proc.alive(), proc.log())
        self.assertEqual(http_get("http://127.0.0.1:%d/readyz" % port)[0], 503)
        self.assertFalse(metric_value(http_get("http://127.0.0.1:%d/metrics" % port)[2].decode(),
                                      "doorman_config_version"))

    def assert_no_key_material(self):
        secrets = self.pki.key_material()
        self.assertTrue(secrets)
        for p in self.procs:
            log = p.log()
            self.assertNotIn("PRIVATE KEY", log, p.name)
            for s in secrets:
                self.assertNotIn(s, log, "%s logged private key bytes" % p.name)

    # --- tests ------------------------------------------------------------------------------
    def test_mtls_dataplane_converges_and_routes(self):
        self.start_controller(self.server_flags())
        # /readyz can answer just before the "started" line is written.
        wait_until(lambda: "grpc_tls=mtls" in self.controller.log(), what="controller started with mTLS")
        self.start_dataplane(self.client_flags())
        self.wait_converged()
        wait_until(lambda: port_open(self.http_port), what="listener")
        self.assertEqual(self.get(), (200, "a"))
        self.assertEqual(self.connected(), 1)
        self.assertIn("connected to controller controller=127.0.0.1:%d tls=mtls" % self.grpc_port, self.dataplane.log())
        # The name in the certificate may also be reached as localhost (SAN DNS:localhost).
        _, port = self.spawn_refused_dataplane("dp-localhost", self.client_flags(),
                                               controller="localhost:%d" % self.grpc_port)
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % port)[0] == 200, what="dp-localhost ready")
        wait_until(lambda: self.connected() == 2, what="two dataplanes counted")
        self.assert_no_key_material()

    def test_unauthenticated_peers_are_refused_while_a_good_dataplane_keeps_working(self):
        self.start_controller(self.server_flags())
        self.start_dataplane(self.client_flags())
        version = self.wait_converged()
        wait_until(lambda: port_open(self.http_port), what="listener")

        # A raw TLS peer: without a client certificate, or with one from another CA, the server
        # ends the handshake; with a good one it answers the HTTP/2 preface with SETTINGS.
        _, data = h2_probe(self.grpc_port, self.ca[0], *self.client)
        self.assertTrue(accepted(data), data)
        for cert in (None, self.stranger):
            with self.subTest(client_cert=cert and os.path.basename(cert[0])):
                try:
                    _, data = h2_probe(self.grpc_port, self.ca[0], *(cert or (None, None)))
                    self.assertFalse(accepted(data), data)
                except (ssl.SSLError, ConnectionError):
                    pass  # refused during the handshake

        # Real dataplanes: a client certificate from another CA, and plaintext.
        stranger, stranger_port = self.spawn_refused_dataplane("dp-stranger", self.client_flags(self.stranger))
        plain, plain_port = self.spawn_refused_dataplane("dp-plaintext", [])
        self.assert_refused_and_retrying(stranger, stranger_port, 'hint="mTLS:')
        self.assert_refused_and_retrying(plain, plain_port, 'hint="plaintext: if the controller requires mTLS')
        # The controller says why it refused them (gRPC's handshake errors, in Doorman's log format).
        wait_until(lambda: "WARN grpc: Handshake failed" in self.controller.log(), what="controller handshake warnings")
        self.assertEqual(self.connected(), 1)

        # The good dataplane still gets updates and routes.
        self.write_manifest("web.yaml", manifest(self.http_port, self.b))
        self.wait_version_change(version)
        wait_until(lambda: self.get() == (200, "b"), what="re-routed to b")
        self.assertEqual(self.connected(), 1)
        self.assertTrue(stranger.alive() and plain.alive())
        self.assert_no_key_material()

    def test_dataplane_refuses_a_controller_it_cannot_verify(self):
        # A controller certificate from a CA the dataplane does not trust.
        self.start_controller(self.server_flags())
        dp, port = self.spawn_refused_dataplane("dp-wrong-ca", self.client_flags(ca=self.other_ca))
        self.assert_refused_and_retrying(dp, port, 'hint="mTLS:')
        self.assertIn("certificate verify failed", dp.log())
        self.assertEqual(self.connected(), 0)
        self.assert_no_key_material()

    def test_plaintext_controller_and_tls_dataplane_fail_clearly(self):
        self.start_controller()
        wait_until(lambda: "grpc_tls=off" in self.controller.log(), what="controller started in plaintext")
        dp, port = self.spawn_refused_dataplane("dp-tls", self.client_flags())
        self.assert_refused_and_retrying(dp, port, 'hint="mTLS: the controller must run with --tls-cert')
        line = next(l for l in dp.log().splitlines() if "WARN subscriber: cannot reach controller" in l)
        self.assertIn("handshake", line.lower())
        self.assertEqual(self.connected(), 0)
        self.assert_no_key_material()

    def test_server_name_override(self):
        # The controller's certificate names only controller.test: dialing 127.0.0.1 fails the
        # name check until --tls-server-name says which name to expect.
        named = self.pki.issue("controller-named", self.ca, ["DNS:controller.test"], "serverAuth")
        self.start_controller(self.server_flags(named))
        dp, port = self.spawn_refused_dataplane("dp-no-name", self.client_flags())
        self.assert_refused_and_retrying(dp, port, 'hint="mTLS:')
        self.start_dataplane(self.client_flags() + ["--tls-server-name", "controller.test"])
        self.wait_converged()
        self.assertEqual(self.connected(), 1)
        self.assert_no_key_material()

    def test_tls_1_2_is_the_minimum(self):
        self.start_controller(self.server_flags())
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            _, data = h2_probe(self.grpc_port, self.ca[0], *self.client, version=version)
            self.assertTrue(accepted(data), (version, data))
        with self.assertRaises(ssl.SSLError) as cm:
            h2_probe(self.grpc_port, self.ca[0], *self.client, version=ssl.TLSVersion.TLSv1_1)
        # Refused by the server, not by this client's own OpenSSL policy.
        self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(cm.exception))
        self.assertNotIn("NO_CIPHERS_AVAILABLE", str(cm.exception))

    def test_controller_certificate_rotation_without_restart(self):
        secret = SecretDir(os.path.join(self.tmp, "controller-tls"), self.server[0], self.server[1], self.ca[0])
        self.start_controller(secret.flags())
        self.start_dataplane(self.client_flags())
        self.wait_converged()
        peer, _ = h2_probe(self.grpc_port, self.ca[0], *self.client)
        self.assertEqual(peer, der(self.server[0]))

        renewed = self.pki.issue("controller-renewed", self.ca, ["IP:127.0.0.1", "DNS:localhost"], "serverAuth")
        secret.update(renewed[0], renewed[1], self.ca[0])
        pid = self.controller.p.pid
        wait_until(lambda: h2_probe(self.grpc_port, self.ca[0], *self.client)[0] == der(renewed[0]),
                   timeout=ROTATION_TIMEOUT, interval=0.5, what="new handshakes to get the renewed certificate")
        self.assertTrue(self.controller.alive())
        self.assertEqual(self.controller.p.pid, pid)
        # The established stream survived; a dataplane connecting now verifies the renewed chain.
        self.assertEqual(self.connected(), 1)
        _, port = self.spawn_refused_dataplane("dp-after-rotation", self.client_flags())
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % port)[0] == 200, what="dp-after-rotation ready")
        wait_until(lambda: self.connected() == 2, what="both dataplanes counted")
        self.assert_no_key_material()

    def test_dataplane_picks_up_a_renewed_client_certificate_without_restart(self):
        self.start_controller(self.server_flags())
        # Starts with a certificate the controller refuses (another CA), as after a botched renewal.
        secret = SecretDir(os.path.join(self.tmp, "dataplane-tls"), self.stranger[0], self.stranger[1], self.ca[0])
        dp, port = self.spawn_refused_dataplane("dp-rotating", secret.flags())
        self.assert_refused_and_retrying(dp, port, 'hint="mTLS:')
        pid = dp.p.pid
        started = time.monotonic()
        secret.update(self.client[0], self.client[1], self.ca[0])
        wait_until(lambda: http_get("http://127.0.0.1:%d/readyz" % port)[0] == 200,
                   timeout=ROTATION_TIMEOUT, interval=0.2, what="the dataplane to connect with the renewed certificate")
        self.assertLess(time.monotonic() - started, ROTATION_TIMEOUT)
        self.assertEqual(dp.p.pid, pid)
        self.assertTrue(dp.alive())
        self.dp_metrics_port = port
        self.wait_converged()
        self.assertEqual(self.connected(), 1)
        self.assert_no_key_material()


if __name__ == "__main__":
    unittest.main(verbosity=2)
