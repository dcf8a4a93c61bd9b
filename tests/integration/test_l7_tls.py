#!/usr/bin/env python3
"""L7 TLS termination with real clients (curl, openssl s_client, Python ssl): certificates from
kubernetes.io/tls Secrets chosen by SNI (exact, wildcard, default = first), minimum version,
ALPN, hot rotation (new handshakes get the new certificate, open connections keep theirs) and
the HTTP→HTTPS redirect.
"""
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DoormanTestCase, curl, free_port, http_get, metric_value, one_ingress_yaml, port_open,  # noqa: E402
                     read_to_eof, wait_until)


def make_cert(dirpath, name, cn, sans):
    crt, key = os.path.join(dirpath, name + ".crt"), os.path.join(dirpath, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + ",".join("DNS:" + s for s in sans)],
                   check=True, capture_output=True, timeout=30)
    return crt, key


def secret(name, crt, key, namespace="default"):
    b64 = lambda p: base64.b64encode(open(p, "rb").read()).decode()  # noqa: E731
    return f"""\
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {namespace}}}
type: kubernetes.io/tls
data: {{tls.crt: {b64(crt)}, tls.key: {b64(key)}}}
"""


def der(path):
    """The DER bytes of a PEM certificate file."""
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def start_ingress_ports(tc, http, https, flags=()):
    """Starts the controller with the Ingress ports `http`/`https` (and `flags`) and a dataplane;
    returns once the snapshot converged and the HTTPS port is open."""
    tc.start_controller(["--ingress-http-port", str(http), "--ingress-https-port", str(https)] + list(flags))
    tc.start_dataplane()
    tc.wait_converged()
    wait_until(lambda: port_open(https), what="Ingress HTTPS listener")


def assert_served_by_sni(tc, https, cases):
    """For each (host, certificate file, backend): a GET with that SNI and Host, verified against
    that certificate only, is served with it by that backend."""
    for host, crt, want in cases:
        sock, status, body, cert = https_request(https, host, crt)
        sock.close()
        tc.assertEqual((status, body["backend"]), (200, want), host)
        tc.assertEqual(cert, der(crt), host + ": served with the wrong certificate")


def not_after(path):
    """A PEM certificate file's notAfter, in Unix seconds."""
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-enddate"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return ssl.cert_time_to_seconds(out.strip().partition("=")[2])


