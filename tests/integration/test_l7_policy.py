#!/usr/bin/env python3
"""L7 backend policy end to end: weights, canary (Ingress annotations: header, cookie),
cookie stickiness (stable across a dataplane restart, re-pinned when the endpoint leaves),
retries on 503 for idempotent requests only, per-route rate limiting (429 + Retry-After) and
passive outlier detection (a dead endpoint stops being tried).
"""
import collections
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DoormanTestCase, burst, curl, free_port, metric_value, one_ingress_yaml, port_open,  # noqa: E402
                     wait_until)


def slice_yaml(name, port):
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""


def lb_yaml(port, a, b, failing, dead, sticky_eps, silent):
    ep = lambda p: "{endpoints: [{address: 127.0.0.1, port: %d}]}" % p  # noqa: E731
    eps = ", ".join("{address: 127.0.0.1, port: %d}" % p for p in sticky_eps)
    return f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: pol, namespace: default}}
spec:
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
  routes:
    - name: weighted
      listener: web
      match: {{path: {{type: Prefix, value: /weighted}}}}
      backends:
        - {{endpoints: [{{address: 127.0.0.1, port: {a}}}], weight: 3}}
        - {{endpoints: [{{address: 127.0.0.1, port: {b}}}], weight: 1}}
    - name: sticky
      listener: web
      match: {{path: {{type: Prefix, value: /sticky}}}}
      backends: [{{endpoints: [{eps}]}}]
      policy: {{stickiness: {{type: Cookie, cookieName: SRV, ttl: 1h}}}}
    - name: sticky-too
      listener: web
      match: {{path: {{type: Prefix, value: /sticky-too}}}}
      backends: [{{endpoints: [{eps}]}}]
      policy: {{stickiness: {{type: Cookie, cookieName: SRV, ttl: 1h}}}}
    - name: retry
      listener: web
      match: {{path: {{type: Prefix, value: /retry}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {failing}}}, {{address: 127.0.0.1, port: {a}}}]}}]
      policy: {{retries: {{attempts: 2, on: ["503"]}}}}
    - name: retrybody
      listener: web
      match: {{path: {{type: Prefix, value: /anymethod}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {failing}}}, {{address: 127.0.0.1, port: {a}}}]}}]
      policy: {{retries: {{attempts: 2, on: ["503", non-idempotent]}}}}
    - name: retrymix
      listener: web
      match: {{path: {{type: Prefix, value: /mix}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {dead}}}, {{address: 127.0.0.1, port: {failing}}}]}}]
      policy: {{retries: {{attempts: 2, on: [connect-failure, "503"]}}}}
    - name: retrydefault
      listener: web
      match: {{path: {{type: Prefix, value: /pertry}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {silent}}}, {{address: 127.0.0.1, port: {a}}}]}}]
      policy: {{retries: {{perTryTimeout: 300ms}}}}
    - name: limited
      listener: web
      match: {{path: {{type: Prefix, value: /limited}}}}
      backends: [{ep(a)}]
      policy: {{rateLimit: {{requestsPerSecond: 1, burst: 2, key: ClientIP}}}}
    - name: outlier
      listener: web
      match: {{path: {{type: Prefix, value: /outlier}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {dead}}}, {{address: 127.0.0.1, port: {a}}}]}}]
"""


class L7Policy(DoormanTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.start_backend("a")
        self.b = self.start_backend("b")
        self.c = self.start_backend("c")
        self.canary = self.start_backend("canary")
        self.failing = self.start_backend("failing", extra=["--status", "503"])
        self.dead = self.refused_port()  # every connect is refused
        self.silent = self.silent_port()  # connects, never answers
        self.port = free_port()
        self.ing_port = free_port()
        self.sticky_eps = [self.a, self.b, self.c]
        self.write_manifest("lb.yaml", lb_yaml(self.port, self.a, self.b, self.failing, self.dead, self.sticky_eps, self.silent))
        self.write_manifest("ingress.yaml", slice_yaml("main", self.a) + "---\n" + slice_yaml("beta", self.canary) + f"""\
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: doorman}}
spec: {{controller: doorman.dev/ingress-controller}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: main, namespace: default}}
spec:
  ingressClassName: doorman
  rules: [{{host: canary.local, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: main, port: {{number: 80}}}}}}}}]}}}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: main-canary
  namespace: default
  # API.md's form: the canary-by-* annotations alone (ingress-nginx's canary: "true" is optional;
  # test_l7_affinity.py uses it).
  annotations: {{doorman.dev/canary-by-header: X-Canary, doorman.dev/canary-by-cookie: beta}}
