#!/usr/bin/env python3
"""Canary with cookie affinity (ingress-nginx's default affinity-canary-behavior "sticky"): a
client whose stickiness cookie names an endpoint of the main or the canary group stays in that
group instead of re-drawing the canary weight on every request. And passive outlier detection
does not count 501/505 (a client choosing an unsupported method must not eject a backend).

Real processes: controller (--manifests), dataplane, Python backends (backend.py), curl.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DoormanTestCase, curl, free_port, metric_value, port_open, wait_until  # noqa: E402
from test_l7_policy import slice_yaml  # noqa: E402


def ingress(name, service, annotations):
    ann = ", ".join('%s: "%s"' % kv for kv in annotations.items())
    return f"""\
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, annotations: {{{ann}}}}}
spec:
  ingressClassName: doorman
  rules: [{{host: aff.local, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}]}}}}]
"""


def get_srv(tc, port, cookie=None):
    """GET / with the stickiness cookie SRV (if given): (status, backend or None, the SRV value
    the response sets or None)."""
    args = ["-i"] + (["-H", "Cookie: SRV=" + cookie] if cookie else [])
    r = curl(args + ["http://127.0.0.1:%d/" % port])
    tc.assertEqual(r.returncode, 0, r.stderr)
    head, _, body = r.stdout.partition("\n\n")
    status = int(head.split()[1])
    set_cookie = [l.split(":", 1)[1].strip() for l in head.split("\n") if l.lower().startswith("set-cookie:")]
    return status, json.loads(body).get("backend") if status == 200 else None, \
        (set_cookie[0].split(";")[0].split("=", 1)[1] if set_cookie else None)


class Affinity(DoormanTestCase):
    def test_canary_weight_respects_the_stickiness_cookie(self):
        main, canary = self.start_backend("main"), self.start_backend("canary")
        port = free_port()
        self.write_manifest("objs.yaml", slice_yaml("main", main) + "---\n" + slice_yaml("beta", canary) + """\
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: doorman}
spec: {controller: doorman.dev/ingress-controller}
""" + ingress("app", "main", {"doorman.dev/affinity": "cookie", "doorman.dev/affinity-cookie-name": "AFF"})
            + ingress("app-canary", "beta", {"doorman.dev/canary": "true", "doorman.dev/canary-weight": "50"}))
        self.start_controller(["--ingress-http-port", str(port)])
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(port), what="ingress listener")

        def get(cookie=None):
            args = ["-i", "-H", "Host: aff.local"] + (["-H", "Cookie: AFF=" + cookie] if cookie else [])
            r = curl(args + ["http://127.0.0.1:%d/" % port])
            self.assertEqual(r.returncode, 0, r.stderr)
            head, _, body = r.stdout.partition("\n\n")  # text mode: CRLF already became LF
            set_cookie = [l.split(":", 1)[1].strip() for l in head.split("\n") if l.lower().startswith("set-cookie:")]
            return json.loads(body)["backend"], (set_cookie[0].split(";")[0].split("=", 1)[1] if set_cookie else None)

        cookies = {}
        for _ in range(60):  # weight 50: both groups show up quickly
            who, c = get()
            self.assertIsNotNone(c, "a first request is given a stickiness cookie")
            cookies.setdefault(who, c)
            if len(cookies) == 2:
                break
        self.assertEqual(set(cookies), {"main", "canary"})
        for who, c in cookies.items():
            seen = [get(c) for _ in range(20)]
            self.assertEqual({s[0] for s in seen}, {who}, "the %s cookie kept its group" % who)
            self.assertEqual({s[1] for s in seen}, {None}, "no new cookie while pinned")

    def test_501_and_505_do_not_eject_a_backend(self):
        b = self.start_backend("b", ["--status", "501"])
        port = free_port()
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: nie, namespace: default}}
spec:
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
  routes: [{{name: r, listener: web, backends: [{{endpoints: [{{address: 127.0.0.1, port: {b}}}]}}]}}]
""")
        self.start_controller()
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(port), what="listener")
        for _ in range(8):  # more than the 5 consecutive failures that eject
            r = curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d/" % port])
            self.assertEqual(r.stdout, "501")
        self.assertIsNone(metric_value(self.dataplane_metrics(), "doorman_l7_outlier_ejections_total",
                                       {"backend": "127.0.0.1:%d" % b}))


class StickyAndHealth(DoormanTestCase):
    def test_a_cookie_for_an_endpoint_failing_its_health_check_repins(self):
        # Draining an instance by failing its health check (it still answers requests) must move
        # its sticky clients, as an ejection or removal does; the new endpoint gets a new cookie.
        ports = {"a": self.start_backend("a"), "b": self.start_backend("b")}
        lport = free_port()
        eps = ", ".join("{address: 127.0.0.1, port: %d}" % p for p in ports.values())
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: sh, namespace: default}}
spec:
  listeners: [{{name: web, port: {lport}, protocol: HTTP}}]
  routes:
    - name: r
      listener: web
      backends: [{{endpoints: [{eps}]}}]
      policy: {{stickiness: {{type: Cookie, cookieName: SRV, ttl: 1h}}}}
  healthCheck: {{protocol: HTTP, path: /healthz, interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1}}
