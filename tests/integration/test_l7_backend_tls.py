#!/usr/bin/env python3
"""TLS from the L7 proxy to HTTPS backends (Ingress `doorman.dev/backend-protocol: HTTPS`),
against the real nginx with a certificate from a throwaway CA (SAN DNS:backend.test and
IP:127.0.0.1), standalone (--manifests) with an IngressClass, Services, EndpointSlices, Secrets:

- no CA Secret: TLS (>= 1.2, seen by nginx) without verification, SNI = the request's Host;
- the right CA: the chain and the name are verified (backend-tls-server-name, else the Host);
- the wrong CA, or a name the certificate does not carry: 502 naming the TLS handshake failure,
  nothing reaches nginx, other routes unaffected; a failed handshake fails over to the next
  endpoint; one never answered is a 504 after the connect timeout;
- an IP server name: no SNI, the certificate's IP SAN is checked; a TLS 1.3-only backend works;
- keep-alive: upstream TLS connections are pooled (20 requests, nginx sees <= 2 connections),
  and never shared between routes that verify differently;
- a missing CA Secret: the Ingress is not accepted (reason, field, controller log) and routes
  nothing (no fallback to unverified TLS) until the Secret appears;
- no private key and no PEM in any log.
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DoormanTestCase, curl, free_port, http_get, metric_value, port_open,  # noqa: E402
                     read_response, start_nginx, wait_until)


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(d):
    """A right CA and a wrong CA (self-signed), a server certificate for backend.test/127.0.0.1
    signed by the right one, and a spare key that only ever sits in a Secret (leak canary)."""
    for ca in ("ca-right", "ca-wrong"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2", "-subj", "/CN=doorman test " + ca, cwd=d)
    def leaf(name, cn, extensions):  # name.crt/name.key, signed by ca-right
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(extensions)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca-right.crt", "-CAkey", "ca-right.key",
                "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext", cwd=d)
    leaf("server", "backend.test", "subjectAltName=DNS:backend.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    # The expected name only in the subject CN, no subjectAltName: refused (SAN only, RFC 9525).
    leaf("cnonly", "cnonly.test", "extendedKeyUsage=serverAuth\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "spare.key", "-out", "spare.crt", "-days", "2", "-subj", "/CN=spare", cwd=d)
    out = {}
    for n in ("ca-right.crt", "ca-wrong.crt", "server.crt", "server.key", "spare.key", "spare.crt"):
        with open(os.path.join(d, n)) as f:
            out[n] = f.read()
    return out


def block(pem, indent=4):
    return "".join(" " * indent + line + "\n" for line in pem.strip().split("\n"))


def tls_secret(name, ca, pki):
    """A kubernetes.io/tls Secret as cert-manager writes it: tls.crt, tls.key and ca.crt."""
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: default}\ntype: kubernetes.io/tls\n"
            "stringData:\n  tls.crt: |\n%s  tls.key: |\n%s  ca.crt: |\n%s"
            % (name, block(pki["spare.crt"]), block(pki["spare.key"]), block(ca)))


def endpoint_slice(svc, slice_name, port):
    return f"""\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {slice_name}, namespace: default, labels: {{kubernetes.io/service-name: {svc}}}}}
addressType: IPv4
ports: [{{name: https, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""


def service(name, port):
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: https, port: 443, targetPort: {port}}}]}}
---
""" + endpoint_slice(name, name + "-1", port)


def ingress(name, host, svc="secure", annotations=None):
    ann = ""
    if annotations:
        ann = "  annotations:\n" + "".join('    %s: "%s"\n' % kv for kv in annotations.items())
    return f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
{ann}spec:
  ingressClassName: doorman
  rules: [{{host: {host}, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 443}}}}}}}}]}}}}]
"""


HTTPS = {"doorman.dev/backend-protocol": "HTTPS"}


def https(secret=None, name=None):
    a = dict(HTTPS)
    if secret:
        a["doorman.dev/backend-tls-secret"] = secret
    if name:
        a["doorman.dev/backend-tls-server-name"] = name
    return a