spec:
  ingressClassName: doorman
  rules: [{{host: canary.local, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: beta, port: {{number: 80}}}}}}}}]}}}}]
""")
        self.start_controller(["--ingress-http-port", str(self.ing_port)])
        self.start_dataplane(["--workers", "1"])
        self.version = self.wait_converged()
        wait_until(lambda: port_open(self.port) and port_open(self.ing_port), what="listeners")

    def req(self, path, *args, port=None):
        r = curl(["-i"] + list(args) + ["http://127.0.0.1:%d%s" % (port or self.port, path)])
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, body = r.stdout.partition("\n\n")
        status = int(head.split()[1])
        headers = {}
        for l in head.split("\n")[1:]:
            k, _, v = l.partition(":")
            headers.setdefault(k.strip().lower(), v.strip())
        return status, headers, body

    def test_weights_split_traffic_exactly(self):
        seen = [json.loads(self.req("/weighted")[2])["backend"] for _ in range(8)]
        self.assertEqual(seen.count("a"), 6, seen)
        self.assertEqual(seen.count("b"), 2, seen)

    def test_canary_by_header_and_cookie(self):
        who = lambda *a: json.loads(self.req("/", "-H", "Host: canary.local", *a, port=self.ing_port)[2])["backend"]  # noqa: E731
        self.assertEqual(who(), "a")
        self.assertEqual(who("-H", "X-Canary: always"), "canary")
        self.assertEqual(who("-H", "X-Canary: never", "-H", "Cookie: beta=always"), "a")
        self.assertEqual(who("-H", "Cookie: beta=always"), "canary")
        self.assertEqual(who("-H", "Cookie: beta=never"), "a")
        # Another header value is ignored (ingress-nginx): the cookie decides.
        self.assertEqual(who("-H", "X-Canary: yes", "-H", "Cookie: beta=always"), "canary")
        # canary-by-header-value: the listed values select the canary, others fall through.
        with open(os.path.join(self.manifests, "ingress.yaml")) as f:
            text = f.read()
        self.write_manifest("ingress.yaml", text.replace(
            "doorman.dev/canary-by-header: X-Canary,",
            'doorman.dev/canary-by-header: X-Canary, doorman.dev/canary-by-header-value: "v2, beta",'))
        self.version = self.wait_version_change(self.version)
        self.assertEqual(who("-H", "X-Canary: v2"), "canary")
        self.assertEqual(who("-H", "X-Canary: beta"), "canary")
        self.assertEqual(who("-H", "X-Canary: always"), "a")
        self.assertEqual(who("-H", "X-Canary: v3", "-H", "Cookie: beta=always"), "canary")

    def test_cookie_stickiness_survives_restart_and_repins(self):
        st, h, body = self.req("/sticky")
        self.assertEqual(st, 200)
        m = re.match(r"SRV=([0-9a-f]{16}); Path=/; HttpOnly; Max-Age=3600", h.get("set-cookie", ""))
        self.assertTrue(m, h)
        cookie, first = m.group(1), json.loads(body)["backend"]
        for _ in range(6):  # round-robin would move; the cookie pins
            st, h, body = self.req("/sticky", "-H", "Cookie: SRV=" + cookie)
            self.assertEqual(json.loads(body)["backend"], first)
            self.assertNotIn("set-cookie", h)
        # Another route with the same endpoints and cookie honours it (the cookie has Path=/).
        for _ in range(3):
            st, h, body = self.req("/sticky-too", "-H", "Cookie: SRV=" + cookie)
            self.assertEqual(json.loads(body)["backend"], first)
            self.assertNotIn("set-cookie", h)
        # A restarted dataplane maps the same cookie to the same endpoint (no shared state).
        self.dataplane.stop()
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()
        wait_until(lambda: port_open(self.port), what="listener after restart")
        self.assertEqual(json.loads(self.req("/sticky", "-H", "Cookie: SRV=" + cookie)[2])["backend"], first)
        # The endpoint leaves: a new one is picked and the cookie re-set.
        port_of = {"a": self.a, "b": self.b, "c": self.c}
        remaining = [p for p in self.sticky_eps if p != port_of[first]]
        self.write_manifest("lb.yaml", lb_yaml(self.port, self.a, self.b, self.failing, self.dead, remaining, self.silent))
        self.wait_version_change(self.version)
        st, h, body = self.req("/sticky", "-H", "Cookie: SRV=" + cookie)
        self.assertEqual(st, 200)
        self.assertNotEqual(json.loads(body)["backend"], first)
        self.assertRegex(h.get("set-cookie", ""), r"^SRV=[0-9a-f]{16};")
        self.assertNotIn(cookie, h["set-cookie"])

    def test_retries_for_idempotent_requests_only(self):
        for _ in range(4):
            st, _, body = self.req("/retry")
            self.assertEqual(st, 200, body)
        m = self.dataplane_metrics()
        self.assertGreaterEqual(metric_value(m, "doorman_l7_retries_total", {"route": "default/pol/retry"}) or 0, 2)
        codes = [self.req("/retry", "-X", "POST", "-d", "x")[0] for _ in range(4)]
        self.assertIn(503, codes)  # POST is never retried

    def test_retries_replay_request_bodies(self):
        # A PUT (idempotent) and, on a route that opts in with `non-idempotent`, a POST are retried
        # on 503 with their bodies replayed byte for byte, Content-Length and chunked alike.
        body = os.urandom(10000)
        path = os.path.join(self.tmp, "body.bin")
        with open(path, "wb") as f:
            f.write(body)
        want = hashlib.sha256(body).hexdigest()
        # POSTs first: five 503s in a row eject the failing endpoint (outlier detection), after
        # which nothing is retried any more.
        cases = [("/anymethod", "POST", []), ("/anymethod", "POST", ["-H", "Transfer-Encoding: chunked"]),
                 ("/retry", "PUT", []), ("/retry", "PUT", ["-H", "Transfer-Encoding: chunked"])]
        for url, method, extra in cases:
            for _ in range(2):  # round-robin over two endpoints: the failing one once per pair
                st, _, rbody = self.req(url, "-X", method, "--data-binary", "@" + path, *extra)
                self.assertEqual(st, 200, (url, method, extra, rbody))
                got = json.loads(rbody)
                self.assertEqual(got["backend"], "a")
                self.assertEqual(got["body_sha256"], want, (url, method, extra))
        m = self.dataplane_metrics()
        self.assertGreaterEqual(metric_value(m, "doorman_l7_retries_total", {"route": "default/pol/retrybody"}) or 0, 2)
        self.assertGreaterEqual(metric_value(m, "doorman_l7_retries_total", {"route": "default/pol/retry"}) or 0, 1)

    def test_bodies_over_the_replay_limit_are_not_retried(self):
        big = os.path.join(self.tmp, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(100 * 1024))  # over the 64 KiB replay copy
        codes = [self.req("/retry", "-X", "PUT", "--data-binary", "@" + big)[0] for _ in range(4)]
        self.assertIn(503, codes)
        self.assertIn(200, codes)

    def test_a_per_try_timeout_alone_retries_a_hung_backend(self):
        # retries: {perTryTimeout} without `on` retries the connection errors, a timeout among
        # them (it was a no-op: the client got 504 whenever the hung endpoint was picked).
        codes = [self.req("/pertry")[0] for _ in range(4)]
        self.assertEqual(codes, [200] * 4)
        m = self.dataplane_metrics()
        self.assertGreaterEqual(metric_value(m, "doorman_l7_retries_total", {"route": "default/pol/retrydefault"}) or 0, 1)

    def test_retries_are_not_cut_short_by_a_connect_failure(self):
        # A dead endpoint and one answering 503: whichever the scheduler tries first, the
        # retries are used up and the client gets the backend's 503, not a 502 for the dead one.
        codes = [self.req("/mix")[0] for _ in range(6)]
        self.assertEqual(codes, [503] * 6)

    def url(self, path, port=None):
        return "http://127.0.0.1:%d%s" % (port or self.port, path)

    def assert_burst_limited(self, codes, took, burst_size):
        """1 token/s: the burst passes, then 429s, unless the curl took a whole second."""
        self.assertEqual(codes[:burst_size], [200] * burst_size, codes)
        if took < 1.0:
            self.assertEqual(codes[burst_size:], [429] * (len(codes) - burst_size), codes)

    def test_rate_limit(self):
        codes, retry_after, took = burst([self.url("/limited")] * 3)
        self.assert_burst_limited(codes, took, 2)
        self.assertEqual(retry_after[-1], "1" if codes[-1] == 429 else "")
        self.assertGreaterEqual(metric_value(self.dataplane_metrics(), "doorman_l7_rate_limited_total") or 0, 1)

    def test_rate_limit_and_source_ip_keys_behind_a_trusted_proxy_are_the_forwarded_client(self):
        # 127.0.0.0/8 is a trusted proxy for these routes: each client its X-Forwarded-For names
        # has its own bucket (not one for everyone behind the proxy) and its own source-IP pin;
        # an untrusted peer's X-Forwarded-For is never a key.
        fport = free_port()
        self.write_manifest("fwd.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: fwd, namespace: default}}
spec:
  listeners: [{{name: web, port: {fport}, protocol: HTTP}}]
  routes:
    - name: limited
      listener: web
      match: {{path: {{type: Prefix, value: /trusted-limited}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.a}}}]}}]
      policy: {{rateLimit: {{requestsPerSecond: 1, burst: 2, key: ClientIP}}}}
    - name: sip
      listener: web
      match: {{path: {{type: Prefix, value: /trusted-sip}}}}
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.a}}}, {{address: 127.0.0.1, port: {self.b}}}]}}]
      policy: {{scheduler: source-hash}}
  forwardedHeaders: {{xForwardedFor: Append, trustedProxies: [127.0.0.0/8]}}
""")
        self.wait_version_change(self.version)
        wait_until(lambda: port_open(fport), what="the trusting listener")
        st = lambda path, xff, p=fport: self.req(path, "-H", "X-Forwarded-For: " + xff, port=p)[0]  # noqa: E731
        self.assertEqual([st("/trusted-limited", "198.51.100.%d" % i) for i in range(1, 5)], [200] * 4)
        codes, _, took = burst([self.url("/trusted-limited", fport)] * 3, "-H", "X-Forwarded-For: 198.51.100.9")
        self.assert_burst_limited(codes, took, 2)
        # An untrusted peer: one bucket, whatever X-Forwarded-For says.
        codes, _, took = burst([self.url("/limited")] * 3,
                               each=[["-H", "X-Forwarded-For: 198.51.100.%d" % i] for i in range(1, 4)])
        self.assert_burst_limited(codes, took, 2)
        backend = lambda xff: json.loads(  # noqa: E731
            self.req("/trusted-sip", "-H", "X-Forwarded-For: " + xff, port=fport)[2])["backend"]
        pins = {backend("203.0.113.%d" % i) for i in range(1, 13)}
        self.assertEqual(len(pins), 2, "12 forwarded clients spread over both endpoints")
        for i in (1, 2, 3):
            self.assertEqual({backend("203.0.113.%d" % i) for _ in range(4)}, {backend("203.0.113.%d" % i)})

    def test_rate_limit_buckets_survive_a_snapshot_update(self):
        # 1 token/s, burst 2: drain the bucket, push an unrelated change, then ask again. A
        # dataplane that rebuilt its limiter would grant a fresh burst (2 more 200s at once).
        drained, _, took = burst([self.url("/limited")] * 3)
        t0 = time.monotonic()  # the bucket was empty here (unless the burst took a second)
        self.assert_burst_limited(drained, took, 2)
        if drained[-1] != 429:
            self.skipTest("the burst took %.2fs: the bucket refilled before it was drained" % took)
        self.write_manifest("other.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: other, namespace: default}}
spec:
  listeners: [{{name: web, port: {free_port()}, protocol: HTTP}}]
  routes: [{{name: r, listener: web, backends: [{{endpoints: [{{address: 127.0.0.1, port: {self.a}}}]}}]}}]
""")
        self.wait_version_change(self.version)
        codes = [self.req("/limited")[0] for _ in range(3)]
        elapsed = time.monotonic() - t0
        # At most one token per whole second since the bucket emptied (burst 2).
        self.assertLessEqual(codes.count(200), min(2, int(elapsed)), (codes, elapsed))
        self.assertIn(429, codes)

    def test_outlier_detection_ejects_a_dead_endpoint(self):
        for _ in range(12):
            self.assertEqual(self.req("/outlier")[0], 200)  # connect failures fail over
        m = self.dataplane_metrics()
        self.assertGreaterEqual(metric_value(m, "doorman_l7_outlier_ejections_total") or 0, 1)
        failures = metric_value(m, "doorman_l7_upstream_connect_failures_total")
        for _ in range(6):
            self.assertEqual(self.req("/outlier")[0], 200)
        self.assertEqual(metric_value(self.dataplane_metrics(), "doorman_l7_upstream_connect_failures_total"), failures)



class L7LoadAwareSchedulers(DoormanTestCase):
    """least-connections and p2c weigh endpoints by the requests in flight to them (an L7
    request counts as an L4 connection does): while one endpoint serves a slow request, every
    other request goes to the idle one."""

    def test_least_connections_and_p2c_avoid_the_busy_endpoint(self):
        # Two backends per scheduler: an endpoint's in-flight count is the dataplane's, shared
        # by every route to that address, and each slow request is abandoned, not awaited (the
        # dataplane keeps waiting for the backend: no client-abort detection while it does).
        scheds = ("least-connections", "p2c")
        backends = {sched: {name: self.start_backend(name, ["--count"]) for name in (sched + "-a", sched + "-b")}
                    for sched in scheds}
        ports = {sched: free_port() for sched in scheds}
        self.write_manifest("lb.yaml", "".join(f"""\
---
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: {sched}, namespace: default}}
spec:
  listeners: [{{name: web, port: {ports[sched]}, protocol: HTTP}}]
  routes:
    - {{name: r, listener: web, policy: {{scheduler: {sched}}}, backends: [{{endpoints: [{eps}]}}]}}