def unverified_context():
    """A TLS client context that accepts any certificate (to look at the one served)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def https_request(port, sni, cafile, sock=None, path="/"):
    """One GET over a (new or given) TLS socket; returns (sock, status, body dict, peer cert DER)."""
    if sock is None:
        ctx = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock = ctx.wrap_socket(raw, server_hostname=sni)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, sni)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += sock.recv(65536)
    status = int(head.split()[1])
    return sock, status, json.loads(body), sock.getpeercert(binary_form=True)


class L7Tls(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.backend = self.start_backend("b")
        d = self.tmp
        self.a = make_cert(d, "a", "a.test", ["a.test", "*.a.test"])
        self.b = make_cert(d, "b", "b.test", ["b.test"])
        self.https = free_port()
        self.http = free_port()
        self.write_manifest("secrets.yaml", secret("a-cert", *self.a) + "---\n" + secret("b-cert", *self.b))
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: tls, namespace: default}}
spec:
  listeners:
    - name: secure
      port: {self.https}
      protocol: HTTPS
      tls: {{certificates: [{{secretName: a-cert}}, {{secretName: b-cert}}], minVersion: "1.2"}}
    - {{name: plain, port: {self.http}, protocol: HTTP}}
  routes:
    - name: app
      listener: secure
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.backend}}}]}}]
    - name: to-https
      listener: plain
      filters: {{redirect: {{scheme: https, port: {self.https}, statusCode: 301}}}}
""")
        self.start_controller()
        self.start_dataplane()
        self.version = self.wait_converged()
        wait_until(lambda: port_open(self.https) and port_open(self.http), what="listeners")

    def curl_https(self, host, cafile, extra=()):
        return curl(["-i", "--cacert", cafile, "--resolve", "%s:%d:127.0.0.1" % (host, self.https)] + list(extra) +
                    ["https://%s:%d/x" % (host, self.https)])

    def s_client(self, *args, request=""):
        return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.https] + list(args),
                              input=request, capture_output=True, text=True, timeout=20)

    def test_sni_picks_the_certificate_and_requests_are_proxied(self):
        for host, cert in (("a.test", self.a[0]), ("x.a.test", self.a[0]), ("b.test", self.b[0])):
            r = self.curl_https(host, cert)  # verification against the expected cert only
            self.assertEqual(r.returncode, 0, host + ": " + r.stderr)
            self.assertIn("HTTP/1.1 200", r.stdout)
            body = json.loads(r.stdout.split("\n\n", 1)[1])
            self.assertEqual(body["headers"]["x-forwarded-proto"], "https")
            self.assertEqual(body["headers"]["x-forwarded-port"], str(self.https))
        # No SNI, or an unknown name: the first certificate is the default.
        self.assertIn("CN = a.test", self.s_client("-noservername").stdout)
        self.assertIn("CN = a.test", self.s_client("-servername", "other.test").stdout)
        self.assertIn("CN = b.test", self.s_client("-servername", "b.test").stdout)

    def test_a_session_is_resumed_only_under_its_own_certificate(self):
        # RFC 6066 §3: a session made for one server name is not resumed under another; here a
        # session or ticket of certificate a.test offered with SNI b.test gets a full handshake
        # (audit6 F7: it was resumed, in TLS 1.2 and 1.3).
        # A whole exchange, so that s_client also reads TLS 1.3's post-handshake ticket.
        request = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        for version in ("-tls1_2", "-tls1_3"):
            with self.subTest(version):
                sess = os.path.join(self.tmp, "session" + version)
                first = self.s_client(version, "-servername", "a.test", "-sess_out", sess, "-ign_eof", request=request)
                self.assertIn("CN = a.test", first.stdout)
                again = self.s_client(version, "-servername", "a.test", "-sess_in", sess)
                self.assertIn("Reused,", again.stdout)  # resumption works at all
                other = self.s_client(version, "-servername", "b.test", "-sess_in", sess)
                self.assertIn("New,", other.stdout)
                self.assertNotIn("Reused,", other.stdout)
                self.assertIn("CN = b.test", other.stdout)

    def test_a_session_resumes_across_a_config_change_but_not_a_renewed_certificate(self):
        # Every snapshot rebuilds the TLS contexts; ticket keys are process-wide, so a config change
        # (here a new route; in a cluster any EndpointSlice change) does not cut resumption. A
        # renewed certificate under the same Secret name is another certificate: a full handshake.
        request = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        lb = open(os.path.join(self.manifests, "lb.yaml")).read()
        for version in ("-tls1_2", "-tls1_3"):
            with self.subTest(version):
                sess = os.path.join(self.tmp, "session-across" + version)
                first = self.s_client(version, "-servername", "a.test", "-sess_out", sess, "-ign_eof", request=request)
                self.assertIn("CN = a.test", first.stdout)
                lb += "    - {name: extra%s, listener: plain, match: {path: {type: Exact, value: /e}}, " \
                      "backends: [{endpoints: [{address: 127.0.0.1, port: %d}]}]}\n" % (version[-1], self.backend)
                self.write_manifest("lb.yaml", lb)
                self.version = self.wait_version_change(self.version)
                again = self.s_client(version, "-servername", "a.test", "-sess_in", sess)
                self.assertIn("Reused,", again.stdout)
        a2 = make_cert(self.tmp, "a2", "a.test", ["a.test", "*.a.test"])
        self.write_manifest("secrets.yaml", secret("a-cert", *a2) + "---\n" + secret("b-cert", *self.b))
        self.version = self.wait_version_change(self.version)
        renewed = self.s_client("-tls1_3", "-servername", "a.test", "-sess_in", sess)
        self.assertIn("New,", renewed.stdout)
        self.assertNotIn("Reused,", renewed.stdout)

    def test_min_version_and_alpn(self):
        old = self.s_client("-tls1_1", "-servername", "a.test")
        self.assertNotIn("CN = a.test", old.stdout)
        self.assertNotEqual(old.returncode, 0)
        ok = self.s_client("-tls1_2", "-servername", "a.test", "-alpn", "h2,http/1.1")
        self.assertIn("Protocol  : TLSv1.2", ok.stdout)
        self.assertIn("ALPN protocol: http/1.1", ok.stdout)
        r = self.curl_https("a.test", self.a[0], ["-v"])
        self.assertIn("ALPN: server accepted http/1.1", r.stderr)
        # Only h2 offered (an h2-only gRPC client): RFC 7301's fatal no_application_protocol
        # alert, as nginx sends, not a handshake that ends in an HTTP/1.1 400 to its preface.
        h2 = self.s_client("-servername", "a.test", "-alpn", "h2")
        self.assertNotEqual(h2.returncode, 0, h2.stdout)
        self.assertIn("no application protocol", h2.stderr)
        # No ALPN at all: served as HTTP/1.1.
        none = self.s_client("-servername", "a.test", "-ign_eof", request="GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        self.assertIn("No ALPN negotiated", none.stdout)
        self.assertIn("HTTP/1.1 200", none.stdout)

    def test_a_closed_connection_ends_with_close_notify(self):
        # RFC 8446 §6.1 (nginx and HAProxy send it): without close_notify a client cannot tell a
        # close-delimited body cut by a forged FIN from a whole one, and a strict client reports
        # an unexpected EOF (helper-121). OpenSSL also dropped the TLS 1.2 session of a
        # connection freed without it, so session IDs never resumed.
        ctx = ssl.create_default_context(cafile=self.a[0])
        with socket.create_connection(("127.0.0.1", self.https), timeout=5) as raw:
            s = ctx.wrap_socket(raw, server_hostname="a.test", suppress_ragged_eofs=False)
            s.sendall(b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n")
            got = b""
            while True:
                chunk = s.recv(65536)  # SSLEOFError on a FIN without close_notify
                if not chunk:
                    break
                got += chunk
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
        request = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        sess = os.path.join(self.tmp, "session-id")
        first = self.s_client("-tls1_2", "-no_ticket", "-servername", "a.test", "-sess_out", sess, "-ign_eof",
                              request=request)
        self.assertIn("HTTP/1.1 200", first.stdout)
        again = self.s_client("-tls1_2", "-no_ticket", "-servername", "a.test", "-sess_in", sess)
        self.assertIn("Reused,", again.stdout)
        # ALPN http/1.0 alone (curl -0 offers it): selected, as nginx does, not refused.
        old = self.s_client("-servername", "a.test", "-alpn", "http/1.0", "-ign_eof",
                            request="GET /x HTTP/1.0\r\nHost: a.test\r\n\r\n")
        self.assertIn("ALPN protocol: http/1.0", old.stdout)
        self.assertIn("HTTP/1.1 200", old.stdout)

    def test_an_https_client_still_uploading_reads_the_413(self):
        # The proxy answers 413 at once (Content-Length over --l7-max-body-bytes) and closes
        # while the client is still sending its body: the close lingers, reading what it sends,
        # so the unread bytes do not turn it into a reset that throws the 413 away. After the
        # close_notify, a linger through SSL_read read nothing (helper-122).
        ctx = ssl.create_default_context(cafile=self.a[0])
        with socket.create_connection(("127.0.0.1", self.https), timeout=5) as raw:
            s = ctx.wrap_socket(raw, server_hostname="a.test")
            s.sendall(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2000000000\r\n\r\n")
            for _ in range(32):  # 512 KiB, still being sent when the proxy closes
                s.sendall(b"u" * 16384)
                time.sleep(0.005)  # paced, as a client streaming a body
            got = b""
            while b"\r\n\r\n" not in got:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        self.assertTrue(got.startswith(b"HTTP/1.1 413"), got[:80])

    def test_certificate_expiry_is_exported(self):
        """doorman_tls_certificate_expiry_timestamp_seconds: each served certificate's notAfter, by
        Secret; a certificate dropped from the listener loses its series."""
        text = self.dataplane_metrics()
        name = "doorman_tls_certificate_expiry_timestamp_seconds"
        self.assertEqual(metric_value(text, name, {"certificate": "default/a-cert"}), not_after(self.a[0]), text)
        self.assertEqual(metric_value(text, name, {"certificate": "default/b-cert"}), not_after(self.b[0]), text)
        with open(os.path.join(self.manifests, "lb.yaml")) as f:
            lb = f.read()
        self.assertIn(", {secretName: b-cert}", lb)
        self.write_manifest("lb.yaml", lb.replace(", {secretName: b-cert}", ""))
        self.wait_version_change(self.version)
        text = self.dataplane_metrics()
        self.assertIsNone(metric_value(text, name, {"certificate": "default/b-cert"}), text)
        self.assertEqual(metric_value(text, name, {"certificate": "default/a-cert"}), not_after(self.a[0]), text)

    def test_certificate_rotation_keeps_open_connections(self):
        sock, st, _, der_old = https_request(self.https, "a.test", self.a[0])
        self.assertEqual(st, 200)
        a2 = make_cert(self.tmp, "a2", "a.test", ["a.test", "*.a.test"])
        self.write_manifest("secrets.yaml", secret("a-cert", *a2) + "---\n" + secret("b-cert", *self.b))
        self.wait_version_change(self.version)
        _, st, _, der_new = https_request(self.https, "a.test", a2[0])  # verifies against the new cert
        self.assertEqual(st, 200)
        self.assertNotEqual(der_new, der_old)
        # The connection opened before the rotation still works, with its original certificate.
        _, st, _, der_again = https_request(self.https, "a.test", None, sock=sock)
        self.assertEqual(st, 200)
        self.assertEqual(der_again, der_old)
        sock.close()

    def test_http_redirects_to_https(self):
        r = curl(["-i", "-H", "Host: a.test", "http://127.0.0.1:%d/p?q=1" % self.http])
        self.assertIn("HTTP/1.1 301", r.stdout)
        self.assertIn("Location: https://a.test:%d/p?q=1" % self.https, r.stdout)
        # Following it with curl lands on the HTTPS listener.
        r = curl(["-sL", "--cacert", self.a[0], "--resolve", "a.test:%d:127.0.0.1" % self.https,
                  "--resolve", "a.test:%d:127.0.0.1" % self.http, "http://a.test:%d/p" % self.http])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["path"], "/p")


class DualCertificate(DoormanTestCase):
    """An RSA and an ECDSA certificate for the same name: each client gets the one its signature
    algorithms take (nginx's two ssl_certificate lines), not the first listed for everyone."""

    def test_the_client_gets_the_key_type_it_asks_for(self):
        d = self.tmp
        ec = make_cert(d, "ec", "dual.test", ["dual.test"])
        rsa = (os.path.join(d, "rsa.crt"), os.path.join(d, "rsa.key"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", rsa[1], "-out", rsa[0],
                        "-days", "2", "-subj", "/CN=dual.test", "-addext", "subjectAltName=DNS:dual.test"],
                       check=True, capture_output=True, timeout=60)
        other = make_cert(d, "other", "other.test", ["other.test"])
        backend = self.start_backend("b")
        https = free_port()
        # other.test first: dual.test is reached through the SNI switch to its (shared) context.
        self.write_manifest("secrets.yaml", secret("other-cert", *other) + "---\n" + secret("rsa-cert", *rsa) +
                            "---\n" + secret("ec-cert", *ec))
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: dual, namespace: default}}
spec:
  listeners:
    - {{name: secure, port: {https}, protocol: HTTPS, tls: {{certificates: [{{secretName: other-cert}}, {{secretName: rsa-cert}}, {{secretName: ec-cert}}]}}}}
  routes: [{{name: app, listener: secure, backends: [{{endpoints: [{{address: 127.0.0.1, port: {backend}}}]}}]}}]
