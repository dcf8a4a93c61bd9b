#!/usr/bin/env python3
"""L7 router, filters and forwarded headers, end to end with real curl and real backends.

Manifests -> controller -> dataplane; every matcher kind (regex path, method, header, query,
cookie) routes to backend "alt" while the "Prefix /" catch-all goes to "main", so each assertion
can fail.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DoormanTestCase, curl, free_port, one_ingress_yaml, port_open, raw_exchange,  # noqa: E402
                     wait_until)

HOST = "route.local"


def manifest(port, main, alt):
    ep = lambda p: "[{address: 127.0.0.1, port: %d}]" % p  # noqa: E731
    return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: router, namespace: default}}
spec:
  forwardedHeaders: {{xForwardedFor: Append, trustedProxies: [127.0.0.2/32]}}
  listeners:
    - {{name: web, port: {port}, protocol: HTTP}}
  routes:
    - name: regex
      listener: web
      match: {{hosts: [{HOST}], path: {{type: RegularExpression, value: "/items/[0-9]+"}}}}
      backends: [{{endpoints: {ep(alt)}}}]
    - name: post-only
      listener: web
      match: {{hosts: [{HOST}], path: {{type: Prefix, value: /m}}, methods: [POST]}}
      backends: [{{endpoints: {ep(alt)}}}]
    - name: header
      listener: web
      match: {{hosts: [{HOST}], headers: [{{name: X-Canary, type: Exact, value: "1"}}]}}
      backends: [{{endpoints: {ep(alt)}}}]
    - name: header-re
      listener: web
      match: {{hosts: [{HOST}], headers: [{{name: x-ver, type: RegularExpression, value: "v[2-3]"}}]}}
      backends: [{{endpoints: {ep(alt)}}}]
    - name: query
      listener: web
      match: {{hosts: [{HOST}], queryParams: [{{name: v, value: "2"}}]}}
      backends: [{{endpoints: {ep(alt)}}}]
    - name: cookie
      listener: web
      match: {{hosts: [{HOST}], cookies: [{{name: beta, value: "yes"}}]}}
      backends: [{{endpoints: {ep(alt)}}}]
    - name: wild
      listener: web
      match: {{hosts: ["*.wild.local"]}}
      backends: [{{endpoints: {ep(alt)}}}]
    - name: old
      listener: web
      match: {{hosts: [{HOST}], path: {{type: Prefix, value: /old}}}}
      filters:
        redirect: {{scheme: https, port: 8443, statusCode: 301}}
    - name: hostless
      listener: web
      match: {{path: {{type: Prefix, value: /hostless}}}}
      filters:
        redirect: {{scheme: https}}
    - name: api
      listener: web
      match: {{hosts: [{HOST}], path: {{type: Prefix, value: /api}}}}
      backends: [{{endpoints: {ep(alt)}}}]
      filters:
        rewrite: {{pathPrefix: /v2, host: internal.svc}}
        requestHeaders: {{set: {{x-env: prod}}, add: {{x-added: one}}, remove: [x-debug]}}
        responseHeaders: {{set: {{x-served-by: doorman}}, remove: [x-backend, date]}}
    - name: exact-rewrite
      listener: web
      match: {{hosts: [{HOST}], path: {{type: Exact, value: /e/}}}}
      backends: [{{endpoints: {ep(alt)}}}]
      filters: {{rewrite: {{pathPrefix: /c}}}}
    - name: login-prefix
      listener: web
      match: {{hosts: [{HOST}], path: {{type: Prefix, value: /login/}}}}
      backends: [{{endpoints: {ep(main)}}}]
    - name: login-exact
      listener: web
      match: {{hosts: [{HOST}], path: {{type: Exact, value: /login}}}}
      backends: [{{endpoints: {ep(alt)}}}]
    - name: main
      listener: web
      match: {{hosts: [{HOST}], path: {{type: Prefix, value: /}}}}
      backends: [{{endpoints: {ep(main)}}}]
"""