""" for sched, eps in ((s, ", ".join("{address: 127.0.0.1, port: %d}" % p for p in backends[s].values()))
                       for s in scheds)))
        self.start_controller()
        self.start_dataplane(["--workers", "1"])
        self.wait_converged()

        for sched, port in ports.items():
            with self.subTest(scheduler=sched):
                def received():
                    return {n: json.loads(curl(["http://127.0.0.1:%d/__stats" % p]).stdout)["requests"]
                            for n, p in backends[sched].items()}
                wait_until(lambda: port_open(port), what="listener")
                before = received()
                # Slow enough to outlast the checks below on a loaded machine; killed after them.
                slow = subprocess.Popen(["curl", "-sS", "--max-time", "20", "-o", "/dev/null",
                                         "http://127.0.0.1:%d/slow/15000" % port])
                try:
                    wait_until(lambda: sum(received().values()) == sum(before.values()) + 1,
                               what="the slow request to reach a backend")
                    now = received()
                    busy = next(n for n in now if now[n] == before[n] + 1)
                    idle = next(n for n in now if n != busy)
                    got = collections.Counter()
                    for _ in range(6):
                        r = curl(["-sS", "-D", "-", "-o", "/dev/null", "http://127.0.0.1:%d/" % port])
                        got[re.search(r"(?im)^x-backend: (\S+)", r.stdout).group(1)] += 1
                    self.assertEqual(got, collections.Counter({idle: 6}), (sched, busy))
                    self.assertIsNone(slow.poll(), "the slow request was still in flight throughout")
                finally:
                    slow.kill()
                    slow.wait(timeout=30)


class L7OutlierDetectionAcrossWorkers(DoormanTestCase):
    """Two workers share one view of an endpoint: 5 connect failures in a row seen by the
    dataplane eject it once (a per-worker view needs 5 per worker, ejects it twice)."""

    def test_a_dead_endpoint_is_ejected_once_by_the_dataplane(self):
        a = self.start_backend("a")
        dead = self.refused_port()  # every connect is refused
        port = free_port()
        self.write_manifest("lb.yaml", f"""\