""")
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(https), what="HTTPS listener")
        for version in ("-tls1_2", "-tls1_3"):
            for sigalgs, crt in (("ECDSA+SHA256", ec[0]), ("RSA-PSS+SHA256:RSA+SHA256", rsa[0]), (None, None)):
                args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % https, "-servername", "dual.test",
                        version, "-showcerts"] + (["-sigalgs", sigalgs] if sigalgs else [])
                r = subprocess.run(args, input="", capture_output=True, text=True, timeout=20)
                self.assertIn("-----BEGIN CERTIFICATE-----", r.stdout, (version, sigalgs, r.stderr))
                served = r.stdout[r.stdout.index("-----BEGIN CERTIFICATE-----"):]
                served = served[:served.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
                if crt:
                    self.assertEqual(ssl.PEM_cert_to_DER_cert(served), der(crt), (version, sigalgs))
                else:  # a client that takes both gets one of them
                    self.assertIn(ssl.PEM_cert_to_DER_cert(served), (der(ec[0]), der(rsa[0])))


class HostOwnershipOnASharedPort(DoormanTestCase):
    """A host belongs to the namespace of the oldest object routing it (docs/controller.md "Sharing a
    port"): on a port namespaces share, another namespace's host-less route does not take its
    unmatched paths, and another namespace's certificate naming it exactly does not outrank the
    owner's wildcard certificate."""

    def test_another_namespace_takes_neither_the_paths_nor_the_handshakes_of_a_host(self):
        d = self.tmp
        shop_b, other_b = self.start_backend("shop"), self.start_backend("other")
        wild = make_cert(d, "wild", "*.example.test", ["*.example.test"])
        exact = make_cert(d, "exact", "shop.example.test", ["shop.example.test", "other.example.test"])
        https = free_port()
        self.write_manifest("secrets.yaml", secret("wild", *wild, namespace="shop") + "---\n" +
                            secret("exact", *exact, namespace="other"))

        def lb(ns, created, cert, routes):
            return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: lb, namespace: {ns}, creationTimestamp: "{created}"}}