""")
        self.start_controller()
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(lport), what="listener")

        get = lambda cookie=None: get_srv(self, lport, cookie)  # noqa: E731

        up = lambda name: metric_value(self.dataplane_metrics(), "doorman_backend_up",  # noqa: E731
                                       {"backend": "127.0.0.1:%d" % ports[name]})
        wait_until(lambda: up("a") == 1 and up("b") == 1, what="both endpoints healthy")
        _, first, cookie = get()
        self.assertIsNotNone(cookie)
        other = "b" if first == "a" else "a"
        # The pinned endpoint starts failing its check (503 on every path, /healthz included);
        # nothing is sent to it meanwhile, so passive outlier detection has nothing to count.
        victim = [p for p in self.procs if p.name == "backend-" + first][0]
        victim.stop()
        self.start_backend(first, ["--status", "503"], port=ports[first], proc_name="backend-%s-again" % first)
        wait_until(lambda: up(first) == 0, what="the health check marks %s down" % first)
        for _ in range(3):
            status, who, new_cookie = get(cookie)
            self.assertEqual((status, who), (200, other))
            self.assertIsNotNone(new_cookie, "the client is told its new endpoint")
            self.assertNotEqual(new_cookie, cookie)
        self.assertEqual(get(new_cookie)[:3], (200, other, None))

    def test_weight_zero_moves_cookie_holders_too(self):
        # Weight 0 is no traffic: a client holding a cookie for an endpoint of a backend set now
        # at weight 0 moves (as a SourceIP-pinned client does), since the cookie value is
        # computable by anyone (helper-125: a forged cookie reached a weight-0 backend, even
        # on a route that answered 503 to everyone else).
        ports = {"a": self.start_backend("a"), "b": self.start_backend("b")}
        lport = free_port()

        def lb(weight_b):
            self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: w0, namespace: default}}
spec:
  listeners: [{{name: web, port: {lport}, protocol: HTTP}}]
  routes:
    - name: r
      listener: web
      backends:
        - {{weight: 1, endpoints: [{{address: 127.0.0.1, port: {ports["a"]}}}]}}
        - {{weight: {weight_b}, endpoints: [{{address: 127.0.0.1, port: {ports["b"]}}}]}}
      policy: {{stickiness: {{type: Cookie, cookieName: SRV, ttl: 1h}}}}
""")
        lb(1)
        self.start_controller()
        self.start_dataplane(["--workers", "1"])
        version = self.wait_converged()
        wait_until(lambda: port_open(lport), what="listener")

        get = lambda cookie=None: get_srv(self, lport, cookie)  # noqa: E731

        cookies = {}
        for _ in range(20):
            status, who, cookie = get()
            self.assertEqual(status, 200)
            cookies[who] = cookie
            if len(cookies) == 2:
                break
        self.assertEqual(set(cookies), {"a", "b"}, "weight 1:1 reaches both")
        self.assertEqual(get(cookies["b"])[:3], (200, "b", None), "pinned while b has weight")
        lb(0)
        wait_until(lambda: self.controller_version() != version, what="the rescan")
        self.wait_converged()
        for _ in range(3):
            status, who, new_cookie = get(cookies["b"])
            self.assertEqual((status, who), (200, "a"), "a cookie for a weight-0 endpoint moves")
            self.assertEqual(new_cookie, cookies["a"], "and is re-issued for the new one")


class CookiePerPath(DoormanTestCase):
    def test_two_paths_of_one_host_keep_a_cookie_each_in_a_real_cookie_jar(self):
        # One Ingress: /api → Service api, / → Service web, two endpoints each, affinity cookie.
        # Each path's cookie carries its own Path (ingress-nginx's session-cookie-path default);
        # with one Path=/ cookie the two routes overwrite each other's pin on every alternation.
        ports = {n: self.start_backend(n) for n in ("api-a", "api-b", "web-a", "web-b")}
        lport = free_port()

        def service(name):
            out = "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n" \
                  "spec: {ports: [{name: http, port: 80}]}\n" % name
            for x in ("a", "b"):  # one slice per endpoint: they listen on different ports
                out += ("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                        "metadata: {name: %s-%s, namespace: default, labels: {kubernetes.io/service-name: %s}}\n"
                        "addressType: IPv4\nports: [{name: http, port: %d}]\n"
                        "endpoints: [{addresses: [127.0.0.1]}]\n") % (name, x, name, ports[name + "-" + x])
            return out
        self.write_manifest("objs.yaml", """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: doorman}
spec: {controller: doorman.dev/ingress-controller}
""" + service("api") + service("web") + """\
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default, annotations: {doorman.dev/affinity: cookie, doorman.dev/affinity-cookie-name: S}}
spec:
  ingressClassName: doorman
  rules:
    - host: paths.local
      http:
        paths:
          - {path: /api/, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
""")
        self.start_controller(["--ingress-http-port", str(lport)])
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(lport), what="ingress listener")
        jar = os.path.join(self.tmp, "jar.txt")

        def get(path):
            r = curl(["-b", jar, "-c", jar, "http://paths.local:%d%s" % (lport, path),
                      "--resolve", "paths.local:%d:127.0.0.1" % lport])
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)["backend"]

        seen = {"/api/x": set(), "/": set()}
        for _ in range(6):
            for path in seen:
                seen[path].add(get(path))
        self.assertEqual(len(seen["/api/x"]), 1, seen)
        self.assertEqual(len(seen["/"]), 1, seen)
        self.assertTrue(next(iter(seen["/api/x"])).startswith("api-"), seen)
        self.assertTrue(next(iter(seen["/"])).startswith("web-"), seen)
        with open(jar) as f:
            cookies = sorted((l.split("\t")[2], l.split("\t")[5]) for l in f.read().splitlines()
                             if l.strip() and (not l.startswith("#") or l.startswith("#HttpOnly_")))
        self.assertEqual(cookies, [("/", "S"), ("/api", "S")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