apiVersion: doorman.dev/v1alpha1
kind: LoadBalancer
metadata: {{name: two, namespace: default}}
spec:
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
  routes:
    - name: r
      listener: web
      backends: [{{endpoints: [{{address: 127.0.0.1, port: {dead}}}, {{address: 127.0.0.1, port: {a}}}]}}]
""")
        self.start_controller()
        self.start_dataplane(["--workers", "2"])
        self.wait_converged()
        wait_until(lambda: port_open(port), what="listener")
        # One connection per request: SO_REUSEPORT spreads them over both workers.
        t0 = time.monotonic()
        for _ in range(40):
            r = curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d/" % port])
            self.assertEqual(r.stdout, "200", r.stderr)  # connect failures fail over to `a`
        took = time.monotonic() - t0
        m = self.dataplane_metrics()
        failures = metric_value(m, "doorman_l7_upstream_connect_failures_total")
        ejections = metric_value(m, "doorman_l7_outlier_ejections_total")
        if took < 9.0:  # the 10 s ejection has not run out: the endpoint was never tried again
            self.assertEqual((failures, ejections), (5, 1))
        else:  # a very slow machine: it may have come back, failed 5 more times, been ejected again
            self.assertTrue(failures >= 5 and ejections >= 1, (failures, ejections, took))


class IngressRateLimitPerIngress(DoormanTestCase):
    """doorman.dev/rate-limit-rps is one bucket per client for the whole Ingress (every path), as
    ingress-nginx's per-Ingress limit_req zone, not one per path: an Ingress with two paths does
    not give a client twice the limit. Another Ingress has its own."""

    def test_the_paths_of_an_ingress_share_its_limit(self):
        backend = self.start_backend("b")
        http = free_port()
        one = 'paths: [{path: /a, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]'
        two = one[:-1] + ', {path: /b, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]'
        limited = one_ingress_yaml(backend, "r.test", annotations='doorman.dev/rate-limit-rps: "1"', path="/a")
        self.assertIn(one, limited)
        self.write_manifest("limited.yaml", limited.replace(one, two))
        self.write_manifest("other.yaml", one_ingress_yaml(backend, "o.test", annotations='doorman.dev/rate-limit-rps: "1"',
                                                           name="other", service="other", ingress_class=False))
        self.start_controller(["--ingress-http-port", str(http)])
        self.start_dataplane()
        self.wait_converged()
        wait_until(lambda: port_open(http), what="Ingress HTTP listener")

        codes, _, took = burst(["http://127.0.0.1:%d%s" % (http, p) for p in ("/a", "/b")], "-H", "Host: r.test")
        self.assertEqual(codes[0], 200)
        if took < 1.0:
            self.assertEqual(codes[1], 429, "the second path has the same bucket")
        self.assertEqual(burst(["http://127.0.0.1:%d/" % http], "-H", "Host: o.test")[0], [200],
                         "another Ingress has its own")


if __name__ == "__main__":
    unittest.main()