spec:
  listeners: [{{name: secure, port: {https}, protocol: HTTPS, tls: {{certificates: [{{secretName: {cert}}}]}}}}]
  routes:
{routes}"""
        self.write_manifest("shop.yaml", lb("shop", "2026-01-01T00:00:00Z", "wild", f"""\
    - name: cart
      listener: secure
      match: {{hosts: [shop.example.test], path: {{type: Prefix, value: /cart}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {shop_b}}}]}}]
"""))
        self.write_manifest("other.yaml", lb("other", "2026-02-01T00:00:00Z", "exact", f"""\
    - name: everything
      listener: secure
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {other_b}}}]}}]
"""))
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(https), what="HTTPS listener")

        def get(host, path, cafile):
            r = curl(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert", cafile, "--resolve",
                      "%s:%d:127.0.0.1" % (host, https), "https://%s:%d%s" % (host, https, path)])
            self.assertEqual(r.returncode, 0, "%s%s: %s" % (host, path, r.stderr))
            body, _, code = r.stdout.rpartition("\n")
            return int(code), (json.loads(body)["backend"] if code == "200" else None)

        # Verified against shop's wildcard certificate only: other's exact one is not served.
        self.assertEqual(get("shop.example.test", "/cart/1", wild[0]), (200, "shop"))
        self.assertEqual(get("shop.example.test", "/login", wild[0]), (404, None),
                         "other's host-less route took shop's unmatched path")
        # other's own name, and a name nobody routes, still go to other's route.
        self.assertEqual(get("other.example.test", "/login", exact[0]), (200, "other"))
        self.assertEqual(get("nobody.example.test", "/login", wild[0]), (200, "other"))
        # /debug/config says why: whose each host is, and which routes leave others' hosts out.
        dump = json.loads(http_get("http://127.0.0.1:%d/debug/config" % self.dp_metrics_port)[2])
        self.assertIn({"host": "shop.example.test", "namespace": "shop", "wildcard_one_label": False}, dump["host_owners"])
        routes = {r["name"]: r for r in dump["routes"]}
        self.assertEqual((routes["other/lb/everything"]["namespace"], routes["other/lb/everything"]["checks_host_owner"]),
                         ("other", True))
        self.assertFalse(routes["shop/lb/cart"]["checks_host_owner"])


class L7TlsClientAbort(DoormanTestCase):
    """--l7-abort-on-client-close on HTTPS: a client that goes away while the backend thinks, with
    or without a close_notify before its FIN, is a 499 at once (the TLS record before the FIN is not
    taken for a next request)."""

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend("b", ["--count"])
        self.a = make_cert(self.tmp, "a", "a.test", ["a.test"])
        self.https = free_port()
        self.log_path = os.path.join(self.tmp, "access.log")
        self.write_manifest("secrets.yaml", secret("a-cert", *self.a))
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: tls, namespace: default}}
spec:
  listeners: [{{name: secure, port: {self.https}, protocol: HTTPS, tls: {{certificates: [{{secretName: a-cert}}]}}}}]
  routes: [{{name: app, listener: secure, backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.backend}}}]}}]}}]
""")
        self.start_controller()
        self.start_dataplane(["--l7-abort-on-client-close", "--access-log", self.log_path])
        self.wait_converged()
        wait_until(lambda: port_open(self.https), what="HTTPS listener")

    def backend_requests(self):
        return json.loads(http_get("http://127.0.0.1:%d/__stats" % self.backend)[2])["requests"]

    def statuses(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(l)["status"] for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def test_a_tls_client_that_goes_away_is_a_499(self):
        ctx = ssl.create_default_context(cafile=self.a[0])
        for n, close_notify in enumerate((False, True), start=1):
            # TLS over memory BIOs, so that a close_notify can be sent without waiting for the
            # peer's (ssl.SSLSocket.unwrap waits for it).
            raw = socket.create_connection(("127.0.0.1", self.https), timeout=5)
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(inc, out, server_hostname="a.test")

            def step(op):
                while True:
                    try:
                        return op()
                    except ssl.SSLWantReadError:
                        raw.sendall(out.read())
                        data = raw.recv(65536)
                        self.assertTrue(data, "closed during the handshake")
                        inc.write(data)
            step(tls.do_handshake)
            tls.write(b"GET /slow/8000 HTTP/1.1\r\nHost: a.test\r\n\r\n")
            raw.sendall(out.read())
            wait_until(lambda: self.backend_requests() == n, what="request %d at the backend" % n)
            if close_notify:
                try:
                    tls.unwrap()
                except ssl.SSLWantReadError:
                    pass  # our close_notify is written; the peer's is not awaited
                # Corked, the record and the FIN leave in one segment, as a closing client's
                # usually arrive (one that reaches the proxy alone is documented as not seen).
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                raw.sendall(out.read())
                raw.shutdown(socket.SHUT_WR)
            raw.close()  # the FIN
            wait_until(lambda: len(self.statuses()) == n, timeout=6, what="the access log line %d" % n)
        self.assertEqual(self.statuses(), [499, 499])


class EncryptedKey(DoormanTestCase):
    """A Secret whose tls.key is passphrase-protected is refused; reading it never asks for the
    passphrase (OpenSSL's default would prompt on the terminal and block the controller there)."""

    def test_an_encrypted_key_is_refused_without_a_prompt(self):
        crt, key = make_cert(self.tmp, "e", "e.test", ["e.test"])
        enc = os.path.join(self.tmp, "e.enc.key")
        subprocess.run(["openssl", "pkey", "-in", key, "-aes256", "-passout", "pass:secret-pass", "-out", enc],
                       check=True, capture_output=True, timeout=30)
        backend = self.start_backend("b")
        https, plain = free_port(), free_port()
        self.write_manifest("lb.yaml", secret("enc", crt, enc) + f"""---
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: enc, namespace: default}}
spec:
  listeners: [{{name: s, port: {https}, protocol: HTTPS, tls: {{certificates: [{{secretName: enc}}]}}}}]
  routes: [{{name: r, listener: s, backends: [{{endpoints: [{{address: 127.0.0.1, port: {backend}}}]}}]}}]
---
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: plain, namespace: default}}
spec:
  listeners: [{{name: web, port: {plain}, protocol: HTTP}}]
  routes: [{{name: r, listener: web, backends: [{{endpoints: [{{address: 127.0.0.1, port: {backend}}}]}}]}}]
""")
        # stdin a pipe nobody writes to: a passphrase prompt would wait on it for ever.
        self.start_controller(stdin=subprocess.PIPE)
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(plain), what="the other object's listener")
        objs = json.loads(http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)[2])["objects"]
        st = [o for o in objs if o["name"] == "enc"][0]
        self.assertFalse(st["accepted"], st)
        self.assertIn("tls.key is not an unencrypted PEM private key", st["message"])
        self.assertFalse(port_open(https))
        self.assertNotIn("pass phrase", self.controller.log())