class L7Routing(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.main = self.start_backend("main")
        self.alt = self.start_backend("alt")
        self.port = free_port()
        self.write_manifest("router.yaml", manifest(self.port, self.main, self.alt))
        self.start_controller()
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="L7 listener")

    def get(self, path, *args, host=HOST):
        """curl -i; returns (status, headers lower-cased, body str)."""
        r = curl(["-i", "-H", "Host: " + host] + list(args) + ["http://127.0.0.1:%d%s" % (self.port, path)])
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers.setdefault(k.strip().lower(), v.strip())
        return status, headers, body

    def backend(self, path, *args, host=HOST):
        st, _, body = self.get(path, *args, host=host)
        self.assertEqual(st, 200, body)
        return json.loads(body)["backend"]

    def test_every_matcher_kind(self):
        cases = [
            (("/items/42",), "alt"), (("/items/x",), "main"), (("/items/42/more",), "main"),
            (("/m", "-X", "POST"), "alt"), (("/m",), "main"), (("/mx", "-X", "POST"), "main"),
            (("/", "-H", "X-Canary: 1"), "alt"), (("/", "-H", "X-Canary: 2"), "main"),
            (("/", "-H", "X-Ver: v3"), "alt"), (("/", "-H", "X-Ver: v33"), "main"),
            (("/?a=1&v=2",), "alt"), (("/?v=22",), "main"),
            (("/", "-H", "Cookie: a=b; beta=yes"), "alt"), (("/", "-H", "Cookie: beta=no"), "main"),
            (("/", "-H", "Cookie: a=b", "-H", "Cookie: beta=yes"), "alt"),  # several Cookie fields
            # Exact /login beats Prefix /login/ (which also matches /login); the header, query and
            # cookie routes above have no path and still beat the "Prefix /" catch-all.
            (("/login",), "alt"), (("/login/x",), "main"), (("/loginx",), "main"),
        ]
        for args, want in cases:
            self.assertEqual(self.backend(*args), want, args)
        self.assertEqual(self.backend("/", host="a.wild.local"), "alt")
        self.assertEqual(self.backend("/", host="A.B.Wild.Local:80"), "alt")
        st, _, body = self.get("/", host="wild.local")
        self.assertEqual(st, 404)
        self.assertIn("no route", body)

    def test_redirect_filter(self):
        st, h, _ = self.get("/old/page?q=1")
        self.assertEqual(st, 301)
        self.assertEqual(h["location"], "https://%s:8443/old/page?q=1" % HOST)

    def test_redirect_of_a_request_without_host(self):
        # HTTP/1.0 may omit Host: the redirect names the address the client connected to, never
        # an empty authority ("https:///hostless/x", which a browser reads as https://hostless/x).
        r = raw_exchange(self.port, b"GET /hostless/x?q=1 HTTP/1.0\r\n\r\n").decode("latin-1")
        self.assertRegex(r, r"^HTTP/1\.1 302 ", r)
        location = [ln for ln in r.split("\r\n") if ln.lower().startswith("location:")]
        self.assertEqual(location, ["Location: https://127.0.0.1/hostless/x?q=1"], r)

    def test_rewrite_and_header_rules(self):
        st, h, body = self.get("/api/orders?id=7", "-H", "X-Debug: 1", "-H", "X-Env: dev")
        self.assertEqual(st, 200, body)
        seen = json.loads(body)
        self.assertEqual(seen["path"], "/v2/orders?id=7")
        self.assertEqual(seen["host"], "internal.svc")
        # ";" parameters after the matched prefix are forwarded (routing ignores them).
        st, _, body = self.get("/api;v=1/orders;jsessionid=ab?id=7")
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["path"], "/v2/orders;jsessionid=ab?id=7")
        # An Exact match is the whole path: its rewrite is the same with or without parameters.
        for path in ("/e/", "/e/;jsessionid=ab", "/e;v=1/"):
            st, _, body = self.get(path)
            self.assertEqual((st, json.loads(body)["path"]), (200, "/c"), path)
        self.assertEqual(seen["headers"].get("x-env"), "prod")
        self.assertEqual(seen["headers"].get("x-added"), "one")
        self.assertNotIn("x-debug", seen["headers"])
        self.assertEqual(seen["headers"].get("x-forwarded-host"), HOST)
        self.assertEqual(h.get("x-served-by"), "doorman")
        self.assertNotIn("x-backend", h)
        # Removing Date replaces the backend's with the proxy's: a response needs one (RFC 9110
        # §6.6.1; helper-125: the rule left none).
        self.assertRegex(h.get("date", ""), r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")
        # The backend's own response without the filter still carries X-Backend.
        _, h2, _ = self.get("/")
        self.assertEqual(h2.get("x-backend"), "main")

    def test_spoofed_forwarded_headers_from_untrusted_client_are_replaced(self):
        spoof = ["-H", "X-Forwarded-For: 6.6.6.6", "-H", "X-Forwarded-Proto: https",
                 "-H", "X-Forwarded-Port: 1", "-H", "X-Request-Id: spoofed-id",
                 "-H", "X-Real-IP: 6.6.6.6", "-H", "Forwarded: for=6.6.6.6;proto=https"]
        _, _, body = self.get("/", "-H", "X_Forwarded_For: 6.6.6.6", *spoof)
        h = json.loads(body)["headers"]
        self.assertEqual(h["x-forwarded-for"], "127.0.0.1")
        self.assertNotIn("x_forwarded_for", h)  # CGI-style backends read it as X-Forwarded-For
        self.assertEqual(h["x-real-ip"], "127.0.0.1")
        self.assertNotIn("forwarded", h)
        self.assertEqual(h["x-forwarded-proto"], "http")
        self.assertEqual(h["x-forwarded-port"], str(self.port))
        self.assertRegex(h["x-request-id"], r"^[0-9a-f]{32}$")
        # A trusted proxy (source 127.0.0.2) keeps its chain and request id.
        _, _, body = self.get("/", "--interface", "127.0.0.2", *spoof)
        h = json.loads(body)["headers"]
        self.assertEqual(h["x-forwarded-for"], "6.6.6.6, 127.0.0.2")
        self.assertEqual(h["x-real-ip"], "6.6.6.6")
        self.assertEqual(h["forwarded"], "for=6.6.6.6;proto=https, for=127.0.0.2")  # our hop appended
        # A trusted balancer that sends X-Forwarded-For only: X-Real-IP is the client it names.
        _, _, body = self.get("/", "--interface", "127.0.0.2", "-H", "X-Forwarded-For: 6.6.6.7")
        self.assertEqual(json.loads(body)["headers"]["x-real-ip"], "6.6.6.7")
        self.assertEqual(h["x-forwarded-proto"], "https")
        self.assertEqual(h["x-request-id"], "spoofed-id")
        # The client behind that proxy names the forwarding fields in Connection (which a proxy
        # such as HAProxy passes on): they are not hop-by-hop here, so the proxy's chain stays,
        # and the backend does not see the proxy as the client (helper-112).
        _, _, body = self.get("/", "--interface", "127.0.0.2", *spoof, "-H",
                              "Connection: keep-alive, X-Forwarded-For, X-Real-IP, Forwarded, X-Forwarded-Proto, "
                              "X-Forwarded-Port, X-Request-Id, X-Other", "-H", "X-Other: gone")
        h = json.loads(body)["headers"]
        self.assertEqual(h["x-forwarded-for"], "6.6.6.6, 127.0.0.2")
        self.assertEqual(h["x-real-ip"], "6.6.6.6")
        self.assertEqual(h["forwarded"], "for=6.6.6.6;proto=https, for=127.0.0.2")
        self.assertEqual((h["x-forwarded-proto"], h["x-forwarded-port"], h["x-request-id"]), ("https", "1", "spoofed-id"))
        self.assertNotIn("x-other", h)  # any other field it names is still hop-by-hop

    def test_large_streamed_upload_and_100_continue(self):
        # 20 MiB through the proxy with Expect: 100-continue (curl sends it for large bodies);
        # the backend must receive every byte.
        path = os.path.join(self.tmp, "big.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(1 << 20) * 20)
        r = curl(["-H", "Host: " + HOST, "-H", "Expect: 100-continue", "--data-binary", "@" + path,
                  "http://127.0.0.1:%d/upload" % self.port], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["body_len"], 20 << 20)

    def test_request_ids_are_unique(self):
        ids = set()
        for _ in range(5):
            _, _, body = self.get("/")
            ids.add(json.loads(body)["headers"]["x-request-id"])
        self.assertEqual(len(ids), 5)


class IngressHostsAcrossNamespaces(DoormanTestCase):
    """A host belongs to one namespace (docs/controller.md "Sharing a port"): another namespace's
    catch-all Ingress (only a defaultBackend) and wildcard rule do not take its unmatched paths,
    as ingress-nginx answers them from the host's own server block; a name nobody routes still
    reaches them."""

    def test_another_namespaces_catch_all_and_wildcard_leave_a_named_host_alone(self):
        shop, other = self.start_backend("shop"), self.start_backend("other")
        http = free_port()
        self.write_manifest("shop.yaml", one_ingress_yaml(shop, "shop.example.test", name="shop", service="shop",
                                                          path="/app").replace("namespace: default", "namespace: shop"))
        catch_all = one_ingress_yaml(other, "x", name="catch", service="catch", ingress_class=False).replace(
            "  rules: [{host: x, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: catch, "
            "port: {number: 80}}}}]}}]",
            "  defaultBackend: {service: {name: catch, port: {number: 80}}}")
        wildcard = one_ingress_yaml(other, "'*.example.test'", name="wild", service="wild", path="/w",
                                    ingress_class=False)
        self.write_manifest("other.yaml", (catch_all + "---\n" + wildcard).replace("namespace: default", "namespace: other"))
        self.start_controller(["--ingress-http-port", str(http)])
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(http), what="Ingress HTTP listener")

        def get(host, path):
            r = curl(["-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Host: " + host, "http://127.0.0.1:%d%s" % (http, path)])
            self.assertEqual(r.returncode, 0, r.stderr)
            body, _, code = r.stdout.rpartition("\n")
            return int(code), (json.loads(body)["backend"] if code == "200" else None)
        self.assertEqual(get("shop.example.test", "/app/1"), (200, "shop"))
        self.assertEqual(get("shop.example.test", "/other"), (404, None), "other's catch-all took shop's path")
        self.assertEqual(get("shop.example.test", "/w/1"), (404, None), "other's wildcard took shop's path")
        self.assertEqual(get("blog.example.test", "/w/1"), (200, "other"))   # nobody's name: the wildcard
        self.assertEqual(get("blog.example.test", "/other"), (200, "other"))  # and the catch-all


if __name__ == "__main__":
    unittest.main()