class BackendTlsTest(DoormanTestCase):
    def setUp(self):
        super().setUp()
        pki_dir = os.path.join(self.tmp, "pki")
        os.makedirs(pki_dir)
        self.pki = make_pki(pki_dir)
        self.nginx_port = free_port()
        self.nginx13_port = free_port()
        self.nginx_bad_port = free_port()
        self.nginx_cn_port = free_port()
        self.nginx_log = os.path.join(self.tmp, "nginx-access.log")
        start_nginx(self, http_servers=f"""
  log_format betls '$connection $http_host $ssl_protocol sni=$ssl_server_name';
  server {{
    listen 127.0.0.1:{self.nginx_port} ssl;
    ssl_certificate {pki_dir}/server.crt;
    ssl_certificate_key {pki_dir}/server.key;
    access_log {self.nginx_log} betls;
    keepalive_requests 1000;
    location / {{
      add_header X-Tls "$ssl_protocol" always;
      return 200 "tls=$ssl_protocol sni=$ssl_server_name host=$http_host\\n";
    }}
  }}
  server {{
    listen 127.0.0.1:{self.nginx13_port} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate {pki_dir}/server.crt;
    ssl_certificate_key {pki_dir}/server.key;
    access_log {self.nginx_log} betls;
    location / {{
      add_header X-Tls "$ssl_protocol" always;
      return 200 "tls=$ssl_protocol sni=$ssl_server_name host=$http_host\\n";
    }}
  }}
  server {{
    listen 127.0.0.1:{self.nginx_bad_port} ssl;
    ssl_certificate {pki_dir}/spare.crt;
    ssl_certificate_key {pki_dir}/spare.key;
    access_log {self.nginx_log} betls;
    return 200 "impostor\\n";
  }}
  server {{
    listen 127.0.0.1:{self.nginx_cn_port} ssl;
    ssl_certificate {pki_dir}/cnonly.crt;
    ssl_certificate_key {pki_dir}/cnonly.key;
    access_log {self.nginx_log} betls;
    return 200 "cn only\\n";
  }}
""")
        wait_until(lambda: all(port_open(p) for p in (self.nginx_port, self.nginx13_port, self.nginx_bad_port,
                                                      self.nginx_cn_port)),
                   what="nginx")
        # Accepts TCP (the kernel's backlog) but never answers the ClientHello.
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(16)
        self.addCleanup(self.silent.close)
        self.plain = self.start_backend("plain")
        self.ing_port = free_port()
        docs = [
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: doorman}\n"
            "spec: {controller: doorman.dev/ingress-controller}\n",
            service("secure", self.nginx_port),
            service("plain", self.plain).replace("https", "http"),
            service("secure13", self.nginx13_port),
            service("mixed", self.nginx_bad_port),
            endpoint_slice("mixed", "mixed-2", self.nginx_port),
            service("silent", self.silent.getsockname()[1]),
            service("cnonly", self.nginx_cn_port),
            tls_secret("ca-right", self.pki["ca-right.crt"], self.pki),
            tls_secret("ca-wrong", self.pki["ca-wrong.crt"], self.pki),
            ingress("noca", "noca.test", annotations=https()),
            ingress("nocaname", "nocaname.test", annotations=https(name="backend.test")),
            ingress("verified", "verified.test", annotations=https("ca-right", "backend.test")),
            ingress("byhost", "backend.test", annotations=https("ca-right")),
            ingress("wronghost", "wronghost.test", annotations=https("ca-right")),
            ingress("wrongca", "wrongca.test", annotations=https("ca-wrong", "backend.test")),
            ingress("wrongname", "wrongname.test", annotations=https("ca-right", "other.test")),
            ingress("byip", "byip.test", annotations=https("ca-right", "127.0.0.1")),
            ingress("tls13", "tls13.test", svc="secure13", annotations=https("ca-right", "backend.test")),
            ingress("failover", "failover.test", svc="mixed", annotations=https("ca-right", "backend.test")),
            ingress("silent", "silent.test", svc="silent", annotations=https()),
            ingress("cnonly", "cnonly.test", svc="cnonly", annotations=https("ca-right", "cnonly.test")),
            ingress("missing", "missing.test", annotations=https("gone", "backend.test")),
            ingress("plain", "plain.test", svc="plain"),
        ]
        self.write_manifest("all.yaml", "---\n".join(docs))
        # Debug logs and the access log: every line the TLS paths can write is checked for leaks.
        self.start_controller(["--ingress-http-port", str(self.ing_port), "--log-level", "debug"])
        self.start_dataplane(["--workers", "1", "--log-level", "debug", "--access-log", "stdout"])
        self.version = self.wait_converged()
        wait_until(lambda: port_open(self.ing_port), what="Ingress listener")

    def req(self, host, *args):
        r = curl(["-i", "-H", "Host: " + host] + list(args) + ["http://127.0.0.1:%d/" % self.ing_port])
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
        headers = {}
        for line in head.split("\n")[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), v.strip())
        return int(head.split()[1]), headers, body

    def nginx_lines(self, host=None):
        try:
            with open(self.nginx_log) as f:
                lines = [l.split() for l in f if l.strip()]
        except FileNotFoundError:
            return []
        return [l for l in lines if host is None or l[1] == host]

    def object_status(self, name):
        for o in json.loads(http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)[2])["objects"]:
            if o["kind"] == "Ingress" and o["name"] == name:
                return o
        return None

    def assert_tls12_plus(self, proto):
        self.assertIn(proto, ("TLSv1.2", "TLSv1.3"))

    def test_without_a_ca_tls_is_spoken_but_nothing_is_verified(self):
        st, h, body = self.req("noca.test")
        self.assertEqual(st, 200, body)
        self.assert_tls12_plus(h.get("x-tls"))
        self.assertIn("sni=noca.test host=noca.test", body)  # SNI defaults to the Host

    def test_the_right_ca_and_name_verify(self):
        for host, sni in (("verified.test", "backend.test"), ("backend.test", "backend.test")):
            st, h, body = self.req(host)
            self.assertEqual(st, 200, body)
            self.assert_tls12_plus(h.get("x-tls"))
            self.assertIn("sni=%s host=%s" % (sni, host), body)

    def test_a_tls13_only_backend_verifies(self):
        st, h, body = self.req("tls13.test")
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("x-tls"), "TLSv1.3")
        self.assertIn("sni=backend.test", body)

    def test_an_ip_server_name_is_checked_against_the_ip_san_without_sni(self):
        st, h, body = self.req("byip.test")
        self.assertEqual(st, 200, body)
        self.assertIn("sni= host=byip.test", body)  # no SNI for an IP (RFC 6066)

    def test_a_wrong_ca_or_name_is_a_502_and_reaches_nothing(self):
        # cnonly.test: the right CA, the name only in the subject CN (no SAN): refused.
        for host in ("wrongca.test", "wrongname.test", "wronghost.test", "cnonly.test"):
            st, _, body = self.req(host)
            self.assertEqual(st, 502, host + ": " + body)
            self.assertIn("TLS handshake failed with a backend of route \"default/ingress:%s/" % host.split(".")[0], body)
            self.assertIn("certificate verify failed", body)
            self.assertEqual(self.nginx_lines(host), [], host)  # no request was ever sent
        # Other routes are unaffected, on the same listener and to the same backend.
        self.assertEqual(self.req("verified.test")[0], 200)
        self.assertEqual(self.req("noca.test")[0], 200)
        st, _, body = self.req("plain.test")
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["backend"], "plain")

    def test_a_failed_handshake_fails_over_to_the_next_endpoint(self):
        # "mixed" = the impostor (self-signed) and the real nginx: every request ends at the real one.
        for _ in range(6):
            st, _, body = self.req("failover.test")
            self.assertEqual(st, 200, body)
            self.assertIn("sni=backend.test", body)
        first = self.nginx_lines("failover.test")[0]
        self.assert_tls12_plus(first[2])
        self.assertEqual(first[3], "sni=backend.test")
        failures = metric_value(self.dataplane_metrics(), "doorman_l7_upstream_connect_failures_total",
                                {"route": "default/ingress:failover/r0-p0", "backend": "127.0.0.1:%d" % self.nginx_bad_port})
        self.assertGreaterEqual(failures or 0, 1)

    def test_a_backend_that_never_answers_the_handshake_times_out(self):
        start = time.monotonic()
        st, _, body = self.req("silent.test")
        elapsed = time.monotonic() - start
        self.assertEqual(st, 504, body)
        self.assertIn("TLS handshake failed with a backend of route \"default/ingress:silent/r0-p0\" (timeout)", body)
        self.assertLess(elapsed, 9.0)  # the connect timeout (5 s), not the request timeout (60 s)

    def test_upstream_tls_connections_are_pooled(self):
        for _ in range(20):
            self.assertEqual(self.req("verified.test")[0], 200)
        conns = {l[0] for l in self.nginx_lines("verified.test")}
        self.assertEqual(len(self.nginx_lines("verified.test")), 20)
        self.assertLessEqual(len(conns), 2, conns)

    def test_a_connection_is_not_shared_between_routes_that_verify_differently(self):
        # Same endpoint, same name (backend.test): "nocaname" does not verify, "wrongca" verifies
        # with a CA that did not sign nginx's certificate. A connection that "nocaname" left in the
        # pool must not carry a "wrongca" request past the check (nor a "verified" one).
        for _ in range(3):
            st, _, body = self.req("nocaname.test")
            self.assertEqual(st, 200, body)
            self.assertIn("sni=backend.test", body)
            st, _, body = self.req("wrongca.test")
            self.assertEqual(st, 502, body)
            self.assertIn("TLS handshake failed", body)
        self.assertEqual(self.nginx_lines("wrongca.test"), [])
        for _ in range(3):
            self.assertEqual(self.req("verified.test")[0], 200)
        unverified = {l[0] for l in self.nginx_lines("nocaname.test")}
        verified = {l[0] for l in self.nginx_lines("verified.test")}
        self.assertTrue(unverified and verified)
        self.assertFalse(unverified & verified, (unverified, verified))

    def test_a_missing_ca_secret_fails_closed_until_it_appears(self):
        st = wait_until(lambda: self.object_status("missing"), what="Ingress missing in /debug/status")
        self.assertFalse(st["accepted"])
        self.assertEqual(st["reason"], "InvalidAnnotation")
        self.assertEqual(st["field"], "metadata.annotations[doorman.dev/backend-tls-secret]")
        self.assertIn("Secret default/gone not found", st["message"])
        self.assertIn("Secret default/gone not found", self.controller.log())
        self.assertTrue(self.object_status("verified")["accepted"])
        status, _, _ = self.req("missing.test")
        self.assertEqual(status, 404)  # no route at all, never unverified TLS
        self.assertEqual(self.nginx_lines("missing.test"), [])
        # The Secret appears: the Ingress is accepted and verifies with it.
        self.write_manifest("gone.yaml", tls_secret("gone", self.pki["ca-right.crt"], self.pki))
        self.wait_version_change(self.version)
        wait_until(lambda: self.object_status("missing")["accepted"], what="Ingress missing accepted")
        status, _, body = self.req("missing.test")
        self.assertEqual(status, 200, body)

    def test_no_key_or_pem_in_any_log(self):
        for host in ("noca.test", "verified.test", "wrongca.test", "wrongname.test", "missing.test"):
            self.req(host)
        secrets = ["PRIVATE KEY", "BEGIN CERTIFICATE"]
        for pem in (self.pki["spare.key"], self.pki["server.key"], self.pki["ca-right.crt"], self.pki["ca-wrong.crt"]):
            secrets += [l for l in pem.strip().split("\n")[1:-1] if len(l) >= 16]
        logs = {p.name: p.log() for p in self.procs}
        logs["/debug/status"] = http_get("http://127.0.0.1:%d/debug/status" % self.ctl_metrics_port)[2].decode()
        self.assertIn("Secret default/gone not found", logs["controller"])  # the logs are the real ones
        self.assertIn("TLS handshake with backend failed", logs["dataplane"])
        for name, text in logs.items():
            for s in secrets:
                self.assertNotIn(s, text, "%s leaks %r" % (name, s))
        snapshot = http_get("http://127.0.0.1:%d/debug/snapshot" % self.ctl_metrics_port)[2].decode()
        for line in self.pki["spare.key"].strip().split("\n")[1:-1]:
            self.assertNotIn(line, snapshot)  # tls.key of a CA Secret is never read