class IngressHsts(DoormanTestCase):
    """doorman.dev/hsts on an Ingress with TLS: Strict-Transport-Security on HTTPS responses, not
    on the HTTP redirect (RFC 6797 §7.2: not over plain HTTP)."""

    def test_hsts_on_https_responses_only(self):
        backend = self.start_backend("b")
        crt, key = make_cert(self.tmp, "h", "h.test", ["h.test"])
        http, https = free_port(), free_port()
        self.write_manifest("secret.yaml", secret("h-cert", crt, key))
        self.write_manifest("ing.yaml", one_ingress_yaml(backend, "h.test", tls_secret="h-cert",
                                                         annotations='doorman.dev/hsts: "max-age=31536000; includeSubDomains"'))
        # Behind a balancer that terminates TLS and says so (X-Forwarded-Proto), from 127.0.0.0/8.
        start_ingress_ports(self, http, https, ["--ingress-trusted-proxies", "127.0.0.0/8"])
        r = curl(["-D", "-", "-o", "/dev/null", "--cacert", crt, "--resolve", "h.test:%d:127.0.0.1" % https,
                  "https://h.test:%d/" % https])
        self.assertIn("strict-transport-security: max-age=31536000; includeSubDomains", r.stdout.lower().replace(
            "includesubdomains", "includeSubDomains"), r.stdout + r.stderr)
        self.assertIn(" 200", r.stdout.splitlines()[0])
        r = curl(["-D", "-", "-o", "/dev/null", "-H", "Host: h.test", "http://127.0.0.1:%d/" % http])
        self.assertIn(" 308", r.stdout.splitlines()[0], r.stdout)
        self.assertNotIn("strict-transport-security", r.stdout.lower())
        # The trusted balancer terminated TLS: no redirect (it would loop), the backend answers.
        r = curl(["-D", "-", "-H", "Host: h.test", "-H", "X-Forwarded-Proto: https", "http://127.0.0.1:%d/" % http])
        self.assertIn(" 200", r.stdout.splitlines()[0], r.stdout)
        self.assertIn('"x-forwarded-proto": "https"', r.stdout)

    def test_hsts_on_the_proxys_own_answers_over_https(self):
        # A 429 (rate limit) and a 504 (a backend that never answers) on an HTTPS route carry it
        # too (nginx: add_header ... always); a 404 of no route has no route, so no HSTS.
        crt, key = make_cert(self.tmp, "h", "h.test", ["h.test"])
        http, https = free_port(), free_port()
        self.write_manifest("secret.yaml", secret("h-cert", crt, key))
        self.write_manifest("ing.yaml", one_ingress_yaml(
            self.silent_port(), "h.test", tls_secret="h-cert",
            annotations='doorman.dev/hsts: "max-age=600", doorman.dev/rate-limit-rps: "1", '
                        'doorman.dev/request-timeout: "200ms"'))
        start_ingress_ports(self, http, https)

        def head(url, host="h.test"):
            r = curl(["-sS", "-D", "-", "-o", "/dev/null", "--cacert", crt, "--resolve", "%s:%d:127.0.0.1" % (host, https),
                      "-k", url])
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.lower()
        first = head("https://h.test:%d/" % https)
        self.assertIn(" 504", first.splitlines()[0], first)
        self.assertIn("strict-transport-security: max-age=600", first)
        limited = head("https://h.test:%d/" % https)
        self.assertIn(" 429", limited.splitlines()[0], limited)
        self.assertIn("strict-transport-security: max-age=600", limited)
        other = head("https://other.test:%d/" % https, host="other.test")
        self.assertIn(" 404", other.splitlines()[0], other)
        self.assertNotIn("strict-transport-security", other)
        # Over plain HTTP, never (RFC 6797 §7.2): the 308 has none.
        plain = curl(["-sS", "-D", "-", "-o", "/dev/null", "-H", "Host: h.test", "http://127.0.0.1:%d/" % http]).stdout.lower()
        self.assertIn(" 308", plain.splitlines()[0], plain)
        self.assertNotIn("strict-transport-security", plain)


class IngressTlsPerHost(DoormanTestCase):
    """TLS applies per host across Ingresses, as in ingress-nginx: an Ingress without tls[] that
    routes a path of a host another Ingress has a certificate for is served over HTTPS with that
    certificate, and its HTTP route redirects (unless its ssl-redirect says "false")."""

    def test_a_split_host_is_served_over_https_by_every_ingress(self):
        main, api = self.start_backend("main"), self.start_backend("api")
        crt, key = make_cert(self.tmp, "h", "h.test", ["h.test"])
        http, https = free_port(), free_port()
        self.write_manifest("secret.yaml", secret("h-cert", crt, key))
        self.write_manifest("main.yaml", one_ingress_yaml(main, "h.test", tls_secret="h-cert"))
        self.write_manifest("api.yaml", one_ingress_yaml(api, "h.test", name="api-paths", service="api", path="/api",
                                                         ingress_class=False))
        start_ingress_ports(self, http, https)
        base = ["--cacert", crt, "--resolve", "h.test:%d:127.0.0.1" % https]
        for path, want in (("/api/x", "api"), ("/other", "main")):
            r = curl(base + ["https://h.test:%d%s" % (https, path)])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["backend"], want, path)
        r = curl(["-D", "-", "-o", "/dev/null", "-H", "Host: h.test", "http://127.0.0.1:%d/api/x" % http])
        self.assertIn(" 308", r.stdout.splitlines()[0], r.stdout)
        self.assertIn("location: https://h.test:%d/api/x" % https, r.stdout.lower())

    def _app_and_catch_all(self, flags=()):
        # h.test's /app with TLS, and a host-less catch-all (an Ingress with only a defaultBackend,
        # no TLS); returns (http, https, crt).
        app, catch = self.start_backend("app"), self.start_backend("catch")
        crt, key = make_cert(self.tmp, "h", "h.test", ["h.test"])
        http, https = free_port(), free_port()
        self.write_manifest("secret.yaml", secret("h-cert", crt, key))
        self.write_manifest("app.yaml", one_ingress_yaml(app, "h.test", tls_secret="h-cert", path="/app"))
        self.write_manifest("catch.yaml", one_ingress_yaml(catch, "h.test", name="catch", service="catch",
                                                           ingress_class=False).replace(
            "  rules: [{host: h.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: catch, "
            "port: {number: 80}}}}]}}]",
            "  defaultBackend: {service: {name: catch, port: {number: 80}}}"))
        start_ingress_ports(self, http, https, flags)
        return http, https, crt

    def test_unmatched_paths_of_a_tls_host_redirect_instead_of_reaching_the_catch_all(self):
        # ingress-nginx redirects a TLS server's every path; the catch-all must not serve h.test's
        # other paths over plain HTTP.
        http, https, crt = self._app_and_catch_all()

        def head(host, path):
            r = curl(["-D", "-", "-o", "/dev/null", "-H", "Host: " + host, "http://127.0.0.1:%d%s" % (http, path)])
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.lower()
        for path in ("/app/x", "/other?q=1", "/"):
            h = head("h.test", path)
            self.assertIn(" 308", h.splitlines()[0], h)
            self.assertIn("location: https://h.test:%d%s" % (https, path), h)
        r = curl(["-H", "Host: other.test", "http://127.0.0.1:%d/other" % http])
        self.assertEqual(json.loads(r.stdout)["backend"], "catch", "a host without TLS still reaches the catch-all")
        base = ["--cacert", crt, "--resolve", "h.test:%d:127.0.0.1" % https]
        r = curl(base + ["https://h.test:%d/app/x" % https])
        self.assertEqual(json.loads(r.stdout)["backend"], "app")
        r = curl(base + ["-o", "/dev/null", "-w", "%{http_code}", "https://h.test:%d/other" % https])
        self.assertEqual(r.stdout, "404", "over HTTPS an unmatched path is not redirected again")

    def test_behind_a_trusted_balancer_unmatched_paths_still_redirect_other_clients(self):
        # --ingress-trusted-proxies names 127.0.0.2 only: a client from 127.0.0.1 saying
        # X-Forwarded-Proto: https is not believed and is redirected, never served by the catch-all
        # over plain HTTP; the balancer's own request (it terminated TLS) is not redirected: the
        # fallback is skipped as if it were not there, and the catch-all serves it, as before.
        http, https, crt = self._app_and_catch_all(["--ingress-trusted-proxies", "127.0.0.2/32"])

        def get(path, src, xfp=None):
            args = ["-D", "-", "-H", "Host: h.test", "--interface", src]
            if xfp:
                args += ["-H", "X-Forwarded-Proto: " + xfp]
            r = curl(args + ["http://127.0.0.1:%d%s" % (http, path)])
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout
        for path in ("/zzz", "/app/x"):
            for xfp in (None, "https"):
                out = get(path, "127.0.0.1", xfp)
                self.assertIn(" 308", out.splitlines()[0], (path, xfp, out))
                self.assertIn("location: https://h.test:%d%s" % (https, path), out.lower())
        out = get("/zzz", "127.0.0.2")
        self.assertIn(" 308", out.splitlines()[0], out)
        out = get("/zzz", "127.0.0.2", "https")
        self.assertIn(" 200", out.splitlines()[0], out)
        self.assertIn('"backend": "catch"', out)
        out = get("/app/x", "127.0.0.2", "https")
        self.assertIn(" 200", out.splitlines()[0], out)
        self.assertIn('"backend": "app"', out)