class BackendTlsHealthCheck(DoormanTestCase):
    """`doorman.dev/health-check-path` on HTTPS backends probes over TLS, as the requests go: the
    CA and server name of the route (TLS >= 1.2, SNI and Host = the server name). Of one Service's
    three TLS endpoints, the one whose /healthz fails and the impostor whose certificate does not
    verify are taken out by the check (not by a request failing over); the healthy one gets every
    request. The annotation has no interval: the defaults (5 s, 3 failures) apply."""

    def setUp(self):
        super().setUp()
        pki_dir = os.path.join(self.tmp, "pki")
        os.makedirs(pki_dir)
        make_pki(pki_dir)
        self.good, self.sick, self.impostor = free_port(), free_port(), free_port()
        self.nginx_log = os.path.join(self.tmp, "nginx-access.log")
        server = """
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {pki}/{cert}.crt;
    ssl_certificate_key {pki}/{cert}.key;
    access_log {log} hc;
    location = /healthz {{ return {health} "{name} health\\n"; }}
    location / {{ return 200 "{name}\\n"; }}
  }}"""
        start_nginx(self, http_servers="\n  log_format hc '$server_port $request_uri $ssl_protocol sni=$ssl_server_name "
                                       "host=$http_host ua=$http_user_agent';" + "".join(
            server.format(port=port, pki=pki_dir, cert=cert, log=self.nginx_log, health=health, name=name)
            for port, cert, health, name in ((self.good, "server", 200, "good"), (self.sick, "server", 503, "sick"),
                                             (self.impostor, "spare", 200, "impostor"))))
        wait_until(lambda: all(port_open(p) for p in (self.good, self.sick, self.impostor)), what="nginx")
        with open(os.path.join(pki_dir, "ca-right.crt")) as f:
            ca = f.read()
        self.ing_port = free_port()
        docs = [
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: doorman}\n"
            "spec: {controller: doorman.dev/ingress-controller}\n",
            "apiVersion: v1\nkind: Service\nmetadata: {name: secure, namespace: default}\n"
            "spec: {ports: [{name: https, port: 443}]}\n",
        ] + [endpoint_slice("secure", "secure-%d" % i, port)
             for i, port in enumerate((self.good, self.sick, self.impostor))] + [
            "apiVersion: v1\nkind: Secret\nmetadata: {name: ca, namespace: default}\ntype: kubernetes.io/tls\n"
            "stringData:\n  ca.crt: |\n%s" % block(ca),
            ingress("checked", "checked.test", annotations=dict(https("ca", "backend.test"),
                                                                **{"doorman.dev/health-check-path": "/healthz"})),
        ]
        self.write_manifest("all.yaml", "---\n".join(docs))
        self.start_controller(["--ingress-http-port", str(self.ing_port)])
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(self.ing_port), what="Ingress listener")

    def up(self, port):
        return metric_value(self.dataplane_metrics(), "doorman_backend_up", {"backend": "127.0.0.1:%d" % port})

    def served(self, port, uri="/healthz"):
        try:
            with open(self.nginx_log) as f:
                return [l.split() for l in f if l.startswith("%d %s " % (port, uri))]
        except FileNotFoundError:
            return []

    def test_https_backends_are_probed_over_tls_and_failing_ones_taken_out(self):
        # 3 failed probes 5 s apart (the first within the first 0.1 s): out after ~10 s.
        wait_until(lambda: self.up(self.sick) == 0 and self.up(self.impostor) == 0, timeout=25,
                   what="the sick and the impostor endpoints marked down")
        self.assertEqual(self.up(self.good), 1)
        # The probes went as the requests go: TLS >= 1.2, SNI and Host = the server name.
        probe = wait_until(lambda: self.served(self.good), what="a probe of the good endpoint")[0]
        self.assertIn(probe[2], ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(probe[3:6], ["sni=backend.test", "host=backend.test", "ua=doorman-health-check"])
        self.assertGreaterEqual(len(self.served(self.sick)), 3)  # answered 503: failed by status
        self.assertEqual(self.served(self.impostor), [])  # the handshake failed: no request at all
        log = self.dataplane.log()
        self.assertIn("endpoint unhealthy", log)
        self.assertIn("check=https", log)
        # Every request now goes to the good endpoint, and none tried the others first.
        for _ in range(9):
            r = curl(["-H", "Host: checked.test", "http://127.0.0.1:%d/" % self.ing_port])
            self.assertEqual(r.stdout, "good\n", r.stderr)
        self.assertEqual(len(self.served(self.good, "/")), 9)
        self.assertEqual(self.served(self.sick, "/"), [])
        failures = metric_value(self.dataplane_metrics(), "doorman_l7_upstream_connect_failures_total",
                                {"backend": "127.0.0.1:%d" % self.impostor})
        self.assertFalse(failures)  # no request met the impostor's certificate


STRAY = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Stray: 1\r\n\r\nSTALE"


class StrayRecordBackend:
    """An HTTPS backend that answers each request with its path and, for /stray, writes an unasked
    response as a second TLS record in the same TCP write: both reach the proxy's TLS engine in one
    read, where a socket peek cannot see the second (helper-93)."""

    def __init__(self, crt, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self.sock.close()

    def _serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw):
        raw.settimeout(10)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(inc, out, server_side=True)

        def flush():
            data = out.read()
            if data:
                raw.sendall(data)

        def more():
            d = raw.recv(65536)
            if not d:
                raise EOFError
            inc.write(d)
        try:
            while True:
                try:
                    tls.do_handshake()
                    flush()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    more()
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        buf += tls.read(65536)
                    except ssl.SSLWantReadError:
                        more()
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1]
                tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
                if path == b"/stray":
                    tls.write(STRAY)  # a record of its own
                flush()  # one TCP write with both
        except (OSError, EOFError, ssl.SSLError):
            pass
        finally:
            raw.close()