class IngressDefaultCertificate(DoormanTestCase):
    """--ingress-default-certificate (ingress-nginx's --default-ssl-certificate): every Ingress is
    served on the HTTPS port with it (one without tls[] too, not redirected), a tls[] entry without
    secretName uses it (redirected), the catch-all is served over HTTPS too, and a ClientHello
    without SNI or with an unknown name gets it, not another Ingress's certificate."""

    def test_every_ingress_is_served_over_https_with_the_default_certificate(self):
        app, own, nos, catch = (self.start_backend(n) for n in ("app", "own", "nos", "catch"))
        wild_crt, wild_key = make_cert(self.tmp, "wild", "default.test", ["a.test", "b.test", "other.test"])
        own_crt, own_key = make_cert(self.tmp, "own", "c.test", ["c.test"])
        http, https = free_port(), free_port()
        self.write_manifest("secrets.yaml", secret("wild", wild_crt, wild_key) + "---\n" +
                            secret("own-cert", own_crt, own_key))
        # The Ingress with its own certificate sorts first by name: the listener's default must
        # still be the flag's.
        self.write_manifest("a-own.yaml", one_ingress_yaml(own, "c.test", name="a-own", service="own",
                                                           tls_secret="own-cert"))
        self.write_manifest("app.yaml", one_ingress_yaml(app, "a.test", ingress_class=False))
        self.write_manifest("nos.yaml", one_ingress_yaml(nos, "b.test", name="nos", service="nos",
                                                         ingress_class=False).replace(
            "  rules:", "  tls: [{hosts: [b.test]}]\n  rules:"))
        self.write_manifest("catch.yaml", one_ingress_yaml(catch, "x.test", name="catch", service="catch",
                                                           ingress_class=False).replace(
            "  rules: [{host: x.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: catch, "
            "port: {number: 80}}}}]}}]",
            "  defaultBackend: {service: {name: catch, port: {number: 80}}}"))
        start_ingress_ports(self, http, https, ["--ingress-default-certificate", "default/wild"])
        assert_served_by_sni(self, https, (("a.test", wild_crt, "app"), ("b.test", wild_crt, "nos"),
                                           ("c.test", own_crt, "own"), ("other.test", wild_crt, "catch")))
        # No SNI, and a name no certificate has: the default certificate.
        ctx = unverified_context()
        for sni in (None, "unknown.example"):
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", https), timeout=5), server_hostname=sni) as s:
                self.assertEqual(s.getpeercert(binary_form=True), der(wild_crt), "SNI %r" % sni)
        # Plain HTTP: a.test (no tls[]) is served, b.test (tls[] without secretName) and c.test redirect.
        r = curl(["-H", "Host: a.test", "http://127.0.0.1:%d/" % http])
        self.assertEqual(json.loads(r.stdout)["backend"], "app", r.stdout + r.stderr)
        for host in ("b.test", "c.test"):
            r = curl(["-D", "-", "-o", "/dev/null", "-H", "Host: " + host, "http://127.0.0.1:%d/x" % http])
            self.assertIn(" 308", r.stdout.splitlines()[0], host + ": " + r.stdout)


class IngressSelfSignedDefault(DoormanTestCase):
    """Without --ingress-default-certificate, a ClientHello without SNI or with a name no
    certificate covers gets a self-signed certificate the dataplane generated (ingress-nginx's fake
    certificate), not one Ingress's: a client that names no host learns no tenant's host names.
    Its requests are still routed by Host. A LoadBalancer's HTTPS listener keeps its first
    certificate as the default (L7Tls)."""

    def test_a_client_without_a_known_sni_gets_no_tenants_certificate(self):
        a_be, b_be = self.start_backend("a"), self.start_backend("b")
        a_crt, a_key = make_cert(self.tmp, "a", "a.test", ["a.test"])
        b_crt, b_key = make_cert(self.tmp, "b", "b.test", ["b.test"])
        http, https = free_port(), free_port()
        self.write_manifest("secrets.yaml", secret("a-cert", a_crt, a_key) + "---\n" + secret("b-cert", b_crt, b_key))
        self.write_manifest("a.yaml", one_ingress_yaml(a_be, "a.test", name="a", service="a", tls_secret="a-cert"))
        self.write_manifest("b.yaml", one_ingress_yaml(b_be, "b.test", name="b", service="b", tls_secret="b-cert",
                                                       ingress_class=False))
        start_ingress_ports(self, http, https)
        assert_served_by_sni(self, https, (("a.test", a_crt, "a"), ("b.test", b_crt, "b")))
        ctx = unverified_context()
        seen = set()
        for sni in (None, "unknown.example", "x.a.test"):
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", https), timeout=5), server_hostname=sni) as s:
                cert = s.getpeercert(binary_form=True)
                self.assertFalse(cert in (der(a_crt), der(b_crt)), "SNI %r got a tenant's certificate" % sni)
                seen.add(cert)
                s.sendall(b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
                reply = read_to_eof(s)
                self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:200])
                self.assertIn(b'"backend": "b"', reply)
        self.assertEqual(len(seen), 1, "one self-signed certificate per dataplane process")
        subject = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-issuer"],
                                 input=seen.pop(), capture_output=True, timeout=10).stdout.decode()
        self.assertIn("CN = Doorman Default Certificate", subject)
        self.assertEqual(subject.count("Doorman Default Certificate"), 2, "self-signed: " + subject)


if __name__ == "__main__":
    unittest.main()