class StrayTlsRecord(DoormanTestCase):
    def test_a_stray_record_buffered_in_tls_is_not_the_next_answer(self):
        pki_dir = os.path.join(self.tmp, "pki")
        os.makedirs(pki_dir)
        make_pki(pki_dir)
        backend = StrayRecordBackend(os.path.join(pki_dir, "server.crt"), os.path.join(pki_dir, "server.key"))
        self.addCleanup(backend.close)
        port = free_port()
        self.write_manifest("all.yaml", "---\n".join([
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: doorman}\n"
            "spec: {controller: doorman.dev/ingress-controller}\n",
            service("stray", backend.port),
            ingress("stray", "stray.test", svc="stray", annotations=https())]))
        self.start_controller(["--ingress-http-port", str(port)])
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(port), what="Ingress listener")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            for path in (b"/stray", b"/next", b"/stray", b"/again"):
                s.sendall(b"GET %s HTTP/1.1\r\nHost: stray.test\r\n\r\n" % path)
                head, body = read_response(s)
                self.assertNotIn(b"X-Stray", head)
                self.assertEqual(body, path, head)
        # Across client connections (the pool) too.
        for path in (b"/stray", b"/other"):
            r = curl(["-s", "-H", "Host: stray.test", "http://127.0.0.1:%d%s" % (port, path.decode())])
            self.assertEqual(r.stdout, path.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
